"""Maintained current state: consent_state (winning event per key) and consent_state_head.

Creates both tables and backfills them from the events, so a migrated ledger answers
"as of now" snapshots from the state at once (consentgate.ledger.state keeps them up to
date from then on). The SQL is spelled out here, not imported, because a revision
must not change when the live code does.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_COLS = "member_id, purpose, scope, seq, recorded_at, choice, source, policy_version, vocab"
# purpose, scope, choice, source packed 3 bits each (frozen copy of state.VOCAB_CODES at this revision).
_VOCAB = ("(CASE purpose WHEN 'ai_training' THEN 0 END) * 512 + "
          "(CASE scope WHEN 'first_party' THEN 0 WHEN 'affiliate' THEN 1 WHEN 'third_party' THEN 2 END) * 64 + "
          "(CASE choice WHEN 'grant' THEN 0 WHEN 'deny' THEN 1 END) * 8 + "
          "(CASE source WHEN 'member' THEN 0 WHEN 'gpc' THEN 1 WHEN 'admin' THEN 2 WHEN 'import' THEN 3 END)")
_FROM_EVENTS = f"member_id, purpose, scope, seq, recorded_at, choice, source, policy_version, {_VOCAB} AS vocab"
_UPDATE = ("seq = excluded.seq, recorded_at = excluded.recorded_at, choice = excluded.choice, source = excluded.source, "
           "policy_version = excluded.policy_version, vocab = excluded.vocab")
_WINS = "(excluded.recorded_at, excluded.seq) > (consent_state.recorded_at, consent_state.seq)"


def upgrade() -> None:
    op.create_table(
        "consent_state",
        # seq is the primary key (SQLite: the rowid): a scan returns the state in seq order.
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("member_id", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("scope", sa.String(40), nullable=False),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.Column("choice", sa.String(10), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("policy_version", sa.String(40), nullable=True),
        sa.Column("vocab", sa.Integer(), nullable=False),
        sa.UniqueConstraint("member_id", "purpose", "scope", name="uq_consent_state_key"),
    )
    op.create_table(
        "consent_state_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("head_seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("max_recorded_at", sa.BigInteger(), nullable=True),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"INSERT INTO consent_state ({_COLS}) SELECT {_FROM_EVENTS} FROM consent_events WHERE true "
                   f"ON CONFLICT (member_id, purpose, scope) DO UPDATE SET {_UPDATE} WHERE {_WINS}")
    else:
        # Inserted in seq order, so the heap starts out in the order snapshots read it.
        op.execute(f"INSERT INTO consent_state ({_COLS}) SELECT {_COLS} FROM (SELECT DISTINCT ON (member_id, purpose, scope) {_FROM_EVENTS} "
                   "FROM consent_events ORDER BY member_id, purpose, scope, recorded_at DESC, seq DESC) AS winners ORDER BY seq")
    op.execute("INSERT INTO consent_state_head (id, head_seq, head_hash, max_recorded_at) "
               "SELECT 1, seq, hash, (SELECT max(recorded_at) FROM consent_events) FROM consent_events "
               "WHERE seq = (SELECT max(seq) FROM consent_events)")


def downgrade() -> None:
    op.drop_table("consent_state_head")
    op.drop_table("consent_state")
