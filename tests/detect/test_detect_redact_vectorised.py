"""The vectorised redaction gives exactly what the per-text Python rebuild gives (property tests)."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.detect.redact import pseudonym, pseudonym_array, redact, redact_reference

KEY = b"vectorised-redaction-key"
TYPES = ["PERSON", "PHONE_NUMBER", "URL", "IBAN_CODE", "SENSITIVE_TOPIC"]
# Short pieces so that repeated values, touching and overlapping spans are common.
TEXTS = st.lists(
    st.sampled_from(list("ab Z.é日🎉\t\n\x1c-") + ["Maria", "maria  lopez", " 415-555", "ß", "ﬁ", "  "]), max_size=12
).map("".join)


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[str | None], list[dict[str, object]]]:
    texts = draw(st.lists(st.one_of(TEXTS, st.none()), min_size=1, max_size=6))
    spans: list[dict[str, object]] = []
    for _ in range(draw(st.integers(0, 10))):
        row = draw(st.integers(0, len(texts) - 1))
        n = len(texts[row] or "")
        start = draw(st.integers(-1, n + 1))
        end = draw(st.integers(start - 1, n + 2))
        spans.append({"row": row, "entity_type": draw(st.sampled_from(TYPES)), "start": start, "end": end})
    return texts, spans


STRATEGIES = st.dictionaries(st.sampled_from(TYPES), st.sampled_from(["mask", "pseudonym", "drop_record"]))


@settings(max_examples=800, deadline=None)
@given(batches(), STRATEGIES, st.integers(0, 3))
def test_vectorised_redaction_equals_the_python_rebuild(
    batch: tuple[list[str | None], list[dict[str, object]]], strategies: dict[str, str], pad: int
) -> None:
    texts, span_rows = batch
    # A sliced array (non-zero offset) must work as well as a fresh one.
    arr = pa.array(["x"] * pad + texts, pa.string()).slice(pad)
    spans = pa.Table.from_pylist(span_rows, schema=pa.schema([("row", pa.int64()), ("entity_type", pa.string()), ("start", pa.int32()), ("end", pa.int32())]))
    got = redact(arr, spans, strategies, KEY)
    want = redact_reference(arr, spans, strategies, KEY)
    assert got.texts.to_pylist() == want.texts.to_pylist()
    assert got.dropped.to_pylist() == want.dropped.to_pylist()
    assert list(got.counts.items()) == list(want.counts.items())


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(TYPES + ["CREDIT_CARD", "US_SSN"]), TEXTS), min_size=1, max_size=8))
def test_pseudonym_array_equals_pseudonym(pairs: list[tuple[str, str]]) -> None:
    import numpy as np

    names = sorted({t for t, _ in pairs})
    codes = np.array([names.index(t) for t, _ in pairs], dtype=np.int64)
    encoded = [v.encode() for _, v in pairs]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in encoded])]).astype(np.int64)
    data = np.frombuffer(b"".join(encoded) or b"\x00", dtype=np.uint8)[: int(offsets[-1])]
    ids, tokens = pseudonym_array(names, codes, data, offsets, KEY)
    assert [tokens[int(i)].as_py() for i in ids] == [pseudonym(t, v, KEY) for t, v in pairs]
