"""`consentgate detect scan` / `detect eval`: outputs and clear errors on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from consentgate.cli.app import main

BENCH = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "pii" / "presidio-research-synth_dataset_v2.json"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_scan_text_file_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "in.txt"
    f.write_text("Hi Maria, call +1 415-555-2671\nnothing here\r\nmail zoë@example.com? no: zoe@example.com\n", encoding="utf-8")
    code, out, _ = run(["detect", "scan", str(f), "--json", "--workers", "1"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["texts"] == 3
    assert data["counts"]["PHONE_NUMBER"] == 1 and data["counts"]["EMAIL_ADDRESS"] == 1
    assert "Maria" not in out and "415" not in out  # offsets only, never the text


def test_scan_jsonl_and_parquet_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    j = tmp_path / "in.jsonl"
    j.write_text('{"body": "SSN 078-05-1121"}\n{"body": null}\n', encoding="utf-8")
    code, out, _ = run(["detect", "scan", str(j), "--column", "body", "--json", "--workers", "1"], capsys)
    assert code == 0 and json.loads(out)["counts"] == {"US_SSN": 1}
    p = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["ip 203.0.113.9", "x"], "n": [1, 2]}), p)
    code, out, _ = run(["detect", "scan", str(p), "--json", "--workers", "1"], capsys)
    assert code == 0 and json.loads(out)["counts"] == {"IP_ADDRESS": 1}


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (b"fine\n\xff\xfe broken\n", [], "not valid UTF-8 (line 2"),
        (b"", [], "is empty"),
        (None, ["--column", "missing"], "has no column 'missing'"),
        (None, ["--column", "n"], "not a string column"),
        (b'{"text": 5}\n', ["--format", "jsonl"], "not a string"),
    ],
)
def test_bad_input_is_a_clear_error_without_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, args: list[str], message: str
) -> None:
    if content is None:
        f = tmp_path / "in.parquet"
        pq.write_table(pa.table({"text": ["a"], "n": [1]}), f)
    else:
        f = tmp_path / "in.txt"
        f.write_bytes(content)
    code, out, err = run(["detect", "scan", str(f), "--json", "--workers", "1", *args], capsys)
    assert code == 2
    assert out == ""  # no partial output
    assert message in err and "Hint:" in err
    assert "broken" not in err  # never the text


@pytest.mark.skipif(not BENCH.is_file() and not os.environ.get("CI"), reason="shared benchmark file ../shared/benchmarks/pii not present beside the checkout (CI always has it)")
def test_eval_presidio_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["detect", "eval", str(BENCH), "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert set(data["per_type"]) >= {"PERSON", "CREDIT_CARD", "PHONE_NUMBER", "URL"}
    assert data["pattern_types"]["precision"] >= 0.95 and data["pattern_types"]["recall"] >= 0.95
    assert "ORGANIZATION" in data["ignored_gold_types"]
    code, out, _ = run(["detect", "eval", str(BENCH)], capsys)
    assert code == 0 and "pattern types" in out and "precision" in out


@pytest.mark.slow
def test_fifty_megabyte_single_text_in_bounded_memory(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    block = ("Lorem ipsum dolor sit amet, nothing to see here at all. " * 20 + "Mail ann.lee@example.org now. ") * 44000
    big.write_text(block, encoding="utf-8")
    assert big.stat().st_size > 50_000_000
    code = (
        "import resource, sys\n"
        "from consentgate.cli.app import main\n"
        "rc = main(['detect', 'scan', sys.argv[1], '--json', '--workers', '1'])\n"
        "sys.stderr.write('MAXRSS %d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["counts"] == {"EMAIL_ADDRESS": 44000}
    maxrss_mb = int(proc.stderr.split("MAXRSS ")[1].split()[0]) / 1024
    # Input bytes + one Python str + one Arrow copy + JSON output; the scan itself adds ~1 MB windows.
    assert maxrss_mb < 800, maxrss_mb
