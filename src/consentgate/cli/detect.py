"""CLI group `consentgate detect`: find PII and sensitive topics in texts; evaluate the detector.

Commands:
- ``detect scan FILE|-``: scan text lines, JSONL or Parquet (``--column``) and print
  spans (row, type, character offsets; never the text itself) and topics.
- ``detect eval DATASET``: precision / recall / F1 per entity type against a
  presidio-research JSON file, or against a demo folder (records + labels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from consentgate.cli.common import console, print_json, settings

app = typer.Typer(help="Detect PII and sensitive topics in member text; evaluate the detector.", no_args_is_help=True, add_completion=False)

_MAX_LISTED = 50


def _detector(members: Optional[Path], backend: Optional[str], workers: Optional[int]) -> Any:
    from consentgate.detect import Detector
    from consentgate.errors import InputError

    names: list[str] = []
    if members is not None:
        import pyarrow.parquet as pq

        if not members.is_file():
            raise InputError(f"{members} does not exist", file=str(members))
        try:
            names = [n for n in pq.read_table(members, columns=["display_name"]).column("display_name").to_pylist() if n]
        except (OSError, KeyError, ValueError):
            raise InputError(f"{members} is not a members Parquet file with a display_name column", file=str(members)) from None
    n_workers = workers if workers is not None else settings().workers
    return Detector(names, backend=backend, workers=n_workers)


@app.command("scan")
def scan(
    file: Annotated[str, typer.Argument(help="Input: a text file (one text per line), .jsonl, .parquet, or - for stdin.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print spans, topics and counts as JSON.")] = False,
    column: Annotated[Optional[str], typer.Option("--column", help="Text column (Parquet) or field (JSONL); default 'text'.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="Input format: auto (from suffix), text, jsonl, parquet.")] = "auto",
    members: Annotated[
        Optional[Path], typer.Option("--members", help="members.parquet whose display_name list is redacted as PERSON.")
    ] = None,
    backend: Annotated[
        Optional[str], typer.Option("--backend", help="Scan engine: auto, hyperscan or re2 (env CONSENTGATE_DETECT_BACKEND).")
    ] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Worker processes (default: settings.workers).")] = None,
) -> None:
    """Scan texts for PII spans and sensitive topics. Offsets are characters; the text itself is never printed."""
    from consentgate.detect.inputs import read_texts

    texts = read_texts(file, fmt, column)
    detector = _detector(members, backend, workers)
    result = detector.scan(texts)
    counts: dict[str, int] = {}
    for t in result.spans.column("entity_type").to_pylist():
        counts[t] = counts.get(t, 0) + 1
    topic_rows: dict[str, set[int]] = {}
    for r, t in zip(result.topics.column("row").to_pylist(), result.topics.column("topic").to_pylist()):
        topic_rows.setdefault(t, set()).add(r)
    if json_out:
        print_json(
            {
                "texts": len(texts),
                "backend": detector.backend,
                "counts": dict(sorted(counts.items())),
                "topic_counts": {t: len(rows) for t, rows in sorted(topic_rows.items())},
                "spans": result.spans.to_pylist(),
                "topics": result.topics.to_pylist(),
            }
        )
        return
    from rich.table import Table

    console.print(f"Scanned {len(texts):,} texts with {detector.backend}: {result.spans.num_rows:,} PII spans, "
                  f"{sum(len(r) for r in topic_rows.values()):,} sensitive-topic flags.")
    summary = Table("entity type / topic", "count")
    for t, n in sorted(counts.items()):
        summary.add_row(t, f"{n:,}")
    for t, rows in sorted(topic_rows.items()):
        summary.add_row(f"topic:{t}", f"{len(rows):,} texts")
    console.print(summary)
    listing = Table("row", "entity_type", "start", "end", title=f"First {_MAX_LISTED} spans")
    for span in result.spans.slice(0, _MAX_LISTED).to_pylist():
        listing.add_row(str(span["row"]), span["entity_type"], str(span["start"]), str(span["end"]))
    if result.spans.num_rows:
        console.print(listing)


@app.command("eval")
def eval_(
    dataset: Annotated[
        Path,
        typer.Argument(help="A presidio-research JSON file (full_text + spans), or a demo folder with records.parquet and labels.parquet."),
    ],
    json_out: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    backend: Annotated[Optional[str], typer.Option("--backend", help="Scan engine: auto, hyperscan or re2.")] = None,
) -> None:
    """Precision, recall and F1 per entity type (span overlap) and overall; topic scores for demo folders."""
    from consentgate.detect import Detector
    from consentgate.detect.evaluate import evaluate_demo, evaluate_presidio
    from consentgate.errors import InputError

    if dataset.is_dir():
        report = evaluate_demo(dataset, None if backend is None else _demo_detector(dataset, backend))
    elif dataset.is_file():
        report = evaluate_presidio(dataset, Detector(backend=backend))
    else:
        raise InputError(f"{dataset} does not exist", file=str(dataset))
    data = report.as_dict()
    if json_out:
        print_json(data)
        return
    from rich.table import Table

    table = Table("entity type", "precision", "recall", "F1", "predicted", "gold", title=f"{dataset} ({data['texts']:,} texts, span overlap)")
    for name, s in data["per_type"].items():
        table.add_row(name, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", str(s["predicted"]), str(s["gold"]))
    for label, key in (("overall", "overall"), ("pattern types", "pattern_types")):
        s = data[key]
        table.add_row(f"[bold]{label}[/bold]", f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", str(s["predicted"]), str(s["gold"]))
    console.print(table)
    if data["ignored_gold_types"]:
        ignored = ", ".join(f"{k} ({v})" for k, v in data["ignored_gold_types"].items())
        console.print(f"Not scored (types consentgate does not detect): {ignored}", markup=False)
    if data["topics"]:
        topics = Table("topic", "precision", "recall", "predicted", "gold", title="Sensitive topics (per record)")
        for name, s in data["topics"].items():
            topics.add_row(name, f"{s['precision']:.3f}", f"{s['recall']:.3f}", str(s["predicted"]), str(s["gold"]))
        console.print(topics)


def _demo_detector(folder: Path, backend: str) -> Any:
    members = folder / "members.parquet"
    return _detector(members if members.is_file() else None, backend, 1)
