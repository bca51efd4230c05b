"""Chain verification: walk every event in sequence order and recompute its hash.

Reports the first sequence number at which the chain breaks:
- a gap in ``seq`` (a deleted event) names the missing number;
- a ``prev_hash`` that is not the previous event's hash (reordered or deleted rows);
- a stored ``hash`` that differs from the recomputed one (a changed field).
Deleting the *last* events cannot be seen from inside the chain; compare the head
with one recorded elsewhere (snapshot manifests, the transparency log) for that.

When the chain is intact, the maintained current state (``consent_state`` and its head
row) is recomputed from the events and compared: a changed, missing or extra state
row is reported with the first (member_id, purpose, scope) that differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from consentgate.ledger import engine as eng
from consentgate.ledger.chain import event_hash
from consentgate.ledger.models import GENESIS, VerifyResult
from consentgate.ledger.schema import events
from consentgate.ledger.state import check_state

if TYPE_CHECKING:
    from consentgate.ledger.store import Ledger

_COLS = [events.c[n] for n in ("seq", "event_id", "member_id", "purpose", "scope", "choice", "source", "policy_version", "recorded_at", "idempotency_key", "prev_hash", "hash")]


def verify_chain(ledger: Ledger) -> VerifyResult:
    """Walk the chain of ``ledger``; ``ok`` is False at the first broken link."""
    prev_seq, prev_hash = 0, GENESIS
    with eng.read_connection(ledger.engine) as conn:
        result = conn.execution_options(stream_results=True, yield_per=20_000).execute(select(*_COLS).order_by(events.c.seq))
        for row in result:
            seq = int(row[0])
            reason = _check(tuple(row), prev_seq, prev_hash)
            if reason is not None:
                bad = prev_seq + 1 if seq != prev_seq + 1 else seq
                return VerifyResult(False, prev_seq, bad, reason, prev_seq, prev_hash)
            prev_seq, prev_hash = seq, str(row[11])
    problem = check_state(ledger)
    if problem is not None:
        return VerifyResult(False, prev_seq, None, f"the current-state table disagrees with the events: {problem.reason}",
                            prev_seq, prev_hash, bad_key=problem.key)
    return VerifyResult(True, prev_seq, None, None, prev_seq, prev_hash)


def _check(r: Sequence[Any], prev_seq: int, prev_hash: str) -> str | None:
    seq = int(r[0])
    if seq != prev_seq + 1:
        return f"sequence number {prev_seq + 1} is missing (the next stored event has seq {seq})"
    if r[10] != prev_hash:
        return f"event {seq} does not link to event {prev_seq} (prev_hash differs: rows deleted, reordered or rewritten)"
    if event_hash(r[:11]) != r[11]:
        return f"event {seq} was altered (its stored hash does not match its fields)"
    return None
