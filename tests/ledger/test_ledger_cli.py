"""`consentgate ledger ...` end to end through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from ledger_helpers import event_rows, write_rows

from consentgate.cli.app import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["ledger", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_full_cycle(ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--db", ledger_url]
    assert run(capsys, "init", *db)[0] == 0
    code, out, _ = run(capsys, "record", *db, "--member", "m1", "--scope", "affiliate", "--choice", "grant",
                       "--policy-version", "2025.1", "--idempotency-key", "k1", "--json")
    first = json.loads(out)
    assert code == 0 and first["seq"] == 1 and first["policy_version"] == "2025.1"
    code, out, _ = run(capsys, "record", *db, "--member", "m1", "--scope", "affiliate", "--choice", "grant",
                       "--policy-version", "2025.1", "--idempotency-key", "k1", "--json")
    assert json.loads(out) == first
    path = write_rows(event_rows(30), tmp_path / "e.csv")
    code, out, _ = run(capsys, "import", str(path), *db)
    assert code == 0 and "Imported 30 events" in out
    code, out, _ = run(capsys, "history", *db, "--member", "m1", "--json")
    assert [e["seq"] for e in json.loads(out)] == [1, 3, 13, 23]
    code, out, _ = run(capsys, "show", *db, "--member", "m1")
    assert code == 0 and "affiliate" in out
    code, out, _ = run(capsys, "snapshot", *db, "--as-of", "2024-01-01T00:10:00Z", "--out", str(tmp_path / "s.parquet"), "--json")
    info = json.loads(out)
    assert code == 0 and info["head_seq"] == 31 and info["rows"] == pq.read_table(tmp_path / "s.parquet").num_rows == 11
    code, out, _ = run(capsys, "verify", *db)
    assert code == 0 and "31 events" in out


def test_errors_exit_2_with_a_message(sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--db", sqlite_url]
    code, _, err = run(capsys, "show", *db, "--member", "m1")
    assert code == 2 and "no ledger database" in err
    run(capsys, "init", *db)
    code, _, err = run(capsys, "show", *db, "--member", "ghost")
    assert code == 2 and "has no events" in err
    code, _, err = run(capsys, "show", *db, "--member", "m1", "--as-of", "2024-01-01T00:00:00")
    assert code == 2 and "has no timezone" in err
    code, _, err = run(capsys, "record", *db, "--member", "m1", "--scope", "world", "--choice", "grant")
    assert code == 2 and "unknown scope" in err
    bad = event_rows(5)
    bad[3]["choice"] = "maybe"
    code, _, err = run(capsys, "import", str(write_rows(bad, tmp_path / "b.jsonl")), *db)
    assert code == 2 and "row 4: unknown choice 'maybe'" in err


def test_db_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CONSENTGATE_DB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert run(capsys, "record", "--member", "m1", "--scope", "first_party", "--choice", "deny")[0] == 0
    assert (tmp_path / "env.db").is_file()


def test_help_explains_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("init", "record", "import", "show", "history", "snapshot", "verify"):
        code, out, _ = run(capsys, cmd, "--help")
        assert code == 0 and "--db" in out
