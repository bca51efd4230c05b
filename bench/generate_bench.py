"""Benchmark: how fast `generate_network` writes the synthetic network.

Usage:  .venv/bin/python bench/generate_bench.py --records 1000000 [--repeat 3]

Measures, in one run and as medians of --repeat repetitions:

* generate: ``generate_network(members=records/10, seed, out)`` end to end (members,
  records with rendered texts and labels, consent events, four Parquet files).
* baseline "constant-string write": writing the same number of rows of a constant
  100-character string column with pyarrow and the generator's Parquet settings
  (the I/O floor: no generation at all).
* baseline "write generated tables": writing the four tables generate_network produced
  (read back into memory first) with the same settings, i.e. the Parquet share of the work.
* baseline "Faker per record": ``Faker().sentence()`` called once per record (the usual
  per-record approach), timed on --faker-sample records and scaled linearly.

Prints the times, records/s and the ratios generate / baseline. The issue's target is
1,000,000 records in under 60 s on a 2-core machine. Not a test: timings depend on load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from consentgate.demo.network import _WRITE_OPTIONS, generate_network


def _time(fn: object, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--faker-sample", type=int, default=20_000)
    args = parser.parse_args()
    members = max(1, args.records // 10)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        counter = iter(range(1_000_000))
        result_holder = []

        def generate() -> None:
            result_holder.append(generate_network(members=members, seed=args.seed, out=root / f"g{next(counter)}"))

        constant = pa.table({"text": pa.repeat(pa.scalar("x" * 100), args.records)})

        def write_constant() -> None:
            pq.write_table(constant, root / f"c{next(counter)}.parquet", **_WRITE_OPTIONS)  # type: ignore[arg-type]

        from faker import Faker

        fake = Faker()
        Faker.seed(args.seed)

        def faker_sample() -> None:
            pa.array([fake.sentence() for _ in range(args.faker_sample)])

        gen_times = _time(generate, args.repeat)
        const_times = _time(write_constant, args.repeat)
        last = result_holder[-1].out
        tables = {name: pq.read_table(last / name) for name in ("members.parquet", "records.parquet", "consent_events.parquet", "labels.parquet")}

        def write_generated() -> None:
            folder = root / f"w{next(counter)}"
            folder.mkdir()
            for name, table in tables.items():
                pq.write_table(table, folder / name, **_WRITE_OPTIONS)  # type: ignore[arg-type]

        write_times = _time(write_generated, args.repeat)
        faker_times = [t * args.records / args.faker_sample for t in _time(faker_sample, args.repeat)]
    gen, const, write, faker = (statistics.median(t) for t in (gen_times, const_times, write_times, faker_times))
    result = result_holder[-1]
    print(f"python {sys.version.split()[0]}, pyarrow {pa.__version__}; repeat={args.repeat} (medians)")
    print(f"generated: {result.describe()}")
    print(f"generate_network            {gen:8.2f} s  {result.records / gen:12,.0f} records/s   runs: {', '.join(f'{t:.2f}' for t in gen_times)}")
    print(f"baseline constant-string    {const:8.2f} s  {args.records / const:12,.0f} rows/s      runs: {', '.join(f'{t:.2f}' for t in const_times)}")
    print(f"baseline write generated    {write:8.2f} s  {args.records / write:12,.0f} records/s   runs: {', '.join(f'{t:.2f}' for t in write_times)}")
    print(f"baseline Faker per record   {faker:8.2f} s  {args.records / faker:12,.0f} records/s   (sample {args.faker_sample:,}, scaled)")
    print(f"ratio generate / constant-string write: {gen / const:.1f}x")
    print(f"ratio generate / write-generated-tables: {gen / write:.1f}x (the rest is generation)")
    print(f"ratio Faker-per-record / generate:      {faker / gen:.1f}x (generate is this much faster)")
    print(f"target: {args.records:,} records in < 60 s -> {'met' if gen < 60 else 'NOT met'} ({gen:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
