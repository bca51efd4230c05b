"""Source tables of a build: find them, read them with DuckDB, check them, normalise them.

Owns everything between a ``SourceSpec`` and a DuckDB view in the canonical schema
(``consentgate.datamodel``): locating the files (a Parquet file or folder, CSV,
JSONL, or a table in a DuckDB database file), applying the spec's ``mapping``
(column renames, category values, a delimited participants string), checking
types (a naive timestamp is refused, never guessed), and the data checks a build
needs before it decides anything (empty source, nulls, duplicated ids, an author
missing from participants). Errors name the source, column and record id; they
never quote member text or DuckDB's own message (which can echo values).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

if TYPE_CHECKING:  # annotations only: worker processes import this module (``build.tasks``) without pydantic
    from consentgate.build.spec import SourceSpec, TableMapping
from consentgate.datamodel import MEMBERS_SCHEMA, RECORDS_SCHEMA
from consentgate.errors import BuildError, InputError, SchemaError

# An ISO-8601 timestamp with an explicit offset (Z, +hh, +hhmm or +hh:mm).
_AWARE_RE = r"^\s*\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)\s*$"
_NAIVE_RE = r"^\s*\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?\s*$"
_INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "HUGEINT"}
_NAIVE_TYPES = {"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATE"}
_SUFFIX_FORMAT = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def one(result: duckdb.DuckDBPyConnection) -> Any:
    """The first row of an executed query, draining it (DuckDB 2 refuses new work on an undrained result)."""
    rows = result.fetchall()
    return rows[0] if rows else None


def streamed(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """The batches of a DuckDB result read through Arrow (``to_arrow_reader``).

    A query that fails part-way (out of memory, a cast that meets a bad value) reaches
    pyarrow as a bare ``OSError`` carrying DuckDB's message, which can quote values: it
    becomes the same ``BuildError`` as a query that fails at once, without the message.
    """
    try:
        yield from reader
    except OSError as exc:
        raise query_failed(error_kind(str(exc)), "while its result was read") from None


# DuckDB's messages start with their kind ("Out of Memory Error: ...", "Conversion Error: ...");
# the kind is safe to show, the rest can quote values.
_KIND = re.compile(r"[A-Z][A-Za-z ]{0,40}Error")
_OUT_OF_MEMORY = frozenset({"Out of Memory Error", "OutOfMemoryException"})


def error_kind(message: str) -> str:
    """The kind of a DuckDB error message (the words before its first colon), or ``Error``."""
    head = message.split(":", 1)[0].strip()
    return head if _KIND.fullmatch(head) else "Error"


def query_failed(kind: str, detail: str = "") -> BuildError:
    """The error for a failed build query, naming DuckDB's error ``kind`` (an exception class or
    a message's kind, ``error_kind``) but not its message, which can quote values."""
    where = f", {detail}" if detail else ""
    if kind in _OUT_OF_MEMORY:
        return BuildError(f"DuckDB ran out of memory during the build ({kind}{where})",
                          hint="DuckDB reached one of the build's memory caps (docs/build-reference.md) or the "
                               "machine's memory: build with fewer --workers or free memory, and if it recurs, "
                               "report it with the record and member counts.")
    return BuildError(f"the build query failed in DuckDB ({kind}{where})",
                      hint="Check the sources against the canonical schema and the spec's mapping, "
                           "and the free disk space of the output folder.")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# The extra columns of a source's positioned view: the file (its index among ``SourceTable.files``) and the row in it.
POSITION_COLUMNS = ("_file", "_pos")


@dataclass(frozen=True)
class SourceTable:
    """A source opened on a DuckDB connection: ``view`` holds it in the canonical schema."""

    role: str
    label: str
    files: tuple[Path, ...]
    view: str
    rows: int
    id_hash_sum: int  # ``id_hash_sum`` of the id column, taken with the checks: with ``rows``, a fingerprint of the ids
    columns: dict[str, str] = field(default_factory=dict)  # canonical field -> the source's column
    # A view of the same rows with each one's place in the source's Parquet files (``build.positions``), or None.
    positioned: str | None = None


