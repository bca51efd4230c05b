"""Subject bitmaps: one query over the included records' folder gives each shard's members (``build.subjects``)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyroaring import BitMap

from consentgate.build.subjects import write_subject_bitmaps
from consentgate.errors import BuildError


def _setup(tmp_path: Path, participants: list[list[str]], shards: list[int]) -> tuple[Path, Path]:
    """The member index, and the included records as the decide phase writes them (``shard=K/*.parquet``, each
    file with its own ``shard`` column too)."""
    index = tmp_path / "members.parquet"
    pq.write_table(pa.table({"member_id": ["a", "b", "c", "d"], "index": pa.array([0, 1, 2, 3], pa.uint32())}), index)
    (tmp_path / "subjects").mkdir()
    included = tmp_path / "included"
    included.mkdir()
    for k in sorted(set(shards)):
        (included / f"shard={k}").mkdir()
        rows = [p for p, s in zip(participants, shards) if s == k]
        pq.write_table(pa.table({"participants": pa.array(rows, pa.list_(pa.string())), "shard": pa.array([k] * len(rows), pa.int32())}),
                       included / f"shard={k}" / "data_0.parquet")
    return included, index


def _bitmaps(tmp_path: Path, shards: int) -> list[list[int]]:
    return [list(BitMap.deserialize((tmp_path / "subjects" / f"shard-{k:05d}.roaring").read_bytes())) for k in range(shards)]


def test_each_shard_gets_the_index_of_every_participant(tmp_path: Path) -> None:
    included, index = _setup(tmp_path, [["a", "c"], ["c"], ["d", "b", "d"]], [0, 0, 2])
    counts = write_subject_bitmaps(duckdb.connect(), included, index, tmp_path, 3)
    assert _bitmaps(tmp_path, 3) == [[0, 2], [], [1, 3]]  # a shard without records gets an empty bitmap
    assert counts == [2, 0, 2]


def test_no_included_record_gives_empty_bitmaps(tmp_path: Path) -> None:
    included, index = _setup(tmp_path, [], [])
    assert write_subject_bitmaps(duckdb.connect(), included, index, tmp_path, 2) == [0, 0]
    assert _bitmaps(tmp_path, 2) == [[], []]


def test_a_participant_missing_from_the_member_index_stops_the_build(tmp_path: Path) -> None:
    included, index = _setup(tmp_path, [["a", "zz"]], [1])
    with pytest.raises(BuildError, match="missing from the member index"):
        write_subject_bitmaps(duckdb.connect(), included, index, tmp_path, 2)


def test_a_shard_outside_the_range_stops_the_build(tmp_path: Path) -> None:
    included, index = _setup(tmp_path, [["a"], ["b"]], [0, 5])
    with pytest.raises(BuildError, match="outside 0..1"):
        write_subject_bitmaps(duckdb.connect(), included, index, tmp_path, 2)
