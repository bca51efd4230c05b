"""The DuckDB build engine: runs a ``BuildPlan`` on one machine with a process pool.

Phases (each reported to the progress sink):

1. **sources**: open and check the sources as canonical views (``build.sources``),
   write the member-index table ``subjects/members.parquet``.
2. **screen**: DuckDB decides every record by the compiled policy without content;
   the records it includes are the candidates (``build.decide``).
3. **detect**: stream the candidates in Arrow batches from DuckDB to worker processes
   running ``tasks.annotate_part`` (``steps.annotate``); each worker writes its batch, sorted by shard, to a
   scratch Arrow IPC file (one record batch per shard), plus topics and annotations (Parquet).
   No other record's text is read.
4. **decide**: DuckDB runs the policy's topic rules over the candidates with their
   topics (the screen found no other reason to exclude them); build-level reasons are
   added; shards and slices are assigned; ``decisions.parquet`` and every shard's subject
   bitmap (``build.subjects``) are written.
5. **write**: one task per run of consecutive shards (in the pool, ``tasks.write_shards``, two per
   worker): for each shard DuckDB sorts its included records by ``created_at``,
   ``steps.redact_batch`` redacts them, and the shard file is written.

Memory is bounded by the batch size, the number of batches in flight and DuckDB's
memory limit (it spills sorts to the scratch folder), not by the input size.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from consentgate.build.files import ROW_GROUP_ROWS, sha256_file, write_stream
from consentgate.build import tasks
from consentgate.build.plan import BuildPlan, EngineResult, Progress
from consentgate.build.positions import GroupRead, plan_reads
from consentgate.build.sources import POSITION_COLUMNS, SourceTable, open_source, parquet_scan, query_failed, quote_ident, quote_str, streamed
from consentgate.build.steps import DETECT_SCHEMA, init_worker
from consentgate.build.tasks import ShardOut, annotate_group, annotate_part, connect, init_from_file, shard_groups, write_names, write_shards
from consentgate.errors import BuildError
from consentgate.policy.sql import SCREENED_COLUMNS

MEMBER_INDEX_SCHEMA = pa.schema([pa.field("member_id", pa.string(), nullable=False), pa.field("index", pa.uint32(), nullable=False)])
# DuckDB's cap in the main process outside the detect phase (sources, screen, decide): 768 MB, and 40
# bytes per record past 19.2M records. The screen's need grows with the records (the group messages'
# participants are aggregated and joined by record): over 1M members, a 10M-record build passes at 256
# and 320 MB; at 20M (``bench/double_records.py``) it fails at 320 and passes at 384 and 512 with the
# same content hash. So 40 bytes per record is about twice that need (800 MB at 20M). Lower caps save
# memory but cost time, as DuckDB spills more in the screen and decide phases: with a 512 MB floor a
# 10M build's main process peaked at 0.78 GiB instead of 1.03, but took 3 s longer (3 interleaved pairs:
# 39.2 / 40.7 / 39.8 s against 36.3 / 37.5 / 35.3; session 10), so the floor stays at 768 MB.
_MAIN_FLOOR_MB, _MAIN_BYTES_PER_RECORD = 768, 40
# While the detection workers run, DuckDB only streams the candidates' text (a semi join against
# ``cand``), in no particular order (detection is per record: the batches' make-up changes no output).
# Measured need, two DuckDB threads: at 10M records (1.44M candidates) in no order 48 MiB fails and 64
# and 80 MiB pass (in insertion order 64 MiB failed, and 128 MiB once in about fifteen builds); at 20M
# (2.88M candidates) 64 MiB fails and 96 and 128 MiB pass. More threads need more (10M records,
# ``--workers 4`` / ``6`` on this 2-core machine): four fail at 112 and 144 MiB and pass at 160 (twice),
# six pass at 240. The cap is at least twice the lowest cap that passed: 128 MiB for two threads (10M),
# 48 MiB plus 56 bytes per candidate past ~1.5M candidates (201 MiB at 20M, against 2 x 96), and 96 MiB
# for each further thread (320 MiB on four, 512 on six, against 2 x 160 and 2 x 240).
_DETECT_FLOOR_MIB, _DETECT_BASE_MIB, _DETECT_BYTES_PER_CANDIDATE, _DETECT_MIB_PER_THREAD = 128, 48, 56, 96
SLOW_START_S = 5.0  # no detection result after this long: the workers are building their detector (``_Runner.map_bounded``)
# The detector treats member names as a set: each distinct name once (a quarter fewer at 1M members).
DISTINCT_NAMES = "SELECT DISTINCT display_name FROM members WHERE display_name IS NOT NULL ORDER BY display_name"


def main_memory(records: int) -> str:
    """DuckDB's memory cap in the main process outside the detect phase (see ``_MAIN_FLOOR_MB``)."""
    return f"{min(max(_MAIN_FLOOR_MB, _MAIN_BYTES_PER_RECORD * records // 10**6), _ceiling() // 10**6)}MB"


