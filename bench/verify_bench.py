"""`ledger verify` benchmark: the chain check from Arrow batches vs. the row-by-row walk
it replaced (kept in ``consentgate.ledger.verify._walk`` as reference and fallback),
and the state re-check (``check_state``, unchanged), on SQLite and PostgreSQL.

Wall time and CPU time (this process plus its finished children, i.e. the SQLite
reader process; *not* the PostgreSQL server's own CPU) per step, medians of --reps
repetitions (--walk-reps for the slow walk), with the ratio walk / Arrow check.

SQLite: a copy (on /dev/shm when there is one) of --sqlite, by default the 2,153,058-event
ledger of the build benchmark. PostgreSQL: a throwaway server seeded with the same
number of synthetic events by ``Ledger.import_file``.

With --tamper, also: five tamperings of copies of the SQLite ledger (a changed field, a
deleted row, two swapped rows, an altered hash, a value that needs JSON escaping), each
checked by both and required to give the same result.

Usage:  flock /tmp/cg-bench.lock .venv/bin/python bench/verify_bench.py [--backends sqlite,postgresql] [--tamper]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
from ledger_bench import synth_events

from consentgate.ledger import Ledger, open_ledger
from consentgate.ledger import verify as v
from consentgate.ledger.pgserver import TempPostgres, create_database
from consentgate.ledger.state import check_state

DEFAULT_DB = Path(__file__).resolve().parent.parent / ".bench-data/build/10000000/ledger.db"


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(fn: Callable[[], object], reps: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``reps`` calls, and the last result."""
    walls, cpus, out = [], [], None
    for _ in range(reps):
        t, c = time.perf_counter(), cpu_seconds()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(cpu_seconds() - c)
    return statistics.median(walls), statistics.median(cpus), out


def run(name: str, led: Ledger, args: argparse.Namespace) -> None:
    events = led.verify().events if args.walk_reps == 0 else None
    rows = [("arrow check (new)", lambda: v._scan(led), args.reps),
            ("row walk (old)", lambda: v._walk(led), args.walk_reps),
            ("check_state", lambda: check_state(led), args.reps)]
    got: dict[str, tuple[float, float, object]] = {}
    for label, fn, reps in rows:
        if reps:
            got[label] = measure(fn, reps)
            wall, cpu, out = got[label]
            print(f"{name:10s} {label:18s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  (median of {reps})  -> {str(out)[:60]}", flush=True)
    new, old = got["arrow check (new)"], got.get("row walk (old)")
    if old is not None:
        assert new[2] == old[2], "the Arrow check and the walk disagree"
        print(f"{name:10s} walk / arrow: wall x{old[0] / new[0]:.1f}, cpu x{old[1] / new[1]:.1f}; whole verify now ~{new[0] + got['check_state'][0]:.1f} s wall, "
              f"{new[1] + got['check_state'][1]:.1f} cpu-s (was ~{old[0] + got['check_state'][0]:.1f} / {old[1] + got['check_state'][1]:.1f})", flush=True)
    elif events is not None:
        print(f"{name:10s} {events} events")


@contextmanager
def sqlite_copy(src: Path) -> Iterator[str]:
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="cg-verify-bench-", dir=base) as tmp:
        dst = Path(tmp) / "ledger.db"
        shutil.copyfile(src, dst)
        yield f"sqlite:///{dst}"


@contextmanager
def pg_ledger(events: int, workdir: Path) -> Iterator[str]:
    server = TempPostgres().start()
    try:
        url = create_database(server.url(), "cgverify")
        table = synth_events(max(1, events // 2), events)
        with open_ledger(url) as led:
            step = 500_000
            for i in range(0, events, step):
                part = workdir / f"part{i}.parquet"
                pq.write_table(table.slice(i, step), part)
                led.import_file(part)
                part.unlink()
        yield url
    finally:
        server.stop()


TAMPERINGS = {
    "change choice at seq 1500000": ["UPDATE consent_events SET choice = CASE choice WHEN 'grant' THEN 'deny' ELSE 'grant' END WHERE seq = 1500000"],
    "delete seq 2000000": ["DELETE FROM consent_events WHERE seq = 2000000"],
    "swap seqs 1000 and 1001": ["UPDATE consent_events SET seq = -1 WHERE seq = 1000", "UPDATE consent_events SET seq = 1000 WHERE seq = 1001",
                                "UPDATE consent_events SET seq = 1001 WHERE seq = -1"],
    "alter hash at seq 2153000": ["UPDATE consent_events SET hash = 'ab' || substr(hash, 3) WHERE seq = 2153000"],
    "member_id with a quote at seq 700000": ["UPDATE consent_events SET member_id = member_id || '\"' WHERE seq = 700000"],
}


def tamper(src: Path) -> None:
    """Each tampering on a fresh copy; the Arrow check and the walk must agree."""
    for name, statements in TAMPERINGS.items():
        with sqlite_copy(src) as url:
            conn = sqlite3.connect(url.removeprefix("sqlite:///"))
            with conn:
                for sql in statements:
                    conn.execute(sql)
            conn.close()
            with open_ledger(url) as led:
                (nw, nc, new), (ow, oc, old) = measure(lambda: v._scan(led), 1), measure(lambda: v._walk(led), 1)
        assert new == old, f"{name}: {new} != {old}"
        print(f"tamper: {name}: same result; arrow {nw:.1f} s wall / {nc:.1f} cpu-s, walk {ow:.1f} s / {oc:.1f} cpu-s "
              f"-> seq {getattr(new, 'first_bad_seq', None)}: {getattr(new, 'reason', None)}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sqlite", type=Path, default=DEFAULT_DB, help="SQLite ledger to copy and verify (not written)")
    ap.add_argument("--pg-events", type=int, default=2_153_058)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--walk-reps", type=int, default=1)
    ap.add_argument("--tamper", action="store_true", help="also compare both on tampered copies of the SQLite ledger")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}, cpus: {os.cpu_count()}", flush=True)
    if "sqlite" in args.backends:
        with sqlite_copy(args.sqlite) as url, open_ledger(url) as led:
            run("sqlite", led, args)
    if "postgresql" in args.backends:
        with tempfile.TemporaryDirectory(prefix="cg-verify-bench-") as tmp, pg_ledger(args.pg_events, Path(tmp)) as url, open_ledger(url) as led:
            run("postgresql", led, args)
    if args.tamper:
        tamper(args.sqlite)
    print(f"load average after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