def source_files(src: SourceSpec, role: str) -> tuple[tuple[Path, ...], str]:
    """The files behind a source and their format; a folder means every Parquet/CSV/JSONL file under it."""
    if src.database is not None:
        if not src.database.is_file():
            raise InputError(f"{role} source: DuckDB database {src.database} does not exist", file=str(src.database))
        return (src.database,), "duckdb"
    assert src.path is not None
    path = src.path
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIX_FORMAT and not p.name.startswith("."))
        formats = {_SUFFIX_FORMAT[p.suffix.lower()] for p in files}
        if src.format != "auto":
            files = [p for p in files if _SUFFIX_FORMAT[p.suffix.lower()] == src.format]
            formats = {src.format} if files else set()
        if not files:
            raise InputError(f"{role} source: folder {path} holds no Parquet, CSV or JSONL files", file=str(path),
                             hint="Point the source at a folder of .parquet/.csv/.jsonl files, or at one file.")
        if len(formats) > 1:
            raise InputError(f"{role} source: folder {path} mixes formats ({', '.join(sorted(formats))})", file=str(path),
                             hint="Set `format` on the source to pick one.")
        return tuple(files), formats.pop()
    if not path.is_file():
        raise InputError(f"{role} source: {path} does not exist", file=str(path), hint="Check the path in the build spec.")
    fmt = src.format if src.format != "auto" else _SUFFIX_FORMAT.get(path.suffix.lower(), "")
    if not fmt:
        raise InputError(f"{role} source: cannot tell the format of {path} from its suffix", file=str(path),
                         hint="Set `format: parquet|csv|jsonl` on the source.")
    return (path,), fmt


# Characters DuckDB's file readers take for a glob: ``a[1].parquet`` would read ``a1.parquet``.
_GLOB_RE = re.compile(r"([*?\[])")


def literal_path(path: Path) -> str:
    """``path`` as DuckDB's file readers must be given it to read that one file: each glob character
    inside brackets (``a[[]1].parquet``), which DuckDB's globbing reads as the character itself.
    Otherwise ``a[1].parquet`` reads ``a1.parquet``, while the manifest hashed the file named."""
    return _GLOB_RE.sub(r"[\1]", str(path))


# Every source file is read as the rows it holds: DuckDB would otherwise take a folder named like a Hive
# partition (``category=post/``) for a column, and its value would replace the file's own in every row.
_NO_HIVE = "hive_partitioning = false"


def parquet_scan(path: Path, pattern: str = "") -> str:
    """SQL reading the Parquet file ``path``, or the files matching ``pattern`` (``*.parquet``) in folder
    ``path``, as the rows they hold: the path read literally (``literal_path``), no Hive columns. Every
    Parquet read of the build and of ``build verify`` goes through here."""
    where = literal_path(path) + (f"/{pattern}" if pattern else "")
    return f"read_parquet({quote_str(where)}, {_NO_HIVE})"


def _relation(files: tuple[Path, ...], fmt: str, src: SourceSpec, json_columns: dict[str, str] | None = None) -> str:
    names = "[" + ", ".join(quote_str(literal_path(p)) for p in files) + "]"
    if fmt == "parquet":
        return f"read_parquet({names}, {_NO_HIVE})"
    if fmt == "csv":
        # Everything as text: types are checked and cast here, never sniffed (a sniffed
        # naive timestamp would silently take the session's time zone).
        return f"read_csv({names}, header = true, all_varchar = true, {_NO_HIVE})"
    if fmt == "jsonl":
        if json_columns is None:
            return f"read_json({names}, format = 'newline_delimited', {_NO_HIVE})"
        cols = "{" + ", ".join(f"{quote_str(k)}: {quote_str(v)}" for k, v in json_columns.items()) + "}"
        return f"read_json({names}, format = 'newline_delimited', columns = {cols}, {_NO_HIVE})"
    assert src.table is not None
    return f"{src.table}"


def _describe(con: duckdb.DuckDBPyConnection, relation: str, label: str) -> dict[str, str]:
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    except duckdb.Error as exc:
        raise read_error(label, exc) from None
    return {str(r[0]): str(r[1]) for r in rows}


# DuckDB errors that a query over a source's view raises for bad contents (a value its cast cannot
# convert, a corrupt page): reported as the source's read error, wherever the view is first read.
SOURCE_READ_ERRORS = (duckdb.ConversionException, duckdb.InvalidInputException)  # not IOException: also a full spill disk


def read_error(label: str, exc: Exception) -> InputError:
    """The error for source ``label`` that DuckDB could not read (its message is left out: it can quote values)."""
    kind = type(exc).__name__
    return InputError(
        f"cannot read source {label} ({kind}): the file is corrupt, truncated or not in the stated format",
        hint="Check the file (re-export it), or set `format` on the source.", file=label,
    )