def detect_memory(candidates: int, threads: int) -> str:
    """DuckDB's memory cap while the detection workers run (see ``_DETECT_FLOOR_MIB``)."""
    need = _DETECT_BASE_MIB + (_DETECT_BYTES_PER_CANDIDATE * candidates >> 20)
    return f"{min(max(_DETECT_FLOOR_MIB, need) + _DETECT_MIB_PER_THREAD * max(0, threads - 2), _ceiling() >> 20)}MiB"


def _ceiling() -> int:
    """Bytes no cap may pass, however large the input: DuckDB's own default, 80% of the machine's memory
    (past it the OS would kill the build where DuckDB could still have spilled)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.8)
    except (ValueError, OSError, AttributeError):
        return 1 << 62


# -- the engine ---------------------------------------------------------------------------------------

class _Runner:
    """Runs tasks inline (1 worker) or in a spawn-based process pool, with bounded work in flight.

    ``member_names`` go to each pool worker through a file in ``scratch`` (``tasks.init_from_file``).
    Such a worker builds its detector as it starts, once ``go`` is called (or ``tasks.GO_WAIT_S``
    has passed): ``start`` can then start the workers ahead of that, so that they import while
    the main process finishes what it holds in memory, and allocate only after.
    """

    def __init__(self, workers: int, member_names: pa.Array | None, scratch: Path | None = None) -> None:
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        self._go: Any = None
        self._quit: Any = None
        if workers > 1:
            ctx = multiprocessing.get_context("spawn")
            path = None
            if member_names is not None:
                if scratch is None:
                    raise ValueError("member names for pool workers need a scratch folder")
                path = write_names(scratch, member_names)
                self._go, self._quit = ctx.Event(), ctx.Event()
            self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_from_file,
                                            initargs=(path, self._go, self._quit, tasks.GO_WAIT_S))
        else:
            init_worker(member_names)

    def start(self) -> None:
        """Start every worker process now instead of at the first task (a pool starts one per task
        submitted while none is idle): each submits a no-op, and the results are not waited for."""
        if self.pool is not None:
            try:
                for _ in range(self.workers):
                    self.pool.submit(os.getpid)
            except BrokenExecutor as exc:
                raise _worker_died(exc) from exc

    def go(self) -> None:
        """Let the workers build their detector (see the class docstring)."""
        if self._go is not None:
            self._go.set()

    def map_bounded(self, fn: Callable[..., Any], jobs: Iterator[tuple[Any, ...]], on_done: Callable[[Any], None],
                    on_slow_start: Callable[[], None] | None = None) -> None:
        """Run ``fn`` over ``jobs`` with at most two per worker in flight, calling ``on_done`` with each result.

        ``on_slow_start`` is called once if the pool has returned no result ``SLOW_START_S``
        seconds after the first job was submitted (workers building a detector, say).
        """
        if self.pool is None:
            for args in jobs:
                on_done(fn(*args))
            return
        self.go()  # tasks are coming: nothing is left to wait for
        try:
            self._map_pool(self.pool, fn, jobs, on_done, on_slow_start)
        except BrokenExecutor as exc:
            raise _worker_died(exc) from exc

    def _map_pool(self, pool: ProcessPoolExecutor, fn: Callable[..., Any], jobs: Iterator[tuple[Any, ...]],
                  on_done: Callable[[Any], None], on_slow_start: Callable[[], None] | None) -> None:
        pending: set[Future[Any]] = set()
        started: float | None = None
        slow = on_slow_start

        def collect() -> None:
            nonlocal pending, slow
            timeout = None if slow is None or started is None else max(0.0, started + SLOW_START_S - time.perf_counter())
            done, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            if slow is not None and not done:
                slow()  # nothing back yet, long after the first job: say why the bar stands still
            slow = None  # once only: after a result or the notice
            for f in done:
                on_done(f.result())

        for args in jobs:
            while len(pending) >= 2 * self.workers:
                collect()
            pending.add(pool.submit(fn, *args))
            started = started if started is not None else time.perf_counter()
        while pending:
            collect()

    def close(self) -> None:
        if self._quit is not None:
            self._quit.set()  # a worker still starting builds no detector for a build that has moved on
        self.go()
        if self.pool is not None:
            # Results are all in; the workers exit on their own (waiting adds their exit time to the build).
            self.pool.shutdown(wait=False, cancel_futures=True)


def _worker_died(exc: BaseException) -> BuildError:
    return BuildError(
        f"a worker process of the build ended without a result (killed by a signal, out of memory, or it failed to start): {exc}",
        hint="Run again with --workers 1 (workers=1 from Python) to see the failure in the main process. A script that "
             "calls run_build must guard its entry point with `if __name__ == \"__main__\":` (worker processes are spawned).",
    )


class _DetectProgress:
    """The detect phase's bar; while the workers prepare their detector (a new member directory
    compiles its names first: about 40 s per million, once, then cached) that line reads
    ``prepare detector`` instead, and ``detect`` starts with the first result."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress, self.total, self.waiting = progress, total, False

    def preparing(self) -> None:
        self.progress.relabel("prepare detector", None)
        self.waiting = True

    def advance(self, n: int) -> None:
        if self.waiting:
            self.progress.phase("detect", self.total)
            self.waiting = False
        self.progress.advance(n)


