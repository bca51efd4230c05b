"""The policy model: what a policy YAML file may say (pydantic v2), and policy versions.

Owns the field types and their per-field checks; cross-field and vocabulary
checks that need line numbers live in ``loader`` (which builds a ``Policy`` from
a file). Field meanings are documented in docs/policy-reference.md.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator

Mode = Literal["opt_in", "opt_out", "excluded"]
Scope = Literal["first_party", "affiliate", "third_party"]
TopicAction = Literal["exclude", "redact", "allow"]
PiiStrategy = Literal["mask", "pseudonym", "drop_record"]
Require = Literal["author", "all_participants"]

DEFAULT_KEY: Final = "default"
VERSION_PATTERN: Final = r"^[0-9]{1,9}(\.[0-9]{1,9}){0,3}$"
VERSION_PARTS: Final = 4
_VERSION_RE = re.compile(VERSION_PATTERN)

# Purpose vocabulary mappings (justified in docs/policy-reference.md).
FIDESLANG_DATA_USE: Final = {"ai_training": "train_ai_system"}
DPV_PURPOSE: Final = {"ai_training": "dpv:CommercialResearch"}  # a subclass of dpv:ResearchAndDevelopment


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """Dotted-integer version as a 4-tuple padded with zeros ("2024.2" -> (2024, 2, 0, 0)).

    ``None`` for ``None`` or anything that is not 1-4 dot-separated groups of 1-9 digits;
    callers treat that as "unknown version" and fail closed.
    """
    if text is None or _VERSION_RE.match(text) is None:
        return None
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (VERSION_PARTS - len(parts)))


def version_key(text: str) -> tuple[int, ...]:
    """``parse_version`` for a version already validated (raises ValueError otherwise)."""
    parsed = parse_version(text)
    if parsed is None:
        raise ValueError(f"not a dotted-integer version: {text!r}")
    return parsed


def _to_utc(value: Any) -> Any:
    """YAML dates become midnight UTC; naive datetimes are read as UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    return value


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_to_utc)]
Version = Annotated[str, Field(pattern=VERSION_PATTERN)]
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


def _default_jurisdictions() -> dict[str, Mode]:
    return {DEFAULT_KEY: "excluded"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Recipient(_Strict):
    """A named recipient of training data. ``since``: the policy version that first named it;
    a grant recorded under an older version does not cover it (``CONSENT_SCOPE_OUTDATED``).
    Without ``since`` the policy's own version is used (fail closed)."""

    name: Name
    scope: Scope
    since: Version | None = None
    description: str | None = None


class CategoryRule(_Strict):
    """Either ``exclude`` (written as the plain string) or ``{require: author | all_participants}``:
    whose consent state counts for a record of the category (the author's, or every participant's)."""

    exclude: bool = False
    require: Require | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value == "exclude":
            return {"exclude": True}
        if not isinstance(value, dict):
            raise ValueError("expected `exclude` or a mapping `{require: author | all_participants}`")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> CategoryRule:
        if self.exclude == (self.require is not None):
            raise ValueError("write either `exclude` or `{require: author | all_participants}`")
        return self

    @property
    def kind(self) -> str:
        """``exclude``, ``author`` or ``all_participants``."""
        return "exclude" if self.exclude else str(self.require)


class TierRule(_Strict):
    """Categories (exact or glob) that a member tier's contract keeps out of training."""

    exclude: tuple[str, ...] = ()


class Policy(_Strict):
    """A validated policy. Build it with ``consentgate.policy.load_policy``."""

    name: Name
    version: Version
    description: str | None = None
    published_at: UtcDatetime
    effective_at: UtcDatetime
    notice_days: int = Field(ge=0, le=3650)
    retroactive: bool = False
    purpose: Literal["ai_training"] = "ai_training"
    recipients: tuple[Recipient, ...] = Field(min_length=1)
    jurisdictions: dict[str, Mode] = Field(default_factory=_default_jurisdictions)
    minimum_age: int = Field(18, ge=0, le=120)
    categories: dict[str, CategoryRule] = Field(min_length=1)
    tiers: dict[str, TierRule] = Field(default_factory=dict)
    sensitive_topics: dict[str, TopicAction] = Field(default_factory=dict)
    pii: dict[str, PiiStrategy] = Field(default_factory=dict)
    gpc: dict[str, tuple[Scope, ...]] = Field(default_factory=dict)

    _sha256: str = PrivateAttr(default="")
    _source: str = PrivateAttr(default="<memory>")
    _body: str = PrivateAttr(default="")
    _lines: dict[tuple[Any, ...], int] = PrivateAttr(default_factory=dict)

    @property
    def sha256(self) -> str:
        """SHA-256 (hex) of the policy file's bytes."""
        return self._sha256

    @property
    def source(self) -> str:
        """The file the policy was read from (for messages)."""
        return self._source

    @property
    def body(self) -> str:
        """The policy file's text, as stored by ``policy publish``."""
        return self._body

    def line_of(self, *path: Any) -> int | None:
        """The file line of a key (its closest written ancestor), when read from a file."""
        for end in range(len(path), 0, -1):
            if path[:end] in self._lines:
                return self._lines[path[:end]]
        return None

    @property
    def default_mode(self) -> Mode:
        """The mode for regions the policy does not name (``excluded`` when not written)."""
        return self.jurisdictions.get(DEFAULT_KEY, "excluded")

    @property
    def fideslang_data_use(self) -> str:
        return FIDESLANG_DATA_USE[self.purpose]

    @property
    def dpv_purpose(self) -> str:
        return DPV_PURPOSE[self.purpose]

    def recipient_since(self, recipient: Recipient) -> str:
        return recipient.since if recipient.since is not None else self.version

    def scopes(self) -> tuple[str, ...]:
        """The recipient scopes this policy authorises, in first-seen order."""
        return tuple(dict.fromkeys(r.scope for r in self.recipients))
