"""Initial ledger schema: consent_events (hash-chained, append-only) and policy_versions.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _seq_type() -> sa.types.TypeEngine[int]:
    # INTEGER PRIMARY KEY is SQLite's rowid alias: the cheapest possible sequence column.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "consent_events",
        sa.Column("seq", _seq_type(), primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("member_id", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("scope", sa.String(40), nullable=False),
        sa.Column("choice", sa.String(10), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("policy_version", sa.String(40), nullable=True),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("event_id", name="uq_consent_events_event_id"),
    )
    op.create_index("ix_consent_events_member", "consent_events", ["member_id", "seq"])
    # Partial: most events (imports) have no key, so they cost no index entry.
    not_null = sa.text("idempotency_key IS NOT NULL")
    op.create_index(
        "uq_consent_events_idempotency_key", "consent_events", ["idempotency_key"], unique=True,
        sqlite_where=not_null, postgresql_where=not_null,
    )
    op.create_table(
        "policy_versions",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(40), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("published_at", sa.BigInteger(), nullable=False),
        sa.Column("effective_at", sa.BigInteger(), nullable=False),
        sa.Column("notice_days", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("policy_versions")
    op.drop_index("uq_consent_events_idempotency_key", table_name="consent_events")
    op.drop_index("ix_consent_events_member", table_name="consent_events")
    op.drop_table("consent_events")
