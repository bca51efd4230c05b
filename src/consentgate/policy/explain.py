"""Explain one record's decision from a folder of canonical Parquet files (`policy explain`).

Owns reading just the rows one record needs: the record from ``records.parquet``,
its subjects from ``members.parquet``, their consent events from
``consent_events.parquet`` (the state as of T is the latest event per
member/purpose/scope with ``recorded_at <= T``; a tie goes to the later row in
the file), and detected topics from ``labels.parquet`` when present. Returns the
reference evaluator's decision with the rules and events behind it. Never
returns member text, names or e-mail addresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from consentgate.errors import InputError
from consentgate.policy.compiled import compile_policy
from consentgate.policy.evaluate import ConsentState, Decision, EvalContext, Member, Record, evaluate
from consentgate.policy.model import Policy


@dataclass
class Explanation:
    """A decision plus what it was made from (ids, regions, tiers, events; no member text)."""

    decision: Decision
    scope: str
    as_of: datetime
    category_rule: str
    subjects: list[dict[str, Any]] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    topics_source: str = "none"

    def to_dict(self) -> dict[str, Any]:
        d = self.decision
        return {
            "record_id": d.record_id, "decision": d.decision, "reasons": list(d.reasons), "scope": self.scope,
            "as_of": self.as_of.isoformat(), "category_rule": self.category_rule,
            "findings": [{"code": f.code, "member_id": f.member_id, "detail": f.detail} for f in d.findings],
            "redact_topics": list(d.redact_topics), "subjects": self.subjects,
            "topics": self.topics, "topics_source": self.topics_source,
        }


def _read(path: Path, columns: list[str], filters: list[Any] | None) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    if not path.is_file():
        raise InputError(f"{path} does not exist", hint="Point --data at a folder with the canonical Parquet files (docs/data-model.md).", file=str(path))
    try:
        return pq.read_table(path, columns=columns, filters=filters).to_pylist()  # type: ignore[no-any-return]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read {path}: {type(exc).__name__}", file=str(path)) from None


def explain_record(policy: Policy, data: Path, record_id: str, *, as_of: datetime, scope: str) -> Explanation:
    """Decide ``record_id`` under ``policy`` from the files in ``data`` and say why."""
    rows = _read(data / "records.parquet", ["record_id", "category", "author_id", "participants", "created_at"], [("record_id", "=", record_id)])
    if not rows:
        raise InputError(f"record {record_id!r} is not in {data / 'records.parquet'}", file=str(data / "records.parquet"), value=record_id)
    row = rows[0]
    record = Record(row["record_id"], row["category"], row["author_id"], tuple(row["participants"] or ()), row["created_at"])
    ids = sorted({m for m in (record.author_id, *record.participants) if m is not None})
    members = {
        m["member_id"]: Member(m["member_id"], m["country"], m["subdivision"], m["birth_year"], m["tier"])
        for m in _read(data / "members.parquet", ["member_id", "country", "subdivision", "birth_year", "tier"], [("member_id", "in", ids)] if ids else None)
        if m["member_id"] in ids
    }
    events = _read(
        data / "consent_events.parquet",
        ["member_id", "purpose", "scope", "choice", "source", "policy_version", "recorded_at"],
        [("member_id", "in", ids)] if ids else None,
    )
    consent = consent_state(events, as_of)
    topics, source = _topics(data, record_id)
    compiled = compile_policy(policy)
    ctx = EvalContext(compiled, scope=scope, as_of=as_of, members=members, consent=consent, topics={record_id: topics})
    decision = evaluate(record, ctx)
    subjects = [_subject(m, members, consent, compiled.mode_for, policy.purpose, scope, events, as_of) for m in decision.subjects]
    rule = compiled.category_rule.get(record.category, "unknown category")
    return Explanation(decision, scope, as_of, rule, subjects, sorted(topics), source)


def consent_state(events: list[dict[str, Any]], as_of: datetime) -> dict[tuple[str, str, str], ConsentState]:
    """Latest event per (member, purpose, scope) with ``recorded_at <= as_of``; ties go to the later row."""
    state: dict[tuple[str, str, str], ConsentState] = {}
    for seq, e in enumerate(events, start=1):
        if e["recorded_at"] > as_of:
            continue
        key = (e["member_id"], e["purpose"], e["scope"])
        current = state.get(key)
        if current is None or e["recorded_at"] >= current.recorded_at:
            state[key] = ConsentState(e["member_id"], e["purpose"], e["scope"], e["choice"], e["source"], e["policy_version"], e["recorded_at"], seq)
    return state


def _topics(data: Path, record_id: str) -> tuple[set[str], str]:
    path = data / "labels.parquet"
    if not path.is_file():
        return set(), "none (no labels.parquet in the data folder)"
    rows = _read(path, ["record_id", "kind", "topic"], [("record_id", "=", record_id)])
    return {r["topic"] for r in rows if r["kind"] == "topic" and r["topic"] is not None}, "labels.parquet (ground-truth topic labels)"


def _subject(
    member_id: str | None, members: dict[str, Member], consent: dict[tuple[str, str, str], ConsentState],
    mode_for: Any, purpose: str, scope: str, events: list[dict[str, Any]], as_of: datetime,
) -> dict[str, Any]:
    member = members.get(member_id) if member_id is not None else None
    if member is None:
        return {"member_id": member_id, "known": False}
    state = consent.get((member.member_id, purpose, scope))
    history = sorted(
        (e for e in events if e["member_id"] == member.member_id and e["purpose"] == purpose and e["scope"] == scope and e["recorded_at"] <= as_of),
        key=lambda e: e["recorded_at"], reverse=True,
    )
    return {
        "member_id": member.member_id, "known": True, "country": member.country, "subdivision": member.subdivision,
        "tier": member.tier, "jurisdiction_mode": mode_for(member.country, member.subdivision),
        "consent": None if state is None else {
            "choice": state.choice, "source": state.source, "policy_version": state.policy_version, "recorded_at": state.recorded_at.isoformat(),
        },
        "events": [
            {"choice": e["choice"], "source": e["source"], "policy_version": e["policy_version"], "recorded_at": e["recorded_at"].isoformat()}
            for e in history[:10]
        ],
    }
