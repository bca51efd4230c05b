"""A DuckDB query that fails part-way through an Arrow stream is a build error, not an internal one.

pyarrow hands such a failure over as a bare ``OSError`` whose message is DuckDB's, and
DuckDB's message can quote the value it failed on (here a stand-in for member text).
"""

from __future__ import annotations

import duckdb
import pytest

from consentgate.build.sources import error_kind, query_failed, streamed
from consentgate.errors import BuildError

FAILS_LATE = ("SELECT i, CAST(CASE WHEN i < 300000 THEN '1' ELSE 'private message text' END AS INTEGER) AS x "
              "FROM range(400000) t(i)")


def test_a_query_failing_mid_stream_is_a_build_error_without_its_values() -> None:
    # One thread: with two, a thread could reach the failing rows before the first batch came out
    # (this assertion then failed now and then).
    con = duckdb.connect(config={"threads": 1})
    seen = 0
    with pytest.raises(BuildError) as info:
        for batch in streamed(con.sql(FAILS_LATE).to_arrow_reader(1000)):
            seen += batch.num_rows
    assert seen > 0  # it did fail part-way, after some batches came through
    assert "private message text" not in str(info.value) and "private message text" not in (info.value.hint or "")
    assert "DuckDB" in info.value.message


def test_a_good_stream_passes_through_unchanged() -> None:
    con = duckdb.connect()
    query = "SELECT i, i * 2 AS j FROM range(5000) t(i) ORDER BY i"
    batches = list(streamed(con.sql(query).to_arrow_reader(1000)))
    assert sum(b.num_rows for b in batches) == 5000
    assert [r for b in batches for r in b.column(1).to_pylist()] == [2 * i for i in range(5000)]


def test_the_error_names_duckdbs_error_kind_and_says_when_memory_ran_out() -> None:
    con = duckdb.connect()
    with pytest.raises(BuildError) as info:
        list(streamed(con.sql(FAILS_LATE).to_arrow_reader(1000)))
    assert "Conversion Error" in info.value.message and "private message text" not in info.value.message
    # A sort that cannot fit in 4 MB and has nowhere to spill: the engine turns DuckDB's exception
    # class into the error (``DuckDBEngine.run``), as ``streamed`` does with a message's kind.
    con = duckdb.connect(config={"memory_limit": "4MB", "threads": 1, "temp_directory": ""})
    with pytest.raises(duckdb.Error) as raised:
        con.sql("SELECT repeat('x', 60) || i AS s FROM range(1000000) t(i) ORDER BY s DESC").to_arrow_reader(1000).read_all()
    error = query_failed(type(raised.value).__name__)
    assert "ran out of memory" in error.message and "--workers" in (error.hint or "")
    assert query_failed(error_kind("Out of Memory Error: failed to allocate data of size 256.0 KiB")).message == (
        "DuckDB ran out of memory during the build (Out of Memory Error)")
    assert error_kind("some text: with a colon") == "Error"  # not a kind: nothing of it is shown
