"""docs/cli-reference.md must be exactly what the CLI's --help metadata generates."""

from __future__ import annotations

from pathlib import Path

from consentgate.cli.reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli-reference.md"


def test_cli_reference_matches_help() -> None:
    expected = render()
    assert DOC.read_text() == expected, "docs/cli-reference.md is stale: run `make docs`"


def test_reference_covers_every_group() -> None:
    text = render()
    for group in ["demo", "demo generate", "ledger", "policy", "detect", "build", "lineage", "translog", "report", "serve"]:
        assert f"## `consentgate {group}" in text, group
