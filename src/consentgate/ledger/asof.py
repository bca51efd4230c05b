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
``consent_state.recorded_at`` (migration 0003) before anything is read; the
thresholds differ per backend (``LATE_SHARE``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import text

from consentgate.ledger import engine as eng
from consentgate.ledger.snapshot import ROW_COLS, read_pg_query, rows_table
from consentgate.ledger.state import KEY_SHIFT, vocab_sql

if TYPE_CHECKING:
    from consentgate.ledger.snapshot import Heads
    from consentgate.ledger.store import Ledger

# The state path is taken while the late keys are at most this share of the events
# (or at most LATE_MIN): their events are read by index, the rest of the ledger not at all.
# Measured at 1M members / 3M events (bench/results/ledger-snapshot-asof.txt): the state
# path costs about the as-of-now snapshot plus ~17 us (SQLite) / ~50 us (PostgreSQL) per
# late key; a scan of all events about 1.6-2x the as-of-now snapshot.
LATE_SHARE = {"sqlite": 0.03, "postgresql": 0.005}
LATE_MIN = 10_000
_MMAP_BYTES = 1 << 34


def count_late(ledger: Ledger, cut: int) -> int:
    """How many state rows were recorded after ``cut`` (the keys whose events must be re-read)."""
    with eng.read_connection(ledger.engine) as conn:
        return int(conn.execute(text("SELECT count(*) FROM consent_state WHERE recorded_at > :c"), {"c": cut}).scalar_one())


def use_state(late: int, head_seq: int, backend: str) -> bool:
    """Whether re-reading the events of ``late`` keys beats scanning ``head_seq`` events."""
    return late <= max(LATE_MIN, LATE_SHARE.get(backend, 0.0) * head_seq)


def rows_before(ledger: Ledger, heads: Heads, cut: int) -> pa.Table | None:
    """The snapshot rows at ``cut`` (``snapshot.ROW_COLS``, sorted by seq) from the state,
    or None when too many keys are late or a writer committed while the state was read."""
    from consentgate.ledger.snapshot import head_unchanged, latest_rows, read_state_rows

    if not use_state(count_late(ledger, cut), heads.seq, ledger.backend):
        return None
    state = read_state_rows(ledger, heads)
    if not head_unchanged(ledger, heads):
        return None
    is_late = pc.greater(state.column("recorded_at"), pa.scalar(cut, pa.int64()))
    late = state.filter(is_late)
    if late.num_rows == 0:
        return state
    members = pc.unique(late.column("member_id")).to_pylist()
    events = _only_keys(member_events(ledger, heads.seq, cut, members), late)
    return replace_late(state, is_late.to_numpy(zero_copy_only=False), latest_rows(events))


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


def replace_late(state: pa.Table, is_late: Any, winners: pa.Table) -> pa.Table:
    """``state`` without its late rows (``is_late``), plus ``winners``, in seq order (both
    tables are sorted by the unique seq): one take over the two, no intermediate copy."""
    import numpy as np

    keep = np.flatnonzero(~is_late)
    k_seq, w_seq = state.column("seq").to_numpy()[keep], winners.column("seq").to_numpy()
    at = np.searchsorted(k_seq, w_seq) + np.arange(len(w_seq))  # where the winners land
    from_w = np.zeros(len(keep) + len(w_seq), dtype=bool)
    from_w[at] = True
    order = np.empty(len(from_w), dtype=np.int64)
    order[~from_w] = keep
    order[from_w] = state.num_rows + np.arange(len(w_seq))
    return pa.concat_tables([state, winners.cast(state.schema)]).take(pa.array(order))


def member_events(ledger: Ledger, head_seq: int, cut: int, members: list[str]) -> pa.Table:
    """Events of ``members`` with ``recorded_at <= cut`` and ``seq <= head_seq`` (``ROW_COLS``), read by the member index."""
    select = f"SELECT member_id, {vocab_sql()} AS vocab, policy_version, recorded_at, seq FROM consent_events"
    if ledger.backend != "sqlite":
        # A join with the list (not ``= ANY``) keeps to the member index whatever the
        # statistics say; the list is a literal so the Arrow reader (binary COPY) can run it.
        sql = (f"{select} JOIN unnest({pg_text_array(members)}::text[]) AS late(member_id) USING (member_id) "
               f"WHERE recorded_at <= {int(cut)} AND seq <= {int(head_seq)}")
        return read_pg_query(ledger, sql, ROW_COLS)
    sql = f"{select} WHERE member_id IN (SELECT value FROM json_each(?)) AND recorded_at <= ? AND seq <= ?"
    return rows_table(_sqlite_rows(str(ledger.engine.url.database), sql, (json.dumps(members), cut, head_seq)), ROW_COLS)


def pg_text_array(values: list[str]) -> str:
    """A PostgreSQL SQL literal of the text array ``values``: inside the array each element
    is double-quoted with ``\\`` and ``"`` escaped, then the whole is a standard string
    literal with ``'`` doubled (standard_conforming_strings, the default since 9.1)."""
    elems = ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "'{" + elems.replace("'", "''") + "}'"


def _sqlite_rows(path: str, sql: str, params: tuple[Any, ...]) -> list[Any]:
    import sqlite3
    from urllib.parse import quote

    conn = sqlite3.connect(f"file:{quote(path)}", uri=True, timeout=60.0)
    try:
        conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")  # index lookups read pages in place, not copied
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


