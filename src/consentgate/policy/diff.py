"""Compare two policies (`consentgate policy diff OLD NEW`): each change widening, narrowing or neutral.

Owns the ordering of every setting from strictest to loosest, the change
requirements (``notice`` or ``fresh_consent``) and the blocking rule: a widening
change is *blocking* when it needs notice and the new policy gives less notice
than required (``min(notice_days, effective_at - published_at)`` against the
table's ``min_notice_days``), or when it needs fresh consent, which no notice
period replaces. The CLI exits 1 when any change is blocking.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

from consentgate.datamodel import CATEGORIES, ENTITY_TYPES, TIERS, TOPICS
from consentgate.policy.compiled import compile_policy, expand_regions, gpc_scopes
from consentgate.policy.model import DEFAULT_KEY, Policy, version_key
from consentgate.policy.regions import reference_table

DEFAULT_NOTICE_DAYS: Final = 30
MODE_RANK: Final = {"excluded": 0, "opt_in": 1, "opt_out": 2}
CATEGORY_RANK: Final = {"exclude": 0, "all_participants": 1, "author": 2}
TOPIC_RANK: Final = {"exclude": 0, "redact": 1, "allow": 2}
PII_RANK: Final = {"drop_record": 0, "mask": 1, "pseudonym": 1, "(none)": 2}
SCOPE_RANK: Final = {"(none)": -1, "first_party": 0, "affiliate": 1, "third_party": 2}


@dataclass(frozen=True)
class Change:
    """One difference. ``requires``: none | notice | fresh_consent; ``blocking`` per the module rule."""

    section: str
    key: str
    old: str
    new: str
    kind: str
    requires: str = "none"
    required_notice_days: int = 0
    blocking: bool = False
    note: str = ""


@dataclass
class DiffReport:
    old: str
    new: str
    notice_given_days: int
    changes: list[Change] = field(default_factory=list)

    @property
    def blocking(self) -> bool:
        return any(c.blocking for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old, "new": self.new, "notice_given_days": self.notice_given_days,
            "blocking": self.blocking, "changes": [asdict(c) for c in self.changes],
        }


def _kind(old_rank: int, new_rank: int) -> str:
    return "widening" if new_rank > old_rank else "narrowing" if new_rank < old_rank else "neutral"


class _Builder:
    def __init__(self, old: Policy, new: Policy) -> None:
        self.old, self.new = compile_policy(old), compile_policy(new)
        given = min(new.notice_days, max(0, (new.effective_at - new.published_at).days))
        self.report = DiffReport(f"{old.name} {old.version}", f"{new.name} {new.version}", given)

    def add(self, section: str, key: str, old: str, new: str, kind: str, requires: str = "notice", notice: int = DEFAULT_NOTICE_DAYS, note: str = "") -> None:
        if kind != "widening":
            requires, notice = "none", 0
        satisfied = requires == "fresh_consent" and section == "jurisdictions" and new == "opt_in"
        blocking = (requires == "fresh_consent" and not satisfied) or (requires == "notice" and self.report.notice_given_days < notice)
        self.report.changes.append(Change(section, key, old, new, kind, requires, notice, blocking, note))

    def ranked(self, section: str, key: str, old: str, new: str, rank: dict[str, int], requires: str = "notice", notice: int = DEFAULT_NOTICE_DAYS, note: str = "") -> None:
        if old != new:
            self.add(section, key, old, new, _kind(rank[old], rank[new]), requires, notice, note)


def diff_policies(old: Policy, new: Policy) -> DiffReport:
    """Every change from ``old`` to ``new``, in a stable order (metadata, regions, then rules)."""
    b = _Builder(old, new)
    _metadata(b, old, new)
    _jurisdictions(b)
    for category in CATEGORIES:
        b.ranked("categories", category, b.old.category_rule[category], b.new.category_rule[category], CATEGORY_RANK)
    _tiers(b)
    for topic in TOPICS:
        b.ranked("sensitive_topics", topic, b.old.topic(topic), b.new.topic(topic), TOPIC_RANK)
    for entity in ENTITY_TYPES:
        b.ranked("pii", entity, old.pii.get(entity, "(none)"), new.pii.get(entity, "(none)"), PII_RANK)
    _recipients(b, old, new)
    _gpc(b, old, new)
    return b.report


def _metadata(b: _Builder, old: Policy, new: Policy) -> None:
    for name in ("name", "version", "published_at", "effective_at", "notice_days", "description"):
        a, c = getattr(old, name), getattr(new, name)
        if a != c:
            b.add("policy", name, str(a), str(c), "neutral")
    if old.retroactive != new.retroactive:
        b.add("policy", "retroactive", str(old.retroactive).lower(), str(new.retroactive).lower(), "widening" if new.retroactive else "narrowing",
              "fresh_consent", note="using data collected before the change needs the members' fresh consent")
    if old.minimum_age != new.minimum_age:
        b.add("policy", "minimum_age", str(old.minimum_age), str(new.minimum_age), _kind(-old.minimum_age, -new.minimum_age))


def _region_probes(b: _Builder) -> list[tuple[str, str, str | None]]:
    """(label, country, subdivision) for every region either policy or the table names."""
    keys: dict[str, None] = {}
    for cp in (b.old, b.new):
        subs, countries, _ = expand_regions(dict(cp.policy.jurisdictions))
        keys.update(dict.fromkeys(list(subs) + list(countries)))
    table = reference_table()
    for key in table.jurisdictions:
        keys.update(dict.fromkeys(table.members_of(key)))
    return [(k, k.split("-", 1)[0], k if "-" in k else None) for k in keys]


def _table_rule_for(label: str) -> tuple[int, str]:
    """(min notice days, change control) of the table row covering a region label, else the defaults."""
    table = reference_table()
    if label in table.groups and label not in table.jurisdictions:
        label = table.groups[label][0]
    candidates = [label] + ([label.split("-", 1)[0]] if "-" in label else [])
    for candidate in candidates:
        if candidate in table.jurisdictions:
            rule = table.jurisdictions[candidate]
            return rule.min_notice_days, rule.change_control
        for key, rule in table.jurisdictions.items():
            if candidate in table.groups.get(key, ()):
                return rule.min_notice_days, rule.change_control
    return DEFAULT_NOTICE_DAYS, "notice"


def _jurisdictions(b: _Builder) -> None:
    changes: dict[str, tuple[str, str]] = {}
    for label, country, sub in sorted(_region_probes(b)):
        before, after = b.old.mode_for(country, sub), b.new.mode_for(country, sub)
        if before != after:
            changes[label] = (before, after)
    for label in [k for k in changes if "-" in k]:
        if changes.get(label.split("-", 1)[0]) == changes[label]:
            del changes[label]  # a subdivision that only follows its country
    for group in ("EEA", "EU"):
        members = reference_table().groups[group]
        values = {changes.get(c) for c in members}
        if len(values) == 1 and None not in values:
            for c in members:
                changes.pop(c)
            changes[group] = values.pop()  # type: ignore[assignment]
    if b.old.default_mode != b.new.default_mode:
        changes[DEFAULT_KEY] = (b.old.default_mode, b.new.default_mode)
    for label, (was, now) in changes.items():
        notice, control = _table_rule_for(label)
        requires = "fresh_consent" if control == "fresh_consent" and now == "opt_out" or now == "opt_in" else "notice"
        note = "satisfied by the mode: opt-in asks every member before use" if now == "opt_in" else ""
        b.ranked("jurisdictions", label, was, now, MODE_RANK, requires, notice, note)


def _tiers(b: _Builder) -> None:
    for tier in TIERS:
        before, after = b.old.tier_excluded[tier], b.new.tier_excluded[tier]
        if before - after:
            b.add("tiers", tier, ", ".join(sorted(before - after)), "(no longer excluded)", "widening", "fresh_consent",
                  note="the tier's contract promised these categories stay out")
        if after - before:
            b.add("tiers", tier, "(included)", ", ".join(sorted(after - before)) + " excluded", "narrowing")


def _recipients(b: _Builder, old: Policy, new: Policy) -> None:
    before = {r.name: r for r in old.recipients}
    after = {r.name: r for r in new.recipients}
    for name in sorted(set(before) | set(after)):
        o, n = before.get(name), after.get(name)
        old_scope = o.scope if o else "(none)"
        new_scope = n.scope if n else "(none)"
        if old_scope != new_scope:
            note = f"grants older than {new.recipient_since(n)} do not cover it" if n else ""
            b.ranked("recipients", name, old_scope, new_scope, SCOPE_RANK, note=note)
        elif o and n and version_key(old.recipient_since(o)) != version_key(new.recipient_since(n)):
            widening = version_key(new.recipient_since(n)) < version_key(old.recipient_since(o))
            b.add("recipients", f"{name}.since", old.recipient_since(o), new.recipient_since(n), "widening" if widening else "narrowing",
                  "fresh_consent", note="older grants would newly cover this recipient")


def _gpc(b: _Builder, old: Policy, new: Policy) -> None:
    keys = sorted(set(old.gpc) | set(new.gpc))
    before: set[str]
    after: set[str]
    for key in keys:
        country, sub = (key.split("-", 1)[0], key) if "-" in key else (key, None)
        if key == DEFAULT_KEY:
            before, after = set(old.gpc.get(key, ())), set(new.gpc.get(key, ()))
        else:
            probe = reference_table().members_of(key)[0]
            country, sub = (probe, None) if key in reference_table().groups else (country, sub)
            before, after = set(gpc_scopes(old, country, sub)), set(gpc_scopes(new, country, sub))
        if before != after:
            kind = "widening" if before - after else "narrowing"
            b.add("gpc", key, ", ".join(sorted(before)) or "(none)", ", ".join(sorted(after)) or "(none)", kind)
