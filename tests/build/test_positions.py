"""The detection workers read the candidates' text from a Parquet source by position (``build.positions``).

Real builds (DuckDB, the detector, worker processes) compare the two ways text reaches
detection: read by the workers from the Parquet row groups, and streamed from DuckDB.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from consentgate.build import load_spec, run_build
from consentgate.build import duckdb_engine, positions
from consentgate.build.positions import GroupRead, plan_reads, read_candidates
from consentgate.build.sources import open_source
from consentgate.build.spec import SourceSpec, TableMapping
from consentgate.build.steps import DETECT_SCHEMA
from consentgate.config import Settings
from consentgate.errors import InputError

from tests.build.conftest import copy_data

COLUMNS = ("record_id", "thread_id", "text")


def _spy(monkeypatch: pytest.MonkeyPatch, *, stream: bool = False) -> list[Any]:
    """Record what ``_group_reads`` returned (None: streamed from DuckDB); ``stream`` forces DuckDB's stream."""
    seen: list[Any] = []
    real = duckdb_engine._group_reads

    def wrapped(*args: Any) -> Any:
        out = None if stream else real(*args)
        seen.append(out)
        return out

    monkeypatch.setattr(duckdb_engine, "_group_reads", wrapped)
    return seen


@pytest.fixture()
def grouped(small_network: Path, tmp_path: Path) -> Path:
    """The small network with its records rewritten in row groups of 100 rows (about 30 groups)."""
    net = copy_data(small_network, tmp_path / "net")
    records = net / "data" / "records.parquet"
    pq.write_table(pq.read_table(records), records, row_group_size=100)
    return net


