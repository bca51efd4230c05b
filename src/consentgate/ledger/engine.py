"""Database engines and migrations for the ledger: URL handling, SQLite pragmas, locks.

- SQLite (embedded default): WAL journal, ``synchronous=FULL`` so an acknowledged
  write survives a crash, a 60 s busy timeout, and write transactions opened with
  ``BEGIN IMMEDIATE`` so the writer lock is taken before the chain head is read.
- PostgreSQL (``postgresql+psycopg://``): writers take one transaction-scoped
  advisory lock (``pg_advisory_xact_lock``) before reading the head.

Either way sequence numbers and ``prev_hash`` are assigned under one lock, so any
number of processes can append concurrently and the chain stays linear.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from consentgate.errors import LedgerError

# Key of the PostgreSQL advisory lock that serialises ledger writers ("cgledger" in ASCII).
PG_LOCK_KEY = 0x6367_6C65_6467_6572 & 0x7FFF_FFFF_FFFF_FFFF
HEAD_REVISION = "0004"
_BEGIN_OPTION = "consentgate_begin"


def parse_url(url: str) -> URL:
    """Validate a ledger URL; ``postgresql://`` is read as ``postgresql+psycopg://``."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise LedgerError("cannot parse the ledger database URL", hint="Use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB.") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.get_driver_name() != "psycopg":
            raise LedgerError(f"unsupported PostgreSQL driver {parsed.get_driver_name()!r}", hint="Use postgresql+psycopg://...")
        return parsed
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise LedgerError("the SQLite ledger needs a file path", hint="Use sqlite:///PATH/ledger.db.")
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise LedgerError(f"folder {folder} of the SQLite ledger does not exist", hint="Create the folder or choose another --db path.")
        return parsed
    raise LedgerError(f"unsupported ledger database {backend!r}", hint="Use sqlite:///PATH or postgresql+psycopg://...")


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the ledger's durability and locking settings."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        eng = create_engine(parsed, connect_args={"timeout": 60.0, "isolation_level": None})
        event.listen(eng, "connect", _sqlite_connect)
        event.listen(eng, "begin", _sqlite_begin)
        return eng
    return create_engine(parsed)


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout = 60000")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = FULL")
    cur.execute("PRAGMA cache_size = -131072")  # up to 128 MiB: bulk imports update big indexes
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # pysqlite runs in autocommit mode (isolation_level=None); we issue BEGIN ourselves
    # so that write transactions can take the write lock up front.
    mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def write_transaction(engine: Engine, *, pg_lock: bool = True) -> Iterator[Connection]:
    """A transaction that holds the ledger's single-writer lock until it ends.

    ``pg_lock=False``: on PostgreSQL the caller takes the advisory lock itself, first thing
    in the transaction (``consentgate.ledger.writes`` sends it with its first reads).
    """
    try:
        with engine.connect() as conn:
            if is_sqlite(engine):
                conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
            with conn.begin():
                if pg_lock and not is_sqlite(engine):
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
                yield conn
    except OperationalError as exc:
        raise LedgerError(f"ledger database error ({type(exc.orig).__name__}): {_first_line(exc)}") from None


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A read transaction (one consistent snapshot on both backends)."""
    try:
        with engine.connect() as conn:
            if not is_sqlite(engine):
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn
    except OperationalError as exc:
        raise LedgerError(f"ledger database error ({type(exc.orig).__name__}): {_first_line(exc)}") from None


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__


def current_revision(conn: Connection) -> str | None:
    """The Alembic revision of the database, or None when it was never initialised."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def migrate(engine: Engine) -> None:
    """Run the migrations to head, under the writer lock (safe with concurrent openers)."""
    from alembic import command
    from alembic.config import Config

    with engine.connect() as probe:
        if current_revision(probe) == HEAD_REVISION:
            return
    with write_transaction(engine) as conn:
        if current_revision(conn) == HEAD_REVISION:
            return
        cfg = Config()
        cfg.set_main_option("script_location", str(resources.files("consentgate.ledger") / "migrations"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def require_file(path: Path) -> None:
    """Raise ``LedgerError`` unless the SQLite ledger file ``path`` exists: opening a missing one
    would create it (an empty file at a mistyped path)."""
    if not path.is_file():
        raise LedgerError(f"no ledger database at {path}", hint="Check --db, or run `consentgate ledger init --db URL` first.")


def check_initialised(engine: Engine) -> None:
    """Raise ``LedgerError`` unless the schema is at the head revision."""
    try:
        with engine.connect() as conn:
            rev = current_revision(conn)
    except OperationalError as exc:
        raise LedgerError(f"cannot open the ledger database ({type(exc.orig).__name__}): {_first_line(exc)}") from None
    if rev is None:
        raise LedgerError("the ledger database is not initialised", hint="Run `consentgate ledger init --db URL` first.")
    if rev != HEAD_REVISION:
        raise LedgerError(f"the ledger schema is at revision {rev}, this consentgate expects {HEAD_REVISION}", hint="Run `consentgate ledger init` to migrate.")
