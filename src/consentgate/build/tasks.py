"""The tasks a build's worker processes run: annotate a batch of candidates, write a run of shards.

They live apart from the engine (``duckdb_engine``) so that a spawned worker imports
only what they use: pyarrow, numpy, DuckDB and ``consentgate.detect``, not the spec,
the policy compiler or pydantic. A worker imports the module of the function it is
sent, and the engine's module was 0.8 s of imports per worker, this one 0.45 s
(measured with ``python -X importtime``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from consentgate.build.files import ROW_GROUP_ROWS, ParquetOut
from consentgate.build.plan import StepConfig
from consentgate.build.positions import MAX_GROUP_ROWS, READ_BATCH_BYTES, GroupRead, read_candidates
from consentgate.build.sharding import shard_name
from consentgate.build.sources import one, parquet_scan, quote_ident, quote_str, streamed
from consentgate.build.steps import ANNOTATED_SCHEMA, DETECT_SCHEMA, OUTPUT_SCHEMA, annotate, build_detector, init_worker, redact_batch
from consentgate.datamodel import RECORDS_SCHEMA
from consentgate.errors import BuildError

INCLUDED = "included"  # under the scratch folder: shard=K/*.parquet, written by DuckDB's partitioned COPY (``decide``)
MEMORY_WORKER = "512MB"  # DuckDB's cap in a shard writer
GO_WAIT_S = 10.0  # the longest a detection worker waits for its go before building its detector (``init_from_file``)


def connect(scratch: Path, *, threads: int, memory: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with UTC time, bounded memory and spilling into ``scratch``."""
    scratch.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"threads": max(threads, 1), "memory_limit": memory, "temp_directory": str(scratch)})
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = false")
    return con


@dataclass(frozen=True)
class ShardOut:
    shard: int
    rows: int
    redactions: dict[str, int]


# -- the member names' file: written by the engine, read by each detection worker as it starts ----------

