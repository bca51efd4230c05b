"""Candidates' text read straight from Parquet by position, in the detection workers.

The screen decides every record without its text; only the candidates (about one record
in seven in the benchmark) are scanned. From any source the engine streams their text out
of DuckDB (a semi join of every record against the candidates) and sends each batch to a
worker. For Parquet sources this module lets each worker read its own part instead: the
screen keeps each candidate's position (DuckDB's ``file_index`` and ``file_row_number``
virtual columns, through the ``positioned`` view of ``sources.open_source``), the engine
turns them into one ``GroupRead`` per row group that holds candidates (``plan_reads``), and
a worker reads that row group's detection columns with pyarrow and keeps the candidates'
rows (``read_candidates``).

At 10M records (1.44M candidates) the main process spends 2.5 CPU-s less (DuckDB read,
checked and joined every record's text there, and each batch then went to a worker through
a pipe) and the two workers 2.3 more (each reads the text of every record of its row groups:
pyarrow cannot skip a page's other rows). In 5 interleaved pairs of builds every one was
faster, by 0.1-1.1 s (median 0.5 s; docs/benchmarks.md, session 15).

The values are the ones DuckDB reads: the columns are the source's own (the mapping only
renames the three detection columns), cast to strings, and checked to be valid UTF-8 as
DuckDB would. A row group larger than ``MAX_GROUP_ROWS``, too few row groups to keep the
workers busy, or a file whose columns pyarrow sees differently, and the engine streams from
DuckDB as before (``plan_reads`` returns None). A file changed between the screen and this
read gives other ids at those positions: the decide phase then stops the build, as
detection did not annotate every candidate once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from consentgate.errors import InputError

# Rows a worker reads at a time from a row group (each batch is filtered to the candidates at once), and the
# bytes pyarrow buffers per column meanwhile (not a row group's whole column chunk). With 65,536 rows and
# 8 MiB a worker reading every other row group of the 10M-record bench peaked at 222 MiB, with these at 181
# (93 before it read), for the same CPU time; a build's peak in the detect phase was 1.12 GiB against 1.02
# before this module (the workers' reads hold more than the batches they were sent).
READ_BATCH_ROWS = 16_384
# ... and fewer where the rows are long: a read batch holds about this many bytes of the columns read at most.
READ_BATCH_BYTES = 16 << 20
# A worker reads a whole row group for its task: above this (pyarrow's own default for writing,
# 1,048,576 rows) a task would be too coarse to share out, and the engine streams from DuckDB.
MAX_GROUP_ROWS = 1 << 20
_BUFFER_BYTES = 1 << 20


@dataclass(frozen=True)
class GroupRead:
    """One worker task: the candidates' rows (positions within the group, ascending) of one row group."""

    path: str
    label: str  # the source as the user named it, for errors
    group: int
    rows: Any  # numpy int64 array
    columns: tuple[str, ...]  # the source's column for each field of the schema read (``read_candidates``), in order
    group_rows: int  # the row group's size when planned: a file that changed since is refused
    batch_rows: int = READ_BATCH_ROWS  # rows read at a time (``read_batch_rows``)


def plan_reads(files: tuple[Path, ...], label: str, columns: tuple[str, ...], positions: pa.Table,
               workers: int) -> list[GroupRead] | None:
    """The row-group reads that cover the candidates at ``positions`` (columns ``_file``, ``_pos``,
    sorted), or None where the engine should stream the text from DuckDB (see the module docstring)."""
    file_index = positions.column(0).to_numpy()
    pos = positions.column(1).to_numpy()
    reads: list[GroupRead] = []
    groups = 0
    for i, path in enumerate(files):
        meta = _metadata_if_plain(path, columns)
        if meta is None:
            return None
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        if any(n > MAX_GROUP_ROWS for n in sizes):
            return None
        groups += len(sizes)
        lo, hi = np.searchsorted(file_index, [i, i + 1])
        starts = np.concatenate(([0], np.cumsum(sizes, dtype=np.int64)))
        mine = pos[lo:hi]
        cuts = np.searchsorted(mine, starts)
        batch = read_batch_rows(meta, columns)
        reads += [GroupRead(str(path), label, g, mine[cuts[g]:cuts[g + 1]] - starts[g], columns, sizes[g], batch)
                  for g in range(len(sizes)) if cuts[g + 1] > cuts[g]]
    if workers > 1 and groups < 2 * workers:
        return None  # too few tasks to share out: one worker would read most of the text alone
    if sum(len(r.rows) for r in reads) != len(pos):
        return None  # a position past a file's end: the file changed since the screen (DuckDB's read will tell)
    return reads


