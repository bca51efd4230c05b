"""CLI group `consentgate demo`: generate the synthetic professional network, and run
the end-to-end demo (generate -> ledger -> policy -> decide -> write -> summary)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from consentgate.errors import InputError

app = typer.Typer(
    help="Synthetic professional network and the end-to-end demo. Without a subcommand, runs the demo.",
    invoke_without_command=True,
    add_completion=False,
)


def _check_out_dir(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {out} exists and is not a folder", hint="Choose a folder path for --out.", file=str(out))
    return out


def _refuse_stale_ledger(out: Path) -> None:
    # A SQLite ledger is its .db file plus, in WAL mode, -wal and -shm files (and -journal in others).
    ledgers = sorted(p.name for p in out.glob("*.db*") if p.name.endswith((".db", ".db-wal", ".db-shm", ".db-journal"))) \
        if out.is_dir() else []
    if ledgers:
        raise InputError(
            f"{out} holds a ledger database ({', '.join(ledgers)}) loaded from the network it would replace",
            hint=f"Remove {', '.join(ledgers)} from {out} (its consent belongs to the old network) or choose another "
                 "--out, then import the new network's events with `consentgate ledger import`.",
            file=str(out / ledgers[0]),
        )


@app.callback()
def demo(
    ctx: typer.Context,
    members: Annotated[int, typer.Option("--members", min=1, help="Members in the synthetic network.")] = 5000,
    out: Annotated[Path, typer.Option("--out", help="Folder for generated data, ledger and the demo dataset.")] = Path("demo-out"),
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed; the same seed gives identical files.")] = 42,
) -> None:
    """Run the end-to-end demo: generate, record consent in a SQLite ledger, decide under policy in DuckDB, write Parquet, summarise."""
    if ctx.invoked_subcommand is not None:
        return
    from consentgate.cli.common import console
    from consentgate.demo.run import run_demo

    run_demo(console, members=members, seed=seed, out=_check_out_dir(out))


@app.command("generate")
def generate(
    members: Annotated[int, typer.Option("--members", min=1, help="Number of members to generate.")] = 5000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed; the same seed gives byte-identical files.")] = 42,
    out: Annotated[Path, typer.Option("--out", help="Output folder for members/records/consent_events/labels.parquet.")] = Path("demo-data"),
    records_per_member: Annotated[
        Optional[float], typer.Option("--records-per-member", min=0.1, help="Average records per member (default 10).")
    ] = None,
) -> None:
    """Write the synthetic professional network as Parquet in the canonical schema (docs/data-model.md).

    Refuses a folder holding a ledger database (a .db file): it was loaded from the network being
    replaced, and new events imported on top would mix two networks' consent histories."""
    out = _check_out_dir(out)
    _refuse_stale_ledger(out)
    from consentgate.cli.common import console
    from consentgate.demo.network import generate_network

    result = generate_network(members=members, seed=seed, out=out, records_per_member=records_per_member)
    console.print(f"Wrote {result.describe()} to {out}")
