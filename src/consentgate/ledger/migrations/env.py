"""Alembic environment for the ledger, driven programmatically (no alembic.ini).

``consentgate.ledger.store.migrate`` passes an open SQLAlchemy connection in
``config.attributes["connection"]``; the caller holds the transaction and the
write lock, so concurrent openers never race on DDL.
"""

from __future__ import annotations

from alembic import context

from consentgate.ledger.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable from a hand-run `alembic` command
    raise RuntimeError("run ledger migrations through consentgate.ledger.open_ledger")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
