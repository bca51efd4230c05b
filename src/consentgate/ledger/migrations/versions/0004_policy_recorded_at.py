"""Record when the ledger stored each policy publication, and whether it was a backfill.

A policy file states its own ``published_at``; the ledger now also keeps the moment it
recorded the publication (``recorded_at``, its clock) so that a policy published today
with last year's date cannot claim a notice period it never gave
(``PublishedPolicy.notice_from``). Publications stored before this migration have no
such record: they get the migration's time and are marked ``backfilled``, so builds
under them keep working and say in their manifest that the date is the file's claim.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only the columns still missing: a ledger taken back to an older revision by hand (the state
    # migration's test re-runs 0002 onwards) already has them.
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("policy_versions")}
    with op.batch_alter_table("policy_versions") as batch:
        if "recorded_at" not in have:
            batch.add_column(sa.Column("recorded_at", sa.BigInteger(), nullable=True))
        if "backfilled" not in have:
            batch.add_column(sa.Column("backfilled", sa.Boolean(), nullable=False, server_default=sa.false()))
    now_us = time.time_ns() // 1000
    op.execute(sa.text("UPDATE policy_versions SET recorded_at = :now, backfilled = :yes WHERE recorded_at IS NULL")
               .bindparams(now=now_us, yes=True))
    # Every publication from now on has the ledger's record of it (a row without one would have no witness).
    with op.batch_alter_table("policy_versions") as batch:
        batch.alter_column("recorded_at", existing_type=sa.BigInteger(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("policy_versions") as batch:
        batch.drop_column("backfilled")
        batch.drop_column("recorded_at")
