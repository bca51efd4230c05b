"""Appending single events and small batches (``Ledger.record`` / ``record_many``) with
few round trips inside the writer lock.

Every write is one transaction with three steps, the first two each one round trip
on PostgreSQL (psycopg pipeline mode sends a step's statements together):

1. **Under the lock**: take the lock (PostgreSQL ``pg_advisory_xact_lock``; SQLite's
   ``BEGIN IMMEDIATE`` already holds it), then read the chain head and look up the
   batch's idempotency keys and explicit event ids. The reads are separate statements
   after the lock statement, so each sees every write committed before the lock.
2. **Plan** (no I/O): walk the batch in order exactly as one statement per event
   would -- a known key returns its original event (or is refused when the choice
   differs), a known event id is refused, a new event gets ``seq = head + 1`` and its
   chain hash -- remembering the keys and ids of the batch itself.
3. **Write**: insert the new events, move the state's head row on (only if it is at
   the old chain head; otherwise the state is rebuilt), and upsert each new event into
   ``consent_state`` from its own values (``state.upsert_rows``), so no write re-reads
   the events table. The caller commits.

A write never holds the lock longer than these round trips and the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from consentgate.errors import InputError, LedgerError, LedgerIntegrityError
from consentgate.ledger import state
from consentgate.ledger.chain import STORED_FIELDS, event_hash, mistyped_field
from consentgate.ledger.engine import PG_LOCK_KEY
from consentgate.ledger.models import GENESIS, ConsentEventIn, StoredEvent, from_micros, to_micros, utc_now

EVENT_COLS = STORED_FIELDS  # the column order of every stored-row read and insert here
_HEAD_SQL = "SELECT seq, hash FROM consent_events ORDER BY seq DESC LIMIT 1"


@dataclass
class Known:
    """What step 1 found: the chain head, events by idempotency key, and event ids already used."""

    head: tuple[int, str]
    by_key: dict[str, StoredEvent] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)


def stored(row: Sequence[Any]) -> StoredEvent:
    """A ``StoredEvent`` from a row in ``EVENT_COLS`` order (recorded_at in microseconds)."""
    r = tuple(row)
    wrong = mistyped_field(r)
    if wrong is not None:
        raise LedgerIntegrityError(
            f"event {r[0]} holds a value of the wrong type in {wrong}: the ledger was changed outside consentgate",
            hint="Run `consentgate ledger verify` and restore the ledger from a backup.", field=wrong,
        )
    return StoredEvent(
        seq=int(r[0]), event_id=r[1], member_id=r[2], purpose=r[3], scope=r[4], choice=r[5], source=r[6],
        policy_version=r[7], recorded_at=from_micros(int(r[8])), idempotency_key=r[9], prev_hash=r[10], hash=r[11],
    )


def append(conn: Connection, evs: Sequence[ConsentEventIn], keys: Sequence[str | None]) -> list[StoredEvent]:
    """Append ``evs`` (with their idempotency keys) in the open write transaction ``conn``.

    On PostgreSQL the transaction must not hold the advisory lock yet: step 1 takes it.
    """
    want_keys = sorted({k for k in keys if k is not None})
    want_ids = sorted({e.event_id for e in evs if e.event_id is not None})
    db = _Driver(conn)
    known = _read_locked(db, want_keys, want_ids)
    out, rows = plan(known, evs, keys)
    if rows:
        _write(db, rows, known.head, (rows[-1][0], rows[-1][-1]), max(r[8] for r in rows))
    return out


def plan(known: Known, evs: Sequence[ConsentEventIn], keys: Sequence[str | None]) -> tuple[list[StoredEvent], list[tuple[Any, ...]]]:
    """Step 2: the result per input event and the new rows (``EVENT_COLS`` order) to insert."""
    seq, prev = known.head
    out: list[StoredEvent] = []
    rows: list[tuple[Any, ...]] = []
    for ev, key in zip(evs, keys):
        existing = known.by_key.get(key) if key is not None else None
        if key is not None and existing is not None:
            _check_same_choice(existing, ev, key)
            out.append(existing)
            continue
        if ev.event_id is not None and ev.event_id in known.ids:
            raise InputError(
                f"event_id {ev.event_id!r} is already in the ledger", field="event_id", value=ev.event_id,
                hint="Each event needs a unique event_id; leave it out to have one generated.",
            )
        seq += 1
        bare = (seq, ev.event_id or uuid.uuid4().hex, ev.member_id, ev.purpose, ev.scope, ev.choice, ev.source,
                ev.policy_version, to_micros(ev.recorded_at or utc_now()), key, prev)
        prev = event_hash(bare)
        rows.append((*bare, prev))
        new = stored(rows[-1])
        out.append(new)
        known.ids.add(new.event_id)
        if key is not None:
            known.by_key[key] = new
    return out, rows


def _check_same_choice(existing: StoredEvent, ev: ConsentEventIn, key: str) -> None:
    fields = ("member_id", "purpose", "scope", "choice", "source", "policy_version")
    if not all(getattr(existing, f) == getattr(ev, f) for f in fields):
        raise InputError(
            f"idempotency key {key!r} was already used for a different event (seq {existing.seq})",
            hint="Use a new idempotency key for a new choice.", field="idempotency_key", value=key,
        )


def head(conn: Connection) -> tuple[int, str]:
    """``(seq, hash)`` of the last event; ``(0, GENESIS)`` when the ledger is empty."""
    return _head_of(conn.execute(text(_HEAD_SQL)).first())


def _head_of(row: Sequence[Any] | None) -> tuple[int, str]:
    """``head`` from the row of ``_HEAD_SQL`` (None: the ledger is empty)."""
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


# -- the driver connection: psycopg (pipelined) or sqlite3 ---------------------------
class _Driver:
    """The transaction's DBAPI connection, with the SQL spelled for its driver. On
    PostgreSQL ``batch()`` is a pipeline (one round trip); SQLite runs in process."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.raw: Any = conn.connection.driver_connection
        self.pg = conn.dialect.name != "sqlite"

    def sql(self, statement: str) -> str:
        """``?`` and ``:name`` parameters as the driver wants them."""
        return state.psycopg_sql(statement.replace("?", "%s")) if self.pg else statement

    def batch(self) -> AbstractContextManager[Any]:
        return self.raw.pipeline() if self.pg else nullcontext()

    def execute(self, statement: str, params: Any = ()) -> Any:
        return self.raw.execute(self.sql(statement), params)

    def executemany(self, statement: str, params: Any) -> None:
        self.raw.cursor().executemany(self.sql(statement), params)


