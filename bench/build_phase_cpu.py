"""Cores in use during one build, phase by phase: is any phase leaving a core idle?

Runs the build like ``bench/build_phase_memory.py`` (``consentgate build run SPEC
--workers W --quiet --replace --json`` as a subprocess) and samples the machine's busy
CPU time from ``/proc/stat`` every 100 ms, so processes that have already exited
(detection workers, shard writers, the ledger's chain check and its readers) still
count. Each sample is attributed to a phase from the manifest's timings. Prints per
phase its seconds, the cores in use and the idle core-seconds. Run it on an otherwise
idle machine: other load counts as the build's.

    .venv/bin/python bench/build_phase_cpu.py .bench-data/build/10000000/spec.yaml --workers 2

There is no baseline to compare with: this says where a CPU-bound build could still gain
from more overlap (idle core-seconds) and where only less work would help.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_bench import sampled_build  # noqa: E402
from build_phase_memory import phase_bounds  # noqa: E402


def busy_and_total() -> tuple[int, int]:
    """The machine's busy and total CPU time since boot, in clock ticks (all cores)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", type=Path)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    samples: list[tuple[float, int, int]] = [(0.0, *busy_and_total())]

    def sample(_pid: int, at: float) -> None:
        samples.append((at, *busy_and_total()))

    end, timings = sampled_build(args.spec.resolve(), args.workers, sample, 0.1)
    samples.append((end, *busy_and_total()))

    def at(when: float) -> tuple[float, int, int]:
        return min(samples, key=lambda s: abs(s[0] - when))

    print(f"{'phase':20} {'s':>6} {'cores':>6} {'idle core-s':>12}")
    for phase, a, b in phase_bounds(end, timings):
        s0, s1 = at(a), at(b)
        if s1[0] - s0[0] < 0.2:
            continue
        used = cores * (s1[1] - s0[1]) / max(s1[2] - s0[2], 1)
        print(f"{phase:20} {b - a:6.1f} {used:6.2f} {(cores - used) * (s1[0] - s0[0]):12.2f}")
    print(f"wall {end:.1f} s on {cores} cores; manifest timings {timings}")


if __name__ == "__main__":
    main()
