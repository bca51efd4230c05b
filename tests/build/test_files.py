"""files: the dataset's fixed Parquet writer options."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa


def test_statistics_are_written_for_the_columns_a_reader_can_skip_row_groups_by(tmp_path: Path) -> None:
    """ids, numbers and times get min/max per row group; lists, booleans and the dictionary-encoded
    low-cardinality columns (every row group holds nearly every value) do not."""
    import pyarrow.parquet as pq

    from consentgate.build.decide import DECISIONS_SCHEMA
    from consentgate.build.files import statistics_paths, write_stream

    assert statistics_paths(DECISIONS_SCHEMA) == ["record_id", "shard", "slice"]
    batch = pa.record_batch([pa.array(["r1", "r2"]), pa.array(["include", "exclude"]),
                             pa.array([[], ["MINOR"]], DECISIONS_SCHEMA.field("reasons").type), pa.array([3, None], pa.int32()),
                             pa.array([0, None], pa.int32()), pa.array([True, False])], schema=DECISIONS_SCHEMA)
    write_stream(tmp_path / "d.parquet", DECISIONS_SCHEMA, [batch])
    group = pq.ParquetFile(tmp_path / "d.parquet").metadata.row_group(0)
    stats = {group.column(i).path_in_schema: group.column(i).statistics for i in range(group.num_columns)}
    assert (stats["record_id"].min, stats["record_id"].max) == ("r1", "r2")
    assert (stats["shard"].min, stats["shard"].max) == (3, 3)
    assert stats["decision"] is None and stats["reasons.list.element"] is None and stats["content_scanned"] is None
