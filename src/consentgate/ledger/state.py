"""The maintained current state: ``consent_state`` and its head row ``consent_state_head``.

``consent_state`` holds, per (member_id, purpose, scope), the winning event over all
events, i.e. the one with the greatest (recorded_at, seq) -- exactly what a snapshot
"as of now" selects. Every write transaction (``record_many``, ``import_file``) calls
``advance`` under the writer lock after appending, so the state, its head row and the
events always commit together (or not at all).

``consent_state_head`` records the chain head (seq, hash) the state was brought up to
and the newest ``recorded_at`` among those events. A snapshot at ``as_of`` may read
the state instead of the events only when that head is the chain head it read and
``as_of`` is at or after that newest ``recorded_at`` (nothing is cut off). When the
head row does not match the events (a ledger written by an older version, or events
truncated by hand in a test) ``advance`` rebuilds the state from the events.

The state is a derived cache, never the source of truth: ``verify`` recomputes it
from the events and reports the first key whose row disagrees (``check_state``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from consentgate.errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

    from consentgate.ledger.store import Ledger

# purpose, scope, choice and source packed into one integer column ``vocab`` (3 bits
# each, in this order), so a snapshot reads one integer instead of four strings -- the
# per-value cost of the readers, not the bytes, dominates a snapshot. The codes are
# stored data: only ever append to these tuples (a value missing here makes the CASE
# NULL and the write fail; tests check every vocabulary value has a code).
VOCAB_CODES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("purpose", ("ai_training",)),
    ("scope", ("first_party", "affiliate", "third_party")),
    ("choice", ("grant", "deny")),
    ("source", ("member", "gpc", "admin", "import")),
)
_BITS = 3
# vocab >> KEY_SHIFT is the (purpose, scope) part: with member_id, a state key.
KEY_SHIFT = _BITS * 2


def _shift(i: int) -> int:
    return _BITS * (len(VOCAB_CODES) - 1 - i)


def vocab_sql() -> str:
    """SQL expression computing ``vocab`` from an event row's four string columns."""
    terms = []
    for i, (col, values) in enumerate(VOCAB_CODES):
        whens = " ".join(f"WHEN '{v}' THEN {k}" for k, v in enumerate(values))
        terms.append(f"(CASE {col} {whens} END) * {1 << _shift(i)}")
    return " + ".join(terms)


