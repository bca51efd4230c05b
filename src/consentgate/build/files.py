"""Deterministic file writing and hashing for dataset folders.

Owns the exact bytes of every Parquet file a build writes: fixed writer options
(zstd level 3, statistics and dictionary encoding each for the columns where they pay) and
row groups cut at fixed row counts by this module, never by the batch sizes an
engine or worker count happens to produce. That is what makes the files
byte-identical for any number of workers.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 65536
_WRITER_OPTS = {"compression": "zstd", "compression_level": 3}
# Rows handed to the column encoders at a time by ``write_stream`` (pyarrow's default is 1,024): 0.15 of
# the 2.0 CPU-s of writing decisions.parquet at 10M records. Not for files with long texts: a page is
# only closed between such batches, so 65,536 texts made 10 MB pages instead of 1 MiB.
STREAM_BATCH_ROWS = ROW_GROUP_ROWS
# Columns with few distinct values, dictionary-encoded. Ids, texts and member lists are
# left plain: for them a dictionary only grows until it is abandoned, which made the
# files larger (decisions.parquet at 10M records: 43 MB with it, 25 MB without) and
# their encoding slower (record_id: 0.98 s against 0.36 s).
DICTIONARY_COLUMNS = frozenset({"category", "decision", "reasons", "topic", "entity_type", "role"})


def dictionary_paths(schema: pa.Schema) -> list[str]:
    """The Parquet column paths of ``schema`` to dictionary-encode (leaves of ``DICTIONARY_COLUMNS``)."""
    out: list[str] = []
    for field in schema:
        if field.name in DICTIONARY_COLUMNS:
            out.append(f"{field.name}.list.element" if pa.types.is_list(field.type) else field.name)
    return out


def statistics_paths(schema: pa.Schema) -> list[str]:
    """The columns of ``schema`` that get min/max statistics: those a reader can skip row groups by
    (ids, numbers, times, text). Not lists, booleans or ``DICTIONARY_COLUMNS``: there every row
    group holds nearly every value, and computing them was 0.28 of the 2.0 CPU-s of writing
    decisions.parquet at 10M records."""
    return [f.name for f in schema if f.name not in DICTIONARY_COLUMNS and not pa.types.is_nested(f.type)
            and not pa.types.is_dictionary(f.type) and not pa.types.is_boolean(f.type)]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rebatch(batches: Iterable[pa.RecordBatch], rows: int, schema: pa.Schema) -> Iterator[pa.Table]:
    """Re-cut a stream of batches into tables of exactly ``rows`` rows (the last may be shorter)."""
    pending: list[pa.RecordBatch] = []
    have = 0
    for batch in batches:
        if batch.schema != schema:
            batch = batch.cast(schema)
        while batch.num_rows:
            take = min(rows - have, batch.num_rows)
            pending.append(batch.slice(0, take))
            have += take
            batch = batch.slice(take)
            if have == rows:
                yield pa.Table.from_batches(pending, schema=schema)
                pending, have = [], 0
    if have:
        yield pa.Table.from_batches(pending, schema=schema)


class ParquetOut:
    """A Parquet file written with the dataset's fixed options; each ``write`` is one row group."""

    def __init__(self, path: Path, schema: pa.Schema, *, batch_rows: int | None = None) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        batch = {"write_batch_size": batch_rows} if batch_rows else {}
        self._writer = pq.ParquetWriter(str(path), schema, use_dictionary=dictionary_paths(schema),  # type: ignore[arg-type]
                                        write_statistics=statistics_paths(schema), **_WRITER_OPTS, **batch)

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table.cast(self.schema), row_group_size=max(table.num_rows, 1))
            self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> ParquetOut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_stream(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch], rows_per_group: int = ROW_GROUP_ROWS) -> int:
    """Write ``batches`` to ``path`` in row groups of exactly ``rows_per_group`` rows; returns the row count."""
    with ParquetOut(path, schema, batch_rows=STREAM_BATCH_ROWS) as out:
        for table in rebatch(batches, rows_per_group, schema):
            out.write(table)
        return out.rows


T = TypeVar("T")


def prefetched(items: Iterable[T], depth: int = 2) -> Generator[T, None, None]:
    """``items``, produced by a background thread at most ``depth`` ahead of the consumer.

    For a stream whose items are expensive to produce (sorted batches from DuckDB put
    together in Arrow) feeding an expensive single-threaded consumer (a Parquet
    writer): both then run at once. Order is kept; an exception in the producer is
    raised in the consumer; closing the iterator early stops the producer.
    """
    q: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def put(kind: int, value: Any) -> bool:
        while not stop.is_set():
            try:
                q.put((kind, value), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(0, item):
                    return
            put(1, None)
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer, which raises it)
            put(2, exc)

    thread = threading.Thread(target=produce, name="consentgate-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == 1:
                return
            if kind == 2:
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def parquet_rows(path: Path) -> int:
    return int(pq.ParquetFile(str(path)).metadata.num_rows)
