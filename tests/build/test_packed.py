"""``decide.pack_sql`` and ``decide.unpack``: a decision's group, shard and slice packed by DuckDB into one BIGINT and unpacked in Arrow."""

from __future__ import annotations

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.build.decide import PACK_MAX_GROUPS, pack_sql, unpack

_ROW = st.tuples(st.integers(0, PACK_MAX_GROUPS - 1), st.none() | st.integers(0, 65535), st.none() | st.integers(0, 4095))


@settings(max_examples=60, deadline=None)
@given(st.lists(_ROW, max_size=50))
def test_what_duckdb_packs_unpacks_to_the_same_group_shard_and_slice(rows: list[tuple[int, int | None, int | None]]) -> None:
    table = pa.table({"g": pa.array([r[0] for r in rows], pa.int32()), "shard": pa.array([r[1] for r in rows], pa.int32()),
                      "slice": pa.array([r[2] for r in rows], pa.int32())})
    con = duckdb.connect()
    con.register("t", table)
    packed = con.sql(f"SELECT {pack_sql('g', 'shard', 'slice')} AS packed FROM t").to_arrow_table().column(0).combine_chunks()
    g, shard, slice_ = unpack(packed)
    assert g.type == shard.type == slice_.type == pa.int32()
    assert list(zip(g.to_pylist(), shard.to_pylist(), slice_.to_pylist())) == rows


def test_unscanned_records_pack_with_a_null_shard_and_slice() -> None:
    # The unscanned records' rows pack the literal NULL (``decide._sort_decisions``).
    con = duckdb.connect()
    packed = con.sql(f"SELECT {pack_sql('g', 'NULL', 'NULL')} AS packed FROM range(3) t(g)").to_arrow_table().column(0).combine_chunks()
    g, shard, slice_ = unpack(packed)
    assert (g.to_pylist(), shard.to_pylist(), slice_.to_pylist()) == ([0, 1, 2], [None] * 3, [None] * 3)
