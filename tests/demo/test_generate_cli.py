"""`consentgate demo generate` end to end through the real CLI entry point."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from consentgate.cli.app import main
from consentgate.demo.network import FILES


def _digest(folder: Path) -> dict[str, str]:
    return {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in FILES}


def test_generate_twice_gives_identical_file_hashes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        assert main(["demo", "generate", "--members", "2000", "--seed", "7", "--out", str(tmp_path / name)]) == 0
    out = capsys.readouterr().out
    assert "2,000 members" in out and "20,000 records" in out
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--members", "-5"], "--members"),
        (["--members", "0"], "--members"),
        (["--records-per-member", "0"], "--records-per-member"),
    ],
)
def test_bad_flag_values_give_one_line_error_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code = main(["demo", "generate", *args, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2
    first = err.splitlines()[0]
    assert first.startswith("Error: ") and needle in first
    assert "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_out_that_is_a_file_gives_one_line_error_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "taken"
    target.write_text("x")
    code = main(["demo", "generate", "--members", "10", "--out", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("Error: ") and "not a folder" in err.splitlines()[0]
    assert "Traceback" not in err and target.read_text() == "x"


def test_bytes_do_not_depend_on_python_hash_seed(tmp_path: Path) -> None:
    """Two real processes with different PYTHONHASHSEED write the same bytes."""
    import os
    import subprocess
    import sys

    for name, hash_seed in (("p1", "1"), ("p2", "4242")):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        code = "from pathlib import Path; from consentgate.demo.network import generate_network as g; g(300, 3, Path(%r))"
        subprocess.run([sys.executable, "-c", code % str(tmp_path / name)], check=True, env=env, timeout=120)
    assert _digest(tmp_path / "p1") == _digest(tmp_path / "p2")


def test_a_folder_with_a_ledger_is_not_regenerated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README loads demo-data/ledger.db from the generated events: regenerating over it would leave
    a ledger of the old network beside the new files (and an import would mix the two)."""
    target = tmp_path / "demo-data"
    assert main(["demo", "generate", "--members", "50", "--seed", "1", "--out", str(target)]) == 0
    before = _digest(target)
    (target / "ledger.db").write_bytes(b"stand-in")
    capsys.readouterr()
    code = main(["demo", "generate", "--members", "60", "--seed", "2", "--out", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("Error: ") and "ledger.db" in err.splitlines()[0]
    assert _digest(target) == before and (target / "ledger.db").read_bytes() == b"stand-in"
    (target / "ledger.db").unlink()
    (target / "ledger.db-wal").write_bytes(b"left by a crash")  # replayed by a new ledger.db: still refused
    assert main(["demo", "generate", "--members", "60", "--seed", "2", "--out", str(target)]) == 2
    assert "ledger.db-wal" in capsys.readouterr().err
    (target / "ledger.db-wal").unlink()
    assert main(["demo", "generate", "--members", "60", "--seed", "2", "--out", str(target)]) == 0
    assert _digest(target) != before
