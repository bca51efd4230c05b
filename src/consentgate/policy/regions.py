"""The shipped jurisdiction reference table and region vocabulary (data in ``data/jurisdictions.yaml``).

Owns: loading and validating the table (one ``JurisdictionRule`` per jurisdiction
with its citations and the "not legal advice" note), the region groups (``EU``,
``EEA``), the accepted ISO 3166-1 alpha-2 country codes, region-key validation
for policies, and ``region_key_of`` — the one rule that turns a member's
``country``/``subdivision`` into a subdivision key (used by the evaluator and,
spelled in SQL, by the compiler).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from consentgate.datamodel import TOPICS
from consentgate.errors import PolicyError

ConsentModel = Literal["opt_in", "opt_out"]
PrivateRule = Literal["excluded", "opt_in"]
SensitiveRule = Literal["explicit_consent", "separate_consent", "opt_in", "limit", "varies"]
ChangeControl = Literal["notice", "fresh_consent"]

_SUBDIVISION_RE = re.compile(r"^([A-Z]{2})-([A-Z0-9]{1,3})$")


class JurisdictionRule(BaseModel):
    """One row of the reference table. ``*_rule`` fields are the human summary shown in findings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    consent_model: ConsentModel
    consent_model_rule: str
    private_communications: PrivateRule
    private_communications_rule: str
    sensitive_data: SensitiveRule
    sensitive_data_rule: str
    sensitive_topics: tuple[str, ...]
    change_control: ChangeControl
    change_rule: str
    min_notice_days: int
    retroactive_allowed: bool
    gpc_required: bool
    citations: tuple[str, ...]


class ReferenceTable(BaseModel):
    """The whole shipped table: note, groups, jurisdictions, countries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    note: str
    groups: dict[str, tuple[str, ...]]
    jurisdictions: dict[str, JurisdictionRule]
    countries: tuple[str, ...]

    def members_of(self, key: str) -> tuple[str, ...]:
        """The region keys a table/policy key stands for: a group's countries, else the key itself."""
        return self.groups.get(key, (key,))


@lru_cache(maxsize=1)
def reference_table() -> ReferenceTable:
    """Load and validate the shipped table once per process (``PolicyError`` if the package data is broken)."""
    text = resources.files("consentgate.policy").joinpath("data/jurisdictions.yaml").read_text(encoding="utf-8")
    try:
        table = ReferenceTable.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise PolicyError(
            f"the shipped jurisdiction table consentgate/policy/data/jurisdictions.yaml is invalid ({type(exc).__name__})",
            hint="Reinstall consentgate; the package data was changed.",
        ) from None
    _check_table(table)
    return table


def _check_table(table: ReferenceTable) -> None:
    known = set(table.countries)
    for group, countries in table.groups.items():
        bad = [c for c in countries if c not in known]
        if bad:
            raise PolicyError(f"jurisdiction table group {group} names unknown countries {bad}")
    for key, rule in table.jurisdictions.items():
        if region_key_problem(key, table) is not None:
            raise PolicyError(f"jurisdiction table key {key!r} is not a known region")
        unknown_topics = [t for t in rule.sensitive_topics if t not in TOPICS]
        if unknown_topics:
            raise PolicyError(f"jurisdiction table row {key} names unknown topics {unknown_topics}")


def region_key_problem(key: str, table: ReferenceTable | None = None) -> str | None:
    """``None`` when ``key`` is a known group, ISO country or ``CC-SUB`` subdivision; else why not."""
    table = table or reference_table()
    if key in table.groups or key in table.countries:
        return None
    match = _SUBDIVISION_RE.match(key)
    if match is None:
        return "expected a group (" + ", ".join(sorted(table.groups)) + "), an ISO 3166-1 alpha-2 country such as US, or a subdivision such as US-CA"
    if match.group(1) not in table.countries:
        return f"{match.group(1)} is not an ISO 3166-1 alpha-2 country code"
    return None


def region_key_of(country: str | None, subdivision: str | None) -> str | None:
    """The subdivision key of a member: ``subdivision`` when it already reads ``CC-SUB`` for its
    country (ISO 3166-2), else ``country + '-' + subdivision``; ``None`` without a subdivision.

    The SQL compiler spells exactly this rule (see ``sql._subdivision_key``).
    """
    if country is None or subdivision is None:
        return None
    prefix = country + "-"
    if subdivision[: len(prefix)] == prefix:
        return subdivision
    return prefix + subdivision
