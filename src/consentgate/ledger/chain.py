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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


# The ledger writes only these types (SQLite would keep a BLOB or a REAL in any column):
# a row holding another type was changed outside the ledger, whatever its hash says.
_NULLABLE = frozenset(("policy_version", "idempotency_key"))
_INTEGER = frozenset(("seq", "recorded_at"))
STORED_FIELDS = (*CHAIN_FIELDS, "hash")  # a stored row: the chain fields and the row's own hash


def mistyped_field(row: Sequence[Any]) -> str | None:
    """The first field of a stored row (``CHAIN_FIELDS`` then ``hash``) whose value has a type
    the ledger never writes there, or None when every field has its written type."""
    for name, v in zip(STORED_FIELDS, row):
        if v is None:
            if name not in _NULLABLE:
                return name
        elif type(v) is not (int if name in _INTEGER else str):
            return name
    return None


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


# Characters that JSON must escape inside a string: '"', backslash and the control characters.
_NEEDS_ESCAPE = r'["\\\x00-\x1f]'


def needs_escape(col: pa.Array) -> bool:
    """True when some value of the string column ``col`` needs JSON escaping.

    Scans the column's UTF-8 bytes at once (every byte of a multi-byte character is
    >= 0x80, so it never matches). May answer True for bytes under null slots, which
    only sends the caller to its slower exact path.
    """
    if col.null_count == len(col):
        return False
    if col.type not in (pa.string(), pa.large_string()):
        return bool(pc.any(pc.match_substring_regex(col, _NEEDS_ESCAPE)).as_py())
    raw = utf8_bytes(col)
    return bool(np.count_nonzero(raw < 0x20) or np.count_nonzero(raw == ord('"')) or np.count_nonzero(raw == ord("\\")))


def utf8_bytes(col: pa.Array) -> Any:
    """The UTF-8 bytes of the values of the string column ``col`` (with any under null slots),
    as one numpy uint8 view without a copy."""
    offsets_buf, data = col.buffers()[1:3]
    if data is None:
        return np.zeros(0, dtype=np.uint8)
    width = np.int32 if col.type == pa.string() else np.int64
    offsets = np.frombuffer(offsets_buf, dtype=width)[col.offset: col.offset + len(col) + 1]
    return np.frombuffer(data, dtype=np.uint8)[offsets[0]: offsets[-1]]


def _json_strings(col: pa.Array) -> pa.Array:
    """JSON literals of a string column (``"text"`` or ``null``), vectorised.

    Only valid when no value needs JSON escaping (checked by the caller): for such
    strings ``json.dumps(s, ensure_ascii=False)`` is exactly ``'"' + s + '"'``.
    """
    quoted = pc.binary_join_element_wise('"', col, '"', "")
    return pc.if_else(pc.is_null(col), "null", quoted)


def batch_prefixes(first_seq: int, columns: Sequence[pa.Array], recorded_us: pa.Array, keys: pa.Array) -> list[str] | None:
    """Canonical encodings of a batch of rows up to (not including) the prev_hash, or
    None when some value needs JSON escaping (the caller then uses ``chain_hashes``).

    ``columns`` are the seven string fields event_id .. policy_version. Equality with
    ``canonical()`` is checked by tests/ledger/test_ledger_chain.py.
    """
    if any(needs_escape(col) for col in (*columns, keys)):
        return None
    n = len(recorded_us)
    seqs = pa.array(range(first_seq, first_seq + n), pa.int64()).cast(pa.string())
    parts = [seqs, *(_json_strings(c) for c in columns), recorded_us.cast(pa.string()), _json_strings(keys)]
    joined = pc.binary_join_element_wise(*parts, ",")
    out: list[str] = pc.binary_join_element_wise("[", joined, ',"', "").to_pylist()
    return out


def canonical_sql(backend: str) -> str:
    """A SQL expression for the canonical encoding of a ``consent_events`` row.

    SQLite: ``json_array`` of the fields, which is compact and typed like ``canonical``
    (text as JSON strings, integers as numbers, NULL as null; a BLOB is an error) and
    escapes as the stdlib does; callers still send rows holding a backslash or a control
    character to ``canonical``, so the result never rests on the SQLite version's
    escaping. PostgreSQL (types enforced): plain concatenation, equal to ``canonical``
    when no value needs escaping -- seen as a number of '"' other than
    ``CANONICAL_QUOTES_SQL``, or a backslash or control character.
    """
    if backend == "sqlite":
        return f"json_array({', '.join(CHAIN_FIELDS)})"
    quoted = {c: f"""'"' || {c} || '"'""" for c in CHAIN_FIELDS if c not in ("seq", "recorded_at")}
    parts = ["seq", *(quoted[c] for c in CHAIN_FIELDS[1:7]), f"coalesce({quoted['policy_version']}, 'null')", "recorded_at",
             f"coalesce({quoted['idempotency_key']}, 'null')", quoted["prev_hash"]]
    return "'[' || " + " || ',' || ".join(parts) + " || ']'"


# The '"' characters of ``canonical_sql`` around its seven non-null strings, and around
# each of the two nullable ones when it is not null.
CANONICAL_QUOTES_SQL = ("(CASE WHEN policy_version IS NULL THEN 14 ELSE 16 END) + "
                        "(CASE WHEN idempotency_key IS NULL THEN 0 ELSE 2 END)")


def hex_digests(texts: pa.Array) -> pa.Array:
    """Hex SHA-256 of the UTF-8 bytes of each (non-null) string, as a string array."""
    sha = hashlib.sha256
    digests = "".join([sha(b).hexdigest() for b in texts.cast(pa.binary()).to_pylist()])
    offsets = np.arange(0, 64 * (len(texts) + 1), 64, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(len(texts), pa.py_buffer(offsets), pa.py_buffer(digests.encode("ascii"))).cast(pa.string())


def chain_from_prefixes(prefixes: Sequence[str], prev_hash: str) -> list[str]:
    """Hashes of rows whose canonical encoding is ``prefix + prev_hash + '"]'``, chained."""
    sha = hashlib.sha256
    out: list[str] = []
    prev = prev_hash
    for p in prefixes:
        prev = sha(f'{p}{prev}"]'.encode("utf-8")).hexdigest()
        out.append(prev)
    return out