def _ts_expr(col: str, typ: str, label: str, field: str) -> str:
    if typ.startswith("TIMESTAMP WITH TIME ZONE"):
        return col
    if typ in _NAIVE_TYPES:
        raise SchemaError(
            f"source {label}: column {field!r} is a timestamp without time zone ({typ})",
            hint="Store UTC timestamps with a time zone (e.g. pyarrow timestamp('us', tz='UTC'), or ISO text ending in Z).",
            file=label, field=field,
        )
    if typ == "VARCHAR":
        return f"CAST({col} AS TIMESTAMPTZ)"
    raise SchemaError(f"source {label}: column {field!r} has type {typ}, expected a timestamp with time zone",
                      file=label, field=field)


def _field_expr(field: pa.Field, src_col: str, typ: str, label: str, mapping: TableMapping) -> str:
    col = quote_ident(src_col)
    name = field.name
    if pa.types.is_string(field.type):
        if typ != "VARCHAR":
            raise SchemaError(f"source {label}: column {src_col!r} ({name}) has type {typ}, expected text",
                              file=label, field=name)
        if name == "category" and mapping.category_values:
            cases = " ".join(f"WHEN {quote_str(k)} THEN {quote_str(v)}" for k, v in sorted(mapping.category_values.items()))
            return f"CASE {col} {cases} ELSE {col} END"
        return col
    if pa.types.is_integer(field.type):
        if typ in _INT_TYPES:
            return f"CAST({col} AS INTEGER)"
        if typ == "VARCHAR":
            return f"TRY_CAST({col} AS INTEGER)"
        raise SchemaError(f"source {label}: column {src_col!r} ({name}) has type {typ}, expected an integer", file=label, field=name)
    if pa.types.is_list(field.type):
        if typ == "VARCHAR[]":
            return col
        if typ == "VARCHAR" and mapping.participants_delimiter:
            d = quote_str(mapping.participants_delimiter)
            return f"list_filter(list_transform(string_split({col}, {d}), lambda x: trim(x)), lambda x: x <> '')"
        if typ == "VARCHAR":
            raise SchemaError(f"source {label}: column {src_col!r} ({name}) is text, expected a list of member ids",
                              hint="Set mapping.records.participants_delimiter to the character that separates the ids.",
                              file=label, field=name)
        raise SchemaError(f"source {label}: column {src_col!r} ({name}) has type {typ}, expected a list of strings", file=label, field=name)
    if pa.types.is_timestamp(field.type):
        return _ts_expr(col, typ, label, name)
    raise AssertionError(f"unhandled canonical type {field.type}")  # pragma: no cover - schema is closed


