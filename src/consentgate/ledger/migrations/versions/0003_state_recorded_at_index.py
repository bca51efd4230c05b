"""Index consent_state by recorded_at: a snapshot at a past moment T counts (and finds)
the keys whose current winner was recorded after T without reading the whole state
(consentgate.ledger.asof).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_consent_state_recorded_at", "consent_state", ["recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_consent_state_recorded_at", table_name="consent_state")
