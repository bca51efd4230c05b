"""The root CLI: version, help, the one error handler, and honest stubs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from consentgate import __version__
from consentgate.cli.app import main

GROUPS = ["demo", "ledger", "policy", "detect", "build", "lineage", "translog", "report", "serve"]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("consentgate")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"consentgate {__version__}"


def test_help_lists_every_command_group() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for group in GROUPS:
        assert f" {group} " in result.stdout, group


@pytest.mark.parametrize("group", ["lineage", "translog", "report"])
def test_unfilled_groups_say_not_available_and_exit_2(group: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([group, "anything"]) == 2
    err = capsys.readouterr().err
    assert "not yet available" in err
    assert err.startswith("Error: ")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["demo", "generate", "--members", "-5"], "--members"),
        (["demo", "generate", "--members", "abc"], "--members"),
        (["demo", "--members", "0"], "--members"),
        (["demo", "generate", "--out", "pyproject.toml"], "pyproject.toml"),
        (["nosuchgroup"], "nosuchgroup"),
    ],
)
def test_bad_flag_values_give_one_line_error_exit_2_no_traceback(args: list[str], fragment: str) -> None:
    root = Path(__file__).resolve().parents[2]
    result = run_cli(*args, cwd=root)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("Error: ") and fragment in lines[0]
    assert lines[1].startswith("Hint: ")
    assert len(lines) == 2
    assert "Traceback" not in result.stderr


def test_debug_shows_traceback() -> None:
    result = run_cli("--debug", "lineage", "x")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "NotAvailableError" in result.stderr


def test_the_script_entry_point_imports_the_cli_only_when_called() -> None:
    # A spawned worker (detection, shard writer, chain check) re-runs the main script before its
    # task; the script's top-level import must not bring typer, rich and every command module.
    import tomllib

    scripts = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = scripts["consentgate"].partition(":")
    code = f"import sys; from {module} import {func}; print(sorted(m for m in ('typer', 'rich', 'consentgate.cli.app') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    # ... and the installed script and `python -m consentgate` still run the CLI.
    assert run_cli("--version").stdout.strip() == f"consentgate {__version__}"
    via_m = subprocess.run([sys.executable, "-m", "consentgate", "nosuch"], capture_output=True, text=True, timeout=120)
    assert via_m.returncode == 2 and "No such command" in via_m.stderr + via_m.stdout


def test_the_cli_keeps_openblas_to_one_thread_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    # Set before numpy is imported, so each process a build starts skips OpenBLAS's thread pool.
    import os

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "x")  # so that the test's changes are all undone afterwards
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    assert main(["--version"]) == 0
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    assert main(["--version"]) == 0
    assert os.environ["OPENBLAS_NUM_THREADS"] == "4"
    code = "import sys, consentgate.cli.app; print('numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
