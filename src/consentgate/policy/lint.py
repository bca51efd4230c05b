"""Lint a policy against the shipped jurisdiction reference table (`consentgate policy check`).

Owns the lint rules. An ``error`` is a place where the policy is looser than the
table (opt-out where the table asks for opt-in, private messages where the table
keeps them out, sensitive topics allowed where explicit consent is needed,
retroactive use, GPC not honoured where required); a ``warning`` is a weaker
concern (a short notice period, the Premium contract not expressed, regions
outside the table processed, unredacted PII types). Not legal advice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

from consentgate.datamodel import ENTITY_TYPES, MESSAGE_CATEGORIES
from consentgate.policy.compiled import CompiledPolicy, compile_policy, gpc_scopes
from consentgate.policy.model import DEFAULT_KEY, Policy
from consentgate.policy.regions import JurisdictionRule, reference_table

PRIVATE_CATEGORIES: Final = ("message.direct", "message.inmail")
_LOOSENESS: Final = {"excluded": 0, "opt_in": 1, "opt_out": 2}


@dataclass(frozen=True)
class LintFinding:
    """One finding: ``severity`` is ``error`` or ``warning``; ``line`` points into the policy file."""

    severity: str
    code: str
    jurisdiction: str
    message: str
    citation: str
    line: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _probe(key: str) -> list[tuple[str, str | None]]:
    """(country, subdivision) pairs a table row stands for."""
    table = reference_table()
    if key in table.groups:
        return [(c, None) for c in table.groups[key]]
    if "-" in key:
        return [(key.split("-", 1)[0], key)]
    return [(key, None)]


def _decisive_key(policy: Policy, country: str, subdivision: str | None) -> str:
    """The policy key that decides a region's mode (for the line number)."""
    table = reference_table()
    if subdivision is not None and subdivision in policy.jurisdictions:
        return subdivision
    if country in policy.jurisdictions:
        return country
    for group, members in table.groups.items():
        if group in policy.jurisdictions and country in members:
            return group
    return DEFAULT_KEY


def lint_policy(policy: Policy) -> list[LintFinding]:
    """All findings, errors first, then by jurisdiction."""
    cp = compile_policy(policy)
    findings: list[LintFinding] = []
    for key, rule in reference_table().jurisdictions.items():
        findings += _lint_jurisdiction(cp, key, rule)
    findings += _lint_general(cp)
    return sorted(findings, key=lambda f: (f.severity != "error", f.line or 0, f.jurisdiction, f.code))