def write_names(folder: Path, names: pa.Array) -> Path:
    """Write the member names a detection worker needs to a new file in ``folder`` (Arrow IPC) for
    ``init_from_file``; a new name each time, so no file a worker may be reading is rewritten."""
    import tempfile

    fd, name = tempfile.mkstemp(prefix="member-names-", suffix=".arrow", dir=folder)
    os.close(fd)
    table = pa.table({"name": names})
    with pa.OSFile(name, "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
        out.write_table(table)
    return Path(name)


# -- worker-side tasks (top level so the pool can pickle them) ------------------------------------------

def init_from_file(path: Path | None, go: Any = None, quit_: Any = None, wait_s: float = GO_WAIT_S) -> None:
    """Pool initializer: this process's member names from the file ``write_names`` wrote.

    The names travel by file, not as the initializer's argument, because a spawned worker
    receives its start-up data through a pipe the parent writes before the worker reads it:
    with a payload larger than the pipe (a million names are ~10 MB), a worker that died
    while starting left the parent blocked in that write forever, instead of the pool
    reporting the dead worker (a script calling ``run_build`` without an
    ``if __name__ == "__main__"`` guard did that).

    With names (a detection worker) it builds the detector as it starts, once the event ``go``
    is set (``_Runner.go``; at most ``wait_s`` later in any case, since that only saves
    memory), unless ``quit_`` is set too (the build moved on: ``_Runner.close``). The engine
    starts its workers before the first task (``_Runner.start``), so this overlaps the main
    process's own work. If building fails here, the first task builds it again and fails
    with the error as its own; an initializer's exception would only have broken the pool.

    Every worker also ends when the build's process does (``_exit_with_parent``).
    """
    _exit_with_parent()
    if path is None:
        init_worker(None)
        return
    with pa.memory_map(str(path)) as source:  # read through the map, copied into this process by combine_chunks
        init_worker(pa.ipc.open_file(source).read_all().column("name").combine_chunks())
    if go is not None:
        go.wait(wait_s)
    if quit_ is not None and quit_.is_set():
        return
    try:
        build_detector()
    except Exception:  # noqa: BLE001 - raised again, with its own type and message, by the first task (see above)
        pass


def _exit_with_parent() -> None:
    """End this pool worker when the process that started it ends. A worker waiting on the pool's
    call queue holds both ends of that queue's pipe, so it never sees end-of-file: after a build
    was killed with SIGKILL its workers waited there for good."""
    import multiprocessing
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns when the parent's end of the start-up pipe closes: it has ended
        os._exit(1)  # noqa: SLF001 - nothing of this worker's is left to finish: its results had nowhere to go

    threading.Thread(target=watch, name="consentgate-parent-watch", daemon=True).start()


def annotate_part(cfg: StepConfig, index: int, batch: pa.RecordBatch, work: Path) -> int:
    """Annotate one batch and write it to the scratch folder: the annotated records as an Arrow IPC
    file holding one record batch per shard present (``read_annotated``), their ids, shards and drop
    flags, and their topics (Parquet, read by DuckDB in the decide phase)."""
    annotated, topics = annotate(cfg, batch)
    shards = annotated.column("shard").to_numpy()
    order = np.argsort(shards, kind="stable")
    ordered = annotated.take(pa.array(order, pa.int64()))
    bounds = np.searchsorted(shards[order], np.arange(cfg.shards + 1))
    present = np.flatnonzero(np.diff(bounds)).tolist()  # the shards with records in this batch
    # Arrow IPC, not Parquet: only the shard writers read these, a shard's rows at a time, and a
    # Parquet file cost 6x the CPU to write and 10x to read (10M records: 0.64 + 0.32 CPU-s
    # against 0.10 + 0.03), for less disk (45 against 166 MiB of scratch) that is not needed.
    schema = ANNOTATED_SCHEMA.with_metadata({_SHARDS_KEY: " ".join(map(str, present))})
    with pa.OSFile(str(work / "a" / f"p{index:07d}.arrow"), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
        for k in present:
            w.write_batch(ordered.slice(bounds[k], bounds[k + 1] - bounds[k]))
    name = f"p{index:07d}.parquet"
    pq.write_table(pa.Table.from_batches([ordered]).select(["record_id", "shard", "drop"]), str(work / "n" / name),
                   compression="lz4", use_dictionary=False)
    if topics.num_rows:
        pq.write_table(topics, str(work / "t" / name), compression="lz4")
    return int(batch.num_rows)


# Scratch file sets per row group at most: each holds one candidate at least, and a row group has at most
# ``MAX_GROUP_ROWS`` rows (``plan_reads``), so the numbers ``index * _PARTS_PER_GROUP + part`` never collide.
_PARTS_PER_GROUP = MAX_GROUP_ROWS


def annotate_group(cfg: StepConfig, index: int, read: GroupRead, work: Path, batch_rows: int) -> int:
    """Read the candidates of one Parquet row group (``positions.read_candidates``) and annotate them
    (``annotate_part``) in batches of at least ``batch_rows`` records (but the last); returns how
    many records that was. Every batch costs a set of scratch files: annotating each read batch
    (a few thousand candidates) cost the 10M-record build's workers 1.2 CPU-s more in all."""
    done = part = 0
    pending: list[pa.RecordBatch] = []
    have = size = 0
    for batch in read_candidates(read, DETECT_SCHEMA):
        pending.append(batch)
        have += batch.num_rows
        size += batch.nbytes
        if have >= batch_rows or size >= READ_BATCH_BYTES:
            done += _annotate_pending(cfg, index, part, pending, work)
            pending, have, size, part = [], 0, 0, part + 1
    if pending:
        done += _annotate_pending(cfg, index, part, pending, work)
    if done != len(read.rows):
        raise BuildError(f"detection read {done} of the {len(read.rows)} candidates of a row group", hint="Report this with --debug output.")
    return done


def _annotate_pending(cfg: StepConfig, index: int, part: int, batches: list[pa.RecordBatch], work: Path) -> int:
    return annotate_part(cfg, index * _PARTS_PER_GROUP + part, pa.concat_batches(batches), work)


# An annotated scratch file's schema metadata: the shards of its record batches, in order.
_SHARDS_KEY = b"consentgate.shards"
Places = dict[int, list[tuple[Path, int]]]  # shard -> (scratch file, record batch) of its annotated records


def annotated_places(work: Path) -> Places:
    """Where each shard's annotated records are in the detection workers' scratch files (``annotate_part``)."""
    places: Places = {}
    for path in sorted((work / "a").glob("*.arrow")):
        with pa.OSFile(str(path)) as source:
            shards = (pa.ipc.open_file(source).schema.metadata or {}).get(_SHARDS_KEY, b"").split()
        for i, k in enumerate(shards):
            places.setdefault(int(k), []).append((path, i))
    return places


def read_annotated(places: Places, k: int) -> pa.RecordBatchReader:
    """Shard ``k``'s annotated records, a record batch at a time (one per scratch file that holds some):
    DuckDB scans them once, so no more than one batch waits outside its memory cap."""

    def batches() -> Iterator[pa.RecordBatch]:
        for path, i in places.get(k, []):
            with pa.OSFile(str(path)) as source:  # get_batch reads that batch's bytes into memory
                yield pa.ipc.open_file(source).get_batch(i)

    return pa.RecordBatchReader.from_batches(ANNOTATED_SCHEMA, batches())


def write_shards(cfg: StepConfig, shards: tuple[int, ...], work: Path, out: Path) -> list[ShardOut]:
    """Sort, redact and write each of ``shards``, in order, through one DuckDB connection.

    One connection for several shards, not one each: a fresh one cost 40-65 ms more per
    shard (a new database, and the footers of every scratch file of detection read again,
    when those were Parquet), about 0.3 CPU-s of 8 shards at 10M records."""
    con = connect(work / f"tmp-{shards[0]}", threads=1, memory=MEMORY_WORKER)
    places = annotated_places(work)
    try:
        return [_write_shard(con, cfg, k, work, out, places) for k in shards]
    finally:
        con.close()


def shard_groups(shards: int, tasks: int) -> list[tuple[int, ...]]:
    """Shards ``0 .. shards-1`` cut into at most ``tasks`` runs of consecutive shards, as even as can be."""
    parts = max(1, min(tasks, shards))
    return [tuple(range(i * shards // parts, (i + 1) * shards // parts)) for i in range(parts)]


def _write_shard(con: duckdb.DuckDBPyConnection, cfg: StepConfig, k: int, work: Path, out: Path, places: Places) -> ShardOut:
    """Sort, redact and write shard ``k`` (its subject bitmap was written in the decide phase)."""
    included = work / INCLUDED / f"shard={k}"
    path = out / "data" / f"{shard_name(k)}.parquet"
    if not any(included.glob("*.parquet")):  # the shard holds no included record: its file has no rows
        ParquetOut(path, OUTPUT_SCHEMA).close()
        return ShardOut(shard=k, rows=0, redactions={})
    kept = parquet_scan(included, "*.parquet")
    # The records the decide phase included in this shard: the file must hold exactly as many.
    want = int(one(con.execute(f"SELECT count(*) FROM {kept}"))[0])
    # The detected columns (id, thread, text, spans) from detection's scratch files, the rest from the
    # shard's folder of included records (``decide``).
    cols = ", ".join(f"{'a' if c in DETECT_SCHEMA.names else 'i'}.{quote_ident(c)}" for c in RECORDS_SCHEMA.names)
    query = f"SELECT {cols}, a.spans, i.slice FROM annotated a JOIN {kept} i ON a.record_id = i.record_id ORDER BY i.created_at, a.record_id"
    counts: dict[str, int] = {}
    con.register("annotated", read_annotated(places, k))
    reader = con.sql(query).to_arrow_reader(ROW_GROUP_ROWS)
    try:
        with ParquetOut(path, OUTPUT_SCHEMA) as dest:
            for table in _slice_groups(streamed(reader)):
                redacted, c = redact_batch(cfg, table.combine_chunks().to_batches()[0] if table.num_rows else table)
                for key, v in c.items():
                    counts[key] = counts.get(key, 0) + v
                dest.write(pa.Table.from_batches([redacted]))
            rows = dest.rows
    finally:
        reader.close()  # the connection takes no other query while a result is open
        con.unregister("annotated")
    if rows != want:  # an included record without its annotated text (the scratch files disagree)
        raise BuildError(f"shard {k} holds {rows} records where {want} were included", hint="Report this with --debug output.")
    return ShardOut(shard=k, rows=rows, redactions=counts)


def _slice_groups(reader: pa.RecordBatchReader) -> Iterator[pa.Table]:
    """Cut sorted rows into row groups of at most ROW_GROUP_ROWS that never span two slices."""
    pending: list[pa.RecordBatch] = []
    have = 0
    current: int | None = None
    for batch in reader:
        slices = batch.column("slice").to_numpy()
        start = 0
        while start < batch.num_rows:
            value = int(slices[start])
            if current is not None and value != current and have:
                yield pa.Table.from_batches(pending)
                pending, have = [], 0
            current = value
            end = start + int(np.searchsorted(slices[start:], value, side="right"))
            end = min(end, start + ROW_GROUP_ROWS - have)
            pending.append(batch.slice(start, end - start))
            have += end - start
            start = end
            if have == ROW_GROUP_ROWS:
                yield pa.Table.from_batches(pending)
                pending, have = [], 0
    if have:
        yield pa.Table.from_batches(pending)
