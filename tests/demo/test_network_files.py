"""generate_network: files, schemas, determinism and argument checking."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from consentgate import datamodel
from consentgate.demo.network import FILES, generate_network
from consentgate.errors import InputError

Network = Any  # the gen_network fixture (tests/demo/conftest.py)


def _hashes(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES}


def test_same_seed_gives_identical_files_and_other_seed_differs(gen_network: Network, tmp_path: Path) -> None:
    again = generate_network(members=2000, seed=7, out=tmp_path / "again")
    assert again.describe() == gen_network.result.describe()
    assert _hashes(tmp_path / "again") == _hashes(gen_network.result.out)
    other = generate_network(members=2000, seed=8, out=tmp_path / "other")
    differing = {k for k, v in _hashes(tmp_path / "other").items() if _hashes(gen_network.result.out)[k] != v}
    assert differing == set(FILES), other.describe()


@pytest.mark.parametrize("name,schema", sorted(datamodel.TABLE_SCHEMAS.items()))
def test_files_have_exactly_the_canonical_schema(gen_network: Network, name: str, schema: object) -> None:
    assert pq.read_schema(gen_network.result.out / f"{name}.parquet").remove_metadata().equals(schema, check_metadata=False)


def test_counts_match_result_and_default_records_per_member(gen_network: Network) -> None:
    r = gen_network.result
    assert (r.members, r.records, r.consent_events) == (gen_network.members.num_rows, gen_network.records.num_rows, gen_network.consent.num_rows)
    assert r.labels == gen_network.labels.num_rows
    assert r.records == 20_000
    text = r.describe()
    assert "2,000 members" in text and "20,000 records" in text


def test_records_per_member_is_honoured(tmp_path: Path) -> None:
    result = generate_network(members=50, seed=1, out=tmp_path / "x", records_per_member=2.5)
    assert pq.read_metadata(tmp_path / "x" / "records.parquet").num_rows == result.records == 125


@pytest.mark.parametrize("members", [0, -5])
def test_non_positive_members_is_an_input_error(tmp_path: Path, members: int) -> None:
    with pytest.raises(InputError, match="members"):
        generate_network(members=members, seed=1, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("rpm", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_records_per_member_is_an_input_error(tmp_path: Path, rpm: float) -> None:
    with pytest.raises(InputError, match="records_per_member"):
        generate_network(members=10, seed=1, out=tmp_path / "x", records_per_member=rpm)


def test_negative_seed_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="seed"):
        generate_network(members=10, seed=-1, out=tmp_path / "x")


def test_out_that_is_an_existing_file_is_an_input_error(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    with pytest.raises(InputError, match="not a folder"):
        generate_network(members=10, seed=1, out=target)
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]  # no temp folder left behind


def test_existing_folder_keeps_other_files_and_gets_all_four(tmp_path: Path) -> None:
    (tmp_path / "ledger.db").write_text("other stage")
    generate_network(members=20, seed=3, out=tmp_path)
    assert (tmp_path / "ledger.db").read_text() == "other stage"
    assert all((tmp_path / f).is_file() for f in FILES)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("members", [1, 2, 3, 9])
def test_tiny_networks_still_generate(tmp_path: Path, members: int) -> None:
    result = generate_network(members=members, seed=5, out=tmp_path / "tiny", records_per_member=20)
    records = pq.read_table(tmp_path / "tiny" / "records.parquet")
    assert result.records == records.num_rows == members * 20
    ids = set(pq.read_table(tmp_path / "tiny" / "members.parquet")["member_id"].to_pylist())
    for parts, author in zip(records["participants"].to_pylist(), records["author_id"].to_pylist()):
        assert author in parts and set(parts) <= ids and len(set(parts)) == len(parts)
