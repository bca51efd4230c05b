"""Bulk import: read a Parquet / CSV / JSONL file of canonical ``consent_events``,
validate every row, then append them all in one transaction (or nothing).

Reading and validation are columnar (pyarrow); the first bad row is reported with
its 1-based data row number and the reason, and nothing is written. Appending
computes the hash chain in file order and inserts with ``executemany`` (SQLite) or
``COPY ... FROM STDIN`` (PostgreSQL), then updates the maintained current state in
the same transaction. Values quoted in errors are vocabulary values
and event ids, never free text, and are cut to 40 characters.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from consentgate.datamodel import CHOICES, CONSENT_EVENTS_SCHEMA, PURPOSES, SCOPES, SOURCES
from consentgate.errors import InputError, LedgerError, SchemaError
from consentgate.ledger import engine as eng
from consentgate.ledger import state
from consentgate.ledger.chain import batch_prefixes, chain_from_prefixes, chain_hashes
from consentgate.ledger.models import FUTURE_SKEW, utc_now
from consentgate.ledger.writes import head

if TYPE_CHECKING:
    from consentgate.ledger.store import Ledger

COLUMNS = CONSENT_EVENTS_SCHEMA.names
REQUIRED = [n for n in COLUMNS if n != "policy_version"]
STRING_COLS = [n for n in COLUMNS if n != "recorded_at"]
VOCABS = {"purpose": PURPOSES, "scope": SCOPES, "choice": CHOICES, "source": SOURCES}
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_TS_AWARE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)$"
_TS_NAIVE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?$"
CHUNK = 50_000
_INSERT_COLS = ("seq", "event_id", "member_id", "purpose", "scope", "choice", "source", "policy_version", "recorded_at", "idempotency_key", "prev_hash", "hash")


def _short(v: object) -> str:
    s = str(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _bad_row(path: Path, row: int, reason: str, field: str | None = None) -> InputError:
    return InputError(f"{path}: row {row}: {reason}; nothing was imported", file=str(path), row=row, field=field)


# -- reading -------------------------------------------------------------------
def read_events(path: Path) -> pa.Table:
    """Read and validate ``path``; returns a table in ``CONSENT_EVENTS_SCHEMA`` or raises ``InputError``."""
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file", file=str(path))
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(
            f"{path} is not a Parquet, CSV or JSONL file (by its extension {path.suffix or '(none)'})",
            hint="Give a .parquet, .csv or .jsonl file in the consent_events schema (docs/data-model.md).", file=str(path),
        )
    raw = {"parquet": _read_parquet, "csv": _read_csv, "jsonl": _read_jsonl}[kind](path)
    return validate(path, raw)


def _read_parquet(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    with path.open("rb") as fh:
        head = fh.read(4)
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 4))
        tail = fh.read(4)
    if head != b"PAR1":
        raise InputError(f"{path} is not a Parquet file (no PAR1 magic bytes)", file=str(path))
    if size < 12 or tail != b"PAR1":
        raise InputError(f"{path} is a truncated Parquet file (no footer)", hint="Copy the file again in full.", file=str(path))
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path} is a damaged Parquet file ({type(exc).__name__})", hint="Copy the file again in full.", file=str(path)) from None


def _read_csv(path: Path) -> pa.Table:
    import pyarrow.csv as pcsv

    header = _csv_header(path)
    _check_columns(path, header)
    types = {c: pa.string() for c in header}
    try:
        return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True))
    except (pa.ArrowException, OSError, UnicodeDecodeError):
        raise _csv_diagnose(path, len(header)) from None


def _csv_header(path: Path) -> list[str]:
    import csv

    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh), [])
    except (UnicodeDecodeError, csv.Error):
        raise InputError(f"{path} is not a UTF-8 CSV file", file=str(path)) from None


def _csv_diagnose(path: Path, width: int) -> InputError:
    """Find the first malformed CSV row with the stdlib reader (only on the error path)."""
    import csv

    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for i, rec in enumerate(csv.reader(fh)):
                if i and len(rec) != width:
                    return _bad_row(path, i, f"expected {width} columns, found {len(rec)}")
    except (UnicodeDecodeError, csv.Error) as exc:
        return InputError(f"{path} is not a valid UTF-8 CSV file ({type(exc).__name__})", file=str(path))
    return InputError(f"{path} could not be parsed as CSV", file=str(path))


def _read_jsonl(path: Path) -> pa.Table:
    import pyarrow.json as pjson

    schema = pa.schema([(c, pa.string()) for c in COLUMNS])
    opts = pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    try:
        table = pjson.read_json(path, parse_options=opts)
    except (pa.ArrowException, OSError):
        raise _jsonl_diagnose(path) from None
    _check_columns(path, [c for c in table.column_names if table.column(c).null_count < len(table)] or COLUMNS)
    return table


def _jsonl_diagnose(path: Path) -> InputError:
    """Find the first bad JSONL line with the stdlib parser (only on the error path)."""
    try:
        with path.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    return _bad_row(path, i, "not a JSON object (invalid JSON)")
                if not isinstance(obj, dict):
                    return _bad_row(path, i, "not a JSON object")
                extra = sorted(set(obj) - set(COLUMNS))
                if extra:
                    return _bad_row(path, i, f"unknown field {_short(extra[0])!r}", extra[0])
                for k, v in obj.items():
                    if v is not None and not isinstance(v, str):
                        return _bad_row(path, i, f"field {k!r} must be a string, found {type(v).__name__}", k)
    except UnicodeDecodeError:
        return InputError(f"{path} is not a UTF-8 JSONL file", file=str(path))
    return InputError(f"{path} could not be parsed as JSONL", file=str(path))


def _check_columns(path: Path, names: list[str]) -> None:
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise SchemaError(f"{path}: unknown column {_short(unknown[0])!r}", file=str(path), field=unknown[0])
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise SchemaError(f"{path}: missing column {missing[0]!r}", file=str(path), field=missing[0])


# -- validation ----------------------------------------------------------------
def validate(path: Path, raw: pa.Table) -> pa.Table:
    """Check columns, types and every row; return the canonical table."""
    _check_columns(path, raw.column_names)
    cols: dict[str, pa.ChunkedArray] = {}
    for name in STRING_COLS:
        cols[name] = _string_column(path, raw, name)
    cols["recorded_at"] = _timestamp_column(path, raw.column("recorded_at"))
    _check_rows(path, cols)
    return pa.table([cols[n] for n in COLUMNS], schema=CONSENT_EVENTS_SCHEMA)


def _string_column(path: Path, raw: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in raw.column_names:
        return pa.chunked_array([pa.nulls(len(raw), pa.string())])
    col = raw.column(name)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise SchemaError(f"{path}: column {name!r} must be string, found {col.type}", file=str(path), field=name)
    return col.cast(pa.string())


def _timestamp_column(path: Path, col: pa.ChunkedArray) -> pa.ChunkedArray:
    return _not_future(path, _not_null(path, _parse_timestamps(path, col)))


def _not_null(path: Path, col: pa.ChunkedArray) -> pa.ChunkedArray:
    row = _first(pc.is_null(col))
    if row is not None:
        raise _bad_row(path, row + 1, "recorded_at is empty", "recorded_at")
    return col


def _not_future(path: Path, col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A choice recorded in the future would outrank every later real choice: refuse it."""
    limit = pa.scalar(utc_now() + FUTURE_SKEW, pa.timestamp("us", tz="UTC"))
    row = _first(pc.greater(col, limit))
    if row is not None:
        raise _bad_row(path, row + 1, f"recorded_at {col[row].as_py().isoformat()} is in the future", "recorded_at")
    return col