@pytest.mark.parametrize("workers", [1, 2])
def test_text_read_by_the_workers_gives_the_dataset_streamed_from_duckdb(grouped: Path, write_spec: Callable[..., Path], settings: Settings,
                                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    spec = load_spec(write_spec(grouped, shards=3))
    seen = _spy(monkeypatch)
    read = run_build(spec, workers=workers, progress=False, settings=settings)
    assert seen and seen[0] is not None and len(seen[0]) > 2 * workers  # the workers read the row groups
    assert sum(len(r.rows) for r in seen[0]) == read.counts["content_scanned"]
    moved = tmp_path / "read"
    read.output.rename(moved)
    streamed_seen = _spy(monkeypatch, stream=True)
    streamed = run_build(spec, workers=workers, progress=False, settings=settings)
    assert streamed_seen == [None]
    assert read.content_hash == streamed.content_hash
    for rel in ["decisions.parquet", "data/shard-00000.parquet", "data/shard-00001.parquet", "data/shard-00002.parquet"]:
        assert (moved / rel).read_bytes() == (streamed.output / rel).read_bytes(), rel


def test_a_file_with_too_few_row_groups_for_the_workers_is_streamed(small_network: Path, write_spec: Callable[..., Path], settings: Settings,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert pq.ParquetFile(small_network / "data" / "records.parquet").metadata.num_row_groups < 4
    seen = _spy(monkeypatch)
    run_build(load_spec(write_spec(small_network, shards=3)), workers=2, progress=False, settings=settings)
    assert seen == [None]


# -- plan_reads and read_candidates on small files -----------------------------------------------------

def _file(path: Path, n: int, group: int, **extra: pa.Array) -> Path:
    table = pa.table({"record_id": [f"r{i:04d}" for i in range(n)], "thread_id": [None if i % 3 else f"t{i % 7}" for i in range(n)],
                      "text": [f"text of record {i}" for i in range(n)], **extra})
    pq.write_table(table, path, row_group_size=group)
    return path


def _places(*pairs: tuple[int, int]) -> pa.Table:
    return pa.table({"_file": pa.array([f for f, _ in pairs], pa.uint64()), "_pos": pa.array([p for _, p in pairs], pa.int64())})


def test_plan_reads_covers_every_candidate_once_across_files_and_groups(tmp_path: Path) -> None:
    a, b = _file(tmp_path / "a.parquet", 25, 10), _file(tmp_path / "b.parquet", 12, 5)
    wanted = [(0, 0), (0, 9), (0, 10), (0, 24), (1, 3), (1, 11)]
    reads = plan_reads((a, b), "src", COLUMNS, _places(*wanted), workers=2)
    assert reads is not None
    got = [(r.path, r.group, r.rows.tolist()) for r in reads]
    assert got == [(str(a), 0, [0, 9]), (str(a), 1, [0]), (str(a), 2, [4]), (str(b), 0, [3]), (str(b), 2, [1])]
    rows = [row for r in reads for batch in read_candidates(r, DETECT_SCHEMA) for row in batch.to_pylist()]
    assert [x["record_id"] for x in rows] == ["r0000", "r0009", "r0010", "r0024", "r0003", "r0011"]
    assert rows[0] == {"record_id": "r0000", "thread_id": "t0", "text": "text of record 0"}


def test_plan_reads_declines_what_workers_should_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _file(tmp_path / "plain.parquet", 40, 10)
    places = _places((0, 1), (0, 39))
    assert plan_reads((plain,), "src", COLUMNS, places, workers=2) is not None
    assert plan_reads((plain,), "src", COLUMNS, places, workers=3) is None  # 4 groups for 3 workers
    assert plan_reads((plain,), "src", COLUMNS, _places((0, 1), (0, 40)), workers=1) is None  # past the end: the file changed
    numbered = _file(tmp_path / "numbered.parquet", 40, 10, body=pa.array(range(40)))
    assert plan_reads((numbered,), "src", ("record_id", "thread_id", "body"), places, workers=1) is None  # not text
    assert plan_reads((plain,), "src", ("record_id", "thread_id", "missing"), places, workers=1) is None
    monkeypatch.setattr(positions, "MAX_GROUP_ROWS", 9)
    assert plan_reads((plain,), "src", COLUMNS, places, workers=1) is None  # a row group too large to share out


def test_read_candidates_reads_in_batches_and_keeps_the_order(tmp_path: Path) -> None:
    path = _file(tmp_path / "f.parquet", 30, 30)
    rows = np.array([0, 3, 4, 5, 17, 29])
    batches = list(read_candidates(GroupRead(str(path), "src", 0, rows, COLUMNS, 30, batch_rows=4), DETECT_SCHEMA))
    assert all(b.schema == DETECT_SCHEMA for b in batches) and len(batches) == 4  # batches 0-3, 4-7, 16-19, 28-29
    assert [x for b in batches for x in b.column("record_id").to_pylist()] == [f"r{i:04d}" for i in rows]


def test_text_that_is_not_utf8_is_refused_with_the_column(tmp_path: Path) -> None:
    bad = pa.array([b"fine", b"\xff\xfe broken"], pa.binary()).view(pa.string())
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "thread": [None, None], "body": bad}, schema=pa.schema(
        [("id", pa.string()), ("thread", pa.string()), ("body", pa.string())])), path)
    with pytest.raises(InputError, match="'body'.*not valid UTF-8") as err:
        list(read_candidates(GroupRead(str(path), "records.parquet", 0, np.array([1]), ("id", "thread", "body"), 2), DETECT_SCHEMA))
    assert err.value.details["field"] == "body" and "broken" not in err.value.message


def test_a_source_column_named_like_duckdbs_row_number_gets_no_positions(small_network: Path, tmp_path: Path) -> None:
    # A source column called file_row_number would stand in for DuckDB's virtual column: the text is streamed then.
    table = pq.read_table(small_network / "data" / "records.parquet")
    shadowed = tmp_path / "shadowed.parquet"
    pq.write_table(table.append_column("file_row_number", pa.array(np.zeros(table.num_rows, dtype=np.int64))), shadowed)
    con = duckdb.connect()
    try:
        plain = open_source(con, "records", SourceSpec(path=small_network / "data" / "records.parquet"), TableMapping(), "plain")
        assert plain.positioned == "plain_at"
        first = con.execute("SELECT _file, _pos, record_id FROM plain_at ORDER BY _pos LIMIT 1").fetchone()
        assert first == (0, 0, table.column("record_id")[0].as_py())
        assert open_source(con, "records", SourceSpec(path=shadowed), TableMapping(), "shadowed").positioned is None
    finally:
        con.close()


