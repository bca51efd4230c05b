"""Benchmark: consentgate.detect against Presidio (regex recognizers, no_op NLP engine).

Measures, in the same run and on the same texts:

1. the presidio-research labelled set (../shared/benchmarks/pii/...json, MIT):
   texts/s and MB/s of detect+redact for both tools on one core, the speed ratio,
   and per-type precision / recall (span overlap) side by side;
2. generated demo records (consentgate.demo.network.generate_network): texts/s of
   both tools on a sample, and consentgate over 1,000,000 records;
3. memory flatness: peak RSS of a streaming scan (Parquet batches) over 125k ... 1M
   records, each size in a fresh process;
4. building a Detector with the distinct display names of --members generated
   members (757,568 for 1M): cold (empty database cache), warm (cache filled), and
   ``Detector.from_bytes`` (what a process-pool worker does), each in a fresh process.

Presidio is not a consentgate dependency; install it for this script only:
    .venv/bin/pip install presidio-analyzer==2.2.366 presidio-anonymizer==2.2.366
Run:  .venv/bin/python bench/detect_vs_presidio.py [--records 1000000] [--reps 3]
Figures are medians of --reps repetitions (at least 5 for the side-by-side timings,
which alternate the tools round by round so that load from other work on a shared
machine hits both). Compare ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "benchmarks" / "pii" / "presidio-research-synth_dataset_v2.json"
PRESIDIO_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "URL")
KEY = b"bench-key-0123456789abcdef"


def median_time(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(reps):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def interleaved(fns: dict[str, Callable[[], Any]], reps: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Median time of each function over ``reps`` rounds, one call of each per round.

    Alternating the tools means a burst of load from other work on this shared
    machine slows both, instead of whichever happened to be running.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    results: dict[str, Any] = {}
    for _ in range(reps):
        for name, fn in fns.items():
            t = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}, results


def presidio_engines() -> tuple[Any, Any]:
    import logging

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    nlp = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "no_op", "models": [{"lang_code": "en", "model_name": "no_op"}]}
    ).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
    analyzer.analyze("warm up a@b.com http://x.org +1 415-555-2671", language="en")  # loads tldextract data
    return analyzer, AnonymizerEngine()  # type: ignore[no-untyped-call]


def run_presidio(analyzer: Any, anonymizer: Any, texts: list[str]) -> list[list[tuple[str, int, int]]]:
    out = []
    for text in texts:
        results = analyzer.analyze(text, language="en")
        anonymizer.anonymize(text, results)
        out.append([(r.entity_type, r.start, r.end) for r in results])
    return out


def run_consentgate(detector: Any, arr: pa.Array, strategy: str = "pseudonym") -> pa.Table:
    """Detect and redact. ``pseudonym`` (keyed HMAC per value) is what builds use for names;
    ``mask`` ("[EMAIL_ADDRESS]") is the same operation as Presidio's default ``replace``."""
    from consentgate.detect import redact

    result = detector.scan(arr)
    strategies = {t: strategy for t in set(result.spans.column("entity_type").to_pylist())}
    redact(arr, result.spans, strategies, KEY)
    return result.spans


def binding_floor(detector: Any, arr: pa.Array, reps: int) -> dict[str, float]:
    """What the Hyperscan binding costs before any of consentgate's own work: every database over
    the detector's own scan buffers with no match handler, with a Python handler that does
    nothing (the least the binding allows for getting matches out), and with one that keeps them."""
    from array import array

    from consentgate.detect.segments import segment_groups

    scanner = detector.scanner
    bufs = [(seg.buf, scanner.literal_buffer(seg.buf)) for seg in segment_groups(arr)]  # prepared outside the timing

    def keep_all() -> None:
        out = array("q")
        extend = out.extend
        for b, lb in bufs:
            scanner.scan_raw(b, lb, lambda pid, start, end, flags, ctx: extend((pid, start, end)))

    runs: dict[str, Callable[[], Any]] = {
        "Hyperscan, matches found but not reported": lambda: [scanner.scan_raw(b, lb, None) for b, lb in bufs],
        "Hyperscan + a Python handler that does nothing": lambda: [scanner.scan_raw(b, lb, lambda *a: None) for b, lb in bufs],
        "Hyperscan + a Python handler that keeps each match": keep_all,
    }
    floor = {label: median_time(fn, reps)[0] for label, fn in runs.items()}
    floor["phonenumbers: the pass's phone candidates validated alone"] = _phone_validation(detector, arr, reps)
    return floor


