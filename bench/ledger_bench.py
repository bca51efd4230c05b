"""Consent ledger benchmark, for SQLite and PostgreSQL (a throwaway durable server).

Measures, per backend, with medians of --reps repetitions and a baseline measured
in the same run:

1. bulk import (events/s) of --import-events events via ``Ledger.import_file``
   vs. a raw driver bulk insert of the same rows (sqlite3 executemany / psycopg COPY,
   no validation, no hash chain) into a plain table;
2. single durable writes/s via ``Ledger.record`` vs. a raw insert+commit loop with
   the same durability settings (SQLite WAL + synchronous=FULL; PostgreSQL fsync on);
3. snapshot time for --members members / --events events via ``Ledger.snapshot``
   vs. a plain pyarrow read + write of the same events as Parquet.

Usage:  .venv/bin/python bench/ledger_bench.py [--members 1000000 --events 3000000]
        .venv/bin/python bench/ledger_bench.py --snapshot-only --keep /dev/shm/led   (seed once, reuse)
        .venv/bin/python bench/ledger_bench.py --members 20000 --events 60000 --quick
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from consentgate.datamodel import CONSENT_EVENTS_SCHEMA
from consentgate.ledger import Ledger, make_event, open_ledger
from consentgate.ledger.pgserver import TempPostgres, create_database


def synth_events(members: int, events: int, seed: int = 7, prefix: str = "e") -> pa.Table:
    """``events`` canonical events over ``members`` members (each member at least one), time-ordered."""
    rng = np.random.default_rng(seed)
    m = rng.integers(0, members, events)
    m[: min(members, events)] = np.arange(min(members, events))
    start = 1_600_000_000_000_000
    t = np.sort(rng.integers(start, start + 5 * 365 * 86_400 * 10**6, events))

    def pick(vals: list[str], n: int) -> pa.Array:
        return pa.array(np.array(vals)[rng.integers(0, len(vals), n)])

    table = pa.table({
        "event_id": pa.array(np.char.add(prefix, np.arange(events).astype("U10"))),
        "member_id": pa.array(np.char.add("m", m.astype("U9"))),
        "purpose": pa.array(np.full(events, "ai_training")),
        "scope": pick(["first_party", "affiliate", "third_party"], events),
        "choice": pick(["grant", "deny"], events),
        "source": pick(["member", "gpc", "admin", "import"], events),
        "policy_version": pick(["2023.1", "2024.2", "2025.1"], events),
        "recorded_at": pa.array(t).cast(pa.timestamp("us", tz="UTC")),
    })
    return table.cast(CONSENT_EVENTS_SCHEMA)


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median_of(reps: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(reps))


class Backend:
    def __init__(self, name: str, workdir: Path, pg: TempPostgres | None) -> None:
        self.name, self.workdir, self.pg = name, workdir, pg
        self.n = 0

    def new_url(self) -> str:
        self.n += 1
        if self.pg is None:
            return f"sqlite:///{self.workdir / f'bench{self.n}.db'}"
        return create_database(self.pg.url(), "bench")

    def raw_bulk(self, url: str, table: pa.Table) -> float:
        cols = [table.column(i).to_pylist() for i in range(table.num_columns - 1)]
        rec = table.column("recorded_at").cast(pa.int64()).to_pylist()
        rows = list(zip(*cols, rec))
        ddl = "CREATE TABLE raw (event_id TEXT, member_id TEXT, purpose TEXT, scope TEXT, choice TEXT, source TEXT, policy_version TEXT, recorded_at BIGINT)"
        if self.pg is None:
            path = url.removeprefix("sqlite:///") + ".raw"
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(ddl)
            t = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO raw VALUES (?,?,?,?,?,?,?,?)", rows)
            conn.execute("COMMIT")
            dt = time.perf_counter() - t
            conn.close()
            return dt
        import psycopg

        from consentgate.ledger.snapshot import libpq_dsn
        from sqlalchemy.engine import make_url

        with psycopg.connect(libpq_dsn(make_url(url))) as pg_conn:
            pg_conn.execute(ddl.replace("raw", f"raw{self.n}"))
            pg_conn.commit()
            t = time.perf_counter()
            with pg_conn.cursor() as cur, cur.copy(f"COPY raw{self.n} FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
            pg_conn.commit()
            return time.perf_counter() - t

    def raw_writes(self, url: str, n: int) -> float:
        if self.pg is None:
            conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("CREATE TABLE IF NOT EXISTS raw_w (id INTEGER PRIMARY KEY, member_id TEXT, scope TEXT, choice TEXT)")
            t = time.perf_counter()
            for i in range(n):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO raw_w (member_id, scope, choice) VALUES (?,?,?)", (f"m{i}", "affiliate", "deny"))
                conn.execute("COMMIT")
            dt = time.perf_counter() - t
            conn.close()
            return n / dt
        import psycopg

        from consentgate.ledger.snapshot import libpq_dsn
        from sqlalchemy.engine import make_url

        with psycopg.connect(libpq_dsn(make_url(url)), autocommit=True) as pg_conn:
            pg_conn.execute("CREATE TABLE IF NOT EXISTS raw_w (id BIGSERIAL PRIMARY KEY, member_id TEXT, scope TEXT, choice TEXT)")
            t = time.perf_counter()
            for i in range(n):
                pg_conn.execute("INSERT INTO raw_w (member_id, scope, choice) VALUES (%s,%s,%s)", (f"m{i}", "affiliate", "deny"))
            return n / (time.perf_counter() - t)


def ledger_writes(led: Ledger, n: int) -> float:
    ev = make_event(member_id="bench-writer", scope="affiliate", choice="deny")
    t = time.perf_counter()
    for _ in range(n):
        led.record(ev)
    return n / (time.perf_counter() - t)


def run_backend(b: Backend, args: argparse.Namespace, files: dict[str, Path]) -> None:
    print(f"\n== {b.name} ==", flush=True)
    if not args.snapshot_only:
        run_writes(b, args, files)
    run_snapshot(b, args, files)


def run_writes(b: Backend, args: argparse.Namespace, files: dict[str, Path]) -> None:
    imp_table = pq.read_table(files["import"])
    imp, raw = [], []
    for _ in range(args.reps):
        url = b.new_url()
        with open_ledger(url) as led:
            imp.append(timed(lambda: led.import_file(files["import"])))
        raw.append(b.raw_bulk(url, imp_table))
    n = imp_table.num_rows
    i_med, r_med = statistics.median(imp), statistics.median(raw)
    print(f"bulk import: {n / i_med:,.0f} events/s (median {i_med:.2f} s for {n:,} events; runs {', '.join(f'{x:.2f}' for x in imp)})")
    print(f"  baseline raw driver bulk insert (no validation/chain): {n / r_med:,.0f} events/s -> ratio ledger/raw = {r_med / i_med:.2f}")

    url = b.new_url()
    w, rw = [], []
    with open_ledger(url) as led:
        for _ in range(args.reps):  # interleaved, same database file / server
            w.append(ledger_writes(led, args.writes))
            rw.append(b.raw_writes(url, args.writes))
    print(f"single durable writes ({args.writes} per run): {statistics.median(w):,.0f} writes/s (runs {', '.join(f'{x:.0f}' for x in w)})")
    print(f"  baseline raw insert+commit loop: {statistics.median(rw):,.0f} writes/s -> ratio ledger/raw = {statistics.median(w) / statistics.median(rw):.2f}")



def snapshot_url(b: Backend, args: argparse.Namespace) -> str:
    """The ledger to snapshot: a new one, or with --keep the one seeded by an earlier run."""
    if args.keep is None:
        return b.new_url()
    if b.pg is None:
        return f"sqlite:///{args.keep / f'snap-{args.members}-{args.events}.db'}"
    import psycopg

    from consentgate.ledger.snapshot import libpq_dsn
    from sqlalchemy.engine import make_url

    name = f"snap_{args.members}_{args.events}"
    admin = make_url(b.pg.url())
    with psycopg.connect(libpq_dsn(admin), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    return admin.set(database=name).render_as_string(hide_password=False)


def run_snapshot(b: Backend, args: argparse.Namespace, files: dict[str, Path]) -> None:
    url = snapshot_url(b, args)
    with open_ledger(url) as led:
        if led.head()[0] == 0:
            seed = timed(lambda: led.import_file(files["big"]))
            print(f"seeded {args.events:,} events / {args.members:,} members by import in {seed:.1f} s ({args.events / seed:,.0f} events/s)", flush=True)
        elif led.head()[0] != args.events:
            raise SystemExit(f"{url} holds {led.head()[0]:,} events, expected {args.events:,}: delete it")
        else:
            print(f"reusing the seeded ledger ({args.events:,} events) kept in {args.keep}", flush=True)
        out = b.workdir / "snap.parquet"
        times = pq.read_table(files["big"], columns=["recorded_at"]).column("recorded_at").to_pylist()
        pasts = past_moments(times, args.past)
        late = {name: late_share(led, when) for name, when in pasts}
        snaps, base = [], []
        olds: dict[str, list[float]] = {name: [] for name, _ in pasts}
        for _ in range(args.reps):  # interleaved with the baseline so all see the same load
            snaps.append(timed(lambda: led.snapshot(None, out)))
            for name, when in pasts:
                olds[name].append(timed(lambda: led.snapshot(when, b.workdir / f"old-{name}.parquet")))
            base.append(timed(lambda: pq.write_table(pq.read_table(files["big"]), b.workdir / "copy.parquet")))
        rows = pq.read_metadata(out).num_rows
        old_rows = {name: pq.read_metadata(b.workdir / f"old-{name}.parquet").num_rows for name, _ in pasts}
    s_med, b_med = statistics.median(snaps), statistics.median(base)
    verdict = "meets" if s_med < 5 else "MISSES"
    print(f"snapshot {args.members:,} members / {args.events:,} events (as_of now): median {s_med:.2f} s ({rows:,} rows; runs {runs(snaps)}) -> {verdict} the 5 s target")
    print(f"  baseline pyarrow read+write of the same events: {b_med:.2f} s -> ratio snapshot/baseline = {s_med / b_med:.2f}")
    for name, when in pasts:
        o_med = statistics.median(olds[name])
        verdict = "meets" if o_med < 5 else "MISSES"
        print(f"snapshot as_of {name} ({when.isoformat()}; {late[name]}): median {o_med:.2f} s ({old_rows[name]:,} rows; "
              f"runs {runs(olds[name])}) -> {verdict} the 5 s target; ratio to baseline = {o_med / b_med:.2f}")


def runs(values: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


PAST_MOMENTS = {
    "near-now": "1 us before the newest event",
    "day": "1 day before the newest event",
    "30days": "30 days before the newest event",
    "90days": "90 days before the newest event",
    "middle": "the middle event's time",
}


def past_moments(times: list[datetime], which: str) -> list[tuple[str, datetime]]:
    """The past cut-offs to snapshot at (``times`` are the events' recorded_at, sorted)."""
    newest = times[-1]
    at = {"near-now": newest - timedelta(microseconds=1), "day": newest - timedelta(days=1),
          "30days": newest - timedelta(days=30), "90days": newest - timedelta(days=90), "middle": times[len(times) // 2]}
    return [(PAST_MOMENTS[k], at[k]) for k in which.split(",")]


def late_share(led: Ledger, when: datetime) -> str:
    """Which way the snapshot at ``when`` goes: how many state rows (keys) changed after it."""
    from consentgate.ledger import asof
    from consentgate.ledger.models import to_micros

    late, head = asof.count_late(led, to_micros(when)), led.head()[0]
    with led.engine.connect() as conn:
        keys = int(conn.exec_driver_sql("SELECT count(*) FROM consent_state").scalar_one())
    way = "state + late keys' events" if asof.use_state(late, head, led.backend) else "scan of all events"
    return f"{late:,} of {keys:,} keys ({late / max(keys, 1):.1%}) changed after it -> {way}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=3_000_000)
    ap.add_argument("--import-events", type=int, default=300_000)
    ap.add_argument("--writes", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--snapshot-only", action="store_true", help="skip the import and single-write measurements")
    ap.add_argument("--past", default="near-now,day,30days,90days,middle",
                    help=f"past snapshot cut-offs, comma-separated: {', '.join(f'{k} ({v})' for k, v in PAST_MOMENTS.items())}")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep the seeded snapshot ledgers (SQLite file, PostgreSQL data folder) in this folder and reuse them next time")
    args = ap.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-", dir=args.workdir))
    try:
        load = os.getloadavg()
        print(f"ledger_bench: {os.cpu_count()} CPUs, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} at start (machine shared)")
        print(f"sizes: snapshot {args.members:,} members / {args.events:,} events; import {args.import_events:,} events; {args.writes} single writes; {args.reps} reps")
        big = (args.keep or work) / f"big-{args.members}-{args.events}.parquet"
        files = {"big": big, "import": work / "import.parquet"}
        if not big.is_file():
            pq.write_table(synth_events(args.members, args.events), big)
        pq.write_table(synth_events(max(1, args.import_events // 3), args.import_events, seed=11, prefix="i"), files["import"])
        for name in args.backends.split(","):
            keep_pg = args.keep / "pg" if args.keep is not None else None
            pg = TempPostgres(durable=True, folder=keep_pg).start() if name == "postgresql" else None
            try:
                run_backend(Backend(name, work, pg), args, files)
            finally:
                if pg is not None:
                    pg.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
