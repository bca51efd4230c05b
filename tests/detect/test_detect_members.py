"""The member directory: the Arrow path gives exactly the Python reference, and a detector travels as bytes."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.detect import Detector
from consentgate.detect.lexicon import member_name_tokens
from consentgate.detect.members import ODD_SPACE, distinct_names, member_tokens_arrow
from consentgate.errors import DetectError
from tests_detect_corpus import corpus

PIECES = ["Maria", "LOPEZ", "van", "de", "O'Neil", "Jean-Pierre", "Zoë", "ßtraße", "鈴木", "陽子", "劳静", "Ab", "Ed",
          "José", "x", "7", "_", "Ⅻ", "²", "Ǆemal", "’t", "-", "'", "Łukasz", "Σοφία", "🎉", "Al1"]
SPACES = [" ", "  ", "\t", "\u00a0", "\u3000", "\x1c", "\u2009", "\n"]
NAME = st.lists(st.one_of(st.sampled_from(PIECES), st.sampled_from(SPACES), st.text(max_size=4)), max_size=6).map("".join)


def test_odd_space_is_every_python_whitespace_but_the_space() -> None:
    import sys

    expected = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()} - {" "}
    assert set(ODD_SPACE) == expected


@settings(max_examples=400, deadline=None)
@given(st.lists(NAME, max_size=40))
def test_arrow_tokens_equal_the_python_reference(names: list[str]) -> None:
    full, tokens = member_tokens_arrow(distinct_names(names))
    ref_full, ref_tokens = member_name_tokens(names)
    assert full.to_pylist() == ref_full
    assert tokens == ref_tokens


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(NAME, st.none(), st.integers()), max_size=30))
def test_distinct_names_are_the_sorted_set_of_strings(values: list[object]) -> None:
    expected = sorted({v for v in values if isinstance(v, str)})
    assert distinct_names(values).to_pylist() == expected  # type: ignore[arg-type]
    arr = pa.array([v for v in values if not isinstance(v, int)], pa.string())
    assert distinct_names(arr).to_pylist() == expected
    assert distinct_names(pa.chunked_array([arr, arr])).to_pylist() == expected


def test_non_string_arrow_names_are_refused() -> None:
    with pytest.raises(DetectError, match="member names must be strings"):
        distinct_names(pa.array([1, 2]))


def test_detector_round_trips_through_bytes_and_pickle(detector: Detector) -> None:
    texts = pa.array(corpus(400) + ["Hi Maria Lopez, 鈴木陽子 here", "oluwakemi ilori wrote: hi"])
    expected = detector.scan(texts)
    for copy in (Detector.from_bytes(detector.to_bytes()), pickle.loads(pickle.dumps(detector))):
        assert copy.member_names == detector.member_names and copy.backend == detector.backend
        got = copy.scan(texts)
        assert got.spans.equals(expected.spans) and got.topics.equals(expected.topics)


def test_bad_serialised_detector_is_refused(detector: Detector) -> None:
    with pytest.raises(DetectError, match="cannot read a serialised detector"):
        Detector.from_bytes(b"not a detector")
    with pytest.raises(DetectError, match="bytes left over"):
        Detector.from_bytes(detector.to_bytes() + b"x")


def test_corrupt_database_in_a_serialised_detector_is_refused(detector: Detector) -> None:
    import json

    data = bytearray(detector.to_bytes())
    magic_end = data.index(b"\n") + 1
    hlen = int.from_bytes(data[magic_end : magic_end + 8], "little")
    header = json.loads(data[magic_end + 8 : magic_end + 8 + hlen])
    first_db = magic_end + 8 + hlen + header["names"]
    data[first_db : first_db + 16] = b"\x00" * 16  # the first database's header
    with pytest.raises(DetectError, match="cannot load a serialised Hyperscan database"):
        Detector.from_bytes(bytes(data))


def test_processes_starting_together_compile_a_new_database_once(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from consentgate.detect import backend as B
    from consentgate.detect.patterns import PATTERNS

    monkeypatch.setenv("CONSENTGATE_CACHE_DIR", str(tmp_path))
    compiled: list[int] = []
    real = B._compile_regex

    def slow_compile(pats: list[object]) -> object:
        compiled.append(1)
        time.sleep(0.3)  # both threads are inside _cached_db by now
        return real(pats)  # type: ignore[arg-type]

    monkeypatch.setattr(B, "_compile_regex", slow_compile)
    scanners: list[object] = []
    threads = [threading.Thread(target=lambda: scanners.append(B.HyperscanScanner(PATTERNS[:3], []))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(scanners) == 2 and compiled == [1]