def _phone_validation(detector: Any, arr: pa.Array, reps: int) -> float:
    """The time ``validate_phone`` (the ``phonenumbers`` library) takes for the phone candidates of one pass."""
    from consentgate.detect import validators

    seen: list[tuple[str, str]] = []
    real = validators.VALIDATORS["PHONE_NUMBER"]

    def record(text: str, following: str) -> int:
        seen.append((text, following))
        return real(text, following)

    validators.VALIDATORS["PHONE_NUMBER"] = record
    try:
        detector.scan(arr)
    finally:
        validators.VALIDATORS["PHONE_NUMBER"] = real
    return median_time(lambda: [real(t, f) for t, f in seen], reps)[0]


def section_labelled(reps: int, lines: list[str]) -> None:
    from consentgate.datamodel import ENTITY_TYPES
    from consentgate.detect import Detector
    from consentgate.detect.evaluate import load_presidio, predicted_by_row, score_spans

    texts, gold, ignored = load_presidio(DATASET)
    arr = pa.array(texts, pa.string())
    mb = sum(len(t.encode()) for t in texts) / 1e6
    detector = Detector(backend="hyperscan")
    run_consentgate(detector, arr)  # warm (database cache, lexicons)
    analyzer, anonymizer = presidio_engines()
    re2 = Detector(backend="re2")
    run_consentgate(re2, arr)
    med, out = interleaved(
        {
            "presidio": lambda: run_presidio(analyzer, anonymizer, texts),
            "cg": lambda: run_consentgate(detector, arr),
            "cg_mask": lambda: run_consentgate(detector, arr, "mask"),
            "re2": lambda: run_consentgate(re2, arr),
        },
        max(reps, 5),
    )
    pr_s, cg_s, re_s, mask_s = med["presidio"], med["cg"], med["re2"], med["cg_mask"]
    pr_out, cg_spans = out["presidio"], out["cg"]
    n = len(texts)
    lines.append(f"## 1. presidio-research synth_dataset_v2 ({n} texts, {mb:.2f} MB), detect + redact, one core")
    lines.append(f"{'tool':34} {'texts/s':>10} {'MB/s':>8} {'ratio':>8}")
    lines.append(f"{'Presidio 2.2.366 (no_op NLP)':34} {n / pr_s:>10,.0f} {mb / pr_s:>8.3f} {1.0:>8.1f}")
    lines.append(f"{'consentgate (hyperscan)':34} {n / cg_s:>10,.0f} {mb / cg_s:>8.3f} {pr_s / cg_s:>7.1f}x")
    lines.append(f"{'consentgate (hyperscan), mask':34} {n / mask_s:>10,.0f} {mb / mask_s:>8.3f} {pr_s / mask_s:>7.1f}x")
    lines.append(f"{'consentgate (re2 fallback)':34} {n / re_s:>10,.0f} {mb / re_s:>8.3f} {pr_s / re_s:>7.1f}x")
    lines.append("")
    lines.append(f"100x Presidio leaves {pr_s * 10:.1f} ms for one pass over these {n} texts. The Hyperscan binding alone "
                 "(same databases and buffers, one pass, median):")
    for label, secs in binding_floor(detector, arr, max(reps, 5)).items():
        lines.append(f"  {label:58} {secs * 1e3:6.1f} ms")
    lines.append(f"  {'consentgate detect + redact, pseudonym / mask':58} {cg_s * 1e3:6.1f} / {mask_s * 1e3:.1f} ms")
    ours = score_spans(gold, predicted_by_row(cg_spans), ENTITY_TYPES)
    theirs_pred = {i: [x for x in spans if x[0] in ENTITY_TYPES] for i, spans in enumerate(pr_out)}
    theirs = score_spans(gold, theirs_pred, ENTITY_TYPES)
    lines.append("")
    lines.append("Per type (span overlap). Presidio's no_op engine has no NER, so it finds no PERSON/STREET_ADDRESS.")
    lines.append(f"{'type':16} {'gold':>5} | {'P cg':>6} {'R cg':>6} | {'P presidio':>10} {'R presidio':>10}")
    for t in ENTITY_TYPES:
        o, p = ours[t], theirs[t]
        lines.append(f"{t:16} {o.gold:>5} | {o.precision:>6.3f} {o.recall:>6.3f} | {p.precision:>10.3f} {p.recall:>10.3f}")
    for label, types in (("pattern types", PRESIDIO_TYPES), ("all shared", ENTITY_TYPES)):
        from consentgate.detect.evaluate import Score

        o_tot, p_tot = Score(), Score()
        for t in types:
            o_tot.add(ours[t])
            p_tot.add(theirs[t])
        lines.append(f"{label:16} {o_tot.gold:>5} | {o_tot.precision:>6.3f} {o_tot.recall:>6.3f} | {p_tot.precision:>10.3f} {p_tot.recall:>10.3f}")
    lines.append(f"Gold types not scored (neither tool's target): {dict(sorted(ignored.items()))}")


