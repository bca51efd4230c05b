"""Value types of the consent ledger: what goes in, what comes out.

``ConsentEventIn`` is validated on construction (closed vocabularies from
``consentgate.datamodel``, timezone-aware timestamps, non-empty member id), so a
bad event never reaches the database. The output types are frozen dataclasses.
Time is held as timezone-aware UTC ``datetime``; the database stores integer
microseconds since the Unix epoch (see docs/ledger.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from consentgate.datamodel import CHOICES, PURPOSES, SCOPES, SOURCES
from consentgate.errors import InputError

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event: 64 hexadecimal zeros."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

FUTURE_SKEW = timedelta(minutes=5)
"""How far ahead of this machine's clock ``recorded_at`` may be (client clock skew).
State is the latest event by ``recorded_at``, so a future-dated grant would outrank
every real opt-out recorded after it: such events are refused, not stored."""


def to_micros(ts: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (exact, no float rounding)."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise InputError("timestamp has no timezone", hint="Give timestamps with an offset, e.g. 2024-09-18T00:00:00Z.", value=str(ts))
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    """The aware UTC datetime of ``us`` microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=int(us))


def utc_now() -> datetime:
    """Now, in UTC, at microsecond precision."""
    return datetime.now(timezone.utc)


_VOCABULARIES: dict[str, tuple[str, ...]] = {"purpose": PURPOSES, "scope": SCOPES, "choice": CHOICES, "source": SOURCES}


def _check_vocab(field: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {field} {value!r}; expected one of {', '.join(allowed)}")
    return value


class ConsentEventIn(BaseModel):
    """One consent choice to record. ``recorded_at`` defaults to now; ``event_id`` to a new UUID."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    member_id: str
    purpose: str = "ai_training"
    scope: str
    choice: str
    source: str = "member"
    policy_version: str | None = None
    recorded_at: datetime | None = None
    event_id: str | None = None

    @field_validator("member_id")
    @classmethod
    def _member(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("member id is empty")
        return v

    @field_validator("event_id")
    @classmethod
    def _event_id(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("event id is empty")
        return v

    @field_validator("purpose", "scope", "choice", "source")
    @classmethod
    def _vocabulary(cls, v: str, info: ValidationInfo) -> str:
        field = str(info.field_name)
        return _check_vocab(field, v, _VOCABULARIES[field])

    @field_validator("policy_version")
    @classmethod
    def _policy_version(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("policy version is empty; leave it out instead")
        return v

    @field_validator("recorded_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and (v.tzinfo is None or v.utcoffset() is None):
            raise ValueError("timestamp has no timezone; give an offset such as Z or +02:00")
        if v is not None and v > utc_now() + FUTURE_SKEW:
            raise ValueError(f"timestamp {v.isoformat()} is in the future; a choice cannot be recorded ahead of time")
        return v.astimezone(timezone.utc) if v is not None else None


def make_event(**fields: Any) -> ConsentEventIn:
    """Build a ``ConsentEventIn``, turning validation failures into ``InputError`` naming the field."""
    try:
        return ConsentEventIn(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "event"
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise InputError(f"invalid consent event field {field!r}: {msg}", field=field) from None


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored: the input fields plus sequence number and hash chain links."""

    seq: int
    event_id: str
    member_id: str
    purpose: str
    scope: str
    choice: str
    source: str
    policy_version: str | None
    recorded_at: datetime
    idempotency_key: str | None
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (timestamps as ISO 8601 strings)."""
        d = asdict(self)
        d["recorded_at"] = self.recorded_at.isoformat()
        return d


@dataclass(frozen=True)
class MemberState:
    """The standing choice of one member for one purpose and scope, and the event that decided it."""

    member_id: str
    purpose: str
    scope: str
    choice: str
    event: StoredEvent

    def to_dict(self) -> dict[str, Any]:
        return {"member_id": self.member_id, "purpose": self.purpose, "scope": self.scope, "choice": self.choice, "event": self.event.to_dict()}


@dataclass(frozen=True)
class SnapshotInfo:
    """What `Ledger.snapshot` wrote: row count, the cut-off and the chain head it saw."""

    rows: int
    as_of: datetime
    head_seq: int
    head_hash: str
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "as_of": self.as_of.isoformat(), "head_seq": self.head_seq, "head_hash": self.head_hash, "path": self.path}


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of walking the hash chain. ``first_bad_seq`` is None when ``ok``."""

    ok: bool
    events: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_seq: int = 0
    head_hash: str = GENESIS
    # Set when the chain is intact but the maintained state disagrees with the events:
    # (member_id, purpose, scope) of the first key in key order that differs (None when the
    # state's head row itself is wrong).
    bad_key: tuple[str, str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bad_key"] = list(self.bad_key) if self.bad_key is not None else None
        return d


# How far a policy's own ``published_at`` may lie before the moment the ledger records its
# publication: policy files give dates (midnight UTC), and one published on its stated day
# anywhere on Earth (UTC-12 ends 36 hours after that midnight) must pass. A larger gap is a
# backdated publication (see ``PublishedPolicy.notice_from``).
PUBLICATION_SLACK = timedelta(hours=36)


class PublishedPolicy(BaseModel):
    """A policy version as published in the ledger (`consentgate policy publish`).

    ``published_at`` is what the policy file says; ``recorded_at`` is when the ledger
    stored it (the publishing process's clock, as for events written without a time; None
    on a record not yet stored), and ``backfilled`` marks a backdated publication recorded
    after the fact on purpose (``policy publish --backfill``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    sha256: str
    published_at: datetime
    effective_at: datetime
    notice_days: int
    body: str
    recorded_at: datetime | None = None
    backfilled: bool = False

    @field_validator("published_at", "effective_at", "recorded_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return None
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("timestamp has no timezone")
        return v.astimezone(timezone.utc)

    @property
    def notice_from(self) -> datetime:
        """When the notice period started, as far as the ledger can tell.

        The policy's own ``published_at``, but never more than ``PUBLICATION_SLACK``
        before the ledger recorded the publication: a policy published today that
        claims last year's date gets no notice period it did not give. A backfilled
        publication keeps its stated date (builds under it say so in their manifest).
        """
        if self.backfilled or self.recorded_at is None:
            return self.published_at
        return max(self.published_at, self.recorded_at - PUBLICATION_SLACK)

    @property
    def notice_end(self) -> datetime:
        """``notice_from + notice_days``: a policy may not take effect before this."""
        return self.notice_from + timedelta(days=self.notice_days)

    def backdated(self, at: datetime) -> bool:
        """Whether ``published_at`` lies more than ``PUBLICATION_SLACK`` before ``at``."""
        return self.published_at < at - PUBLICATION_SLACK

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
            raise ValueError("sha256 must be 64 lower-case hexadecimal digits")
        return v