def encode_vocab(table: pa.Table) -> pa.Array:
    """``vocab`` of each row of ``table`` (which has the four string columns), as int64."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    codes = np.zeros(table.num_rows, dtype=np.int64)
    for i, (col, values) in enumerate(VOCAB_CODES):
        idx = pc.index_in(table.column(col), value_set=pa.array(values)).to_numpy(zero_copy_only=False)
        codes += idx.astype(np.int64) << _shift(i)
    return pa.array(codes)


def decode_vocab(vocab: Any) -> dict[str, pa.Array]:
    """The four string columns (dictionary-encoded) from a numpy array of ``vocab`` codes."""
    import numpy as np
    import pyarrow as pa

    out = {}
    for i, (col, values) in enumerate(VOCAB_CODES):
        idx = ((vocab >> _shift(i)) & ((1 << _BITS) - 1)).astype(np.int8)
        if idx.size and int(idx.max()) >= len(values):
            raise ValueError(f"consent_state.vocab holds an unknown {col} code")
        out[col] = pa.DictionaryArray.from_arrays(pa.array(idx), pa.array(values))
    return out


STATE_COLS = ("member_id", "purpose", "scope", "seq", "recorded_at", "choice", "source", "policy_version", "vocab")
_COLS = ", ".join(STATE_COLS)
_FROM_EVENTS = ", ".join(STATE_COLS[:-1]) + f", {vocab_sql()} AS vocab"
_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in STATE_COLS[3:])
_WINS = "(excluded.recorded_at, excluded.seq) > (consent_state.recorded_at, consent_state.seq)"

# SQLite applies the upsert row by row and the WHERE keeps the greater (recorded_at, seq),
# so the order of the SELECT does not matter. ("WHERE" in the SELECT is required by
# SQLite's parser before ON CONFLICT.)
_SQLITE_UPSERT = (
    f"INSERT INTO consent_state ({_COLS}) SELECT {_FROM_EVENTS} FROM consent_events WHERE seq > :after "
    f"ON CONFLICT (member_id, purpose, scope) DO UPDATE SET {_UPDATE} WHERE {_WINS}"
)
# PostgreSQL refuses to update one row twice in a statement: pick each key's winner first.
_PG_UPSERT = (
    f"INSERT INTO consent_state ({_COLS}) SELECT DISTINCT ON (member_id, purpose, scope) {_FROM_EVENTS} "
    "FROM consent_events WHERE seq > :after ORDER BY member_id, purpose, scope, recorded_at DESC, seq DESC "
    f"ON CONFLICT (member_id, purpose, scope) DO UPDATE SET {_UPDATE} WHERE {_WINS}"
)


MOVE_HEAD = ("UPDATE consent_state_head SET head_seq = :s, head_hash = :h, max_recorded_at = "
              "CASE WHEN max_recorded_at IS NULL OR max_recorded_at < :r THEN :r ELSE max_recorded_at END "
              "WHERE id = 1 AND head_seq = :bs AND head_hash = :bh")
# One event's state row from its own values; the WHERE keeps the greater (recorded_at, seq),
# so several rows of one key may be upserted in any order, one statement each.
UPSERT_ROW = (f"INSERT INTO consent_state ({_COLS}) VALUES ({', '.join(':' + c for c in STATE_COLS)}) "
               f"ON CONFLICT (member_id, purpose, scope) DO UPDATE SET {_UPDATE} WHERE {_WINS}")


def psycopg_sql(sql: str) -> str:
    """``sql`` with ``:name`` parameters spelled the psycopg way (``%(name)s``)."""
    return re.sub(r"(?<![:\w]):([a-z_]+)", r"%(\1)s", sql)


@dataclass(frozen=True)
class StateHead:
    """The ``consent_state_head`` row: the state covers events up to ``seq``/``hash``."""

    seq: int
    hash: str
    max_recorded_at: int | None


def read_head(conn: Connection) -> StateHead | None:
    row = conn.execute(text("SELECT head_seq, head_hash, max_recorded_at FROM consent_state_head WHERE id = 1")).first()
    return None if row is None else StateHead(int(row[0]), str(row[1]), None if row[2] is None else int(row[2]))


def advance(conn: Connection, before: tuple[int, str], after: tuple[int, str], newest: int) -> None:
    """Bring the state from chain head ``before`` to ``after`` (call in the write transaction);
    ``newest`` is the greatest ``recorded_at`` (microseconds) of the events appended."""
    if before == after:
        return
    if _move_head(conn, before, after, newest):
        _upsert(conn, before[0])


def _move_head(conn: Connection, before: tuple[int, str], after: tuple[int, str], newest: int) -> bool:
    """Move the head row from ``before`` to ``after``; when it was not at ``before``, rebuild
    the whole state instead and return False (nothing left to upsert)."""
    # One statement moves the head row on, and only if it was at ``before``.
    moved = conn.execute(text(MOVE_HEAD), move_head_params(before, after, newest))
    if moved.rowcount != 1:
        rebuild(conn, after)
        return False
    return True


def move_head_params(before: tuple[int, str], after: tuple[int, str], newest: int) -> dict[str, Any]:
    return {"s": after[0], "h": after[1], "r": newest, "bs": before[0], "bh": before[1]}


def state_rows(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Parameters of ``UPSERT_ROW`` for event rows in ``writes.EVENT_COLS`` order."""
    return [{"member_id": r[2], "purpose": r[3], "scope": r[4], "seq": r[0], "recorded_at": r[8], "choice": r[5],
             "source": r[6], "policy_version": r[7], "vocab": vocab_of(r[3], r[4], r[5], r[6])} for r in rows]


def vocab_of(*values: str) -> int:
    """``vocab`` of one row's purpose, scope, choice and source (``InputError`` for an unknown value)."""
    code = 0
    for i, ((col, known), value) in enumerate(zip(VOCAB_CODES, values)):
        if value not in known:
            raise InputError(f"unknown {col} {value!r}", field=col, value=value)
        code += known.index(value) << _shift(i)
    return code


def rebuild(conn: Connection, head: tuple[int, str]) -> None:
    """Recompute the whole state from the events (``head`` is the current chain head)."""
    conn.execute(text("DELETE FROM consent_state"))
    _upsert(conn, 0)
    newest = conn.execute(text("SELECT max(recorded_at) FROM consent_state")).scalar()
    _set_head(conn, head, None if newest is None else int(newest))


def _upsert(conn: Connection, after_seq: int) -> None:
    sql = _SQLITE_UPSERT if conn.dialect.name == "sqlite" else _PG_UPSERT
    conn.execute(text(sql), {"after": after_seq})


