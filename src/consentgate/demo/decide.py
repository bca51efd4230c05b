"""The demo's build stage and its figures.

The dataset is built through the real build pipeline (``consentgate.build.run_build``)
from the spec that ``pipeline.write_build_spec`` wrote: detect, decide under the
recommended policy's SQL in DuckDB, redact, write shards, decisions, subject
bitmaps, manifest and card. The figures for the summary are read back from the
build's ``decisions.parquet``. The story's policy is decided over the same inputs
for contrast (``policy.decide_arrow``; it allows every topic, so no detection is
needed) and never written.
"""

from __future__ import annotations

import secrets
import tempfile
from collections import Counter
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pydantic import SecretStr

from consentgate.config import Settings, load_settings
from consentgate.demo.pipeline import DemoPaths, DemoResult, Prepared

PRIVATE_MESSAGES = ("message.direct", "message.inmail")
TOPICS_SCHEMA = pa.schema([("record_id", pa.string()), ("topic", pa.string())])


def build_and_count(paths: DemoPaths, prepared: Prepared, *, as_of: datetime, progress: bool) -> DemoResult:
    """Run the build for the demo spec, then count what went in and out."""
    from consentgate.build import load_spec, run_build

    result = run_build(load_spec(paths.spec), progress=progress, settings=demo_settings())
    records = pq.read_table(paths.data / "records.parquet", columns=["record_id", "category", "author_id"])
    members = pq.read_table(paths.data / "members.parquet", columns=["member_id", "country", "subdivision"])
    decisions = _align(records, pq.read_table(paths.dataset / "decisions.parquet", columns=["record_id", "decision", "reasons", "content_scanned"]))
    story_included, story_private = _story(paths, prepared, as_of)
    kept = pc.equal(decisions.column("decision"), "include")
    by_category, by_region = _groups(records, members, kept)
    reasons = Counter(r for rs in decisions.column("reasons").to_pylist() for r in rs)
    return DemoResult(
        paths=paths,
        generated=prepared.generated,
        events=prepared.events,
        policy=f"{prepared.policy.name} {prepared.policy.version} (scope first_party)",
        story_policy=f"{prepared.story.name} {prepared.story.version}, scope affiliate",
        records_in=records.num_rows,
        records_out=int(pc.sum(kept).as_py() or 0),
        records_scanned=int(pc.sum(decisions.column("content_scanned")).as_py() or 0),
        by_category=by_category,
        by_region=by_region,
        top_reasons=reasons.most_common(8),
        story_included=story_included,
        story_private_messages=story_private,
        content_hash=result.content_hash,
    )


def demo_settings() -> Settings:
    """Settings for the demo build: a fresh random pseudonym key unless one is configured.

    The key exists only in memory for this run (never written or printed), so demo
    pseudonyms are not linkable across runs; set CONSENTGATE_PSEUDONYM_KEY to fix one.
    """
    settings = load_settings()
    if settings.pseudonym_key is None:
        settings = settings.model_copy(update={"pseudonym_key": SecretStr(secrets.token_hex(32))})
    return settings


def _align(records: pa.Table, decisions: pa.Table) -> pa.Table:
    """Decisions in the records' order; fails closed unless every record has exactly one."""
    if decisions.num_rows != records.num_rows:
        raise RuntimeError(f"the build recorded {decisions.num_rows} decisions for {records.num_rows} records")
    index = pc.index_in(records.column("record_id"), value_set=decisions.column("record_id"))
    if index.null_count:
        raise RuntimeError("the build left records without a decision")
    return decisions.take(index)


def _story(paths: DemoPaths, prepared: Prepared, as_of: datetime) -> tuple[int, int]:
    """(records the story's policy would include for its affiliate, how many are private messages)."""
    from consentgate.ledger import open_ledger
    from consentgate.policy import decide_arrow

    records = pq.read_table(paths.data / "records.parquet", columns=["record_id", "category", "author_id", "participants", "thread_id", "created_at"])
    with tempfile.TemporaryDirectory(dir=paths.out) as tmp:
        snapshot = Path(tmp) / "consent.parquet"
        open_ledger(paths.ledger_url, create=False).snapshot(as_of, snapshot)
        decisions = decide_arrow(
            prepared.story, scope="affiliate", as_of=as_of, records=records,
            members=pq.read_table(paths.data / "members.parquet"), consent=pq.read_table(snapshot),
            topics=TOPICS_SCHEMA.empty_table(),
        )
    included = pc.filter(decisions.column("record_id"), pc.equal(decisions.column("decision"), "include"))
    categories = pc.filter(records.column("category"), pc.is_in(records.column("record_id"), value_set=included))
    private = int(pc.sum(pc.is_in(categories, value_set=pa.array(PRIVATE_MESSAGES))).as_py() or 0)
    return len(included), private


def _region_labels(members: pa.Table) -> dict[str, str]:
    from consentgate.policy.regions import reference_table

    table = reference_table()
    # The widest group wins (EEA over EU), so each country has one label.
    group_of = {c: g for g, countries in sorted(table.groups.items(), key=lambda kv: len(kv[1])) for c in countries}
    labels = {}
    for m in members.to_pylist():
        sub = m["subdivision"]
        labels[m["member_id"]] = sub if sub in table.jurisdictions else group_of.get(m["country"], m["country"])
    return labels


def _groups(records: pa.Table, members: pa.Table, kept: pa.Array) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    region = _region_labels(members)
    by_category: dict[str, list[int]] = {}
    by_region: dict[str, list[int]] = {}
    for category, author, k in zip(records.column("category").to_pylist(), records.column("author_id").to_pylist(), kept.to_pylist()):
        by_category.setdefault(category, [0, 0])[0 if k else 1] += 1
        by_region.setdefault(region.get(author, "unknown"), [0, 0])[0 if k else 1] += 1
    return ({k: (v[0], v[1]) for k, v in by_category.items()}, {k: (v[0], v[1]) for k, v in by_region.items()})
