"""Benchmark: `consentgate build run` against a plain pyarrow Parquet copy of the same records.

For each size (records; members = records / --records-per-member) it generates the demo
network once (cached under --data-dir), loads the consent events into a SQLite ledger
and publishes examples/policies/recommended.yaml (setup, not timed), then measures:

- baseline: ``pq.read_table(records.parquet)`` + ``pq.write_table(..., compression="zstd")``
  (the dataset's codec), nothing else; median of --reps runs;
- build: ``consentgate build run SPEC --workers W --quiet --replace`` as a subprocess,
  wall time, median of --reps runs; peak RSS of the whole process tree (sampled every
  0.1 s, summed over the main process and its workers) and of the largest process;
- the build's own phase timings (from manifest.json, median of the runs).

consentgate's own modules are byte-compiled first (``python -m compileall src``, as ``make
venv`` does): an editable install is not compiled at install time, and under
``PYTHONDONTWRITEBYTECODE=1`` (set on this project's machines) every process of every build
would otherwise compile each module it imports.

Prints one row per size, the build : copy ratio (of the medians, and the median of the
ratios of each rep's copy and the build right after it), records/s, and, with two sizes,
the time ratio large : small. The raw output is also written to --save.

    .venv/bin/python bench/build_bench.py --records 1000000,10000000 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "examples" / "policies" / "recommended.yaml"
KEY = "bench-pseudonym-key-0123456789"


def prepare(folder: Path, records: int, rpm: float, seed: int) -> Path:
    """Generate the network and its ledger once; returns the spec path."""
    import yaml

    from consentgate.demo.network import generate_network
    from consentgate.ledger import PublishedPolicy, open_ledger
    from consentgate.policy import load_policy, published_fields

    data = folder / "data"
    if not (data / "records.parquet").is_file():
        t = time.perf_counter()
        generate_network(members=max(1, int(records / rpm)), seed=seed, out=data, records_per_member=rpm)
        print(f"  generated {records:,} records in {time.perf_counter() - t:.0f} s", flush=True)
    ledger_db = folder / "ledger.db"
    if ledger_db.is_file():
        open_ledger(f"sqlite:///{ledger_db}").close()  # migrates a ledger kept from an older consentgate
    else:
        ledger = open_ledger(f"sqlite:///{ledger_db}")
        ledger.import_file(data / "consent_events.parquet")
        ledger.publish_policy(PublishedPolicy(**published_fields(load_policy(POLICY))), backfill=True)  # a past-dated example
        ledger.close()
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": f"bench-{records}", "sources": {"members": "data/members.parquet", "records": "data/records.parquet",
                                                "consent": {"ledger": "sqlite:///ledger.db"}},
        "policy": str(POLICY), "scope": "first_party", "as_of": "2026-01-01T00:00:00Z", "shards": 16, "slices": 8,
        "output": "out/dataset",
    }), encoding="utf-8")
    return spec


def copy_once(folder: Path) -> float:
    import pyarrow.parquet as pq

    t = time.perf_counter()
    table = pq.read_table(folder / "data" / "records.parquet")
    pq.write_table(table, folder / "copy.parquet", compression="zstd")
    elapsed = time.perf_counter() - t
    del table
    (folder / "copy.parquet").unlink()
    return elapsed


def _tree_rss(root: int) -> tuple[int, int]:
    """(sum, max) of VmRSS in bytes over ``root`` and its descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    sizes = [rss_of(pid) for pid in tree]
    return sum(sizes), max(sizes, default=0)


def rss_of(pid: int) -> int:
    """VmRSS of process ``pid`` in bytes (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def sampled_build(spec: Path, workers: int, sample: Callable[[int, float], None], every: float) -> tuple[float, dict[str, float]]:
    """Run the build as a subprocess, calling ``sample(pid, seconds since start)`` every ``every`` s
    while it runs; return its wall time and the manifest's phase timings."""
    env = {**os.environ, "CONSENTGATE_PSEUDONYM_KEY": os.environ.get("CONSENTGATE_PSEUDONYM_KEY", KEY)}
    cmd = [sys.executable, "-c", "from consentgate.cli.app import main; main()", "build", "run", str(spec),
           "--workers", str(workers), "--quiet", "--replace", "--json"]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=spec.parent)

    def run_sampler() -> None:
        while proc.poll() is None:
            sample(proc.pid, time.perf_counter() - t)
            time.sleep(every)

    sampler = threading.Thread(target=run_sampler, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - t
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"build failed ({proc.returncode}): {err.decode()[-2000:]}")
    return elapsed, json.loads(out)["timings_s"]


