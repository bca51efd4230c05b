"""The hand-written backward reader of person.py gives exactly what its regex gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.detect import person as P

PIECES = st.lists(st.sampled_from(list("AbZé日 \t.'’-_7²\n\x00,") + ["Jo", "Smith", "X.", "  "]), max_size=16).map("".join)


@settings(max_examples=1500, deadline=None)
@given(PIECES, st.sampled_from([" ", "\t", "  "]), PIECES, st.integers(0, 60))
def test_left_word_equals_the_left_regex(before: str, space: str, after: str, back: int) -> None:
    # extend_name calls it where text[s - 1] is a space or tab.
    text = before + space + after
    s = len(before) + len(space)
    lo = max(0, s - back)
    m = P._LEFT.search(text, lo, s)
    expected = (m.start(1), m.end(1)) if m else None
    assert P.left_word(text, s, lo) == expected
