"""Shared test fixtures: a real PostgreSQL server for the whole session, and ledger URLs.

PostgreSQL comes from, in order:
1. ``CONSENTGATE_TEST_PG_DSN`` (an admin URL/DSN that may CREATE DATABASE), or
2. a throwaway server started here with ``initdb``/``pg_ctl`` in a temp folder
   (Unix socket only; as the ``nobody`` user when we run as root).
If neither works the PostgreSQL tests are skipped with the reason, except when
``CONSENTGATE_REQUIRE_POSTGRES=1`` (set by .ci/run): then they fail.

Fixtures for other packages: ``pg_admin_url`` (session), ``pg_url`` (an empty,
migrated ledger database, emptied before each test), ``sqlite_url``, and
``ledger_url`` / ``ledger`` parametrised over both backends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_REQUIRE = os.environ.get("CONSENTGATE_REQUIRE_POSTGRES") == "1"

# Property tests: on a developer's machine Hypothesis draws new examples every run (that is how it
# finds cases); in CI (.ci/run sets CONSENTGATE_HYPOTHESIS_PROFILE=ci) it draws the same ones every
# time, so a clean checkout's result does not depend on the luck of the draw. A case found locally is
# pinned with ``@example`` (as in tests/detect/test_detect_redact_props.py).
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CONSENTGATE_HYPOTHESIS_PROFILE"):
    _hypothesis_settings.load_profile(os.environ["CONSENTGATE_HYPOTHESIS_PROFILE"])


def _unavailable(reason: str) -> None:
    if _REQUIRE:
        pytest.fail(f"PostgreSQL is required (CONSENTGATE_REQUIRE_POSTGRES=1) but unavailable: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a PostgreSQL database whose user may create databases."""
    dsn = os.environ.get("CONSENTGATE_TEST_PG_DSN")
    if dsn:
        yield dsn if "://" in dsn else f"postgresql+psycopg:///?{dsn.replace(' ', '&')}"
        return
    from consentgate.errors import ConsentGateError
    from consentgate.ledger.pgserver import TempPostgres, find_pg_bin

    if find_pg_bin() is None:
        _unavailable("initdb/pg_ctl not found on PATH or in /usr/lib/postgresql/*/bin, and CONSENTGATE_TEST_PG_DSN is not set")
    server = TempPostgres()
    try:
        server.start()
    except ConsentGateError as exc:
        server.stop()
        _unavailable(exc.message)
    try:
        yield server.url()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _pg_ledger_db(pg_admin_url: str) -> Iterator[str]:
    from consentgate.ledger import open_ledger
    from consentgate.ledger.pgserver import create_database, drop_database

    url = create_database(pg_admin_url, "cgtest")
    open_ledger(url).close()
    try:
        yield url
    finally:
        drop_database(pg_admin_url, url)


@pytest.fixture
def pg_url(_pg_ledger_db: str) -> str:
    """An initialised PostgreSQL ledger database, empty at the start of the test."""
    from sqlalchemy import create_engine, text

    eng = create_engine(_pg_ledger_db)
    try:
        with eng.begin() as conn:
            conn.execute(text("TRUNCATE consent_events, consent_state, consent_state_head, policy_versions"))
    finally:
        eng.dispose()
    return _pg_ledger_db


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a not-yet-created SQLite ledger in the test's temp folder."""
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A ledger URL for each backend (the PostgreSQL one is initialised and empty)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Any]:
    """An open, empty ledger on each backend."""
    from consentgate.ledger import open_ledger

    led = open_ledger(ledger_url)
    try:
        yield led
    finally:
        led.close()