def test_places_are_not_taken_where_a_column_stands_in_for_duckdbs(tmp_path: Path) -> None:
    from consentgate.build.sources import _plain_places

    assert _plain_places({"record_id": "VARCHAR"})
    assert not _plain_places({"FILE_ROW_NUMBER": "BIGINT"})  # DuckDB matches names in any case
    assert not _plain_places({"File_Index": "BIGINT"})


def test_a_file_that_changed_since_planning_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path / "f.parquet", 30, 10)
    reads = plan_reads((path,), "src", COLUMNS, _places((0, 2), (0, 25)), workers=1)
    assert reads is not None
    _file(path, 30, 15)  # rewritten with other row groups
    with pytest.raises(InputError, match="changed during the build"):
        list(read_candidates(reads[0], DETECT_SCHEMA))
    path.write_bytes(b"not parquet any more")
    with pytest.raises(InputError, match="could not be read again"):
        list(read_candidates(reads[0], DETECT_SCHEMA))


def test_long_rows_are_read_in_fewer_rows_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A read batch holds about READ_BATCH_BYTES of the columns read, however long the texts: 20 texts of 100 kB
    # with a 1 MB budget are read ~10 at a time, where short ones are read READ_BATCH_ROWS at a time.
    monkeypatch.setattr(positions, "READ_BATCH_BYTES", 1_000_000)
    long_path, short_path = tmp_path / "long.parquet", tmp_path / "short.parquet"
    pq.write_table(pa.table({"record_id": [f"r{i}" for i in range(20)], "thread_id": pa.array([None] * 20, pa.string()),
                             "text": ["".join(chr(33 + (i * 7 + j) % 90) for j in range(100_000)) for i in range(20)]}), long_path)
    _file(short_path, 20, 20)
    assert 5 <= positions.read_batch_rows(pq.ParquetFile(long_path).metadata, COLUMNS) <= 10
    assert positions.read_batch_rows(pq.ParquetFile(short_path).metadata, COLUMNS) == positions.READ_BATCH_ROWS
    reads = plan_reads((long_path,), "src", COLUMNS, _places(*[(0, i) for i in range(20)]), workers=1)
    assert reads is not None and reads[0].batch_rows < 20
    batches = list(read_candidates(reads[0], DETECT_SCHEMA))
    assert len(batches) > 1 and sum(b.num_rows for b in batches) == 20


def test_a_folder_of_files_read_by_the_workers_gives_the_streamed_dataset(small_network: Path, write_spec: Callable[..., Path],
                                                                         settings: Settings, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # Three files of unequal size in a folder: each candidate's file index must name the file the worker opens.
    net = copy_data(small_network, tmp_path / "net")
    table = pq.read_table(net / "data" / "records.parquet")
    folder = net / "data" / "records"
    folder.mkdir()
    cuts = [0, table.num_rows // 5, table.num_rows // 2, table.num_rows]
    for k, (lo, hi) in enumerate(zip(cuts, cuts[1:])):
        pq.write_table(table.slice(lo, hi - lo), folder / f"part-{k}.parquet", row_group_size=150)
    spec = load_spec(write_spec(net, shards=3, sources={"members": str(net / "data" / "members.parquet"), "records": str(folder),
                                                        "consent": {"ledger": f"sqlite:///{net / 'ledger.db'}"}}))
    seen = _spy(monkeypatch)
    read = run_build(spec, workers=2, progress=False, settings=settings)
    assert seen[0] is not None and {Path(r.path).name for r in seen[0]} == {"part-0.parquet", "part-1.parquet", "part-2.parquet"}
    moved = tmp_path / "read"
    read.output.rename(moved)
    _spy(monkeypatch, stream=True)
    streamed = run_build(spec, workers=2, progress=False, settings=settings)
    assert read.content_hash == streamed.content_hash
    assert read.counts["content_scanned"] == streamed.counts["content_scanned"] > 0
