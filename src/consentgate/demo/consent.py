"""Consent history of the synthetic network (purpose ``ai_training``).

Owns the consent_events table. Each scenario below picks members independently
at a documented rate (docs/data-model.md) and emits events no earlier than the
member's ``joined_at``; ``SILENT_RATE`` of members get no event at all. The
policy version of an event is the one in force when it was recorded
(``timeline.policy_version_index``), except legacy imports, some of which carry
no version (null).

Scenarios: legacy pre-change choices (``import``/``member``, "2023.1"); the
September-2024 default-on rollout (``admin`` grants outside exempt regions,
some ``admin`` denies inside them); explicit opt-outs and opt-ins after the
change; changes of mind (two opposite choices); Global Privacy Control
(``gpc`` deny for affiliate and third_party) from US-CA members; ``admin``
denies for some minors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pyarrow as pa

from consentgate.datamodel import CONSENT_EVENTS_SCHEMA, SCOPES, SOURCES
from consentgate.demo import timeline
from consentgate.demo.members import Members, format_ids

SILENT_RATE: Final = 0.12
LEGACY_RATE: Final = 0.25  # of members who joined before the change
LEGACY_GRANT: Final = 0.75
LEGACY_NULL_VERSION: Final = 0.20  # of legacy imports
ROLLOUT_GRANT_RATE: Final = 0.60  # admin grant x3 scopes, non-exempt regions
ROLLOUT_EXEMPT_DENY_RATE: Final = 0.20  # admin deny x3 scopes, exempt regions
OPT_OUT_RATE: Final = 0.18
OPT_OUT_ALL_SCOPES: Final = 0.70
OPT_IN_RATE: Final = 0.10
OPT_IN_ALL_SCOPES: Final = 0.50
CHANGE_OF_MIND_RATE: Final = 0.05
GPC_RATE: Final = 0.30  # of US-CA members
MINOR_ADMIN_DENY_RATE: Final = 0.50
EXEMPT_GROUPS: Final = frozenset({"eu_eea", "gb", "ch", "ca", "hk", "cn"})
_ROLLOUT_JITTER: Final = 6 * 3600 * 1_000_000  # admin batch ran over six hours
_ALL: Final = (0, 1, 2)
_S = {s: i for i, s in enumerate(SOURCES)}


@dataclass
class _Events:
    member: list[np.ndarray] = field(default_factory=list)
    scope: list[np.ndarray] = field(default_factory=list)
    grant: list[np.ndarray] = field(default_factory=list)
    source: list[np.ndarray] = field(default_factory=list)
    at: list[np.ndarray] = field(default_factory=list)
    null_version: list[np.ndarray] = field(default_factory=list)

    def add(self, who: np.ndarray, scopes: tuple[int, ...], grant: np.ndarray | bool, source: str, at: np.ndarray,
            null_version: np.ndarray | None = None) -> None:
        for scope in scopes:
            self.member.append(who)
            self.scope.append(np.full(who.size, scope, np.int8))
            self.grant.append(np.broadcast_to(np.asarray(grant, dtype=bool), who.shape).copy())
            self.source.append(np.full(who.size, _S[source], np.int8))
            self.at.append(at)
            self.null_version.append(np.zeros(who.size, bool) if null_version is None else null_version)


def _pick(rng: np.random.Generator, eligible: np.ndarray, rate: float) -> np.ndarray:
    return np.flatnonzero(eligible & (rng.random(eligible.shape[0]) < rate))


def _after(rng: np.random.Generator, m: Members, who: np.ndarray, start: int, end: int = timeline.END) -> np.ndarray:
    return timeline.spread(rng, np.maximum(m.joined[who], start), end)


def _scenarios(rng: np.random.Generator, m: Members) -> _Events:
    ev = _Events()
    active = rng.random(m.count) >= SILENT_RATE
    exempt = np.isin(m.group, list(EXEMPT_GROUPS))
    # Legacy choices before the change ("2023.1").
    who = _pick(rng, active & (m.joined < timeline.POLICY_2024), LEGACY_RATE)
    is_import = rng.random(who.size) < 0.6
    at = _after(rng, m, who, timeline.LEGACY_START, timeline.POLICY_2024)
    grant = rng.random(who.size) < LEGACY_GRANT
    null_v = is_import & (rng.random(who.size) < LEGACY_NULL_VERSION)
    ev.add(who[is_import], (0,), grant[is_import], "import", at[is_import], null_v[is_import])
    ev.add(who[~is_import], (0,), grant[~is_import], "member", at[~is_import])
    # The September-2024 rollout: default-on outside exempt regions.
    for eligible, rate, grant_flag in ((active & ~exempt, ROLLOUT_GRANT_RATE, True), (active & exempt, ROLLOUT_EXEMPT_DENY_RATE, False)):
        who = _pick(rng, eligible, rate)
        at = np.maximum(m.joined[who], timeline.POLICY_2024) + rng.integers(0, _ROLLOUT_JITTER, who.size)
        ev.add(who, _ALL, grant_flag, "admin", at)
    # Explicit opt-outs and opt-ins after the change.
    for rate, all_scopes, grant_flag in ((OPT_OUT_RATE, OPT_OUT_ALL_SCOPES, False), (OPT_IN_RATE, OPT_IN_ALL_SCOPES, True)):
        who = _pick(rng, active, rate)
        at = _after(rng, m, who, timeline.POLICY_2024 + _ROLLOUT_JITTER)
        wide = rng.random(who.size) < all_scopes
        ev.add(who[wide], _ALL, grant_flag, "member", at[wide])
        ev.add(who[~wide], (0,), grant_flag, "member", at[~wide])
    # Changes of mind: two opposite first_party choices, the second later.
    who = _pick(rng, active, CHANGE_OF_MIND_RATE)
    t1 = _after(rng, m, who, timeline.POLICY_2024 + _ROLLOUT_JITTER)
    t2 = timeline.spread(rng, t1 + 1, timeline.END)
    first_grant = rng.random(who.size) < 0.5
    ev.add(who, (0,), first_grant, "member", t1)
    ev.add(who, (0,), ~first_grant, "member", t2)
    # Global Privacy Control from California browsers: opt out of sharing.
    who = _pick(rng, active & (m.subdivision == "US-CA"), GPC_RATE)
    ev.add(who, (1, 2), False, "gpc", _after(rng, m, who, timeline.GPC_START))
    # The platform excludes some minors by an admin action.
    who = _pick(rng, active & m.minor, MINOR_ADMIN_DENY_RATE)
    ev.add(who, _ALL, False, "admin", np.maximum(m.joined[who], timeline.POLICY_2024) + rng.integers(0, _ROLLOUT_JITTER, who.size))
    return ev


def generate_consent(rng: np.random.Generator, m: Members) -> pa.Table:
    """The consent_events table, ordered by ``recorded_at`` (ties: member, scope, scenario order)."""
    ev = _scenarios(rng, m)
    if not ev.member:
        return CONSENT_EVENTS_SCHEMA.empty_table()
    member = np.concatenate(ev.member)
    scope = np.concatenate(ev.scope)
    grant = np.concatenate(ev.grant)
    source = np.concatenate(ev.source)
    at = np.concatenate(ev.at).astype(np.int64)
    null_version = np.concatenate(ev.null_version)
    order = np.lexsort((np.arange(member.size), scope, member, at))
    member, scope, grant, source, at, null_version = (a[order] for a in (member, scope, grant, source, at, null_version))
    versions = np.array(timeline.POLICY_VERSIONS, dtype=object)[timeline.policy_version_index(at)]
    return pa.Table.from_arrays(
        [
            format_ids("e", member.size, 9),
            m.ids.take(pa.array(member)),
            pa.repeat(pa.scalar("ai_training"), member.size),
            pa.array(np.array(SCOPES, dtype=object)[scope], pa.string()),
            pa.array(np.where(grant, "grant", "deny"), pa.string()),
            pa.array(np.array(SOURCES, dtype=object)[source], pa.string()),
            pa.array(np.where(null_version, None, versions), pa.string()),
            pa.array(at, pa.int64()).cast(CONSENT_EVENTS_SCHEMA.field("recorded_at").type),
        ],
        schema=CONSENT_EVENTS_SCHEMA,
    )
