"""The hash chain: canonical encoding of an event and its SHA-256 link.

Each event's ``hash`` is ``sha256(canonical(event) )`` where the canonical form is
the compact JSON array (UTF-8, no spaces, no ASCII escaping)::

    [seq, event_id, member_id, purpose, scope, choice, source,
     policy_version, recorded_at_us, idempotency_key, prev_hash]

``recorded_at_us`` is integer microseconds since the Unix epoch (UTC) and
``policy_version`` / ``idempotency_key`` are ``null`` when absent. JSON quoting
makes the encoding unambiguous (no field can spill into the next), and putting
``seq`` and ``prev_hash`` inside the hashed bytes means changing, deleting or
reordering any row breaks the chain at that row. The encoding is hand-written
(a dozen lines over the stdlib) because it is the on-disk contract and must
never change with a library upgrade.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from consentgate.ledger.models import GENESIS

__all__ = ["GENESIS", "canonical", "event_hash", "chain_hashes"]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode

# Column order of a chain row everywhere in this package.
CHAIN_FIELDS = (
    "seq",
    "event_id",
    "member_id",
    "purpose",
    "scope",
    "choice",
    "source",
    "policy_version",
    "recorded_at",
    "idempotency_key",
    "prev_hash",
)


def canonical(row: Sequence[Any]) -> bytes:
    """The canonical bytes of a chain row (values in ``CHAIN_FIELDS`` order)."""
    return _dumps(list(row)).encode("utf-8")


def event_hash(row: Sequence[Any]) -> str:
    """Hex SHA-256 of the canonical encoding of ``row`` (which includes ``prev_hash``)."""
    return hashlib.sha256(canonical(row)).hexdigest()


def chain_hashes(rows: Iterable[Sequence[Any]], prev_hash: str = GENESIS) -> Iterator[tuple[str, str]]:
    """For rows *without* their prev_hash (first 10 chain fields), yield ``(prev_hash, hash)`` in order."""
    sha = hashlib.sha256
    prev = prev_hash
    for row in rows:
        h = sha(_dumps([*row, prev]).encode("utf-8")).hexdigest()
        yield prev, h
        prev = h
