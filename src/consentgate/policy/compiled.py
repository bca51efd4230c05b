"""A policy resolved against the closed vocabularies: the one source of truth for both engines.

Owns: glob resolution of category keys (exact key beats glob; a longer literal
part beats a shorter one), tier exclusions per tier, group expansion of
jurisdictions (subdivision > country > group > default), topic actions, and the
minimum policy version a grant needs per scope (``CONSENT_SCOPE_OUTDATED``).
The reference evaluator and the SQL compiler both read a ``CompiledPolicy``, so
a rule is resolved once and the two engines cannot disagree on resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Final, TypeVar

from consentgate.datamodel import CATEGORIES, TIERS, TOPICS
from consentgate.policy.model import DEFAULT_KEY, Mode, Policy, version_key
from consentgate.policy.regions import reference_table, region_key_of

T = TypeVar("T")

GLOB_CHARS: Final = frozenset("*?[")
DEFAULT_TOPIC_ACTION: Final = "exclude"


def is_glob(key: str) -> bool:
    return any(ch in GLOB_CHARS for ch in key)


def _specificity(key: str) -> tuple[int, int]:
    """Exact keys first, then globs with more literal characters."""
    return (0 if is_glob(key) else 1, sum(1 for ch in key if ch not in GLOB_CHARS))


def glob_matches(key: str, vocabulary: tuple[str, ...] = CATEGORIES) -> tuple[str, ...]:
    """The vocabulary entries a key (exact or glob) stands for."""
    return tuple(v for v in vocabulary if fnmatchcase(v, key))


def resolve_globs(rules: dict[str, T], vocabulary: tuple[str, ...] = CATEGORIES) -> tuple[dict[str, tuple[str, T]], list[tuple[str, str, str]]]:
    """For each vocabulary entry the most specific matching key and its rule.

    Returns ``(resolved, conflicts)``; ``conflicts`` lists ``(entry, key_a, key_b)`` where two
    equally specific keys with different rules both match ``entry``.
    """
    resolved: dict[str, tuple[str, T]] = {}
    conflicts: list[tuple[str, str, str]] = []
    for entry in vocabulary:
        matching = [k for k in rules if fnmatchcase(entry, k)]
        if not matching:
            continue
        matching.sort(key=_specificity, reverse=True)
        best = matching[0]
        for other in matching[1:]:
            if _specificity(other) == _specificity(best) and rules[other] != rules[best]:
                conflicts.append((entry, best, other))
        resolved[entry] = (best, rules[best])
    return resolved, conflicts


def expand_regions(mapping: dict[str, T]) -> tuple[dict[str, T], dict[str, T], list[tuple[str, str, str]]]:
    """Split region keys into ``(subdivisions, countries, conflicts)``; groups expand to countries.

    An explicit country key beats a group; two groups giving one country different values
    are a conflict ``(country, group_a, group_b)``.
    """
    table = reference_table()
    subdivisions: dict[str, T] = {}
    countries: dict[str, T] = {}
    from_group: dict[str, str] = {}
    conflicts: list[tuple[str, str, str]] = []
    for key, value in mapping.items():
        if key == DEFAULT_KEY:
            continue
        if "-" in key:
            subdivisions[key] = value
        elif key not in table.groups:
            countries[key] = value
    for key, value in mapping.items():
        if key not in table.groups:
            continue
        for country in table.groups[key]:
            if country in countries and country not in from_group:
                continue  # an explicit country key wins over the group
            if country in from_group and countries[country] != value:
                conflicts.append((country, from_group[country], key))
                continue
            countries[country] = value
            from_group[country] = key
    return subdivisions, countries, conflicts


@dataclass(frozen=True)
class CompiledPolicy:
    """Everything the engines need, resolved. Build with ``compile_policy``."""

    policy: Policy
    category_rule: dict[str, str]  # category -> exclude | author | all_participants (every CATEGORIES entry)
    category_key: dict[str, str]  # category -> the policy key that decided it ("" when none did)
    tier_excluded: dict[str, frozenset[str]]  # tier -> categories its contract excludes
    sub_modes: dict[str, Mode]
    country_modes: dict[str, Mode]
    default_mode: Mode
    topic_action: dict[str, str]  # every TOPICS entry -> exclude | redact | allow
    default_topic_action: str
    required_version: dict[str, str | None]  # scope -> minimum grant version (None: scope not authorised)
    notice_end: datetime
    minimum_age: int

    def mode_for(self, country: str | None, subdivision: str | None) -> Mode:
        """Jurisdiction mode: subdivision key, else country (or its group), else ``default``."""
        sub = region_key_of(country, subdivision)
        if sub is not None and sub in self.sub_modes:
            return self.sub_modes[sub]
        if country is not None and country in self.country_modes:
            return self.country_modes[country]
        return self.default_mode

    def topic(self, topic: str) -> str:
        return self.topic_action.get(topic, self.default_topic_action)

    def redact_topics(self) -> tuple[str, ...]:
        """Topics the build stage redacts instead of excluding the record."""
        return tuple(t for t in TOPICS if self.topic_action[t] == "redact")

    def pii_strategies(self) -> dict[str, str]:
        """Entity type -> ``mask`` | ``pseudonym`` | ``drop_record`` (what the build stage applies)."""
        return dict(self.policy.pii)


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Resolve ``policy`` against the vocabularies. The policy was validated by the loader."""
    resolved, _ = resolve_globs(policy.categories)
    category_rule = {c: (resolved[c][1].kind if c in resolved else "exclude") for c in CATEGORIES}
    category_key = {c: (resolved[c][0] if c in resolved else "") for c in CATEGORIES}
    tier_excluded = {
        tier: frozenset(c for pattern in (policy.tiers[tier].exclude if tier in policy.tiers else ()) for c in glob_matches(pattern))
        for tier in TIERS
    }
    subs, countries, _ = expand_regions(dict(policy.jurisdictions))
    default_topic: str = policy.sensitive_topics.get(DEFAULT_KEY, DEFAULT_TOPIC_ACTION)
    topic_action: dict[str, str] = {t: policy.sensitive_topics.get(t, default_topic) for t in TOPICS}
    return CompiledPolicy(
        policy=policy,
        category_rule=category_rule,
        category_key=category_key,
        tier_excluded=tier_excluded,
        sub_modes=subs,
        country_modes=countries,
        default_mode=policy.default_mode,
        topic_action=topic_action,
        default_topic_action=default_topic,
        required_version=_required_versions(policy),
        notice_end=policy.published_at + timedelta(days=policy.notice_days),
        minimum_age=policy.minimum_age,
    )