def _parse_timestamps(path: Path, col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_timestamp(col.type):
        if col.type.tz is None:
            raise _bad_row(path, 1, "recorded_at has no timezone (naive timestamp column)", "recorded_at")
        return col.cast(pa.timestamp("us", tz="UTC"), safe=False)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise SchemaError(f"{path}: column 'recorded_at' must be a UTC timestamp, found {col.type}", file=str(path), field="recorded_at")
    col = col.cast(pa.string())
    bad = pc.invert(pc.fill_null(pc.match_substring_regex(col, _TS_AWARE), False))
    row = _first(bad)
    if row is not None:
        value = col[row].as_py()
        naive = value is not None and re.match(_TS_NAIVE, value) is not None
        reason = "recorded_at has no timezone; add Z or an offset such as +02:00" if naive else f"recorded_at {_short(value)!r} is not an ISO 8601 timestamp"
        raise _bad_row(path, row + 1, reason, "recorded_at")
    try:
        return col.cast(pa.timestamp("us", tz="UTC"), safe=False)
    except pa.ArrowInvalid:
        for i, v in enumerate(col.to_pylist()):
            try:
                pa.array([v]).cast(pa.timestamp("us", tz="UTC"), safe=False)
            except pa.ArrowInvalid:
                raise _bad_row(path, i + 1, f"recorded_at {_short(v)!r} is not a valid timestamp", "recorded_at") from None
        raise


def _first(mask: pa.ChunkedArray | pa.Array) -> int | None:
    idx = pc.index(mask, True).as_py()
    return None if idx is None or idx < 0 else int(idx)


def _check_rows(path: Path, cols: dict[str, pa.ChunkedArray]) -> None:
    problems: list[tuple[int, str, str]] = []
    for name in REQUIRED:
        if name == "recorded_at":
            continue
        empty = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(cols[name]), ""), True)
        row = _first(empty)
        if row is not None:
            problems.append((row, f"empty {name.replace('_', ' ')}", name))
    for name, vocab in VOCABS.items():
        unknown = pc.invert(pc.fill_null(pc.is_in(cols[name], value_set=pa.array(vocab)), True))
        row = _first(unknown)
        if row is not None:
            problems.append((row, f"unknown {name} {_short(cols[name][row].as_py())!r} (expected one of {', '.join(vocab)})", name))
    pv_empty = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(cols["policy_version"]), ""), False)
    row = _first(pv_empty)
    if row is not None:
        problems.append((row, "empty policy version (leave it null instead)", "policy_version"))
    dup = _first_duplicate(cols["event_id"])
    if dup is not None:
        problems.append(dup)
    if problems:
        row, reason, field = min(problems)
        raise _bad_row(path, row + 1, reason, field)