def read_batch_rows(meta: Any, columns: tuple[str, ...]) -> int:
    """Rows to read at a time from a file with Parquet metadata ``meta``: ``READ_BATCH_ROWS``, or fewer so that
    a batch of ``columns`` holds about ``READ_BATCH_BYTES`` at most (by their uncompressed size in the file)."""
    wanted = set(columns)
    size = sum(rg.column(j).total_uncompressed_size for rg in (meta.row_group(g) for g in range(meta.num_row_groups))
               for j in range(rg.num_columns) if rg.column(j).path_in_schema in wanted)
    per_row = size / max(meta.num_rows, 1)
    return max(1, min(READ_BATCH_ROWS, int(READ_BATCH_BYTES // max(per_row, 1.0))))


def _metadata_if_plain(path: Path, columns: tuple[str, ...]) -> Any:
    """The file's Parquet metadata when each of ``columns`` is a top-level string column there, else None."""
    try:
        with pq.ParquetFile(str(path)) as f:
            schema, meta = f.schema_arrow, f.metadata
    except (OSError, pa.ArrowException):
        return None
    if len({n.lower() for n in schema.names}) < len(schema.names):
        return None  # names that repeat (in any case): DuckDB renames them, pyarrow does not
    for name in columns:
        if "." in name or schema.get_field_index(name) < 0:
            return None
        t = schema.field(name).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)):
            return None
    return meta


def read_candidates(read: GroupRead, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The candidates' rows of ``read``'s row group as batches of ``schema`` (its fields in the order of
    ``read.columns``), read ``read.batch_rows`` at a time. Text that is not UTF-8, and a file that
    changed since the reads were planned or cannot be read, are an ``InputError``."""
    wanted = list(dict.fromkeys(read.columns))  # a column mapped to two fields is read once
    start = 0
    try:
        with pq.ParquetFile(read.path, buffer_size=_BUFFER_BYTES, pre_buffer=False) as f:
            meta = f.metadata
            if read.group >= meta.num_row_groups or meta.row_group(read.group).num_rows != read.group_rows:
                raise _changed(read)
            for batch in f.iter_batches(batch_size=read.batch_rows, row_groups=[read.group], columns=wanted, use_threads=False):
                lo, hi = np.searchsorted(read.rows, [start, start + batch.num_rows])
                if hi > lo:
                    picked = batch.take(pa.array(read.rows[lo:hi] - start))
                    yield pa.RecordBatch.from_arrays([_text(picked.column(c), read, c) for c in read.columns], schema=schema)
                start += batch.num_rows
    except (OSError, pa.ArrowException, KeyError):  # not the message: it can quote values
        raise InputError(f"source {read.label}: file {Path(read.path).name} could not be read again for detection "
                         f"(row group {read.group}); it changed during the build or is damaged",
                         hint="Build from files that do not change during the build.", file=read.path) from None
    if start != read.group_rows:
        raise _changed(read)


def _changed(read: GroupRead) -> InputError:
    return InputError(f"source {read.label}: file {Path(read.path).name} changed during the build (row group {read.group})",
                      hint="Build from files that do not change during the build.", file=read.path)


def _text(col: pa.Array, read: GroupRead, name: str) -> pa.Array:
    out = col.cast(pa.string())
    try:
        out.validate(full=True)  # UTF-8, as DuckDB checks every string it reads from Parquet
    except pa.ArrowInvalid:
        raise InputError(f"source {read.label}: column {name!r} of file {Path(read.path).name} holds a value that is not valid "
                         f"UTF-8 text (row group {read.group})", hint="Write the column as UTF-8 text.", file=read.path, field=name) from None
    return out