def _column_map(schema: pa.Schema, mapping: TableMapping, have: dict[str, str], label: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for field in schema:
        src_col = mapping.columns.get(field.name, field.name)
        if src_col not in have:
            mapped = f" (mapped from {src_col!r})" if src_col != field.name else ""
            raise SchemaError(
                f"source {label}: missing column {field.name!r}{mapped}; it has {', '.join(sorted(have)) or 'no columns'}",
                hint="Add the column, or map it with mapping.<table>.columns in the build spec.", file=label, field=field.name,
            )
        out[field.name] = src_col
    return out


def _first_bad(con: duckdb.DuckDBPyConnection, relation: str, id_col: str, cond: str, label: str) -> Any:
    try:
        row = one(con.execute(f"SELECT count(*), min({quote_ident(id_col)}) FROM {relation} WHERE {cond}"))
    except duckdb.Error as exc:
        raise read_error(label, exc) from None
    return row if row is not None and row[0] else None


def _check_text_values(con: duckdb.DuckDBPyConnection, relation: str, cols: dict[str, str], types: dict[str, str],
                       schema: pa.Schema, id_field: str, label: str) -> None:
    """Text sources (CSV/JSONL): every timestamp has an offset, every integer parses."""
    id_col = cols[id_field]
    for field in schema:
        src = cols[field.name]
        if types[src] != "VARCHAR":
            continue
        q = quote_ident(src)
        if pa.types.is_timestamp(field.type):
            naive = _first_bad(con, relation, id_col, f"regexp_full_match({q}, '{_NAIVE_RE}')", label)
            if naive:
                raise InputError(
                    f"source {label}: column {src!r} holds a timestamp without time zone in {naive[0]} row(s), first at {id_field} {naive[1]!r}",
                    hint="Write timestamps with an offset, e.g. 2024-09-18T10:00:00Z; consentgate never guesses a time zone.",
                    file=label, field=field.name, record=naive[1],
                )
            # The pattern, and a real moment (not 2024-02-30): the build's own casts must never meet a bad value.
            bad = _first_bad(con, relation, id_col,
                             f"{q} IS NOT NULL AND (NOT regexp_full_match({q}, '{_AWARE_RE}') OR TRY_CAST({q} AS TIMESTAMPTZ) IS NULL)", label)
            if bad:
                raise InputError(f"source {label}: column {src!r} is not an ISO-8601 timestamp in {bad[0]} row(s), first at {id_field} {bad[1]!r}",
                                 file=label, field=field.name, record=bad[1])
        elif pa.types.is_integer(field.type):
            bad = _first_bad(con, relation, id_col, f"{q} IS NOT NULL AND TRY_CAST({q} AS INTEGER) IS NULL", label)
            if bad:
                raise InputError(f"source {label}: column {src!r} is not an integer in {bad[0]} row(s), first at {id_field} {bad[1]!r}",
                                 file=label, field=field.name, record=bad[1])


def open_source(con: duckdb.DuckDBPyConnection, role: str, src: SourceSpec, mapping: TableMapping, view: str,
                *, check_unique: bool = True, check_authors: bool = True, later_nulls: tuple[str, ...] = ()) -> SourceTable:
    """Create view ``view`` over ``src`` in the canonical schema of ``role`` ("records" or "members"), checked.

    ``check_unique=False`` leaves out the check that ids are unique (a hash aggregation over
    every id: seconds at 10M records). Only a caller that checks it later on its own, before
    anything is published, may pass it (the build's decide phase writes every id in order
    and stops at the first repeat: ``build.decide``). Likewise ``check_authors=False`` leaves
    out the check that every record's author is among its participants, for a caller that
    makes it in a pass over the records it needs anyway (``build.decide.run_screen``),
    raising ``author_error``, and ``later_nulls`` names columns whose null check such a
    caller makes there too (raising ``null_error``): reading a list column only to count
    its nulls was 0.35 s of the 0.6 s this check took at 10M records.
    """
    schema = RECORDS_SCHEMA if role == "records" else MEMBERS_SCHEMA
    id_field = "record_id" if role == "records" else "member_id"
    files, fmt = source_files(src, role)
    label = src.describe()
    if fmt == "duckdb":
        alias = f"src_{view}"
        try:
            con.execute(f"ATTACH {quote_str(str(files[0]))} AS {alias} (READ_ONLY)")
        except duckdb.Error as exc:
            raise read_error(label, exc) from None
        relation = f"{alias}.{src.table}"
    else:
        relation = _relation(files, fmt, src)
    types = _describe(con, relation, label)
    cols = _column_map(schema, mapping, types, label)
    if fmt == "jsonl":
        # Re-read with timestamps as text, so naive ones are caught instead of sniffed.
        forced = {k: ("VARCHAR" if k in {cols[f.name] for f in schema if pa.types.is_timestamp(f.type)} else v) for k, v in types.items()}
        relation = _relation(files, fmt, src, forced)
        types = _describe(con, relation, label)
    exprs = [f"{_field_expr(f, cols[f.name], types[cols[f.name]], label, mapping)} AS {quote_ident(f.name)}" for f in schema]
    _check_text_values(con, relation, cols, types, schema, id_field, label)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(view)} AS SELECT {', '.join(exprs)} FROM {relation}")
    rows, hash_sum = _check_rows(con, view, schema, id_field, label, role, check_unique, check_authors, later_nulls)
    positioned = None
    if role == "records" and fmt == "parquet" and _plain_places(types):
        positioned = f"{view}_at"
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(positioned)} AS SELECT {', '.join(exprs)}, "
                    f"file_index AS {POSITION_COLUMNS[0]}, file_row_number AS {POSITION_COLUMNS[1]} FROM {relation}")
    return SourceTable(role=role, label=label, files=files, view=view, rows=rows, id_hash_sum=hash_sum, columns=cols, positioned=positioned)


def _plain_places(types: dict[str, str]) -> bool:
    """DuckDB's ``file_index`` and ``file_row_number`` name each row's place in the source's files
    (``build.positions``): no column of the source takes either name, in any case. (The files are
    read literally, without globs or Hive columns: ``source_files``, ``_relation``.)"""
    return not {"file_index", "file_row_number"} & {k.lower() for k in types}


