"""The demo's closing summary: rich tables of records in and out, by category and region."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from consentgate.demo.pipeline import DemoResult


def _table(title: str, key: str, rows: dict[str, tuple[int, int]]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(key)
    table.add_column("in", justify="right")
    table.add_column("out", justify="right")
    table.add_column("% in", justify="right")
    for name in sorted(rows):
        inc, exc = rows[name]
        total = inc + exc
        table.add_row(name, f"{inc:,}", f"{exc:,}", f"{100 * inc / total:.1f}" if total else "-")
    return table


def print_summary(console: Console, result: DemoResult) -> None:
    """Print what went in and out of the demo dataset, and why."""
    console.print(f"[bold]Generated[/bold] {result.generated}")
    console.print(f"[bold]Ledger[/bold] {result.events:,} consent events in {result.paths.ledger_url}")
    console.print(f"[bold]Policy[/bold] {result.policy}")
    console.print(_table("Records by category", "category", result.by_category))
    console.print(_table("Records by region", "region", result.by_region))
    reasons = Table(title="Top exclusion reasons", title_justify="left")
    reasons.add_column("reason")
    reasons.add_column("records", justify="right")
    for code, n in result.top_reasons:
        reasons.add_row(code, f"{n:,}")
    console.print(reasons)
    console.print(
        f"[bold]Records in[/bold] {result.records_in:,}  [bold]included[/bold] {result.records_out:,}  "
        f"[bold]excluded[/bold] {result.records_in - result.records_out:,}"
    )
    console.print(
        f"[bold]Text read[/bold] for {result.records_scanned:,} records only; the other "
        f"{result.records_in - result.records_scanned:,} were excluded on consent, region, category or contract "
        "without their content ever being scanned."
    )
    console.print(
        f"[bold]For contrast[/bold], the story's policy ({result.story_policy}) would have let in "
        f"{result.story_included:,} records, {result.story_private_messages:,} of them private messages "
        "(direct or InMail). It is not written out."
    )
    console.print(f"[bold]Dataset[/bold] {result.paths.dataset}  content_hash {result.content_hash}")
    console.print(f"Check it with `consentgate build verify {result.paths.dataset}`; rebuild with `consentgate build run {result.paths.spec} --replace`.")
