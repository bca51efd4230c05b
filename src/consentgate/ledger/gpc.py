"""Global Privacy Control: turn a ``Sec-GPC: 1`` signal into ``deny`` events.

The policy decides which scopes GPC maps to (``consentgate.policy``); this helper
records one ``deny`` event per given scope with source ``gpc``, atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from consentgate.errors import InputError
from consentgate.ledger.models import StoredEvent, make_event, utc_now
from consentgate.ledger.store import Ledger


def record_gpc(
    ledger: Ledger,
    member_id: str,
    scopes: Sequence[str],
    *,
    policy_version: str | None,
    at: datetime | None = None,
    purpose: str = "ai_training",
    idempotency_key: str | None = None,
) -> list[StoredEvent]:
    """Record ``deny`` (source ``gpc``) for each scope in ``scopes``; all or nothing.

    ``idempotency_key`` (e.g. the request id) makes a retried signal a no-op: each
    scope's event is keyed ``KEY:scope``.
    """
    if isinstance(scopes, str):
        raise InputError("scopes must be a list of scope names, not one string", field="scopes")
    unique = list(dict.fromkeys(scopes))
    if not unique:
        raise InputError("GPC signal maps to no scopes", hint="Check the policy's GPC mapping.", field="scopes")
    when = at or utc_now()
    evs = [make_event(member_id=member_id, purpose=purpose, scope=s, choice="deny", source="gpc", policy_version=policy_version, recorded_at=when) for s in unique]
    keys = [f"{idempotency_key}:{s}" if idempotency_key is not None else None for s in unique]
    return ledger.record_many(evs, idempotency_keys=keys)
