"""SQLAlchemy Core table definitions of the ledger (the migrations create them).

Times are BIGINT microseconds since the Unix epoch, UTC, on every backend: exact,
sortable, identical in SQLite and PostgreSQL, and cheap to turn into Arrow
``timestamp[us, UTC]`` for snapshots. Tables are append-only by contract; the
hash chain (``consentgate.ledger.chain``) makes any later change detectable.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table, Text, UniqueConstraint, false

metadata = MetaData()

events = Table(
    "consent_events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False),
    Column("event_id", String(200), nullable=False, unique=True),  # uq_consent_events_event_id
    Column("member_id", String(200), nullable=False),
    Column("purpose", String(40), nullable=False),
    Column("scope", String(40), nullable=False),
    Column("choice", String(10), nullable=False),
    Column("source", String(20), nullable=False),
    Column("policy_version", String(40), nullable=True),
    Column("recorded_at", BigInteger, nullable=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
Index("ix_consent_events_member", events.c.member_id, events.c.seq)
Index("uq_consent_events_idempotency_key", events.c.idempotency_key, unique=True, sqlite_where=events.c.idempotency_key.isnot(None), postgresql_where=events.c.idempotency_key.isnot(None))

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", String(40), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("published_at", BigInteger, nullable=False),
    Column("effective_at", BigInteger, nullable=False),
    Column("notice_days", Integer, nullable=False),
    Column("body", Text, nullable=False),
    # When the ledger stored the publication (its clock, microseconds), and whether it was
    # recorded after the fact on purpose (``policy publish --backfill``); migration 0004.
    Column("recorded_at", BigInteger, nullable=False),
    Column("backfilled", Boolean, nullable=False, server_default=false()),
)

# Current state, maintained in the same transaction as every append (consentgate.ledger.state):
# the winning event per (member_id, purpose, scope) over *all* events, i.e. the latest by
# (recorded_at, seq). A derived cache for fast "as of now" snapshots; `verify` recomputes
# it from the events, so changing it is detected like changing an event.
consent_state = Table(
    "consent_state",
    metadata,
    # seq is the primary key (SQLite: the rowid), so a scan returns the state in seq
    # order, which is the order of a snapshot file: no sort when reading it.
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False),
    Column("member_id", String(200), nullable=False),
    Column("purpose", String(40), nullable=False),
    Column("scope", String(40), nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    Column("choice", String(10), nullable=False),
    Column("source", String(20), nullable=False),
    Column("policy_version", String(40), nullable=True),
    # purpose, scope, choice, source packed into one integer (consentgate.ledger.state.VOCAB_CODES)
    Column("vocab", Integer, nullable=False),
    UniqueConstraint("member_id", "purpose", "scope", name="uq_consent_state_key"),
)
# A snapshot at a past moment finds the keys whose winner came later through it (migration 0003).
Index("ix_consent_state_recorded_at", consent_state.c.recorded_at)

# One row (id = 1): the chain head the state was brought up to, and the newest
# recorded_at among those events (a snapshot at or after it may read consent_state).
consent_state_head = Table(
    "consent_state_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("head_seq", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("max_recorded_at", BigInteger, nullable=True),
)