def _first_duplicate(ids: pa.ChunkedArray) -> tuple[int, str, str] | None:
    if pc.count_distinct(ids).as_py() == len(ids) - ids.null_count:
        return None
    seen: dict[str, int] = {}
    for i, v in enumerate(ids.to_pylist()):
        if v is None:
            continue
        if v in seen:
            return (i, f"duplicated event_id {_short(v)!r} (first at row {seen[v] + 1})", "event_id")
        seen[v] = i
    return None


# -- appending -----------------------------------------------------------------
def append_table(ledger: Ledger, table: pa.Table, *, source_file: str = "") -> int:
    """Append validated events in table order under the writer lock; all or nothing."""
    if table.num_rows == 0:
        return 0
    try:
        with eng.write_transaction(ledger.engine) as conn:
            seq, prev = before = head(conn)
            dbapi: Any = conn.connection.driver_connection
            for batch in table.to_batches(max_chunksize=CHUNK):
                rows = _chain_rows(batch, seq, prev)
                if ledger.backend == "sqlite":
                    _sqlite_insert(dbapi, rows)
                else:
                    _pg_copy(dbapi, rows)
                seq, prev = rows[-1][0], rows[-1][-1]
            state.advance(conn, before, (seq, prev), int(pc.max(table.column("recorded_at").cast(pa.int64())).as_py()))
    except LedgerError:
        raise
    except Exception as exc:  # raw driver errors (sqlite3 / psycopg) from the fast insert paths
        if _is_unique_violation(exc):
            raise _already_there(ledger, table, source_file) from None
        if _is_driver_error(exc):
            raise LedgerError(f"bulk insert failed ({type(exc).__name__}); nothing was imported", file=source_file) from None
        raise
    return int(table.num_rows)


def _is_driver_error(exc: BaseException) -> bool:
    import sqlite3

    import psycopg

    return isinstance(exc, (sqlite3.Error, psycopg.Error))


def _chain_rows(batch: pa.RecordBatch, seq: int, prev: str) -> list[tuple[Any, ...]]:
    """Rows in insert order (``_INSERT_COLS``) with seq, prev_hash and hash assigned."""
    names = ("event_id", "member_id", "purpose", "scope", "choice", "source", "policy_version")
    arrays = [batch.column(n) for n in names]
    rec = batch.column("recorded_at").cast(pa.int64())
    keys = pa.nulls(batch.num_rows, pa.string())
    seqs = range(seq + 1, seq + 1 + batch.num_rows)
    bare = list(zip(seqs, *(a.to_pylist() for a in arrays), rec.to_numpy().tolist(), [None] * batch.num_rows))
    prefixes = batch_prefixes(seq + 1, arrays, rec, keys)
    if prefixes is None:  # some value needs JSON escaping: the plain per-row encoder
        return [(*row, p, h) for row, (p, h) in zip(bare, chain_hashes(bare, prev))]
    hashes = chain_from_prefixes(prefixes, prev)
    prevs = [prev, *hashes[:-1]]
    return [(*row, p, h) for row, p, h in zip(bare, prevs, hashes)]


def _sqlite_insert(dbapi: Any, rows: list[tuple[Any, ...]]) -> None:
    marks = ",".join("?" * len(_INSERT_COLS))
    dbapi.executemany(f"INSERT INTO consent_events ({','.join(_INSERT_COLS)}) VALUES ({marks})", rows)


def _pg_copy(dbapi: Any, rows: list[tuple[Any, ...]]) -> None:
    with dbapi.cursor() as cur, cur.copy(f"COPY consent_events ({','.join(_INSERT_COLS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _is_unique_violation(exc: BaseException) -> bool:
    name = type(exc).__name__
    text = str(exc).lower()
    return name in ("IntegrityError", "UniqueViolation") or ("unique" in text and "constraint" in text)


def _already_there(ledger: Ledger, table: pa.Table, source_file: str) -> InputError:
    """After the failed (rolled back) append, name the first row whose event_id is already stored."""
    from sqlalchemy import select

    from consentgate.ledger.schema import events

    ids = table.column("event_id").to_pylist()
    with eng.read_connection(ledger.engine) as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            found = {r[0] for r in conn.execute(select(events.c.event_id).where(events.c.event_id.in_(chunk)))}
            for i, v in enumerate(chunk):
                if v in found:
                    return _bad_row(Path(source_file), start + i + 1, f"event_id {_short(v)!r} is already in the ledger", "event_id")
    return InputError(f"{source_file}: an event is already in the ledger; nothing was imported", file=source_file)
