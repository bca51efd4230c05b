"""Snapshots at a past moment T from the maintained state plus the events of the keys
that changed after T (``snapshot.write_snapshot`` calls ``rows_before``).

Why it is exact: ``consent_state`` holds each key's winner -- the greatest
(recorded_at, seq) -- over all events up to the chain head H. If a key's winner was
recorded at or before T, every event of that key was too (none is greater), so the
winner is also the key's state at T. Only a key whose winner was recorded after T
("late") can have had another state at T: the latest of its events with
``recorded_at <= T`` and ``seq <= H``, or none. So the snapshot is the state rows
recorded at or before T, plus, for the late keys only, the latest of their events up
to T (read through the member index) -- instead of every event of the ledger.

When many keys are late (T far back), looking their events up one member at a time
costs more than one pass over the events: ``rows_before`` then returns None and the
snapshot scans the events. The late rows are counted through the index on
``consent_state.recorded_at`` (migration 0003) before anything is read.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import text

from consentgate.ledger import engine as eng
from consentgate.ledger.state import KEY_SHIFT, vocab_sql

if TYPE_CHECKING:
    from consentgate.ledger.snapshot import Heads
    from consentgate.ledger.store import Ledger

# The state path is taken while the late keys are at most this share of the events
# (or at most LATE_MIN): their events are read by index, the rest of the ledger not at all.
# Measured at 1M members / 3M events: the state path costs about the as-of-now snapshot
# plus 17 us (SQLite) / 25 us (PostgreSQL) per late key, a scan of all events about 2x
# the as-of-now snapshot; they break even near 3% of the events.
LATE_SHARE = 0.03
LATE_MIN = 20_000
_MMAP_BYTES = 1 << 34
_COLS = ("member_id", "vocab", "policy_version", "recorded_at", "seq")  # snapshot._ROW_COLS


def count_late(ledger: Ledger, cut: int) -> int:
    """How many state rows were recorded after ``cut`` (the keys whose events must be re-read)."""
    with eng.read_connection(ledger.engine) as conn:
        return int(conn.execute(text("SELECT count(*) FROM consent_state WHERE recorded_at > :c"), {"c": cut}).scalar_one())


def use_state(late: int, head_seq: int) -> bool:
    """Whether re-reading the events of ``late`` keys beats scanning ``head_seq`` events."""
    return late <= max(LATE_MIN, LATE_SHARE * head_seq)


def rows_before(ledger: Ledger, heads: Heads, cut: int) -> pa.Table | None:
    """The snapshot rows at ``cut`` (``snapshot._ROW_COLS``, sorted by seq) from the state,
    or None when too many keys are late or a writer committed while the state was read."""
    from consentgate.ledger.snapshot import head_unchanged, latest_rows, read_state_rows

    if not use_state(count_late(ledger, cut), heads.seq):
        return None
    state = read_state_rows(ledger, heads)
    if not head_unchanged(ledger, heads):
        return None
    is_late = pc.greater(state.column("recorded_at"), pa.scalar(cut, pa.int64()))
    kept, late = state.filter(pc.invert(is_late)), state.filter(is_late)
    if late.num_rows == 0:
        return kept
    members = pc.unique(late.column("member_id")).to_pylist()
    events = _only_keys(member_events(ledger, heads.seq, cut, members), late)
    return merge_by_seq(kept, latest_rows(events))


def _key_part(table: pa.Table) -> pa.Table:
    """``table``'s member_id and the key bits of its vocab, as columns ``member_id`` and ``k``."""
    return pa.table({"member_id": table.column("member_id"), "k": pc.shift_right(table.column("vocab"), KEY_SHIFT)})


def _only_keys(events: pa.Table, late: pa.Table) -> pa.Table:
    """The rows of ``events`` whose key (member, purpose, scope) is one of ``late``'s keys."""
    import numpy as np

    if events.num_rows == 0:
        return events
    tagged = _key_part(events).append_column("i", pa.array(np.arange(events.num_rows)))
    hits = tagged.join(_key_part(late), keys=["member_id", "k"], join_type="left semi").column("i").to_numpy()
    return events.take(pa.array(np.sort(hits)))


def merge_by_seq(a: pa.Table, b: pa.Table) -> pa.Table:
    """Two tables with the same columns, each sorted by the unique ``seq``, merged in seq order."""
    import numpy as np

    if b.num_rows == 0:
        return a
    a_seq, b_seq = a.column("seq").to_numpy(), b.column("seq").to_numpy()
    at = np.searchsorted(a_seq, b_seq) + np.arange(len(b_seq))  # where b's rows land
    from_b = np.zeros(len(a_seq) + len(b_seq), dtype=bool)
    from_b[at] = True
    order = np.empty(len(from_b), dtype=np.int64)
    order[~from_b] = np.arange(len(a_seq))
    order[from_b] = len(a_seq) + np.arange(len(b_seq))
    both = pa.concat_tables([a, b.cast(a.schema)]).combine_chunks()
    return both.take(pa.array(order))


def member_events(ledger: Ledger, head_seq: int, cut: int, members: list[str]) -> pa.Table:
    """Events of ``members`` with ``recorded_at <= cut`` and ``seq <= head_seq`` (``_COLS``), read by the member index."""
    select = f"SELECT member_id, {vocab_sql()} AS vocab, policy_version, recorded_at, seq FROM consent_events"
    if ledger.backend == "sqlite":
        sql = f"{select} WHERE member_id IN (SELECT value FROM json_each(?)) AND recorded_at <= ? AND seq <= ?"
        rows = _sqlite_rows(str(ledger.engine.url.database), sql, (json.dumps(members), cut, head_seq))
    else:
        # A join with the list (not ``= ANY``) keeps to the member index whatever the statistics say.
        sql = (f"{select} JOIN unnest(%s::text[]) AS late(member_id) USING (member_id) "
               "WHERE recorded_at <= %s AND seq <= %s")
        rows = _pg_rows(ledger, sql, (members, cut, head_seq))
    from consentgate.ledger.snapshot import _TYPES

    cols = list(zip(*rows)) if rows else [()] * len(_COLS)
    return pa.table({n: pa.array(list(c), _TYPES[n]) for n, c in zip(_COLS, cols)})


def _sqlite_rows(path: str, sql: str, params: tuple[Any, ...]) -> list[Any]:
    import sqlite3
    from urllib.parse import quote

    conn = sqlite3.connect(f"file:{quote(path)}", uri=True, timeout=60.0)
    try:
        conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")  # index lookups read pages in place, not copied
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _pg_rows(ledger: Ledger, sql: str, params: tuple[Any, ...]) -> list[Any]:
    with ledger.engine.connect() as conn:
        dbapi: Any = conn.connection.driver_connection
        with dbapi.cursor() as cur:
            cur.execute(sql, params)
            rows: list[Any] = cur.fetchall()
        dbapi.rollback()
        return rows
