"""The demo's detect -> decide -> redact -> write stages over the generated network.

Detection (``consentgate.detect``) finds PII spans and sensitive topics; the
recommended policy's compiled SQL (``consentgate.policy.decide_arrow``) decides every
record in DuckDB for the first-party scope; included texts are redacted with the
policy's PII strategies and written to ``dataset/records.parquet`` beside
``dataset/decisions.parquet`` (ids, decisions and reasons, no text). The story's
policy is decided over the same inputs for contrast, and not written.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from consentgate.demo.pipeline import DemoPaths, DemoResult

PRIVATE_MESSAGES = ("message.direct", "message.inmail")
# The demo's pseudonym key is derived from its output path: demo data only. Real builds
# take the key from configuration (CONSENTGATE_PSEUDONYM_KEY).
_DEMO_KEY_LABEL = b"consentgate-demo-pseudonym-key:"


def decide_and_write(
    paths: DemoPaths, *, policy: Any, story: Any, as_of: datetime, generated: str, events: int
) -> DemoResult:
    """Detect, decide under ``policy`` (first party) and ``story`` (affiliate), write, count."""
    from consentgate.detect import Detector, redact
    from consentgate.policy import compile_policy, decide_arrow

    records = pq.read_table(paths.data / "records.parquet")
    members = pq.read_table(paths.data / "members.parquet")
    consent = pq.read_table(paths.snapshot)
    detector = Detector(member_names=members.column("display_name").to_pylist(), workers=1)
    scan = detector.scan(records.column("text"))
    topics = pa.table({
        "record_id": records.column("record_id").take(scan.topics.column("row")),
        "topic": scan.topics.column("topic"),
    })
    inputs = {"records": records, "members": members, "consent": consent, "topics": topics}
    decisions = decide_arrow(policy, scope="first_party", as_of=as_of, **inputs)
    story_decisions = decide_arrow(story, scope="affiliate", as_of=as_of, **inputs)

    decisions = _align(records, decisions)
    included_mask = pc.equal(decisions.column("decision"), "include")
    key = hashlib.sha256(_DEMO_KEY_LABEL + str(paths.out.resolve()).encode()).digest()
    redaction = redact(records.column("text"), scan.spans, compile_policy(policy).pii_strategies(), key)
    keep = pc.and_(included_mask, pc.invert(redaction.dropped))
    decisions = _mark_dropped(decisions, pc.and_(included_mask, redaction.dropped))
    out_records = records.set_column(records.schema.get_field_index("text"), "text", redaction.texts).filter(keep)
    _write(paths, out_records, decisions)
    return _figures(paths, policy, story, generated, events, records, members, decisions, story_decisions, keep)


def _align(records: pa.Table, decisions: pa.Table) -> pa.Table:
    """Decisions in the records' order; fails closed if any record lacks exactly one decision."""
    if decisions.num_rows != records.num_rows:
        raise RuntimeError(f"policy query returned {decisions.num_rows} decisions for {records.num_rows} records")
    index = pc.index_in(records.column("record_id"), value_set=decisions.column("record_id"))
    if index.null_count:
        raise RuntimeError("policy query left records without a decision")
    return decisions.take(index)


def _mark_dropped(decisions: pa.Table, dropped: pa.Array) -> pa.Table:
    """Records the policy included but whose PII strategy is drop_record become excludes."""
    flags = dropped.to_pylist()
    decision = ["exclude" if d else v for v, d in zip(decisions.column("decision").to_pylist(), flags)]
    reasons = [["PII_DROP_RECORD"] if d else r for r, d in zip(decisions.column("reasons").to_pylist(), flags)]
    return decisions.set_column(1, "decision", pa.array(decision)).set_column(2, "reasons", pa.array(reasons, pa.list_(pa.string())))


def _write(paths: DemoPaths, records: pa.Table, decisions: pa.Table) -> None:
    tmp = paths.out / ".dataset.tmp"
    tmp.mkdir()
    pq.write_table(records, tmp / "records.parquet", compression="zstd")
    pq.write_table(decisions.select(["record_id", "decision", "reasons"]), tmp / "decisions.parquet", compression="zstd")
    tmp.rename(paths.dataset)


def _region_labels(members: pa.Table) -> dict[str, str]:
    from consentgate.policy.regions import reference_table

    table = reference_table()
    # The widest group wins (EEA over EU), so each country has one label.
    group_of = {c: g for g, countries in sorted(table.groups.items(), key=lambda kv: len(kv[1])) for c in countries}
    labels = {}
    for m in members.select(["member_id", "country", "subdivision"]).to_pylist():
        sub = m["subdivision"]
        if sub in table.jurisdictions:
            labels[m["member_id"]] = sub
        else:
            labels[m["member_id"]] = group_of.get(m["country"], m["country"])
    return labels


def _figures(
    paths: DemoPaths, policy: Any, story: Any, generated: str, events: int,
    records: pa.Table, members: pa.Table, decisions: pa.Table, story_decisions: pa.Table, keep: pa.Array,
) -> DemoResult:
    region = _region_labels(members)
    kept = keep.to_pylist()
    by_category: dict[str, list[int]] = {}
    by_region: dict[str, list[int]] = {}
    for category, author, k in zip(records.column("category").to_pylist(), records.column("author_id").to_pylist(), kept):
        by_category.setdefault(category, [0, 0])[0 if k else 1] += 1
        by_region.setdefault(region.get(author, "unknown"), [0, 0])[0 if k else 1] += 1
    reasons = Counter(r for rs in decisions.column("reasons").to_pylist() for r in rs)
    story_inc = pc.equal(story_decisions.column("decision"), "include")
    story_ids = pc.filter(story_decisions.column("record_id"), story_inc)
    story_cats = pc.filter(records.column("category"), pc.is_in(records.column("record_id"), value_set=story_ids))
    return DemoResult(
        paths=paths,
        generated=generated,
        events=events,
        policy=f"{policy.name} {policy.version} (scope first_party)",
        story_policy=f"{story.name} {story.version}, scope affiliate",
        records_in=records.num_rows,
        records_out=sum(kept),
        by_category={k: (v[0], v[1]) for k, v in by_category.items()},
        by_region={k: (v[0], v[1]) for k, v in by_region.items()},
        top_reasons=reasons.most_common(8),
        story_included=len(story_ids),
        story_private_messages=int(pc.sum(pc.is_in(story_cats, value_set=pa.array(PRIVATE_MESSAGES))).as_py() or 0),
    )
