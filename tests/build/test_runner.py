"""The engine's bounded process pool: every result comes back once, failures raise, a slow start is reported once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import wait
from pathlib import Path
from typing import Any, Callable

import pytest

from consentgate.build import duckdb_engine
from consentgate.build.duckdb_engine import _DetectProgress, _Runner


def _run(fn: Callable[..., Any], jobs: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch, slow_after: float,
         workers: int = 2) -> tuple[list[Any], int]:
    monkeypatch.setattr(duckdb_engine, "SLOW_START_S", slow_after)
    runner = _Runner(workers, None)
    results: list[Any] = []
    notices: list[float] = []
    try:
        runner.map_bounded(fn, iter(jobs), results.append, on_slow_start=lambda: notices.append(time.perf_counter()))
    finally:
        runner.close()
    return results, len(notices)


def test_a_pool_that_returns_nothing_for_a_while_is_reported_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Six jobs of 0.5 s on two workers (plus their start-up): nothing is back 0.2 s after the first job went in.
    results, notices = _run(time.sleep, [(0.5,)] * 6, monkeypatch, slow_after=0.2)
    assert (len(results), notices) == (6, 1)


@pytest.mark.parametrize("workers", [1, 2])
def test_every_result_comes_back_once_and_none_is_reported_slow(monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    results, notices = _run(abs, [(-k,) for k in range(25)], monkeypatch, slow_after=60.0, workers=workers)
    assert sorted(results) == list(range(25)) and notices == 0


def test_a_failed_task_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError):
        _run(time.sleep, [(0.0,), (-1.0,), (0.0,)], monkeypatch, slow_after=60.0)  # sleep length must be non-negative


def test_a_worker_that_dies_is_a_build_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from consentgate.errors import BuildError

    with pytest.raises(BuildError, match="worker process of the build ended") as info:
        _run(os._exit, [(0,), (0,)], monkeypatch, slow_after=60.0)  # the worker exits as if killed
    assert "--workers 1" in (info.value.hint or "")


def test_a_worker_that_dies_while_starting_does_not_hang_the_build(tmp_path: Path) -> None:
    # A script without a ``__main__`` guard: each spawned worker re-runs it and dies while starting
    # (Python refuses to spawn from a process that is still starting), before it reads what the
    # parent sent it. With ~3 MB of member names in that start-up data the parent used to block
    # forever writing it; the names now travel by file, and the dead worker is reported.
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        import pyarrow as pa
        from pathlib import Path
        from consentgate.build.duckdb_engine import _Runner
        from consentgate.errors import BuildError

        names = pa.array([f"Member Name {{i:07d}}" for i in range(150_000)])
        runner = _Runner(2, names, Path({str(tmp_path)!r}))
        try:
            runner.map_bounded(abs, iter([(-1,), (-2,)]), print)
        except BuildError as exc:
            print("BuildError:", exc.message)
        finally:
            runner.close()
    """), encoding="utf-8")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "BuildError: a worker process of the build ended" in out.stdout, out.stderr[-2000:]


_DETECTOR_BUILT = "__import__('consentgate.build.steps', fromlist=['steps'])._detector is not None"
_BUILD_DETECTOR = "__import__('consentgate.build.steps', fromlist=['steps']).detector(None) is not None"


def _names_runner(tmp_path: Path) -> _Runner:
    import pyarrow as pa

    return _Runner(2, pa.array(["Ada Lovelace", "Grace Hopper"]), tmp_path)


def test_started_detection_workers_build_their_detector_before_their_first_task(tmp_path: Path) -> None:
    # ``start`` spawns the workers at once, and each builds its detector as it starts (``tasks.init_from_file``),
    # once let go, not lazily in its first task: that work then overlaps the main process's own.
    runner = _names_runner(tmp_path)
    results: list[Any] = []
    try:
        runner.start()
        runner.go()
        runner.map_bounded(eval, iter([(_DETECTOR_BUILT,)] * 4), results.append)
    finally:
        runner.close()
    assert results == [True] * 4


