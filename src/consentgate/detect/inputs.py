"""Reading texts to scan from files: plain text lines, JSONL and Parquet.

Owns ``read_texts(path, fmt, column) -> pa.StringArray`` used by ``consentgate
detect scan``. The whole input is read and checked before anything is scanned,
so a bad file stops with a clear error and no partial output:

* invalid UTF-8 names the file and line (never the bytes);
* an empty file, a missing or non-string column, a non-object JSONL line are
  ``InputError`` / ``SchemaError`` naming the file, line or column.

Text files are one text per line (``\\n`` or ``\\r\\n``). A single very long line
(tens of MB) is fine: it becomes one Arrow string that the detector scans in
windows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import BinaryIO, Final

import pyarrow as pa

from consentgate.errors import InputError, SchemaError

FORMATS: Final = ("auto", "text", "jsonl", "parquet")


def detect_format(path: str, fmt: str) -> str:
    """The input format: the one given, else from the file suffix (stdin is text)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown input format {fmt!r}", hint=f"Use one of {', '.join(FORMATS)}.", value=fmt)
    if fmt != "auto":
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    return "text"


def read_texts(path: str, fmt: str = "auto", column: str | None = None) -> pa.StringArray:
    """Read every text of ``path`` (``-`` = stdin) as one Arrow string array."""
    kind = detect_format(path, fmt)
    if kind == "parquet":
        if path == "-":
            raise InputError("Parquet cannot be read from stdin", hint="Pass the Parquet file path instead of -.")
        return _read_parquet(Path(path), column or "text")
    data = _read_bytes(path)
    if not data:
        raise InputError(f"{_name(path)} is empty", hint="Give a file with at least one text.", file=_name(path))
    if kind == "jsonl":
        return _read_jsonl(data, path, column or "text")
    return _read_lines(data, path)


def _name(path: str) -> str:
    return "<stdin>" if path == "-" else path


def _read_bytes(path: str) -> bytes:
    if path == "-":
        stream: BinaryIO = sys.stdin.buffer
        return stream.read()
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path} does not exist or is not a file", file=path)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", file=path) from None


def _decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{_name(path)} is not valid UTF-8 (line {line}, byte {exc.start})",
            hint="Convert the file to UTF-8 (e.g. iconv -t UTF-8) and run again; nothing was written.",
            file=_name(path), row=line,
        ) from None


def _read_lines(data: bytes, path: str) -> pa.StringArray:
    text = _decode(data, path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    if not lines:
        raise InputError(f"{_name(path)} has no lines", file=_name(path))
    return pa.array(lines, pa.string())


def _read_jsonl(data: bytes, path: str, column: str) -> pa.StringArray:
    text = _decode(data, path)
    out: list[str | None] = []
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{_name(path)} line {no} is not valid JSON", file=_name(path), row=no) from None
        if not isinstance(obj, dict):
            raise SchemaError(f"{_name(path)} line {no} is not a JSON object", file=_name(path), row=no)
        if column not in obj:
            raise SchemaError(
                f"{_name(path)} line {no} has no field {column!r}",
                hint="Name the text field with --column.", file=_name(path), row=no, field=column,
            )
        value = obj[column]
        if value is not None and not isinstance(value, str):
            raise SchemaError(
                f"{_name(path)} line {no}: field {column!r} is {type(value).__name__}, not a string",
                file=_name(path), row=no, field=column,
            )
        out.append(value)
    if not out:
        raise InputError(f"{_name(path)} has no JSON lines", file=_name(path))
    return pa.array(out, pa.string())


def _read_parquet(path: Path, column: str) -> pa.StringArray:
    import pyarrow.parquet as pq

    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file", file=str(path))
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty", file=str(path))
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid):
        raise InputError(f"{path} is not a readable Parquet file", file=str(path)) from None
    if column not in schema.names:
        raise SchemaError(
            f"{path} has no column {column!r} (columns: {', '.join(schema.names)})",
            hint="Name the text column with --column.", file=str(path), field=column,
        )
    ctype = schema.field(column).type
    if not (pa.types.is_string(ctype) or pa.types.is_large_string(ctype) or pa.types.is_string_view(ctype)):
        raise SchemaError(f"{path}: column {column!r} is {ctype}, not a string column", file=str(path), field=column)
    try:
        table = pq.read_table(path, columns=[column])
    except (OSError, pa.ArrowInvalid):
        raise InputError(f"{path}: column {column!r} cannot be read (corrupt file?)", file=str(path), field=column) from None
    arr = table.column(column).combine_chunks()
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    try:
        arr.validate(full=True)  # Parquet does not guarantee valid UTF-8
    except pa.ArrowInvalid:
        raise InputError(f"{path}: column {column!r} holds invalid UTF-8", file=str(path), field=column) from None
    return arr