def _check_rows(con: duckdb.DuckDBPyConnection, view: str, schema: pa.Schema, id_field: str, label: str, role: str,
                check_unique: bool, check_authors: bool, later_nulls: tuple[str, ...] = ()) -> tuple[int, int]:
    """The row count and ``id_hash_sum`` of the id column, after the null, author and id checks."""
    v = quote_ident(view)
    non_null = [f.name for f in schema if not f.nullable and f.name not in later_nulls]
    nulls = [f"count(*) - count({quote_ident(name)})" for name in non_null]
    authors = role == "records" and check_authors
    # The build compares the policy's output with the records by this sum (``decide._check_policy_output``):
    # taken here, in the pass that counts nulls, rather than in another pass over every id.
    extra = f", {id_hash_sum(quote_ident(id_field))}"
    extra += f", {AUTHOR_NOT_PARTICIPANT}" if authors else ""
    try:
        row = one(con.execute(f"SELECT count(*), {', '.join(nulls)}{extra} FROM {v}"))
    except duckdb.Error as exc:
        raise read_error(label, exc) from None
    assert row is not None
    total = int(row[0])
    if total == 0:
        raise InputError(f"source {label} ({role}) is empty", hint=f"A build needs at least one {role[:-1]} row.", file=label)
    for name, count in zip(non_null, row[1:1 + len(non_null)]):
        if count:
            raise null_error(con, view, id_field, label, [name])
    if authors and row[-1] is not None:
        raise author_error(label, row[-1])
    hash_sum = int(row[1 + len(non_null)])
    if check_unique:
        dup = one(con.execute(
            f"SELECT {quote_ident(id_field)} FROM {v} GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1"
        ))
        if dup is not None:
            raise duplicate_error(con, view, id_field, label, dup[0])
    return total, hash_sum


def null_error(con: duckdb.DuckDBPyConnection, view: str, id_field: str, label: str, columns: list[str]) -> InputError:
    """The error for the first of ``columns`` that is null in some row of ``view``: the column, how many
    rows and the first id (by id). Only called once a null was seen (if none is found now, the source changed)."""
    v = quote_ident(view)
    counts = one(con.execute(f"SELECT {', '.join(f'count(*) - count({quote_ident(c)})' for c in columns)} FROM {v}"))
    found = next(((c, int(n)) for c, n in zip(columns, counts) if n), None)
    if found is None:
        return InputError(f"source {label} changed while the build read it (a null seen once was gone when looked up)",
                          hint="Build from files that do not change during the build.", file=label)
    name, count = found
    first = one(con.execute(f"SELECT min({quote_ident(id_field)}) FROM {v} WHERE {quote_ident(name)} IS NULL"))
    at = f", first at {id_field} {first[0]!r}" if first and first[0] is not None else ""
    return InputError(f"source {label}: column {name!r} is empty (null) in {count} row(s){at}",
                      hint="Every row needs this column; fill it or drop the rows.", file=label, field=name)


def id_hash_sum(column: str) -> str:
    """SQL for the sum of ``column``'s hashes: with the row count, a fingerprint of the ids (``decide``)."""
    return f"coalesce(sum(hash({column})::HUGEINT), 0)"


# The first record (by id) whose author is not among its participants, or NULL: an aggregate over ``records``.
AUTHOR_NOT_PARTICIPANT = "min(record_id) FILTER (WHERE NOT list_contains(participants, author_id))"


def author_error(label: str, record_id: Any) -> InputError:
    """The error for a record whose author is missing from its participants."""
    return InputError(
        f"source {label}: the author of record {record_id!r} is missing from its participants",
        hint="participants must list every member in the record, the author included.", file=label, field="participants", record=record_id,
    )


def duplicate_error(con: duckdb.DuckDBPyConnection, view: str, id_field: str, label: str, value: Any) -> InputError:
    """The error for an id that appears more than once in source ``view`` (counted there)."""
    row = one(con.execute(f"SELECT count(*) FROM {quote_ident(view)} WHERE {quote_ident(id_field)} = ?", [value]))
    times = int(row[0]) if row is not None else 2
    return InputError(f"source {label}: {id_field} {value!r} appears {times} times",
                      hint=f"Each {id_field} must be unique; deduplicate the source.", file=label, field=id_field, record=value)
