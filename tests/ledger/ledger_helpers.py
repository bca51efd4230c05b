"""Helpers for the ledger tests: canonical event tables and files in each format, raw SQL, a ledger per backend."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, text

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from consentgate.datamodel import CONSENT_EVENTS_SCHEMA
from consentgate.ledger import Ledger, open_ledger

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def event_rows(n: int, *, members: int = 10, prefix: str = "e", start: datetime = T0) -> list[dict[str, Any]]:
    """``n`` valid canonical rows, one minute apart, cycling members/scopes/choices."""
    scopes = ("first_party", "affiliate", "third_party")
    return [
        {
            "event_id": f"{prefix}{i}",
            "member_id": f"m{i % members}",
            "purpose": "ai_training",
            "scope": scopes[i % 3],
            "choice": "grant" if i % 2 else "deny",
            "source": "import",
            "policy_version": "2024.2" if i % 4 else None,
            "recorded_at": start + timedelta(minutes=i),
        }
        for i in range(n)
    ]


LOOSE_SCHEMA = pa.schema([f.with_nullable(True) for f in CONSENT_EVENTS_SCHEMA])


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as Arrow with the canonical types (nullable, like files made by other tools)."""
    return pa.Table.from_pylist(rows, schema=LOOSE_SCHEMA)


def write_rows(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write rows as Parquet, CSV or JSONL according to the suffix of ``path`` (timestamps ISO 8601)."""
    if path.suffix == ".parquet":
        pq.write_table(to_table(rows), path)
    elif path.suffix == ".csv":
        text_rows = [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()} for r in rows]
        cols = list(CONSENT_EVENTS_SCHEMA.names)
        table = pa.table({c: pa.array([r.get(c) for r in text_rows], pa.string()) for c in cols})
        pcsv.write_csv(table, path)
    else:
        with path.open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}) + "\n")
    return path


def run_sql(url: str, fn: Callable[[Connection], None]) -> None:
    """Run ``fn`` in one transaction on the database at ``url``, behind the ledger's back (tampering tests)."""
    eng = create_engine(url)
    try:
        with eng.begin() as conn:
            fn(conn)
    finally:
        eng.dispose()


def empty_ledger(url: str) -> None:
    """Delete every row of the ledger's tables at ``url`` (the shared PostgreSQL test database)."""
    run_sql(url, lambda conn: conn.execute(text("TRUNCATE consent_events, consent_state, consent_state_head, policy_versions")))


def ledger_per_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Ledger]:
    """Body of a module fixture parametrised ``sqlite`` / ``postgresql``: one open ledger for the module."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp(name) / 'l.db'}"
    else:  # the server's one test database: start from empty, whatever an earlier module left behind
        url = request.getfixturevalue("_pg_ledger_db")
        empty_ledger(url)
    with open_ledger(url) as led:
        yield led
