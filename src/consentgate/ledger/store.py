"""The ``Ledger``: append-only, hash-chained consent events and published policies.

Writes (``record``, ``record_many``, ``import_file``, ``publish_policy``) run in one
transaction under the single-writer lock (``engine.write_transaction``): read the
chain head, assign ``seq = head + 1`` and ``prev_hash = head hash``, insert, and bring
the maintained current state (``consentgate.ledger.state``) up to the new head. No
event is ever updated or deleted. Reads (``state``, ``history``, ``snapshot``,
``verify``) never take the writer lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Row, select

from consentgate.errors import InputError, PolicyError
from consentgate.ledger import engine as eng
from consentgate.ledger import writes
from consentgate.ledger.models import (
    ConsentEventIn,
    MemberState,
    PublishedPolicy,
    SnapshotInfo,
    StoredEvent,
    VerifyResult,
    from_micros,
    to_micros,
    utc_now,
)
from consentgate.ledger.schema import events, policy_versions

_EVENT_COLS = [events.c[name] for name in writes.EVENT_COLS]


def open_ledger(url: str, *, create: bool = True) -> Ledger:
    """Open the ledger at ``url``; with ``create`` run the migrations to head first."""
    engine = eng.make_engine(url)
    if not create and eng.is_sqlite(engine):
        eng.require_file(Path(str(engine.url.database)))
    if create:
        eng.migrate(engine)
    else:
        eng.check_initialised(engine)
    return Ledger(engine)


class Ledger:
    """One consent ledger database. Create with ``open_ledger``; close with ``close()`` (or ``with``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- lifecycle -------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return str(self._engine.dialect.name)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------
    def record(self, event: ConsentEventIn, *, idempotency_key: str | None = None) -> StoredEvent:
        """Append one event durably. A retry with the same ``idempotency_key`` returns the original event."""
        return self.record_many([event], idempotency_keys=[idempotency_key])[0]

    def record_many(self, evs: Sequence[ConsentEventIn], *, idempotency_keys: Sequence[str | None] | None = None) -> list[StoredEvent]:
        """Append several events in one transaction (all or nothing), each with an optional idempotency key."""
        keys = list(idempotency_keys) if idempotency_keys is not None else [None] * len(evs)
        if len(keys) != len(evs):
            raise InputError("record_many needs one idempotency key (or None) per event")
        with eng.write_transaction(self._engine, pg_lock=False) as conn:
            return writes.append(conn, evs, keys)

    def import_file(self, path: Path) -> int:
        """Import a Parquet / CSV / JSONL file of canonical ``consent_events`` (all or nothing); returns the count."""
        from consentgate.ledger.bulk import append_table, read_events

        table = read_events(Path(path))
        return append_table(self, table, source_file=str(path))

    def publish_policy(self, policy: PublishedPolicy, *, backfill: bool = False) -> PublishedPolicy:
        """Publish a policy version and return it as stored (with the ledger's ``recorded_at``).

        Idempotent for the same sha256 (the first record stands); ``PolicyError`` for another
        one. A ``published_at`` more than ``PUBLICATION_SLACK`` before now is refused unless
        ``backfill``: the ledger witnesses when a policy is published, and a backdated file
        would claim a notice period that was never given. ``backfill`` records a publication
        that happened before this ledger knew of it; a backdated one is marked so, and builds say so.
        """
        with eng.write_transaction(self._engine) as conn:
            recorded = utc_now()  # under the writer lock: waiting for it cannot widen the slack
            existing = _policy(conn, policy.name, policy.version)
            if existing is not None:
                if existing.sha256 != policy.sha256:
                    raise PolicyError(
                        f"policy {policy.name!r} version {policy.version} is already published with another sha256",
                        hint="Give the changed policy a new version number; a published version never changes.",
                        name=policy.name, version=policy.version,
                    )
                return existing
            backdated = policy.backdated(recorded)
            if backdated and not backfill:
                raise PolicyError(
                    f"policy {policy.name!r} version {policy.version} says it was published {policy.published_at.date().isoformat()}, "
                    f"but the ledger is recording its publication now ({recorded.date().isoformat()})",
                    hint="Set published_at to today's date (notice runs from when the ledger records the publication), or, "
                         "for a publication that really happened before this ledger existed, publish with --backfill "
                         "(backfill=True in Python): builds then state in their manifest that the date is the file's claim.",
                    name=policy.name, version=policy.version, field="published_at",
                )
            backfilled = backfill and backdated  # a file dated today is no backfill, flag or not
            stored = policy.model_copy(update={"recorded_at": recorded, "backfilled": backfilled})
            conn.execute(policy_versions.insert().values(
                name=policy.name, version=policy.version, sha256=policy.sha256, published_at=to_micros(policy.published_at),
                effective_at=to_micros(policy.effective_at), notice_days=policy.notice_days, body=policy.body,
                recorded_at=to_micros(recorded), backfilled=backfilled,
            ))
        return stored

    # -- reads -----------------------------------------------------------------
    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last event; ``(0, GENESIS)`` when the ledger is empty."""
        with eng.read_connection(self._engine) as conn:
            return writes.head(conn)

    def history(self, member_id: str) -> list[StoredEvent]:
        """Every event of one member, in sequence order."""
        with eng.read_connection(self._engine) as conn:
            rows = conn.execute(select(*_EVENT_COLS).where(events.c.member_id == member_id).order_by(events.c.seq))
            return [writes.stored(r) for r in rows]

    def state(self, member_id: str, as_of: datetime | None = None) -> list[MemberState]:
        """The member's standing choice per (purpose, scope) at ``as_of`` (default now), with the deciding event.

        The deciding event is the one with the latest ``recorded_at <= as_of`` (ties: highest seq).
        A (purpose, scope) with no such event is absent: callers must treat it as no consent.
        """
        cutoff = to_micros(as_of) if as_of is not None else None
        latest: dict[tuple[str, str], StoredEvent] = {}
        for ev in self.history(member_id):
            if cutoff is not None and to_micros(ev.recorded_at) > cutoff:
                continue
            key = (ev.purpose, ev.scope)
            cur = latest.get(key)
            if cur is None or (ev.recorded_at, ev.seq) > (cur.recorded_at, cur.seq):
                latest[key] = ev
        return [MemberState(member_id, p, s, e.choice, e) for (p, s), e in sorted(latest.items())]

    def snapshot(self, as_of: datetime | None, out: Path, *, from_events: bool = False) -> SnapshotInfo:
        """Write every member's state at ``as_of`` (default now) to Parquet (``.arrow``/``.feather``: Arrow IPC).

        ``from_events``: compute it from the events alone, never from the maintained
        ``consent_state`` table (for a caller that verifies the chain but not that table).
        """
        from consentgate.ledger.snapshot import write_snapshot

        return write_snapshot(self, as_of, Path(out), from_events=from_events)

    def verify(self, *, state: bool = True) -> VerifyResult:
        """Walk the chain from seq 1; report the first missing, reordered or altered event.

        ``state``: also recompute ``consent_state`` from the events and compare (the default).
        """
        from consentgate.ledger.verify import verify_chain

        return verify_chain(self, state=state)

    def published_policy(self, name: str, version: str) -> PublishedPolicy | None:
        with eng.read_connection(self._engine) as conn:
            return _policy(conn, name, version)

    def published_policies(self) -> list[PublishedPolicy]:
        """All published policies, by name then version (dotted integers)."""
        with eng.read_connection(self._engine) as conn:
            rows = conn.execute(select(policy_versions)).all()
        pols = [_policy_from_row(r) for r in rows]
        return sorted(pols, key=lambda p: (p.name, _version_key(p.version)))

    def event_count(self) -> int:
        return self.head()[0]


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in version.split("."))


def _policy(conn: Connection, name: str, version: str) -> PublishedPolicy | None:
    row = conn.execute(select(policy_versions).where(policy_versions.c.name == name, policy_versions.c.version == version)).first()
    return None if row is None else _policy_from_row(row)


def _policy_from_row(r: Row[Any]) -> PublishedPolicy:
    m = r._mapping
    return PublishedPolicy(
        name=m["name"], version=m["version"], sha256=m["sha256"], published_at=from_micros(m["published_at"]),
        effective_at=from_micros(m["effective_at"]), notice_days=int(m["notice_days"]), body=m["body"],
        recorded_at=None if m["recorded_at"] is None else from_micros(m["recorded_at"]), backfilled=bool(m["backfilled"]),
    )