def _lint_jurisdiction(cp: CompiledPolicy, key: str, rule: JurisdictionRule) -> list[LintFinding]:
    policy = cp.policy
    probes = _probe(key)
    modes = {probe: cp.mode_for(*probe) for probe in probes}
    loosest = max(modes.values(), key=lambda m: _LOOSENESS[m])
    if loosest == "excluded":
        return []
    worst = next(p for p, m in modes.items() if m == loosest)
    decisive = _decisive_key(policy, *worst)
    line = policy.line_of("jurisdictions", decisive) or policy.line_of("jurisdictions")
    cite = "; ".join(rule.citations)
    out: list[LintFinding] = []

    def add(severity: str, code: str, message: str, at: int | None = line) -> None:
        out.append(LintFinding(severity, code, key, message, cite, at))

    if rule.consent_model == "opt_in" and loosest == "opt_out":
        add("error", "CONSENT_MODEL_LOOSER", f"{key}: jurisdictions.{decisive} gives opt_out, but the table requires opt_in. {rule.consent_model_rule}")
    private = [c for c in PRIVATE_CATEGORIES if cp.category_rule[c] != "exclude"]
    if private and (rule.private_communications == "excluded" or loosest == "opt_out"):
        need = "keeps private communications out" if rule.private_communications == "excluded" else "allows private communications only with opt-in"
        at = policy.line_of("categories", cp.category_key[private[0]]) or line
        add("error", "PRIVATE_COMMUNICATIONS", f"{key}: {', '.join(private)} included ({loosest}), but the table {need}. {rule.private_communications_rule}", at)
    allowed = [t for t in rule.sensitive_topics if cp.topic(t) == "allow"]
    if allowed:
        topic_line = policy.line_of("sensitive_topics") or line
        strict = rule.sensitive_data in ("explicit_consent", "separate_consent") or (rule.sensitive_data == "opt_in" and loosest == "opt_out")
        if strict:
            add("error", "SENSITIVE_DATA", f"{key}: sensitive topics {', '.join(allowed)} are allowed, but the table requires {rule.sensitive_data.replace('_', ' ')}. {rule.sensitive_data_rule}", topic_line)
        elif rule.sensitive_data == "limit":
            add("warning", "SENSITIVE_DATA", f"{key}: sensitive topics {', '.join(allowed)} are allowed; members may limit their use. {rule.sensitive_data_rule}", topic_line)
    if policy.retroactive and not rule.retroactive_allowed:
        add("error", "RETROACTIVE", f"{key}: retroactive: true uses data collected before the change. {rule.change_rule}", policy.line_of("retroactive"))
    if policy.notice_days < rule.min_notice_days:
        add("warning", "SHORT_NOTICE", f"{key}: notice_days {policy.notice_days} is shorter than the {rule.min_notice_days} days expected. {rule.change_rule}", policy.line_of("notice_days"))
    if rule.gpc_required:
        out += _lint_gpc(cp, key, worst, cite)
    return out


def _lint_gpc(cp: CompiledPolicy, key: str, probe: tuple[str, str | None], cite: str) -> list[LintFinding]:
    policy = cp.policy
    have = set(gpc_scopes(policy, *probe))
    needed = {s for s in policy.scopes() if s != "first_party"}
    missing = sorted(needed - have)
    line = policy.line_of("gpc") or 1
    if not have:
        return [LintFinding("error", "GPC_NOT_HONOURED", key, f"{key}: a Global Privacy Control signal (Sec-GPC: 1) must be honoured as an opt-out; gpc names no scope for {key}", cite, line)]
    if missing:
        return [LintFinding("error", "GPC_NOT_HONOURED", key, f"{key}: gpc does not deny {', '.join(missing)}, which this policy shares with", cite, line)]
    return []


def _lint_general(cp: CompiledPolicy) -> list[LintFinding]:
    policy = cp.policy
    out: list[LintFinding] = []
    if cp.default_mode != "excluded":
        out.append(LintFinding("warning", "DEFAULT_PROCESSED", DEFAULT_KEY, f"regions outside the table take default: {cp.default_mode}; consider excluded until assessed", "", policy.line_of("jurisdictions", DEFAULT_KEY)))
    premium = cp.tier_excluded.get("premium", frozenset())
    open_messages = [c for c in MESSAGE_CATEGORIES if c not in premium and cp.category_rule[c] != "exclude"]
    if open_messages:
        out.append(LintFinding("warning", "PREMIUM_CONTRACT", "contract", f"premium members' {', '.join(open_messages)} may be used: tiers.premium does not exclude message.* (the Premium contract)", "", policy.line_of("tiers") or policy.line_of("categories")))
    if policy.minimum_age < 18:
        out.append(LintFinding("warning", "MINIMUM_AGE", "all", f"minimum_age {policy.minimum_age} admits minors; under-18s are commonly excluded", "", policy.line_of("minimum_age")))
    unredacted = [e for e in ENTITY_TYPES if e not in policy.pii]
    if unredacted:
        out.append(LintFinding("warning", "PII_NOT_REDACTED", "all", f"pii does not redact {', '.join(unredacted)}", "", policy.line_of("pii")))
    return out


def has_errors(findings: list[LintFinding]) -> bool:
    return any(f.severity == "error" for f in findings)
