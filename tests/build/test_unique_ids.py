"""``decide.unique_ids``: the build's record-id uniqueness check over sorted batches."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentgate.build.decide import RepeatedId, unique_ids
from consentgate.errors import BuildError


def _batches(ids: list[str], cuts: list[int]) -> list[pa.RecordBatch]:
    bounds = sorted({0, len(ids), *(c % (len(ids) + 1) for c in cuts)})
    return [pa.record_batch([pa.array(ids[a:b], pa.string())], names=["record_id"]) for a, b in zip(bounds, bounds[1:])]


@given(st.lists(st.text(max_size=4), max_size=40), st.lists(st.integers(0, 50), max_size=6))
def test_first_repeat_is_reported_wherever_batches_are_cut(values: list[str], cuts: list[int]) -> None:
    ids = sorted(values)
    expected = next((a for a, b in zip(ids, ids[1:]) if a == b), None)
    batches = _batches(ids, cuts)
    if expected is None:
        assert [b.column(0).to_pylist() for b in unique_ids(batches)] == [b.column(0).to_pylist() for b in batches]
    else:
        with pytest.raises(RepeatedId) as info:
            list(unique_ids(batches))
        assert info.value.record_id == expected


def test_repeat_across_a_batch_boundary() -> None:
    with pytest.raises(RepeatedId) as info:
        list(unique_ids(_batches(["a", "b", "b", "c"], [2])))
    assert info.value.record_id == "b"


@given(st.lists(st.text(max_size=3), max_size=30), st.lists(st.integers(0, 40), max_size=6))
def test_ids_out_of_order_stop_the_build_at_the_first_step_down(values: list[str], cuts: list[int]) -> None:
    """The writer reads the sorted decisions back from a table: the same pass checks their order."""
    first = next(((a, b) for a, b in zip(values, values[1:]) if b <= a), None)
    batches = _batches(values, cuts)
    if first is None:
        assert sum(b.num_rows for b in unique_ids(batches)) == len(values)
    elif first[0] == first[1]:
        with pytest.raises(RepeatedId) as info:
            list(unique_ids(batches))
        assert info.value.record_id == first[0]
    else:
        with pytest.raises(BuildError, match="out of record-id order"):
            list(unique_ids(batches))
