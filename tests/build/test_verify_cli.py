"""`build verify` catches tampering and refuses incomplete folders; the CLI commands and their exit codes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from consentgate.build import list_builds, shard_array, shard_of, verify_build
from consentgate.build.manifest import read_manifest
from consentgate.cli.app import main
from consentgate.errors import BuildVerifyError

from .conftest import KEY


@pytest.fixture()
def copy(built: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "ds"
    shutil.copytree(built, dest)
    return dest


def test_verify_reports_a_changed_data_file(copy: Path) -> None:
    shard = copy / "data" / "shard-00001.parquet"
    t = pq.read_table(shard)
    pq.write_table(t.slice(1), shard, compression="zstd")
    report = verify_build(copy)
    assert not report.ok
    assert any("data/shard-00001.parquet: sha256" in p for p in report.problems)
    assert any("records differ from decisions.parquet" in p for p in report.problems)


def test_verify_reports_edited_manifest_counts_and_extra_files(copy: Path) -> None:
    m = read_manifest(copy / "manifest.json")
    m["counts"]["by_decision"]["include"] += 1
    (copy / "manifest.json").write_text(json.dumps(m))
    (copy / "data" / "extra.parquet").write_bytes(b"x")
    problems = verify_build(copy).problems
    assert any(p.startswith("content_hash") for p in problems)
    assert any("counts by decision" in p for p in problems)
    assert any("extra.parquet: file not listed" in p for p in problems)


def test_verify_refuses_incomplete_folders(copy: Path, tmp_path: Path) -> None:
    partial = tmp_path / ".ds.partial-123-abcd1234"
    shutil.copytree(copy, partial)
    with pytest.raises(BuildVerifyError, match="did not finish"):
        verify_build(partial)
    (copy / "manifest.json").unlink()
    with pytest.raises(BuildVerifyError, match="manifest.json is missing"):
        verify_build(copy)
    assert list_builds(tmp_path) == []


def test_verify_reads_the_folder_named_not_a_pattern(built: Path, tmp_path: Path) -> None:
    # To DuckDB ``ds[1]`` is a pattern matching ``ds1``: verify must count ``ds[1]``'s own decisions.
    other = tmp_path / "ds1"
    shutil.copytree(built, other)
    table = pq.read_table(other / "decisions.parquet")
    pq.write_table(table.slice(0, table.num_rows // 2), other / "decisions.parquet")  # ds1's counts are now wrong
    odd = tmp_path / "ds[1]"
    shutil.copytree(built, odd)
    assert not verify_build(other).ok
    report = verify_build(odd)
    assert report.ok, report.problems


def test_verify_reads_a_dataset_under_hive_like_folder_names_as_it_is(built: Path, tmp_path: Path) -> None:
    # DuckDB took ``decision=include/`` and ``shard=0/`` above the dataset for columns of every row it counted.
    odd = tmp_path / "decision=include" / "shard=0" / "ds"
    shutil.copytree(built, odd)
    report = verify_build(odd)
    assert report.ok, report.problems


def test_list_finds_complete_builds(built: Path) -> None:
    rows = list_builds(built.parent)
    assert [r["path"] for r in rows] == [str(built)]
    assert rows[0]["policy"] == "ai-training 2025.1" and rows[0]["included"] > 0


def test_cli_verify_list_and_exit_codes(built: Path, copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "verify", str(built)]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["build", "verify", str(built), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main(["build", "list", str(built.parent), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "test-build"
    (copy / "README.md").write_text("changed")
    assert main(["build", "verify", str(copy)]) == 1
    captured = capsys.readouterr()
    assert "DIFFERS README.md: sha256" in captured.out and "Error:" in captured.err
    assert main(["build", "verify", str(copy / "data")]) == 1


def test_cli_run_and_explain(small_network: Path, write_spec: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
    spec = write_spec(small_network)
    assert main(["build", "run", str(spec), "--workers", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"]["records"] > 0 and len(out["content_hash"]) == 64
    assert main(["build", "run", str(spec), "--workers", "1", "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["build", "run", str(spec), "--workers", "1", "--quiet", "--replace"]) == 0
    assert out["content_hash"] in capsys.readouterr().out
    rid = pq.read_table(Path(out["output"]) / "decisions.parquet").column("record_id")[0].as_py()
    assert main(["build", "explain", str(spec), "--record", rid, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["record_id"] == rid
    assert main(["build", "explain", str(spec), "--record", "no-such-record"]) == 2
    assert "not in the records source" in capsys.readouterr().err
    assert main(["build", "run", str(spec), "--engine", "spark"]) == 2


def test_shard_rule_matches_its_definition() -> None:
    # SHA-256("abc") = ba7816bf8f01cfea..., first 8 bytes big-endian mod 16 = 0xba7816bf8f01cfea % 16 = 10
    assert shard_of("abc", 16) == 0xBA7816BF8F01CFEA % 16 == 10


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=20), min_size=1, max_size=40), st.integers(min_value=1, max_value=1000))
def test_vectorised_shards_equal_the_reference(keys: list[str], shards: int) -> None:
    import pyarrow as pa

    assert shard_array(pa.array(keys, pa.string()), shards).to_pylist() == [shard_of(k, shards) for k in keys]
