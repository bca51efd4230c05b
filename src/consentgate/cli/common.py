"""Shared CLI plumbing: the console, settings lookup, and small output helpers.

Group modules import from here, never from each other. Heavy libraries are
imported inside commands so that `consentgate --help` stays fast.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from consentgate.config import Settings, load_settings
from consentgate.errors import InputError, NotAvailableError

console = Console()
err_console = Console(stderr=True)


class CliState:
    """What the root callback resolved: flags that apply to every command."""

    def __init__(self, debug: bool = False, config_file: Path | None = None) -> None:
        self.debug = debug
        self.config_file = config_file


STATE = CliState()


def settings(**flags: Any) -> Settings:
    """Settings for this invocation; ``flags`` are the command's own options (None = unset)."""
    return load_settings(STATE.config_file, **flags)


def parse_time_option(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 timestamp with an offset from a CLI option; ``None`` when not given.

    A value without a timezone is refused rather than guessed (``InputError`` naming the option).
    """
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option} {value!r} is not an ISO 8601 timestamp", hint="Use e.g. 2024-09-18T00:00:00Z.", field=option) from None
    if ts.tzinfo is None:
        raise InputError(f"{option} {value!r} has no timezone", hint="Add Z or an offset, e.g. 2024-09-18T00:00:00Z.", field=option)
    return ts


def print_json(data: Any) -> None:
    """Write ``data`` as JSON to stdout (plain, no rich markup, for piping)."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def not_available_group(name: str, summary: str) -> typer.Typer:
    """A command group that says plainly it does not work yet, and exits 2.

    It accepts any subcommand and options, so ``consentgate NAME anything --x`` also
    gets the honest "not yet available" error rather than a usage error.
    """
    group = typer.Typer(add_completion=False)

    @group.command(
        name=name,
        help=f"{summary} (not yet available).",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    )
    def _not_yet(ctx: typer.Context) -> None:
        raise NotAvailableError(f"`consentgate {name}` is not yet available in this version")

    return group