def build_once(spec: Path, workers: int) -> tuple[float, int, int, dict[str, float]]:
    peak = [0, 0]

    def sample(pid: int, _at: float) -> None:
        total, biggest = _tree_rss(pid)
        peak[0], peak[1] = max(peak[0], total), max(peak[1], biggest)

    elapsed, timings = sampled_build(spec, workers, sample, 0.1)
    return elapsed, peak[0], peak[1], timings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", default="1000000,10000000", help="Comma-separated record counts.")
    ap.add_argument("--records-per-member", type=float, default=10.0)
    ap.add_argument("--reps", type=int, default=3, help="Repetitions per size (medians are reported).")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data-dir", type=Path, default=REPO / ".bench-data" / "build")
    ap.add_argument("--save", type=Path, default=REPO / "bench" / "results" / "build.txt")
    args = ap.parse_args()
    sizes = [int(x) for x in args.records.split(",")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "src")], check=True)
    lines = [f"# build_bench: records={args.records} workers={args.workers} reps={args.reps} cpus={os.cpu_count()} "
             f"(shared machine; compare ratios)"]
    print(lines[0], flush=True)
    results: dict[int, dict[str, Any]] = {}
    for n in sizes:
        # The default 10 records a member keeps the historical folder names; other ratios get their own.
        folder = args.data_dir / (str(n) if args.records_per_member == 10.0 else f"{n}-rpm{args.records_per_member:g}")
        folder.mkdir(parents=True, exist_ok=True)
        spec = prepare(folder, n, args.records_per_member, args.seed)
        copies, builds, rss_sum, rss_max, phases = [], [], [], [], []
        for rep in range(args.reps):
            copies.append(copy_once(folder))
            b, s, m, t = build_once(spec, args.workers)
            builds.append(b)
            rss_sum.append(s)
            rss_max.append(m)
            phases.append(t)
            print(f"  {n:,} rep {rep + 1}: copy {copies[-1]:.1f} s, build {b:.1f} s, tree RSS {s / 2**30:.2f} GiB, phases {t}", flush=True)
        manifest = json.loads((folder / "out" / "dataset" / "manifest.json").read_text(encoding="utf-8"))
        scanned = int(manifest["counts"].get("content_scanned", n))
        copy_s, build_s = statistics.median(copies), statistics.median(builds)
        med_phases = {k: round(statistics.median(p[k] for p in phases), 1) for k in phases[0]}
        # Each rep's copy runs right before its build, so the pair sees the same machine speed; the median
        # of the pairs' ratios is steadier than the ratio of the medians when the machine's speed drifts.
        pair_ratios = [b / c for b, c in zip(builds, copies)]
        results[n] = {"copy": copy_s, "build": build_s, "rss": max(rss_sum), "rss_max": max(rss_max), "phases": med_phases,
                      "scanned": scanned, "pairs": statistics.median(pair_ratios), "pair_range": (min(pair_ratios), max(pair_ratios))}
    lines.append("| records | members | copy s (median) | build s (median) | build : copy | median of rep ratios (range) "
                 "| records/s | peak RSS tree | peak RSS largest process |")
    lines.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, r in results.items():
        lo, hi = r["pair_range"]
        lines.append(f"| {n:,} | {int(n / args.records_per_member):,} | {r['copy']:.1f} | {r['build']:.1f} | {r['build'] / r['copy']:.1f}x "
                     f"| {r['pairs']:.2f}x ({lo:.2f}-{hi:.2f}) | {n / r['build']:,.0f} | {r['rss'] / 2**30:.2f} GiB | {r['rss_max'] / 2**30:.2f} GiB |")
    for n, r in results.items():
        lines.append(f"phases {n:,} (median s): {r['phases']}")
        lines.append(f"text scanned {n:,}: {r['scanned']:,} records ({100 * r['scanned'] / n:.1f}%); the rest excluded by the screen")
    if len(sizes) >= 2:
        small, large = min(sizes), max(sizes)
        lines.append(f"time ratio {large:,} : {small:,} = {results[large]['build'] / results[small]['build']:.2f} "
                     f"(data ratio {large / small:.0f}); copy ratio {results[large]['copy'] / results[small]['copy']:.2f}")
    text = "\n".join(lines)
    print(text)
    args.save.parent.mkdir(parents=True, exist_ok=True)
    with args.save.open("a", encoding="utf-8") as fh:  # keep earlier runs
        fh.write(f"\n# run of {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}\n{text}\n")


if __name__ == "__main__":
    main()
