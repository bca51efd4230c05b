"""Shared builders for the policy tests: policies from dicts, Arrow tables from rows, and a runner
that decides the same inputs with the reference evaluator and with DuckDB and insists they agree."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import duckdb
import pyarrow as pa
import yaml

from consentgate.datamodel import MEMBERS_SCHEMA, RECORDS_SCHEMA, UTC_TS
from consentgate.policy import ConsentState, EvalContext, Member, Policy, Record, decide_arrow, evaluate, parse_policy
from consentgate.policy.evaluate import TOPIC_PREFIX
from consentgate.policy.sql import SCREENED_COLUMNS, compile_sql, reasons_of

UTC = timezone.utc
_CON = duckdb.connect(":memory:")  # one connection for the whole test session: connecting costs ~40 ms
_CON.execute("SET threads = 1")
T0 = datetime(2025, 6, 1, tzinfo=UTC)

CONSENT_SCHEMA = pa.schema(
    [
        ("member_id", pa.string()), ("purpose", pa.string()), ("scope", pa.string()), ("choice", pa.string()),
        ("source", pa.string()), ("policy_version", pa.string()), ("recorded_at", UTC_TS), ("seq", pa.int64()),
    ]
)
TOPICS_SCHEMA = pa.schema([("record_id", pa.string()), ("topic", pa.string())])

# A permissive base: every rule is off, so one override turns on exactly one reason.
BASE: dict[str, Any] = {
    "name": "test-policy",
    "version": "2025.1",
    "published_at": datetime(2024, 1, 1, tzinfo=UTC),
    "effective_at": datetime(2024, 1, 1, tzinfo=UTC),
    "notice_days": 0,
    "retroactive": True,
    "purpose": "ai_training",
    "recipients": [
        {"name": "linkedin", "scope": "first_party", "since": "2023.1"},
        {"name": "azure-openai", "scope": "affiliate", "since": "2025.1"},
    ],
    "jurisdictions": {"default": "opt_out"},
    "minimum_age": 18,
    "categories": {"*": {"require": "author"}},
    "tiers": {},
    "sensitive_topics": {"default": "allow"},
    "pii": {},
    "gpc": {},
}


def policy_dict(**overrides: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(overrides)
    return data


def make_policy(**overrides: Any) -> Policy:
    """A policy through the real YAML loader (so tests cover the same path as files)."""
    text = yaml.safe_dump(policy_dict(**overrides), sort_keys=False)
    return parse_policy(text.encode(), source="test.yaml")


def member(member_id: str, country: str = "US", subdivision: str | None = None, birth_year: int = 1980, tier: str = "free") -> Member:
    return Member(member_id, country, subdivision, birth_year, tier)


def grant(member_id: str, scope: str = "first_party", version: str | None = "2025.1", choice: str = "grant", source: str = "member") -> ConsentState:
    return ConsentState(member_id, "ai_training", scope, choice, source, version, T0, 1)


def record(record_id: str, author: str | None, category: str = "post", participants: Sequence[str | None] = (), created_at: datetime = T0) -> Record:
    return Record(record_id, category, author, tuple(participants), created_at)


def members_table(rows: Iterable[Member]) -> pa.Table:
    rows = list(rows)
    return pa.table(
        {
            "member_id": [m.member_id for m in rows],
            "country": [m.country for m in rows],
            "subdivision": [m.subdivision for m in rows],
            "birth_year": pa.array([m.birth_year for m in rows], pa.int32()),
            "tier": [m.tier for m in rows],
            "display_name": ["n"] * len(rows),
            "email": ["e"] * len(rows),
            "joined_at": pa.array([T0] * len(rows), UTC_TS),
        },
        schema=MEMBERS_SCHEMA,
    )


def records_table(rows: Iterable[Record]) -> pa.Table:
    rows = list(rows)
    schema = RECORDS_SCHEMA.set(RECORDS_SCHEMA.get_field_index("author_id"), pa.field("author_id", pa.string()))
    return pa.table(
        {
            "record_id": [r.record_id for r in rows],
            "category": [r.category for r in rows],
            "author_id": [r.author_id for r in rows],
            "participants": pa.array([list(r.participants) for r in rows], pa.list_(pa.string())),
            "thread_id": pa.array([None] * len(rows), pa.string()),
            "created_at": pa.array([r.created_at for r in rows], UTC_TS),
            "text": [""] * len(rows),
        },
        schema=schema,
    )


def consent_table(rows: Iterable[ConsentState]) -> pa.Table:
    rows = list(rows)
    return pa.table(
        {
            "member_id": [c.member_id for c in rows], "purpose": [c.purpose for c in rows], "scope": [c.scope for c in rows],
            "choice": [c.choice for c in rows], "source": [c.source for c in rows], "policy_version": [c.policy_version for c in rows],
            "recorded_at": pa.array([c.recorded_at for c in rows], UTC_TS), "seq": pa.array([c.seq for c in rows], pa.int64()),
        },
        schema=CONSENT_SCHEMA,
    )


def topics_table(rows: Iterable[tuple[str, str | None]]) -> pa.Table:
    rows = list(rows)
    return pa.table({"record_id": [r for r, _ in rows], "topic": [t for _, t in rows]}, schema=TOPICS_SCHEMA)


def decide_both(
    policy: Policy,
    records: Sequence[Record],
    members: Sequence[Member] = (),
    consent: Sequence[ConsentState] = (),
    topics: Sequence[tuple[str, str | None]] = (),
    *,
    scope: str = "first_party",
    as_of: datetime = T0,
) -> dict[str, tuple[str, ...]]:
    """Reasons per record id; fails if the reference evaluator and DuckDB disagree on any record."""
    topic_map: dict[str, set[str]] = {}
    for rid, topic in topics:
        if topic is not None:
            topic_map.setdefault(rid, set()).add(topic)
    ctx = EvalContext(
        policy, scope=scope, as_of=as_of,
        members={m.member_id: m for m in members},
        consent={(c.member_id, c.purpose, c.scope): c for c in consent},
        topics=topic_map,
    )
    python = {r.record_id: evaluate(r, ctx) for r in records}
    table = decide_arrow(
        policy, scope=scope, as_of=as_of, records=records_table(records), members=members_table(members),
        consent=consent_table(consent), topics=topics_table(topics), con=_CON,
    )
    sql = {row["record_id"]: (row["decision"], tuple(row["reasons"])) for row in table.to_pylist()}
    assert len(sql) == len(python) == table.num_rows
    masked = {r[0]: reasons_of(r[1], r[2]) for r in _CON.execute(
        compile_sql(policy, scope=scope, as_of=as_of, output="mask")).fetchall()}
    assert len(masked) == len(python)
    _check_extras(policy, scope, as_of, records, members, masked)
    _check_topics_only(policy, scope, as_of, python)
    for rid, decision in python.items():
        assert sql[rid] == (decision.decision, decision.reasons), (rid, decision.reasons, sql[rid])
        assert (decision.decision == "include") == (decision.reasons == ())
        assert masked[rid] == decision.reasons, (rid, decision.reasons, masked[rid])
    return {rid: d.reasons for rid, d in python.items()}


def _check_topics_only(policy: Any, scope: str, as_of: datetime, python: dict[str, Any]) -> None:
    """``compile_sql(output="topics")`` gives every record exactly the evaluator's topic reasons, and
    includes it when there are none: so for a record no other rule excludes, the evaluator's decision."""
    rows = _CON.execute(compile_sql(policy, scope=scope, as_of=as_of, output="topics")).fetchall()
    assert len(rows) == len(python)
    for rid, decision, reasons in rows:
        topical = tuple(r for r in python[rid].reasons if r.startswith(TOPIC_PREFIX))
        assert (decision, tuple(reasons)) == ("exclude" if topical else "include", topical), (rid, decision, reasons, topical)
        if topical == python[rid].reasons:
            assert decision == python[rid].decision