def _set_head(conn: Connection, head: tuple[int, str], newest: int | None) -> None:
    params = {"s": head[0], "h": head[1], "r": newest}
    updated = conn.execute(text("UPDATE consent_state_head SET head_seq = :s, head_hash = :h, max_recorded_at = :r WHERE id = 1"), params)
    if updated.rowcount == 0:
        conn.execute(text("INSERT INTO consent_state_head (id, head_seq, head_hash, max_recorded_at) VALUES (1, :s, :h, :r)"), params)


@dataclass(frozen=True)
class StateProblem:
    """The first way the stored state disagrees with the state recomputed from the events."""

    key: tuple[str, str, str] | None
    reason: str


def check_state(ledger: Ledger, *, attempts: int = 5) -> StateProblem | None:
    """Recompute the state from the events and compare it with the stored state and head
    row; None when they agree. Retries when a concurrent writer moves the head meanwhile."""
    from consentgate.ledger.snapshot import ALL_TIME, head_unchanged, latest_per_key, read_events_until, read_heads, read_state

    for _ in range(attempts):
        heads = read_heads(ledger)  # chain head and state head row, from one transaction
        st = heads.state
        if st is None or (st.seq, st.hash) != (heads.seq, heads.hash):
            if st is None and heads.seq == 0:
                return None
            got = "missing" if st is None else f"at seq {st.seq}"
            return StateProblem(None, f"its head row is {got} but the chain head is seq {heads.seq} (consent_state_head was changed)")
        stored = read_state(ledger, heads, stored_columns=True)
        if not head_unchanged(ledger, heads):
            continue  # a writer committed while we read: look again
        expected = latest_per_key(read_events_until(ledger, heads.seq, ALL_TIME))
        expected = expected.append_column("vocab", encode_vocab(expected))
        problem = _first_difference(expected, stored)
        if problem is not None:
            return problem
        newest = _max_recorded(expected)
        if st.max_recorded_at != newest:
            return StateProblem(None, f"its head row says the newest recorded_at is {st.max_recorded_at}, the events say {newest}")
        return None
    return StateProblem(None, f"the ledger kept changing during {attempts} attempts to compare it; run verify again")


def _max_recorded(table: pa.Table) -> int | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return None
    value = pc.max(table.column("recorded_at").cast(pa.int64())).as_py()
    return None if value is None else int(value)


def _first_difference(expected: pa.Table, stored: pa.Table) -> StateProblem | None:
    """The first key (in key order) whose stored row differs from the expected one, or is missing / extra."""
    exp, got = _normalised(expected), _normalised(stored)
    if exp.equals(got):  # both come sorted by seq (unique): equal states give equal tables
        return None
    exp, got = _by_key(exp), _by_key(got)
    # Hand-written merge walk (only on the failure path, after the fast equality check
    # failed): it names the first differing key in key order, which a join cannot.
    e_rows, g_rows = exp.to_pylist(), got.to_pylist()
    i = j = 0
    while i < len(e_rows) or j < len(g_rows):
        e = e_rows[i] if i < len(e_rows) else None
        g = g_rows[j] if j < len(g_rows) else None
        if e is not None and (g is None or _row_key(e) < _row_key(g)):
            k = _row_key(e)
            return StateProblem(k, f"no state row for member {k[0]!r} {k[1]}/{k[2]} (the events say seq {e['seq']})")
        if g is not None and (e is None or _row_key(g) < _row_key(e)):
            k = _row_key(g)
            return StateProblem(k, f"state row for member {k[0]!r} {k[1]}/{k[2]} has no event behind it")
        if e is not None and g is not None and e != g:
            k = _row_key(e)
            field = next(name for name in STATE_COLS if e[name] != g[name])
            return StateProblem(k, f"state row for member {k[0]!r} {k[1]}/{k[2]} differs in {field} "
                                   f"(the events say seq {e['seq']}, the row says seq {g['seq']})")
        i, j = i + 1, j + 1
    return StateProblem(None, "the state differs from the events")


def _row_key(row: dict[str, Any]) -> tuple[str, str, str]:
    return (str(row["member_id"]), str(row["purpose"]), str(row["scope"]))


def _normalised(table: pa.Table) -> pa.Table:
    """``STATE_COLS`` with plain types (times as integer microseconds), for comparison."""
    import pyarrow as pa

    types = {"seq": pa.int64(), "recorded_at": pa.int64(), "vocab": pa.int64()}
    return pa.table({c: table.column(c).cast(types.get(c, pa.string())) for c in STATE_COLS})


def _by_key(table: pa.Table) -> pa.Table:
    return table.sort_by([("member_id", "ascending"), ("purpose", "ascending"), ("scope", "ascending")])
