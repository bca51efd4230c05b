"""The canonical encoding: the vectorised encoder used by bulk import must produce
exactly the bytes of the reference encoder used by `verify`, for any strings."""

from __future__ import annotations

import json

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.ledger.chain import GENESIS, batch_prefixes, canonical, chain_from_prefixes, chain_hashes, event_hash

text = st.text(st.characters(codec="utf-8"), max_size=12)
row = st.tuples(text, text, st.sampled_from(["ai_training"]), text, text, text, st.none() | text,
                st.integers(-(2**62), 2**62), st.none() | text)


def test_canonical_is_compact_json_with_prev_hash_last() -> None:
    r = (1, "e1", "m\u00e9", "ai_training", "first_party", "grant", "member", None, 1704067200000000, None, GENESIS)
    enc = canonical(r)
    assert enc == ('[1,"e1","m\u00e9","ai_training","first_party","grant","member",null,1704067200000000,null,"' + GENESIS + '"]').encode()
    assert json.loads(enc) == list(r)


@settings(max_examples=60, deadline=None)
@given(st.lists(row, min_size=1, max_size=20), st.integers(1, 10**9))
def test_vectorised_chain_equals_reference(rows: list[tuple[object, ...]], first_seq: int) -> None:
    cols = [pa.array([r[i] for r in rows], pa.string()) for i in range(7)]
    rec = pa.array([r[7] for r in rows], pa.int64())
    keys = pa.array([r[8] for r in rows], pa.string())
    bare = [(first_seq + i, *r) for i, r in enumerate(rows)]
    reference = [h for _, h in chain_hashes(bare, GENESIS)]
    prefixes = batch_prefixes(first_seq, cols, rec, keys)
    if prefixes is not None:
        assert chain_from_prefixes(prefixes, GENESIS) == reference
    prev = GENESIS
    for b, h in zip(bare, reference):
        assert event_hash((*b, prev)) == h
        prev = h


def test_values_needing_escapes_fall_back_to_the_reference_encoder() -> None:
    cols = [pa.array(['a"b']), *[pa.array(["x"]) for _ in range(6)]]
    assert batch_prefixes(1, cols, pa.array([0], pa.int64()), pa.nulls(1, pa.string())) is None
