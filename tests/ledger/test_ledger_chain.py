"""The canonical encoding: the vectorised encoder used by bulk import must produce
exactly the bytes of the reference encoder used by `verify`, for any strings."""

from __future__ import annotations

import json
import sqlite3

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.ledger.chain import (
    CHAIN_FIELDS,
    GENESIS,
    batch_prefixes,
    canonical,
    canonical_sql,
    chain_from_prefixes,
    chain_hashes,
    event_hash,
    needs_escape,
)

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


def _sqlite_canonical(rows: list[tuple[object, ...]]) -> list[str | None]:
    """``canonical_sql('sqlite')`` of ``rows`` (chain fields), computed by SQLite."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(f"CREATE TABLE consent_events ({', '.join(CHAIN_FIELDS)})")
        conn.executemany(f"INSERT INTO consent_events VALUES ({', '.join('?' * len(CHAIN_FIELDS))})", rows)
        return [r[0] for r in conn.execute(f"SELECT {canonical_sql('sqlite')} FROM consent_events ORDER BY rowid")]
    finally:
        conn.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(row, min_size=1, max_size=20), st.integers(1, 10**9), st.text(st.characters(codec="utf-8"), max_size=70))
def test_sqlite_encoding_equals_reference(rows: list[tuple[object, ...]], first_seq: int, prev: str) -> None:
    """The encoding SQLite builds for `verify` is the reference's bytes -- checked here for any
    strings, although `verify` re-encodes a row holding a backslash or a control character."""
    full = [(first_seq + i, *r, prev) for i, r in enumerate(rows)]
    assert [s.encode("utf-8") if s is not None else None for s in _sqlite_canonical(full)] == [canonical(r) for r in full]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.none() | text, min_size=1, max_size=12), st.integers(0, 5), st.integers(0, 5))
def test_escape_scan_equals_regex_on_slices(values: list[str | None], start: int, length: int) -> None:
    col = pa.array(values, pa.string()).slice(start, length)
    regex = col.null_count < len(col) and bool(pc.any(pc.match_substring_regex(col, r'["\\\x00-\x1f]')).as_py())
    assert needs_escape(col) == regex
