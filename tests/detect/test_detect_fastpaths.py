"""Fast paths give exactly what the plain code they replace gives (property tests)."""

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


def _iban_reference(text: str) -> bool:
    s = text.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    try:
        return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1
    except ValueError:
        return False


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabz0123456789 _-é٣")), min_size=14, max_size=36))
def test_iban_fast_path_equals_the_reference(text: str) -> None:
    from consentgate.detect.validators import iban_ok

    assert iban_ok(text) == _iban_reference(text)


def test_iban_fast_path_accepts_valid_ibans() -> None:
    from consentgate.detect.validators import iban_ok

    for valid in ("DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "fr1420041010050500013m02606"):
        assert iban_ok(valid) and _iban_reference(valid)
    assert not iban_ok("GB82 WEST 1234 5698 7654 33")


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(list("aZ \t\nÉéß ﬁ²\x0b\x1c") + ["Maria", "LOPEZ"]), max_size=12).map("".join))
def test_ascii_normalisation_equals_nfkc_casefold(value: str) -> None:
    import unicodedata

    from consentgate.detect.redact import _normalise

    assert _normalise("PERSON", value) == " ".join(unicodedata.normalize("NFKC", value).casefold().split())


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789 -./()+xXabÉé٣\x00\t")), max_size=30))
def test_numeric_normalisation_equals_the_regex(value: str) -> None:
    import re

    from consentgate.detect.redact import _normalise

    assert _normalise("PHONE_NUMBER", value) == re.sub(r"[^0-9A-Za-z]", "", value).upper()


_EDGE_NAMES = ["Ann", "Bo", "Zoë", "Al", "Annabel", "Con", "Li", "Jean-Pierre", "O’Brien", "Mary Ann"]


def _scanners() -> tuple[object, object]:
    from consentgate.detect import backend as B
    from consentgate.detect.patterns import PATTERNS

    lits = [
        [B.Literal(n) for n in _EDGE_NAMES] + [B.Literal("sick leave", caseless=True), B.Literal("St.", caseless=True)],
        [B.Literal("maria lopez", caseless=True), B.Literal("Ann", caseless=True)],
    ]
    with_edge = B.HyperscanScanner(PATTERNS[:1], lits)
    saved = B.EDGE_IN_DATABASE
    B.EDGE_IN_DATABASE = False  # every literal a plain literal, edges checked in numpy only
    try:
        plain = B.HyperscanScanner(PATTERNS[:1], lits)
    finally:
        B.EDGE_IN_DATABASE = saved
    return with_edge, plain


_SCANNERS: list[tuple[object, object]] = []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_EDGE_NAMES + [
    "gratulations", "a", " ", ".", "-", "é", "日", "🎉", "_", "1", "\x00", "’", "Sick Leave", "sick-leave", "st", "Jean", "Pierre",
    "O", "Brien", "'", "MARIA", "Lopez", "\t", "ann", "\u2019", "\u3001",
]), max_size=14).map("".join))
def test_names_checked_in_hyperscan_give_the_plain_literal_hits(text: str) -> None:
    if not _SCANNERS:
        _SCANNERS.append(_scanners())
    with_edge, plain = _SCANNERS[0]
    buf = b"\x00" + text.encode() + b"\x00"

    def hits(scanner: object) -> list[tuple[int, int, int]]:
        h = scanner.scan(buf)  # type: ignore[attr-defined]
        return sorted(zip(h.pid.tolist(), h.start.tolist(), h.end.tolist()))

    assert hits(with_edge) == hits(plain)


def test_short_names_are_found_at_word_edges_only() -> None:
    if not _SCANNERS:
        _SCANNERS.append(_scanners())
    with_edge, _ = _SCANNERS[0]
    text = "Con, Congratulations Ann! Anna Bo🎉 Bo日 Zoë."  # CJK counts as a word character
    buf = b"\x00" + text.encode() + b"\x00"
    h = with_edge.scan(buf)  # type: ignore[attr-defined]
    found = sorted(buf[s:e].decode() for s, e in zip(h.start.tolist(), h.end.tolist()))
    assert found == ["Ann", "Ann", "Bo", "Con", "Zoë"]  # "Ann" is also a caseless literal of the second group


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 12)), max_size=12))
def test_isolated_intervals_equal_the_pairwise_check(pairs: list[tuple[int, int]]) -> None:
    import numpy as np

    from consentgate.detect.engine import _isolated

    st_, en = np.array([s for s, _ in pairs], dtype=np.int64), np.array([s + n for s, n in pairs], dtype=np.int64)
    expected = [
        not any(j != i and st_[j] < en[i] and st_[i] < en[j] for j in range(len(pairs))) for i in range(len(pairs))
    ]
    assert _isolated(st_, en).tolist() == expected


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789 +-().x/ab٣²é\t")), max_size=30))
def test_digits_equals_the_regex(text: str) -> None:
    import re

    from consentgate.detect.validators import digits

    assert digits(text) == "".join(re.findall(r"\d", text))