class DuckDBEngine:
    """The default engine (see the module docstring)."""

    name = "duckdb"

    def run(self, plan: BuildPlan, out: Path, *, workers: int, progress: Progress) -> EngineResult:
        from consentgate.build import decide

        work = out / "_work"
        for sub in ("a", "n", "t", "spill"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        (out / "data").mkdir()
        (out / "subjects").mkdir()
        timings: dict[str, float] = {}
        con = connect(work / "spill", threads=workers, memory=main_memory(0))
        try:
            t0 = time.perf_counter()
            progress.phase("check sources", None)
            # Record ids are checked unique when the decisions are written, in id order (``decide``); authors
            # among participants, and nulls in the columns the policy reads, by the screen's query, which
            # reads those columns anyway (``decide.run_screen``).
            records = open_source(con, "records", plan.records, plan.mapping.records, "records", check_unique=False, check_authors=False,
                                  later_nulls=SCREENED_COLUMNS)
            members = open_source(con, "members", plan.members, plan.mapping.members, "members")
            main_cap = main_memory(records.rows)
            con.execute(f"SET memory_limit = '{main_cap}'")
            con.execute(f"CREATE TEMP VIEW consent AS SELECT * FROM {parquet_scan(plan.consent_snapshot)}")
            member_index = out / "subjects" / "members.parquet"
            indexed = write_stream(member_index, MEMBER_INDEX_SCHEMA, streamed(con.sql(
                "SELECT member_id, CAST(row_number() OVER (ORDER BY member_id) - 1 AS UINTEGER) AS index FROM members ORDER BY member_id"
            ).to_arrow_reader(ROW_GROUP_ROWS)))
            names = con.sql(DISTINCT_NAMES).to_arrow_table().column(0).combine_chunks()
            cfg = plan.steps  # the names go to each worker once, by file (``_Runner``)
            timings["sources"] = time.perf_counter() - t0

            t0 = time.perf_counter()
            progress.phase("screen", None)
            candidates, groups = decide.run_screen(con, plan, records)
            # Detection workers hold a detector (large with many member names); they are let go
            # before the decide phase, and the shard writers are fresh processes without one.
            # They start here and import while this process lowers DuckDB's cap, which spills the screen's
            # tables on one core (0.35 s at 10M records); then they build their detector while it opens the
            # candidates' stream. Started by the first task, they began 0.55 s later, and building the
            # detector before the cap was lowered raised the build's peak by about 0.05 GiB at 10M records.
            runner = _Runner(workers, names, work)
            try:
                if candidates:  # none: no task, and no worker to start
                    runner.start()
                # While the detection workers run, the screen's tables wait on disk (DuckDB spills them).
                con.execute(f"SET memory_limit = '{detect_memory(candidates, workers)}'")  # ``connect`` gave it ``workers`` threads
                runner.go()
                con.execute("SET preserve_insertion_order = false")  # the detect stream's order is free (``_DETECT_FLOOR_MIB``)
                timings["screen"] = time.perf_counter() - t0
                # Only the candidates' text is read and scanned (see ``decide``).
                t0 = time.perf_counter()
                progress.phase("detect", candidates)
                shown = _DetectProgress(progress, candidates)
                reads = _group_reads(con, records, workers) if candidates else None
                if reads is not None:  # each worker reads its candidates' text from the Parquet source itself
                    runner.map_bounded(annotate_group, ((cfg, i, r, work, plan.batch_size) for i, r in enumerate(reads)), shown.advance,
                                       on_slow_start=shown.preparing)
                else:
                    # Only what detection needs: reading the other columns too doubles the time of this read.
                    cols = ", ".join(f"r.{quote_ident(c)}" for c in DETECT_SCHEMA.names)
                    reader = con.sql(f"SELECT {cols} FROM records r SEMI JOIN cand c ON c.record_id = r.record_id").to_arrow_reader(plan.batch_size)
                    jobs = ((cfg, i, b.cast(DETECT_SCHEMA), work) for i, b in enumerate(streamed(reader)))
                    runner.map_bounded(annotate_part, jobs, shown.advance, on_slow_start=shown.preparing)
                    reader.close()
                timings["detect"] = time.perf_counter() - t0
            finally:
                runner.close()
            del names

            con.execute("SET preserve_insertion_order = true")
            shard_outs: dict[int, ShardOut] = {}

            def done(outs: list[ShardOut]) -> None:
                for s in outs:
                    shard_outs[s.shard] = s
                    progress.advance(s.rows)

            # The shard writers start when the decide phase has only its decisions' writer thread left
            # to wait for (``run_decide``'s ``while_writing``), which leaves a core free.
            writers = _Runner(workers, None)
            try:
                t0 = time.perf_counter()
                progress.phase("decide", None)
                con.execute(f"SET memory_limit = '{main_cap}'")  # the detection workers are gone
                outcome = decide.run_decide(con, plan, work, out, groups, member_index, while_writing=writers.start)
                # Setting the cap again hands what DuckDB's allocator still caches back to the OS: without it the
                # main process kept 0.67 GiB through the write phase at 10M records (0.32 with it).
                con.execute(f"SET memory_limit = '{main_cap}'")
                timings["decide"] = time.perf_counter() - t0

                t0 = time.perf_counter()
                progress.phase("write shards", outcome.included)
                # Two runs of shards per worker: a task's shards share a DuckDB connection (``write_shards``), and the
                # progress moves as each run ends. Inline (one worker), one shard per run, for a progress that moves.
                runs = shard_groups(plan.shards, 2 * workers if workers > 1 else plan.shards)
                writers.map_bounded(write_shards, ((cfg, run, work, out) for run in runs), done)
                timings["write"] = time.perf_counter() - t0
            finally:
                writers.close()
        except duckdb.Error as exc:
            raise query_failed(type(exc).__name__) from None
        finally:
            con.close()
        redactions: dict[str, int] = {}
        for s in shard_outs.values():
            for key, v in s.redactions.items():
                redactions[key] = redactions.get(key, 0) + v
        return EngineResult(
            input_rows={"records": records.rows, "members": members.rows},
            input_files={"records": records.files, "members": members.files},
            counts=outcome.counts,
            redactions=dict(sorted(redactions.items())),
            shard_rows=[shard_outs[k].rows for k in range(plan.shards)],
            subject_counts=outcome.subjects,
            members_indexed=indexed,
            timings=timings,
            versions={"duckdb": duckdb.__version__, "pyarrow": pa.__version__},
        )


def _group_reads(con: duckdb.DuckDBPyConnection, records: SourceTable, workers: int) -> list[GroupRead] | None:
    """The detection tasks reading the candidates' text straight from a Parquet source (``build.positions``),
    or None to stream it from DuckDB."""
    if records.positioned is None:
        return None
    places = con.sql(f"SELECT {', '.join(POSITION_COLUMNS)} FROM cand ORDER BY ALL").to_arrow_table()
    return plan_reads(records.files, records.label, tuple(records.columns[n] for n in DETECT_SCHEMA.names), places, workers)


def sha_of(path: Path) -> str:
    return sha256_file(path)