def _check_extras(policy: Any, scope: str, as_of: datetime, records: Sequence[Record], members: Sequence[Member],
                  masked: dict[str, tuple[str, ...]]) -> None:
    """``compile_sql(extras=True)``: the same decisions, ``author_missing`` and ``incomplete`` as in the records, and one
    ``group_key`` per distinct (category, author's region, author's tier), different for different ones."""
    rows = _CON.execute(compile_sql(policy, scope=scope, as_of=as_of, output="mask", extras=True)).fetchall()
    by_member = {m.member_id: m for m in members}
    keys: dict[tuple[str, str, str], set[int]] = {}
    for rid, mask, tcodes, key, missing, incomplete in rows:
        record = next(r for r in records if r.record_id == rid)
        assert incomplete == any(getattr(record, c) is None for c in SCREENED_COLUMNS), (rid, incomplete)
        assert reasons_of(mask, tcodes) == masked[rid]
        if not incomplete:  # a build refuses incomplete rows (``incomplete``), so author_missing need not mean anything there
            assert missing == (record.author_id not in record.participants), (rid, missing)
        author = by_member.get(record.author_id)
        region, tier = "unknown", "unknown"  # COALESCE: the first non-null of subdivision, country
        if author is not None:
            region = next((v for v in (author.subdivision, author.country) if v is not None), "unknown")
            tier = author.tier if author.tier is not None else "unknown"
        keys.setdefault((record.category, region, tier), set()).add(int(key))
    assert all(len(k) == 1 for k in keys.values())
    assert len({next(iter(k)) for k in keys.values()}) == len(keys)
