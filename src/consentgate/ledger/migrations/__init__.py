"""Alembic migrations of the ledger schema, run programmatically by ``open_ledger``."""
