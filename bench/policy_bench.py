"""Decision throughput: the compiled policy SQL in DuckDB vs a plain Python loop over the reference evaluator.

Generates a synthetic input with numpy/pyarrow (sizes are parameters), decides every record with
``compile_sql`` in DuckDB (threads as given, default 2), and decides a sample with
``evaluate`` in a Python loop (the baseline, measured in the same run). Reports medians of
several repetitions in records per second and the ratio DuckDB / Python.

    .venv/bin/python bench/policy_bench.py --records 10000000 --members 1000000
    .venv/bin/python bench/policy_bench.py --records 200000 --members 20000 --reps 3   # quick
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consentgate.datamodel import CATEGORIES, UTC_TS
from consentgate.policy import ConsentState, EvalContext, Member, Record, SqlTables, compile_sql, evaluate, load_policy

ROOT = Path(__file__).resolve().parents[1]
AS_OF = datetime(2025, 12, 1, tzinfo=timezone.utc)
COUNTRIES = np.array(["US", "US", "US", "IN", "BR", "GB", "DE", "FR", "CA", "CN", "HK", "NO", "AU", "JP"])
SUBDIVISIONS = np.array(["US-CA", "US-NY", "US-TX", None, None, None], dtype=object)


def _ids(prefix: str, n: int) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(np.arange(n)), pa.string()), "")


def make_members(rng: np.random.Generator, n: int) -> pa.Table:
    country = COUNTRIES[rng.integers(0, len(COUNTRIES), n)]
    sub = SUBDIVISIONS[rng.integers(0, len(SUBDIVISIONS), n)]
    sub = np.where(country == "US", sub, np.array(None, dtype=object))
    return pa.table({
        "member_id": _ids("m", n),
        "country": pa.array(country),
        "subdivision": pa.array(sub, pa.string()),
        "birth_year": pa.array(rng.integers(1950, 2012, n).astype(np.int32)),
        "tier": pa.array(np.where(rng.random(n) < 0.15, "premium", "free")),
    })


def make_records(rng: np.random.Generator, n: int, members: int) -> pa.Table:
    weights = np.array([0.08, 0.04, 0.06, 0.3, 0.25, 0.05, 0.05, 0.05, 0.05, 0.05, 0.02])
    cats = np.array(CATEGORIES)[rng.choice(len(CATEGORIES), n, p=weights / weights.sum())]
    is_msg = np.char.startswith(cats.astype(str), "message.")
    counts = np.where(is_msg, rng.integers(1, 3, n), 0)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    values = pc.binary_join_element_wise("m", pc.cast(pa.array(rng.integers(0, members, int(offsets[-1]))), pa.string()), "")
    created = (AS_OF.timestamp() - rng.integers(0, 3 * 365 * 86400, n)) * 1_000_000
    return pa.table({
        "record_id": _ids("r", n),
        "category": pa.array(cats),
        "author_id": pc.binary_join_element_wise("m", pc.cast(pa.array(rng.integers(0, members, n)), pa.string()), ""),
        "participants": pa.ListArray.from_arrays(pa.array(offsets), values),
        "created_at": pa.array(created.astype("int64"), pa.int64()).cast(UTC_TS),
    })


def make_consent(rng: np.random.Generator, members: int) -> pa.Table:
    chosen = np.flatnonzero(rng.random(members) < 0.3)
    n = len(chosen)
    return pa.table({
        "member_id": pc.binary_join_element_wise("m", pc.cast(pa.array(chosen), pa.string()), ""),
        "purpose": pa.array(["ai_training"] * n),
        "scope": pa.array(["first_party"] * n),
        "choice": pa.array(np.where(rng.random(n) < 0.6, "deny", "grant")),
        "source": pa.array(["member"] * n),
        "policy_version": pa.array(np.array(["2023.1", "2024.2", "2025.1"])[rng.integers(0, 3, n)]),
        "recorded_at": pa.array([AS_OF] * n, UTC_TS) if n < 1 else pa.array(np.full(n, int(AS_OF.timestamp() * 1e6) - 10**12, dtype="int64")).cast(UTC_TS),
        "seq": pa.array(np.arange(n, dtype=np.int64)),
    })


def make_topics(rng: np.random.Generator, records: int) -> pa.Table:
    chosen = np.flatnonzero(rng.random(records) < 0.05)
    topics = np.array(["health", "compensation", "job_search", "political"])[rng.integers(0, 4, len(chosen))]
    return pa.table({"record_id": pc.binary_join_element_wise("r", pc.cast(pa.array(chosen), pa.string()), ""), "topic": pa.array(topics)})


def bench_duckdb(sql: str, tables: dict[str, pa.Table], threads: int, reps: int) -> tuple[float, dict[str, int]]:
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {threads}")
    for name, table in tables.items():
        con.register(name, table)
    times, counts = [], {}
    for _ in range(reps):
        start = time.perf_counter()
        out = con.sql(sql).to_arrow_table()
        times.append(time.perf_counter() - start)
        counts = {str(k): int(v) for k, v in zip(*[c.to_pylist() for c in out.group_by("decision").aggregate([("record_id", "count")]).columns])}
    con.close()
    return statistics.median(times), counts


def bench_python(policy_path: Path, tables: dict[str, pa.Table], sample: int, reps: int) -> float:
    rec = tables["records"].slice(0, sample).to_pylist()
    records = [Record(r["record_id"], r["category"], r["author_id"], tuple(r["participants"]), r["created_at"]) for r in rec]
    members = {m["member_id"]: Member(m["member_id"], m["country"], m["subdivision"], m["birth_year"], m["tier"]) for m in tables["members"].to_pylist()}
    consent = {(c["member_id"], c["purpose"], c["scope"]): ConsentState(**c) for c in tables["consent"].to_pylist()}
    topics: dict[str, set[str]] = {}
    for t in tables["topics"].to_pylist():
        topics.setdefault(t["record_id"], set()).add(t["topic"])
    ctx = EvalContext(load_policy(policy_path), scope="first_party", as_of=AS_OF, members=members, consent=consent, topics=topics)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        for r in records:
            evaluate(r, ctx)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=200_000, help="records decided by the Python baseline")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--policy", type=Path, default=ROOT / "examples" / "policies" / "recommended.yaml")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    tables = {
        "members": make_members(rng, args.members),
        "records": make_records(rng, args.records, args.members),
        "consent": make_consent(rng, args.members),
        "topics": make_topics(rng, args.records),
    }
    print(f"generated {args.records:,} records, {args.members:,} members, {tables['consent'].num_rows:,} consent rows, "
          f"{tables['topics'].num_rows:,} topic rows in {time.perf_counter() - t0:.1f}s")
    sql = compile_sql(load_policy(args.policy), scope="first_party", as_of=AS_OF)
    duck_s, counts = bench_duckdb(sql, tables, args.threads, args.reps)
    py_s = bench_python(args.policy, tables, min(args.sample, args.records), args.reps)
    duck_rate = args.records / duck_s
    py_rate = min(args.sample, args.records) / py_s
    print(f"policy {args.policy.name}; decisions: {counts}")
    print(f"duckdb  ({args.threads} threads): {args.records:,} records in {duck_s:.2f}s (median of {args.reps}) = {duck_rate:,.0f} records/s")
    print(f"python  (1 core, reference evaluate loop): {min(args.sample, args.records):,} records in {py_s:.2f}s (median of {args.reps}) = {py_rate:,.0f} records/s")
    print(f"ratio duckdb / python: {duck_rate / py_rate:.1f}x")


if __name__ == "__main__":
    main()
