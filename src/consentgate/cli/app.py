"""The root `consentgate` typer app and the one place that turns errors into exit codes.

`main()` runs the app in non-standalone mode and catches, in one place:
- ``ConsentGateError``: prints ``Error: <message>`` and ``Hint: <hint>``, exits with the
  error's ``exit_code`` (2 unless the class says otherwise);
- click usage errors (bad flag values): one line ``Error: ...``, exit 2.
With ``--debug`` the traceback is printed as well.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
# typer >= 0.25 vendors click as typer._click; its exception classes live there.
from typer._click import exceptions as click_exc

from consentgate import __version__
from consentgate.cli import build, demo, detect, ledger, lineage, policy, report, serve, translog
from consentgate.cli.common import STATE, err_console
from consentgate.errors import ConsentGateError

app = typer.Typer(
    name="consentgate",
    help="consentgate: consent ledger, policy as code and record-level enforcement between member data and AI training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"consentgate {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", help="Settings file (default ./consentgate.toml; env CONSENTGATE_CONFIG)."),
    ] = None,
) -> None:
    """consentgate: the gate between member data and AI training pipelines."""
    STATE.debug = debug
    STATE.config_file = config


for _name, _module in [
    ("demo", demo), ("ledger", ledger), ("policy", policy), ("detect", detect), ("build", build),
    ("lineage", lineage), ("translog", translog), ("report", report),
]:
    if getattr(_module, "NOT_AVAILABLE", False):
        # A stub: one catch-all command that says so (see common.not_available_group).
        app.add_typer(_module.app)
    else:
        app.add_typer(_module.app, name=_name)
app.command(name="serve")(serve.serve)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `consentgate` script. Returns (and exits with) the exit code."""
    _one_blas_thread()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    code = _run(args, debug)
    if argv is None:
        sys.exit(code)
    return code


def _one_blas_thread() -> None:
    """Keep numpy's OpenBLAS to one thread in this process and every process it starts (unless the
    caller set ``OPENBLAS_NUM_THREADS``). consentgate makes no BLAS calls, but OpenBLAS starts its
    thread pool when numpy is imported, and on a 2-core machine that cost 0.08-0.12 CPU-s per
    process (``python -c "import numpy"``: user 0.21-0.25 s against 0.12-0.13 s); a build starts
    about eight Python processes (workers, shard writers, the ledger's readers). Importing this
    module does not import numpy, so the setting reaches this process too."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _run(args: list[str], debug: bool) -> int:
    try:
        result = app(args=args, prog_name="consentgate", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except ConsentGateError as exc:
        _report(exc.message, exc.hint, debug)
        return exc.exit_code
    except click_exc.NoArgsIsHelpError as exc:
        typer.echo(exc.format_message() if hasattr(exc, "format_message") else str(exc))
        return 0
    except click_exc.UsageError as exc:
        _report(exc.format_message(), "Run the command with --help to see valid options.", debug)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("Aborted.")
        return 130
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place unexpected errors are reported
        # The message of an unexpected error may quote input text, so only its type is shown.
        _report(f"unexpected internal error ({type(exc).__name__})", "Run again with --debug for the traceback and report it.", debug)
        return 1


def _report(message: str, hint: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    # One line each, no markup interpretation of user-supplied values.
    err_console.print(f"Error: {message}", markup=False, highlight=False, soft_wrap=True)
    err_console.print(f"Hint: {hint}", markup=False, highlight=False, soft_wrap=True, style="dim")
