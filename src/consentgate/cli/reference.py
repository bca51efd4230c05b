"""Generates docs/cli-reference.md from the CLI's own --help metadata.

Run ``python -m consentgate.cli.reference > docs/cli-reference.md`` (or ``make docs``);
tests/cli/test_reference.py fails when the checked-in page differs from what the
code would generate, so the reference cannot drift from ``--help``.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer

HEADER = """# CLI reference

Generated from `--help` by `python -m consentgate.cli.reference` (`make docs`); a test
checks that this page matches the code. Every command accepts `--help`.
Global options (`--debug`, `--config`, `--version`) go before the command group.
"""


def _rows(cmd: Any, ctx: Any) -> list[tuple[str, str]]:
    rows = []
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        name, text = record
        rows.append((name.replace("|", "\\|"), " ".join(text.split()).replace("|", "\\|")))
    return rows


def _section(cmd: Any, ctx: Any, path: str) -> list[str]:
    out = [f"## `{path}`", ""]
    help_text = inspect.cleandoc(cmd.help or "")
    if help_text:
        out += [help_text, ""]
    pieces = " ".join(cmd.collect_usage_pieces(ctx))
    out += ["```", f"{path} {pieces}".rstrip(), "```", ""]
    rows = _rows(cmd, ctx)
    if rows:
        out += ["| option / argument | meaning |", "| --- | --- |"]
        out += [f"| `{name}` | {text} |" for name, text in rows]
        out.append("")
    return out


def _walk(cmd: Any, ctx: Any, path: str) -> list[str]:
    lines = _section(cmd, ctx, path)
    list_commands = getattr(cmd, "list_commands", None)
    if list_commands is None:
        return lines
    for name in sorted(list_commands(ctx)):
        sub = cmd.get_command(ctx, name)
        if sub is None or getattr(sub, "hidden", False):
            continue
        sub_ctx = type(ctx)(sub, info_name=name, parent=ctx)
        lines += _walk(sub, sub_ctx, f"{path} {name}")
    return lines


def render() -> str:
    """The whole CLI reference as Markdown."""
    from consentgate.cli.app import app

    root = typer.main.get_command(app)
    ctx = typer._click.Context(root, info_name="consentgate")
    return HEADER + "\n" + "\n".join(_walk(root, ctx, "consentgate")).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