_INSERT = f"INSERT INTO consent_events ({', '.join(EVENT_COLS)}) VALUES ({', '.join(['?'] * len(EVENT_COLS))})"
_BY_KEY = f"SELECT {', '.join(EVENT_COLS)} FROM consent_events WHERE idempotency_key = ?"
_BY_ID = "SELECT event_id FROM consent_events WHERE event_id = ?"
_LOCK = f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})"


def _read_locked(db: _Driver, keys: list[str], ids: list[str]) -> Known:
    """Step 1 (PostgreSQL: the lock and every read in one round trip)."""
    with _driver_errors(), db.batch():
        if db.pg:
            db.execute(_LOCK)
        head_cur = db.execute(_HEAD_SQL)
        key_curs = [db.execute(_BY_KEY, (k,)) for k in keys]
        id_curs = [db.execute(_BY_ID, (i,)) for i in ids]
    with _driver_errors():
        known = Known(_head_of(head_cur.fetchone()))
        for ev in (stored(r) for cur in key_curs for r in cur.fetchall()):
            known.by_key[str(ev.idempotency_key)] = ev
        known.ids.update(str(r[0]) for cur in id_curs for r in cur.fetchall())
    return known


def _write(db: _Driver, rows: list[tuple[Any, ...]], before: tuple[int, str], after: tuple[int, str], newest: int) -> None:
    """Step 3 (PostgreSQL: one round trip, plus a rebuild when the state was out of step)."""
    with _driver_errors(), db.batch():
        db.executemany(_INSERT, rows)
        moved = db.execute(state.MOVE_HEAD, state.move_head_params(before, after, newest))
        if db.pg:  # pipelined: the upserts go out before the head row's answer is back (rebuild overwrites them)
            db.executemany(state.UPSERT_ROW, state.state_rows(rows))
    if moved.rowcount != 1:  # the state was not at the old chain head: recompute it
        state.rebuild(db.conn, after)
    elif not db.pg:
        with _driver_errors():
            db.executemany(state.UPSERT_ROW, state.state_rows(rows))


@contextmanager
def _driver_errors() -> Iterator[None]:
    """sqlite3 / psycopg errors as the ledger's errors (a unique key violated: ``InputError``)."""
    import sqlite3

    import psycopg

    try:
        yield
    except (sqlite3.IntegrityError, psycopg.IntegrityError):
        raise InputError(
            "event_id or idempotency key already in the ledger", field="event_id",
            hint="Each event needs a unique event_id; leave it out to have one generated.",
        ) from None
    except (sqlite3.Error, psycopg.Error) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LedgerError(f"ledger database error ({type(exc).__name__}): {first}") from None
