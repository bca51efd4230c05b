"""The reference evaluator: one record in, include/exclude with every reason out (pure Python).

Owns the decision rules (documented in docs/policy-reference.md, "How a record
is decided") and the input row types. The SQL compiler (``sql.py``) spells the
same rules; property tests hold the two to the same answer record for record.

Per record: ``UNKNOWN_CATEGORY`` / ``CATEGORY_EXCLUDED`` from the category rule and
``SENSITIVE_TOPIC:<topic>`` per detected topic whose action is ``exclude``. Per
subject (the author, plus every other participant when the category requires
``all_participants``; another participant's codes carry the ``PARTICIPANT:``
prefix): ``UNKNOWN_SUBJECT``, ``MINOR``, ``CONTRACT_EXCLUDED``,
``JURISDICTION_EXCLUDED``, ``CONSENT_DENIED``, ``OPT_IN_REQUIRED``,
``CONSENT_SCOPE_OUTDATED``, ``NOTICE_NOT_ELAPSED``, ``RETROACTIVE_USE``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from consentgate.datamodel import SCOPES
from consentgate.errors import PolicyError
from consentgate.policy.compiled import CompiledPolicy, compile_policy, minor_cutoff_birth_year
from consentgate.policy.model import Policy, parse_version

PARTICIPANT_PREFIX: Final = "PARTICIPANT:"
TOPIC_PREFIX: Final = "SENSITIVE_TOPIC:"
REASON_CODES: Final = (
    "UNKNOWN_CATEGORY",
    "CATEGORY_EXCLUDED",
    "CONTRACT_EXCLUDED",
    "UNKNOWN_SUBJECT",
    "MINOR",
    "JURISDICTION_EXCLUDED",
    "CONSENT_DENIED",
    "OPT_IN_REQUIRED",
    "NOTICE_NOT_ELAPSED",
    "CONSENT_SCOPE_OUTDATED",
    "RETROACTIVE_USE",
    "CREATED_AFTER_AS_OF",
)


@dataclass(frozen=True)
class Member:
    """The member columns a decision reads (canonical ``members`` schema)."""

    member_id: str
    country: str
    subdivision: str | None
    birth_year: int | None
    tier: str


@dataclass(frozen=True)
class ConsentState:
    """One consent snapshot row: the latest event for (member, purpose, scope) at ``as_of``."""

    member_id: str
    purpose: str
    scope: str
    choice: str
    source: str
    policy_version: str | None
    recorded_at: datetime
    seq: int = 0


@dataclass(frozen=True)
class Record:
    """The record columns a decision reads (canonical ``records`` schema, without the text)."""

    record_id: str
    category: str
    author_id: str | None
    participants: tuple[str | None, ...]
    created_at: datetime


@dataclass(frozen=True)
class Finding:
    """Why one reason code applies: the member it concerns (None for record-level) and the rule/event."""

    code: str
    member_id: str | None
    detail: str


@dataclass(frozen=True)
class Decision:
    """``decision`` is ``include`` or ``exclude``; ``reasons`` the sorted distinct codes (empty on include)."""

    record_id: str
    decision: str
    reasons: tuple[str, ...]
    findings: tuple[Finding, ...] = ()
    redact_topics: tuple[str, ...] = ()
    subjects: tuple[str | None, ...] = field(default=())


class EvalContext:
    """Everything besides the record: policy, target scope, as-of time, members, consent, topics.

    ``consent`` is keyed ``(member_id, purpose, scope)``; ``topics`` maps record_id to detected topics.
    """

    def __init__(
        self,
        policy: Policy | CompiledPolicy,
        *,
        scope: str,
        as_of: datetime,
        members: Mapping[str, Member],
        consent: Mapping[tuple[str, str, str], ConsentState],
        topics: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self.compiled = policy if isinstance(policy, CompiledPolicy) else compile_policy(policy)
        self.required_version = check_scope(self.compiled, scope)
        if as_of.tzinfo is None:
            raise PolicyError("as_of must be timezone-aware (UTC)", hint="Pass an aware datetime, e.g. 2025-01-01T00:00:00Z.")
        self.scope = scope
        self.as_of = as_of
        self.members = members
        self.consent = consent
        self.topics: Mapping[str, Collection[str]] = topics or {}
        self.minor_cutoff = minor_cutoff_birth_year(as_of, self.compiled.minimum_age)
        self.notice_pending = as_of < self.compiled.notice_end


def check_scope(compiled: CompiledPolicy, scope: str) -> str:
    """The minimum grant version for ``scope``; ``PolicyError`` when the policy names no recipient in it."""
    if scope not in SCOPES:
        raise PolicyError(f"unknown scope {scope!r}; expected one of {', '.join(SCOPES)}", field="scope", value=scope)
    required = compiled.required_version.get(scope)
    if required is None:
        raise PolicyError(
            f"policy {compiled.policy.name} {compiled.policy.version} names no recipient with scope {scope}",
            hint="Add a recipient with this scope to the policy, or build for a scope it authorises.",
            field="scope", value=scope,
        )
    return required


def version_covers(granted: str | None, required: str) -> bool:
    """True when a grant recorded under ``granted`` covers a scope that needs ``required``.
    Unknown or malformed versions never cover (fail closed)."""
    have, need = parse_version(granted), parse_version(required)
    return have is not None and need is not None and have >= need


def evaluate(record: Record, ctx: EvalContext) -> Decision:
    """Decide one record. Pure: the same inputs always give the same ``Decision``."""
    cp = ctx.compiled
    findings: list[Finding] = []
    rule = cp.category_rule.get(record.category)
    if rule is None:
        findings.append(Finding("UNKNOWN_CATEGORY", None, f"category {record.category!r} is not a known category"))
    elif rule == "exclude":
        key = cp.category_key[record.category] or "(no rule matches; excluded by default)"
        findings.append(Finding("CATEGORY_EXCLUDED", None, f"categories.{key}: exclude"))
    if record.created_at > ctx.as_of:
        # Consent is pinned at as_of: it says nothing about content written later.
        findings.append(Finding("CREATED_AFTER_AS_OF", None, f"created {record.created_at.isoformat()} after as_of {ctx.as_of.isoformat()}"))
    redact: list[str] = []
    for topic in sorted({t for t in ctx.topics.get(record.record_id, ()) if t is not None}):
        action = cp.topic(topic)
        if action == "exclude":
            findings.append(Finding(TOPIC_PREFIX + topic, None, f"sensitive_topics.{topic}: exclude"))
        elif action == "redact":
            redact.append(topic)
    subjects = _subjects(record, rule)
    for member_id, is_author in subjects:
        prefix = "" if is_author else PARTICIPANT_PREFIX
        for code, detail in _subject_findings(record, member_id, ctx):
            findings.append(Finding(prefix + code, member_id, detail))
    reasons = tuple(sorted({f.code for f in findings}))
    return Decision(
        record_id=record.record_id,
        decision="exclude" if reasons else "include",
        reasons=reasons,
        findings=tuple(findings),
        redact_topics=tuple(redact) if not reasons else (),
        subjects=tuple(m for m, _ in subjects),
    )


def _subjects(record: Record, rule: str | None) -> list[tuple[str | None, bool]]:
    """The author, plus every other participant (once) when the category requires all of them."""
    subjects: list[tuple[str | None, bool]] = [(record.author_id, True)]
    if rule == "all_participants":
        others = dict.fromkeys(p for p in record.participants if p is None or p != record.author_id)
        subjects += [(p, False) for p in others]
    return subjects


def _subject_findings(record: Record, member_id: str | None, ctx: EvalContext) -> list[tuple[str, str]]:
    cp = ctx.compiled
    member = ctx.members.get(member_id) if member_id is not None else None
    if member is None:
        return [("UNKNOWN_SUBJECT", "no such member in the members table")]
    out: list[tuple[str, str]] = []
    if member.birth_year is None or member.birth_year > ctx.minor_cutoff:
        out.append(("MINOR", f"as_of year {ctx.as_of.year} - birth_year {member.birth_year} <= minimum_age {cp.minimum_age}"))
    excluded = cp.tier_excluded.get(member.tier)
    if excluded is None:
        out.append(("CONTRACT_EXCLUDED", f"unknown tier {member.tier!r}"))
    elif record.category in excluded:
        out.append(("CONTRACT_EXCLUDED", f"tiers.{member.tier}.exclude covers {record.category}"))
    mode = cp.mode_for(member.country, member.subdivision)
    state = ctx.consent.get((member.member_id, cp.policy.purpose, ctx.scope))
    out += _consent_findings(record, mode, state, ctx)
    return out


def _consent_findings(record: Record, mode: str, state: ConsentState | None, ctx: EvalContext) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    granted = state is not None and state.choice == "grant"
    denied = state is not None and not granted
    valid = granted and state is not None and version_covers(state.policy_version, ctx.required_version)
    event = _describe_event(state)
    if denied:
        out.append(("CONSENT_DENIED", f"latest event for {ctx.scope}: {event}"))
    if mode == "excluded":
        out.append(("JURISDICTION_EXCLUDED", "jurisdiction mode is excluded"))
    elif mode == "opt_in":
        if state is None:
            out.append(("OPT_IN_REQUIRED", f"jurisdiction is opt_in and there is no consent event for {ctx.scope}"))
        elif granted and not valid:
            out.append(("CONSENT_SCOPE_OUTDATED", f"grant {event} predates {ctx.scope} recipients (since {ctx.required_version})"))
    elif not denied and not valid and ctx.notice_pending:
        out.append(("NOTICE_NOT_ELAPSED", f"opt_out basis starts {ctx.compiled.notice_end.isoformat()} (published_at + notice_days)"))
    if not valid and not ctx.compiled.policy.retroactive and record.created_at < ctx.compiled.policy.effective_at:
        out.append(("RETROACTIVE_USE", f"created {record.created_at.isoformat()} before effective_at {ctx.compiled.policy.effective_at.isoformat()} without a grant"))
    return out


def _describe_event(state: ConsentState | None) -> str:
    if state is None:
        return "none"
    return f"{state.choice} via {state.source} at {state.recorded_at.isoformat()} (policy_version {state.policy_version}, seq {state.seq})"
