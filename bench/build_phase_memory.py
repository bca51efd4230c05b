"""Peak memory of one build, phase by phase: where does the build's RSS go?

Runs ``consentgate build run SPEC --workers W --quiet --replace --json`` as a subprocess
(the spec ``bench/build_bench.py`` prepares, e.g. ``.bench-data/build/10000000/spec.yaml``),
samples every 50 ms the RSS of its whole process tree (main process, detection and shard
workers, the ledger's chain check) and of the main process alone, and attributes each
sample to a phase using the phase timings of the build's manifest (phases run one after
another; the time before the first is start-up plus ``prepare``). Prints one line per
phase: its seconds, the peak RSS of the tree and of the main process.

    .venv/bin/python bench/build_phase_memory.py .bench-data/build/10000000/spec.yaml --workers 2

There is no baseline to compare with: this explains the peak that build_bench.py reports.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_bench import _tree_rss, rss_of, sampled_build  # noqa: E402

PHASES_LAST_FIRST = ("manifest", "ledger_verify_wait", "write", "decide", "detect", "screen", "sources")


def phase_bounds(end: float, timings: dict[str, float]) -> list[tuple[str, float, float]]:
    """``(phase, start, end)`` in seconds since the build started, in order: the phases run one
    after another and end with the build; what comes before the first is start-up plus ``prepare``."""
    bounds: list[tuple[str, float, float]] = []
    t = end
    for phase in PHASES_LAST_FIRST:
        bounds.append((phase, t - timings.get(phase, 0.0), t))
        t -= timings.get(phase, 0.0)
    bounds.append(("start-up + prepare", 0.0, t))
    return bounds[::-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", type=Path)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    spec = args.spec.resolve()
    samples: list[tuple[float, int, int]] = []

    def sample(pid: int, at: float) -> None:
        samples.append((at, _tree_rss(pid)[0], rss_of(pid)))

    end, timings = sampled_build(spec, args.workers, sample, 0.05)
    gib = float(1 << 30)
    print(f"{'phase':20} {'s':>6} {'tree GiB':>9} {'main GiB':>9}")
    for phase, a, b in phase_bounds(end, timings):
        inside = [s for s in samples if a <= s[0] < b]
        if inside:
            print(f"{phase:20} {b - a:6.1f} {max(s[1] for s in inside) / gib:9.2f} {max(s[2] for s in inside) / gib:9.2f}")
    print(f"wall {end:.1f} s; manifest timings {timings}")


if __name__ == "__main__":
    main()