def test_a_detection_worker_waits_for_its_go_before_building_its_detector(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # Until ``go`` the workers only import (the main process is still handing memory back); the first
    # task lets them go, so a caller that never calls ``go`` does not wait ``GO_WAIT_S``.
    from consentgate.build import tasks
    from consentgate.detect import Detector

    Detector(member_names=["Ada Lovelace", "Grace Hopper"])  # the databases compiled and cached: the workers only load them
    monkeypatch.setattr(tasks, "GO_WAIT_S", 120.0)
    runner = _names_runner(tmp_path)
    try:
        runner.start()
        time.sleep(2.0)  # long enough for a worker to start and build a detector for two names
        assert runner.pool is not None
        probe = runner.pool.submit(eval, _DETECTOR_BUILT)  # queued behind the initializers' wait
        assert not wait([probe], timeout=1.5).done
        t0 = time.perf_counter()
        results: list[Any] = []
        runner.map_bounded(eval, iter([(_DETECTOR_BUILT,)] * 2), results.append)
        assert results == [True] * 2 and probe.result(timeout=60) is True
        assert time.perf_counter() - t0 < 60.0  # let go by the first task, not after GO_WAIT_S
    finally:
        runner.close()


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads process states from /proc (Linux)")
def test_pool_workers_end_when_the_build_is_killed(tmp_path: Path) -> None:
    # A worker waits on the pool's call queue, of which it holds both ends: without its watch on the
    # parent it outlived a build killed with SIGKILL for good (one still waiting for its go, here).
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys, time
        import pyarrow as pa
        from pathlib import Path
        from consentgate.build.duckdb_engine import _Runner

        if __name__ == "__main__":
            runner = _Runner(2, pa.array(["Ada Lovelace"]), Path({str(tmp_path)!r}))
            runner.start()
            time.sleep(1.0)
            print(" ".join(str(pid) for pid in runner.pool._processes), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """), encoding="utf-8")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2, out.stderr[-2000:]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_running(p) for p in pids):
        time.sleep(0.2)
    assert not any(_running(p) for p in pids)


def _running(pid: int) -> bool:
    """``pid`` exists and is not a zombie (an orphan's exit may wait to be reaped by init)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_detector_that_cannot_be_built_fails_the_first_task_with_its_own_error(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A failure while a worker starts would break the whole pool ("a worker process ended"); the worker's
    # start-up lets it pass, and the first task that needs the detector raises the error itself.
    from consentgate.errors import DetectError

    monkeypatch.setenv("CONSENTGATE_DETECT_BACKEND", "no-such-backend")  # the spawned workers inherit it
    runner = _names_runner(tmp_path)
    try:
        runner.start()
        runner.go()
        with pytest.raises(DetectError, match="unknown detection backend"):
            runner.map_bounded(eval, iter([(_BUILD_DETECTOR,)]), print)
    finally:
        runner.close()


def test_run_build_refuses_to_start_inside_a_starting_worker(monkeypatch: pytest.MonkeyPatch, small_network: Any,
                                                            write_spec: Any, settings: Any) -> None:
    import multiprocessing

    from consentgate.build import load_spec, run_build
    from consentgate.errors import BuildError

    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    spec = load_spec(write_spec(small_network, shards=2))
    with pytest.raises(BuildError, match="while a worker process was starting"):
        run_build(spec, workers=2, progress=False, settings=settings)
    assert not spec.output.exists()


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []

    def phase(self, name: str, total: int | None) -> None:
        self.calls.append(("phase", name, total))

    def relabel(self, name: str, total: int | None) -> None:
        self.calls.append(("relabel", name, total))

    def advance(self, n: int) -> None:
        self.calls.append(("advance", n, None))

    def close(self) -> None:
        return None


def test_detect_line_reads_prepare_detector_until_the_first_result() -> None:
    rec = _Recorder()
    shown = _DetectProgress(rec, 100)
    shown.preparing()
    shown.advance(40)
    shown.advance(60)
    assert rec.calls == [("relabel", "prepare detector", None), ("phase", "detect", 100), ("advance", 40, None), ("advance", 60, None)]
    quick = _Recorder()
    _DetectProgress(quick, 10).advance(10)
    assert quick.calls == [("advance", 10, None)]


def test_detect_memory_cap_has_a_floor_and_grows_with_the_candidates_and_threads() -> None:
    floor = duckdb_engine._DETECT_FLOOR_MIB
    assert duckdb_engine.detect_memory(0, 2) == f"{floor}MiB"
    assert duckdb_engine.detect_memory(1_440_000, 2) == f"{floor}MiB"  # the bench's 10M build stays on the floor
    assert duckdb_engine.detect_memory(1_440_000, 1) == f"{floor}MiB"
    caps = [int(duckdb_engine.detect_memory(n, 2)[:-3]) for n in (4_000_000, 8_000_000, 16_000_000)]
    assert floor < caps[0] < caps[1] < caps[2]
    assert caps[2] >= 16_000_000 * 40 >> 20  # at least twice the 20 bytes per candidate measured in insertion order
    assert int(duckdb_engine.detect_memory(0, 16)[:-3]) == floor + 14 * duckdb_engine._DETECT_MIB_PER_THREAD
    # Twice the lowest cap the stream was measured to pass with (see ``_DETECT_FLOOR_MIB``): at 10M records
    # (1.44M candidates) 64 MiB on two threads (48 failed), 160 on four (144 failed), 240 on six; at 20M
    # records (2.88M candidates) 96 MiB on two (64 failed).
    assert int(duckdb_engine.detect_memory(1_440_000, 2)[:-3]) >= 2 * 64
    assert int(duckdb_engine.detect_memory(1_440_000, 4)[:-3]) >= 2 * 160
    assert int(duckdb_engine.detect_memory(1_440_000, 6)[:-3]) >= 2 * 240
    assert int(duckdb_engine.detect_memory(2_880_000, 2)[:-3]) >= 2 * 96


def test_main_memory_cap_has_a_floor_and_grows_with_the_records() -> None:
    # Measured over 1M members (see ``_MAIN_FLOOR_MB``): 10M records passed at 256 MB, 20M failed at 320 and passed at 384.
    assert duckdb_engine.main_memory(0) == duckdb_engine.main_memory(10_000_000) == "768MB"
    assert int(duckdb_engine.main_memory(10_000_000)[:-2]) >= 2 * 256
    assert int(duckdb_engine.main_memory(20_000_000)[:-2]) >= 2 * 384
    assert int(duckdb_engine.main_memory(40_000_000)[:-2]) > int(duckdb_engine.main_memory(20_000_000)[:-2])
    # No cap passes DuckDB's own default, 80% of the machine's memory, however large the input.
    ceiling = duckdb_engine._ceiling()
    assert ceiling < 1 << 62
    assert int(duckdb_engine.main_memory(10**12)[:-2]) == ceiling // 10**6
    assert int(duckdb_engine.detect_memory(10**12, 64)[:-3]) == ceiling >> 20


def test_a_build_runs_on_the_detect_cap_without_its_floor(monkeypatch: pytest.MonkeyPatch, small_network: Any,
                                                          write_spec: Any, settings: Any) -> None:
    # Without the floor the cap is the measured base alone (48 MB at this size): the detect stream fits in it.
    from consentgate.build import load_spec, run_build, verify_build

    monkeypatch.setattr(duckdb_engine, "_DETECT_FLOOR_MIB", 0)
    built = run_build(load_spec(write_spec(small_network, shards=2)), workers=2, progress=False, settings=settings)
    assert duckdb_engine.detect_memory(int(built.counts["content_scanned"]), 2) == "48MiB"
    assert verify_build(built.output).ok


def test_worker_tasks_import_without_the_spec_policy_or_cli_stack() -> None:
    # A spawned worker imports the module of the task it is sent (``build.tasks``); the spec
    # and policy modules (pydantic), the ledger (SQLAlchemy) and the CLI (typer) cost it
    # 0.3 s or more each and are not used there.
    import subprocess
    import sys

    heavy = ("pydantic", "sqlalchemy", "typer", "consentgate.policy", "consentgate.ledger", "consentgate.build.spec",
             "consentgate.build.run", "consentgate.build.decide", "consentgate.build.duckdb_engine")
    code = ("import sys, consentgate.build.tasks; "
            f"print(','.join(sorted(m for m in sys.modules if m.startswith({heavy!r}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    # ... and the package still offers its public names (imported on first use).
    from consentgate import build

    assert build.run_build.__module__ == "consentgate.build.run"
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        getattr(build, "nothing_here")


@pytest.mark.parametrize(("shards", "tasks"), [(16, 4), (16, 1), (16, 3), (5, 8), (1, 4), (65536, 4)])
def test_shard_groups_cover_every_shard_once_in_order_and_evenly(shards: int, tasks: int) -> None:
    """The write phase's tasks: consecutive runs of shards, none empty, sizes within one of each other."""
    from consentgate.build.tasks import shard_groups

    groups = shard_groups(shards, tasks)
    assert [k for g in groups for k in g] == list(range(shards))
    assert len(groups) == min(tasks, shards)
    assert all(g for g in groups)
    assert max(map(len, groups)) - min(map(len, groups)) <= 1


@pytest.mark.parametrize("shards", [4, 64])
def test_each_shard_reads_back_exactly_its_annotated_records(tmp_path: Path, shards: int) -> None:
    """The detection workers' scratch files (one IPC record batch per shard present) give each shard
    writer its own records, every record to exactly one shard, and an empty table to a shard with none."""
    import pyarrow as pa

    from consentgate.build.plan import StepConfig
    from consentgate.build.sharding import shard_of
    from consentgate.build.steps import DETECT_SCHEMA, init_worker
    from consentgate.build.tasks import annotate_part, annotated_places, read_annotated

    init_worker(None)
    cfg = StepConfig(shards=shards, strategies={}, pseudonym_key=None)
    for sub in ("a", "n", "t"):
        (tmp_path / sub).mkdir()
    for part, ids in enumerate((["r1", "r2", "r3", "r4", "r5"], ["r6", "r7"])):
        batch = pa.record_batch([pa.array(ids), pa.array([None] * len(ids), pa.string()), pa.array([f"text of {i}" for i in ids])],
                                schema=DETECT_SCHEMA)
        annotate_part(cfg, part, batch, tmp_path)
    seen: list[str] = []
    places = annotated_places(tmp_path)
    for k in range(shards):
        table = read_annotated(places, k).read_all()
        ids = table.column("record_id").to_pylist()
        assert all(shard_of(i, shards) == k for i in ids)
        assert table.column("shard").to_pylist() == [k] * len(ids)
        assert table.column("text").to_pylist() == [f"text of {i}" for i in ids]
        seen += ids
    assert sorted(seen) == [f"r{i}" for i in range(1, 8)]
    if shards > len(seen):  # some shard holds none of the records
        assert min(read_annotated(places, k).read_all().num_rows for k in range(shards)) == 0
