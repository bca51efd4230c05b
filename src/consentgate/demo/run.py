"""The end-to-end demo behind `consentgate demo` / `make demo`.

Stages, each a call into the package that owns it so that any one can be replaced:

1. generate  - `demo.network.generate_network` writes the synthetic network (Parquet).
2. ledger    - consent events go into a real SQLite ledger (`ledger.open_ledger`).
3. policy    - the shipped example policies are loaded and published in the ledger, and
               a build spec is written beside the output (`build.yaml`).
4. build     - `build.run_build` pins the ledger as of now, detects PII and topics,
               decides every record under the recommended policy's SQL in DuckDB,
               redacts, and writes the sharded dataset with its manifest and card.
5. summary   - a rich table of records in and out, by category and by region.

The story's own policy (`default-on-2024.yaml`) is evaluated over the same data for
contrast (what it would have let in), but never written out.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

from consentgate.demo.pipeline import DemoPaths, DemoResult
from consentgate.errors import InputError

MARKER = ".consentgate-demo"


def prepare_output(out: Path) -> DemoPaths:
    """Create ``out``, or clear a previous demo run there; refuse any other non-empty folder."""
    if out.exists():
        if not out.is_dir():
            raise InputError(f"output path {out} exists and is not a folder", file=str(out))
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise InputError(
                f"output folder {out} is not empty and was not written by `consentgate demo`",
                hint="Choose a new or empty folder for --out; the demo only replaces its own earlier output.",
                file=str(out),
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("written by consentgate demo; safe to delete\n")
    return DemoPaths(out)


def run_demo(
    console: Console, members: int, seed: int, out: Path, as_of: datetime | None = None, progress: bool = True
) -> DemoResult:
    """Run every stage, printing progress and the summary to ``console``; returns the figures."""
    from consentgate.demo.decide import build_and_count
    from consentgate.demo.pipeline import run_stages
    from consentgate.demo.summary import print_summary

    paths = prepare_output(out)
    as_of = as_of or datetime.now(timezone.utc)
    with console.status("[bold]consentgate demo[/bold]") as status:
        prepared = run_stages(paths, members=members, seed=seed, as_of=as_of, status=status.update)
    result = build_and_count(paths, prepared, as_of=as_of, progress=progress)
    print_summary(console, result)
    return result