def generate(records: int, out: Path) -> Path:
    from consentgate.demo.network import generate_network

    generate_network(members=max(1, records // 10), seed=11, out=out, records_per_member=10.0)
    return out / "records.parquet"


def section_generated(records: int, reps: int, lines: list[str], workdir: Path) -> Path:
    from consentgate.detect import Detector

    t = time.perf_counter()
    path = generate(records, workdir)
    gen_s = time.perf_counter() - t
    table = pq.read_table(path, columns=["text"])
    n = table.num_rows
    names = pq.read_table(workdir / "members.parquet", columns=["display_name"]).column("display_name").to_pylist()
    detector = Detector(names, backend="hyperscan")
    sample = table.column("text").slice(0, 2000).combine_chunks()
    sample_texts = sample.to_pylist()
    run_consentgate(detector, sample)
    analyzer, anonymizer = presidio_engines()
    med, _ = interleaved(
        {"presidio": lambda: run_presidio(analyzer, anonymizer, sample_texts), "cg": lambda: run_consentgate(detector, sample),
         "cg_mask": lambda: run_consentgate(detector, sample, "mask")},
        max(reps, 5),
    )
    pr_s, cg_s, mask_s = med["presidio"], med["cg"], med["cg_mask"]
    lines.append("")
    lines.append(f"## 2. generated demo records (generate_network, seed 11; {n:,} records generated in {gen_s:.1f} s)")
    lines.append(f"2,000-record sample, detect + redact, one core: Presidio {2000 / pr_s:,.0f} texts/s, "
                 f"consentgate {2000 / cg_s:,.0f} texts/s, ratio {pr_s / cg_s:.1f}x; "
                 f"with mask (Presidio's replace) {2000 / mask_s:,.0f} texts/s, ratio {pr_s / mask_s:.1f}x")
    col = table.column("text")
    mb = sum(c.nbytes for c in col.chunks) / 1e6
    t1, res = median_time(lambda: detector.scan(col), 1)
    lines.append(f"consentgate scan of all {n:,} records, one process: {t1:.1f} s = {n / t1:,.0f} texts/s, {mb / t1:.1f} MB/s "
                 f"({res.spans.num_rows:,} spans, {res.topics.num_rows:,} topic evidence rows)")
    workers = os.cpu_count() or 1
    if workers > 1:
        pooled = Detector(names, backend="hyperscan", workers=workers)
        tp, _ = median_time(lambda: pooled.scan(col), 1)
        lines.append(f"same with a {workers}-process pool: {tp:.1f} s = {n / tp:,.0f} texts/s (machine shared with other work)")
    del table, col, res
    return path


# ru_maxrss of a child started from a big parent inherits the parent's high-water
# mark on Linux, so the children sample their own VmRSS (kB) after every batch.
_STREAM = """
import sys, pyarrow.parquet as pq
from consentgate.detect import Detector
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4
path, limit, scan = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "scan"
det = Detector(backend="hyperscan")
seen = spans = 0
peak = rss()
for batch in pq.ParquetFile(path).iter_batches(batch_size=65536, columns=["text"]):
    if seen >= limit:
        break
    col = batch.column(0).slice(0, limit - seen)
    spans += det.scan(col).spans.num_rows if scan else 0
    seen += len(col)
    peak = max(peak, rss())
print(seen, spans, peak)
"""
_BASE = """
from consentgate.detect import Detector
Detector(backend="hyperscan")
print(int(open("/proc/self/statm").read().split()[1]) * 4)
"""


def section_memory(path: Path, records: int, lines: list[str]) -> None:
    # Re-write the text column with 64k-row row groups so that streaming reads one
    # row group at a time (the generator writes larger row groups).
    stream_path = path.with_name("texts-64k.parquet")
    pq.write_table(pq.read_table(path, columns=["text"]), stream_path, row_group_size=65536)
    path = stream_path
    lines.append("")
    lines.append("## 3. memory flatness: streaming scan (64k-row Parquet row groups and batches), fresh process per size")
    base = subprocess.run([sys.executable, "-c", _BASE], capture_output=True, text=True, check=True).stdout.split()[-1]
    lines.append(f"(a process that only builds the Detector holds {int(base) / 1024:.0f} MB: compiled databases, lexicons, imports)")
    lines.append("baseline: the same process reading the same batches without scanning them (pyarrow's reader keeps its own buffers)")
    lines.append(f"{'records':>10} {'spans':>10} {'max RSS MB, scan':>18} {'read only':>10} {'scan - read':>12}")
    for size in sorted({records // 8, records // 4, records // 2, records}):
        got = {}
        for mode in ("scan", "read"):
            proc = subprocess.run([sys.executable, "-c", _STREAM, str(path), str(size), mode], capture_output=True, text=True, check=True)
            got[mode] = proc.stdout.split()
        seen, spans, rss = got["scan"]
        read_rss = int(got["read"][2])
        lines.append(f"{int(seen):>10,} {int(spans):>10,} {int(rss) / 1024:>18.0f} {read_rss / 1024:>10.0f} {(int(rss) - read_rss) / 1024:>12.0f}")


_BUILD = """
import sys, time
import pyarrow.parquet as pq
t0 = time.perf_counter()
from consentgate.detect import Detector
names = pq.read_table(sys.argv[1]).column(0).to_pylist()  # a list, as the build passes it
t1 = time.perf_counter()
det = Detector(member_names=names)
t2 = time.perf_counter()
if len(sys.argv) > 2:
    open(sys.argv[2], "wb").write(det.to_bytes())
print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
"""
_RESTORE = """
import sys, time
t0 = time.perf_counter()
from consentgate.detect import Detector
data = open(sys.argv[1], "rb").read()
t1 = time.perf_counter()
Detector.from_bytes(data)
print(f"{t1 - t0:.3f} {time.perf_counter() - t1:.3f} {len(data)}")
"""


def section_construction(members: int, lines: list[str], workdir: Path) -> None:
    import numpy as np
    import pyarrow.compute as pc

    from consentgate.demo.members import generate_members

    names = pc.unique(generate_members(np.random.default_rng(11), members).names)
    path = workdir / "names.parquet"
    pq.write_table(pa.table({"display_name": names}), path)
    env = {**os.environ, "CONSENTGATE_CACHE_DIR": str(workdir / "hs-cache")}
    blob = workdir / "detector.bin"

    def run(script: str, *args: str) -> list[str]:
        out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True, env=env)
        return out.stdout.split()

    lines.append("")
    lines.append(f"## 4. Detector(member_names=...) with {len(names):,} distinct display names ({members:,} generated members)")
    lines.append("fresh process each; seconds for the constructor (imports and reading the names excluded)")
    cold = float(run(_BUILD, str(path))[1])
    warm = [float(run(_BUILD, str(path), str(blob))[1]) for _ in range(3)]
    restore = [run(_RESTORE, str(blob)) for _ in range(3)]
    lines.append(f"cold (empty Hyperscan database cache, compiles): {cold:.1f} s")
    lines.append(f"warm (databases from the disk cache), median of 3: {statistics.median(warm):.2f} s")
    lines.append(f"Detector.from_bytes (databases carried in the {int(restore[0][2]) / 1e6:.0f} MB blob), median of 3: "
                 f"{statistics.median(float(r[1]) for r in restore):.2f} s")


def _code_version() -> str:
    """The commit of this checkout, marked when the working tree differs from it."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "bench/*.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return rev + (" + uncommitted changes" if dirty.strip() else "")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="generated records for sections 2 and 3")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per timing (median reported)")
    ap.add_argument("--members", type=int, default=1_000_000, help="generated members for section 4 (0 skips it)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "detect_vs_presidio.txt")
    args = ap.parse_args()
    lines = [
        "consentgate.detect vs Presidio  (bench/detect_vs_presidio.py)",
        f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}; machine shared with other work",
        f"command: {' '.join([Path(sys.executable).name, *sys.argv])}",
        f"run {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, code {_code_version()}, load average at start {_load()}",
        "",
    ]
    section_labelled(args.reps, lines)
    print("\n".join(lines), flush=True)
    mark = len(lines)
    with tempfile.TemporaryDirectory(prefix="cg-bench-") as tmp:
        path = section_generated(args.records, args.reps, lines, Path(tmp))
        section_memory(path, args.records, lines)
        if args.members:
            section_construction(args.members, lines, Path(tmp))
    lines += ["", f"load average at end {_load()} ({time.strftime('%H:%M', time.gmtime())} UTC)"]
    print("\n".join(lines[mark:]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    earlier = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
    args.out.write_text("\n".join(lines) + "\n" + ("\n" + earlier if earlier else ""), encoding="utf-8")  # latest run first
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
