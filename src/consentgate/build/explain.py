"""``build explain SPEC --record ID``: one record's decision, reasons and redactions, as a build would make them.

Owns ``explain_record``. It runs the same pieces as a build, on one record: the
sources through the same checks and mapping, the consent snapshot at ``as_of``,
detection on the record's text, the compiled policy SQL, the build-level reasons
and the redaction strategies. It adds the reference evaluator's findings (which
member and which rule caused each reason). It returns entity types and character
offsets, never the text itself.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from consentgate.build.decide import NO_TOPICS, REASON_DROP, REASON_UNKNOWN_PARTICIPANT
from consentgate.build.duckdb_engine import DISTINCT_NAMES
from consentgate.build.tasks import connect
from consentgate.build.consent import pin_consent, registry_of
from consentgate.build.run import check_as_of, check_policy, resolve_scope, strategies_for
from consentgate.build.sharding import shard_of
from consentgate.build.sources import one, open_source, parquet_scan, quote_str
from consentgate.build.spec import BuildSpec
from consentgate.config import Settings, load_settings
from consentgate.errors import BuildError, ConsentGateError


def explain_record(spec: BuildSpec, record_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """The decision, reasons, findings, shard and redactions of ``record_id`` under ``spec``."""
    from consentgate.detect import Detector
    from consentgate.policy import SqlTables, compile_sql, load_policy

    settings = settings or load_settings()
    now = datetime.now(timezone.utc)
    as_of = spec.as_of or now
    check_as_of(as_of, now)
    policy = load_policy(spec.policy.file)
    scope, recipient = resolve_scope(spec, policy, settings)
    strategies = strategies_for(spec, policy)
    with tempfile.TemporaryDirectory(prefix="consentgate-explain-") as tmp:
        work = Path(tmp)
        pinned = pin_consent(spec, as_of, work)
        publishable: str | None = None
        try:
            check_policy(policy, registry_of(spec), as_of)
        except ConsentGateError as exc:
            publishable = exc.message
        con = connect(work / "spill", threads=1, memory="512MB")
        try:
            open_source(con, "records", spec.sources.records, spec.mapping.records, "all_records")
            open_source(con, "members", spec.sources.members, spec.mapping.members, "members")
            con.execute(f"CREATE TEMP TABLE records AS SELECT * FROM all_records WHERE record_id = {quote_str(record_id)}")
            rec = con.sql("SELECT * FROM records").to_arrow_table()
            if rec.num_rows == 0:
                raise BuildError(f"record {record_id!r} is not in the records source", hint="Check the record id.", record=record_id)
            con.execute(f"CREATE TEMP VIEW consent AS SELECT * FROM {parquet_scan(pinned.snapshot)}")
            con.execute(f"CREATE TEMP TABLE {NO_TOPICS} (record_id VARCHAR, topic VARCHAR)")
            screen = one(con.execute(compile_sql(policy, scope=scope, as_of=as_of, tables=SqlTables(topics=NO_TOPICS))))
            unknown = one(con.execute(
                "SELECT count(*) FROM (SELECT unnest(participants) AS member_id FROM records) p "
                "WHERE NOT EXISTS (SELECT 1 FROM members m WHERE m.member_id = p.member_id)"))
            assert screen is not None and unknown is not None
            scanned = screen[1] == "include" and not unknown[0]
            topics: list[str] = []
            row, spans = screen, []
            if scanned:
                names = [r[0] for r in con.execute(DISTINCT_NAMES).fetchall()]
                scan = Detector(member_names=names).scan(rec.column("text"))
                topics = sorted({str(t) for t in scan.topics.column("topic").to_pylist()})
                con.register("topics_in", pa.table({"record_id": [record_id] * len(topics), "topic": topics},
                                                   schema=pa.schema([("record_id", pa.string()), ("topic", pa.string())])))
                con.execute("CREATE TEMP TABLE topics AS SELECT * FROM topics_in")
                row = one(con.execute(compile_sql(policy, scope=scope, as_of=as_of)))
                spans = [{"entity_type": t, "start": s, "end": e, "strategy": strategies.get(t, "mask")} for t, s, e in zip(
                    scan.spans.column("entity_type").to_pylist(), scan.spans.column("start").to_pylist(), scan.spans.column("end").to_pylist())]
            findings = _findings(con, policy, scope, as_of, rec, topics)
        finally:
            con.close()
    assert row is not None
    extra = ([REASON_DROP] if any(s["strategy"] == "drop_record" for s in spans) else []) + (
        [REASON_UNKNOWN_PARTICIPANT] if screen[1] == "include" and unknown[0] else [])
    reasons = sorted(set(row[2]) | set(extra))
    included = row[1] == "include" and not extra
    r = rec.to_pylist()[0]
    return {
        "record_id": record_id, "decision": "include" if included else "exclude", "reasons": reasons,
        "policy_decision": row[1], "policy_reasons": list(row[2]), "build_reasons": extra, "findings": findings,
        "policy": f"{policy.name} {policy.version}", "scope": scope, "recipient": recipient, "as_of": as_of.isoformat(),
        "policy_refused": publishable,
        "shard": shard_of(r["thread_id"] or r["record_id"], spec.shards) if included else None,
        "content_scanned": scanned, "topics": topics, "redactions": spans if included else [],
        "category": r["category"], "author_id": r["author_id"], "participants": list(r["participants"]),
    }


def _findings(con: Any, policy: Any, scope: str, as_of: datetime, rec: pa.Table, topics: list[str]) -> list[dict[str, Any]]:
    """The reference evaluator's findings for the record (which member, which rule)."""
    from consentgate.policy import ConsentState, EvalContext, Member, Record, evaluate

    r = rec.to_pylist()[0]
    ids = sorted({r["author_id"], *r["participants"]})
    placeholders = ", ".join(quote_str(i) for i in ids)
    members = {m[0]: Member(m[0], m[1], m[2], m[3], m[4]) for m in con.execute(
        f"SELECT member_id, country, subdivision, birth_year, tier FROM members WHERE member_id IN ({placeholders})").fetchall()}
    consent = {(c[0], c[1], c[2]): ConsentState(*c) for c in con.execute(
        "SELECT member_id, purpose, scope, choice, source, policy_version, recorded_at, seq FROM consent "
        f"WHERE member_id IN ({placeholders})").fetchall()}
    ctx = EvalContext(policy, scope=scope, as_of=as_of, members=members, consent=consent, topics={r["record_id"]: topics})
    record = Record(r["record_id"], r["category"], r["author_id"], tuple(r["participants"]), r["created_at"])
    return [{"code": f.code, "member_id": f.member_id, "detail": f.detail} for f in evaluate(record, ctx).findings]
