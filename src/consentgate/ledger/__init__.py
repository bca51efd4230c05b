"""The consent ledger: every member's AI-training choice, with full history, hash-chained.

Public API (docs/interfaces.md, "Ledger"; design in docs/ledger.md)::

    open_ledger(url, *, create=True) -> Ledger
    Ledger.record / record_many / import_file / state / history / snapshot / head /
          verify / publish_policy / published_policy / published_policies
    record_gpc(ledger, member_id, scopes, *, policy_version, at=None) -> list[StoredEvent]
"""

from __future__ import annotations

from consentgate.ledger.gpc import record_gpc
from consentgate.ledger.models import (
    GENESIS,
    ConsentEventIn,
    MemberState,
    PublishedPolicy,
    SnapshotInfo,
    StoredEvent,
    VerifyResult,
    make_event,
)
from consentgate.ledger.store import Ledger, open_ledger

__all__ = [
    "GENESIS",
    "ConsentEventIn",
    "Ledger",
    "MemberState",
    "PublishedPolicy",
    "SnapshotInfo",
    "StoredEvent",
    "VerifyResult",
    "make_event",
    "open_ledger",
    "record_gpc",
]