def _required_versions(policy: Policy) -> dict[str, str | None]:
    """Per scope, the highest ``since`` among its recipients: a grant must be at least that new."""
    out: dict[str, str | None] = {"first_party": None, "affiliate": None, "third_party": None}
    for recipient in policy.recipients:
        since = policy.recipient_since(recipient)
        current = out[recipient.scope]
        if current is None or version_key(since) > version_key(current):
            out[recipient.scope] = since
    return out


def minor_cutoff_birth_year(as_of: datetime, minimum_age: int) -> int:
    """Members born after this year are minors at ``as_of``.

    Only the birth year is known, so a member born in year ``as_of.year - minimum_age``
    may still be under age at ``as_of``: they count as a minor (fail closed). A member is
    an adult when ``as_of.year - birth_year > minimum_age``.
    """
    return as_of.year - minimum_age - 1


def gpc_scopes(policy: Policy, country: str | None, subdivision: str | None) -> tuple[str, ...]:
    """Scopes a ``Sec-GPC: 1`` signal denies for a member in this region (subdivision > country >
    group > ``default``; none when nothing matches). The service records these with ``record_gpc``."""
    subs, countries, _ = expand_regions(dict(policy.gpc))
    sub = region_key_of(country, subdivision)
    if sub is not None and sub in subs:
        return tuple(subs[sub])
    if country is not None and country in countries:
        return tuple(countries[country])
    return tuple(policy.gpc.get(DEFAULT_KEY, ()))
