"""Each entity type is found with the right character offsets; validators cut false positives."""

from __future__ import annotations

import pyarrow as pa
import pytest

from consentgate.detect import Detector
from consentgate.detect.validators import iban_ok, luhn_ok, validate_phone, validate_ssn


def spans_of(det: Detector, text: str) -> list[tuple[str, str]]:
    result = det.scan(pa.array([text]))
    return [(s["entity_type"], text[s["start"] : s["end"]]) for s in result.spans.to_pylist()]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+x@example.co.uk today", ("EMAIL_ADDRESS", "jane.doe+x@example.co.uk")),
        ("call me at +1 415-555-2671 tomorrow", ("PHONE_NUMBER", "+1 415-555-2671")),
        ("office (212) 555-0198 or later", ("PHONE_NUMBER", "(212) 555-0198")),
        ("ring +44 20 7946 0958 please", ("PHONE_NUMBER", "+44 20 7946 0958")),
        ("card 4111 1111 1111 1111 expires", ("CREDIT_CARD", "4111 1111 1111 1111")),
        ("amex 3782-822463-10005 ok", ("CREDIT_CARD", "3782-822463-10005")),
        ("IBAN DE89 3704 0044 0532 0130 00 thanks", ("IBAN_CODE", "DE89 3704 0044 0532 0130 00")),
        ("pay GB82WEST12345698765432 now", ("IBAN_CODE", "GB82WEST12345698765432")),
        ("my SSN is 078-05-1121 ok", ("US_SSN", "078-05-1121")),
        ("from 203.0.113.42 yesterday", ("IP_ADDRESS", "203.0.113.42")),
        ("blocked 2001:db8:85a3::8a2e:370:7334 again", ("IP_ADDRESS", "2001:db8:85a3::8a2e:370:7334")),
        ("see https://example.com/a/b?c=1.", ("URL", "https://example.com/a/b?c=1")),
        ("I live at 1600 Pennsylvania Avenue, Washington", ("STREET_ADDRESS", "1600 Pennsylvania Avenue")),
        ("Adresse: Lindenstraße 12, 10115 Berlin", ("STREET_ADDRESS", "Lindenstraße 12, 10115 Berlin")),
        ("chez nous au 12 rue de la Paix à Paris", ("STREET_ADDRESS", "12 rue de la Paix")),
    ],
)
def test_each_pattern_type_is_found(detector: Detector, text: str, expected: tuple[str, str]) -> None:
    assert expected in spans_of(detector, text)


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 expires",  # Luhn fails
        "IBAN DE89 3704 0044 0532 0130 01 thanks",  # mod-97 fails
        "SSN 666-12-3456 and 000-12-3456 and 123-00-4567",  # SSA rules
        "version 1.2.3.4.5 and 999.1.1.1",  # not IPs
        "meeting 2024-05-06 at 10:30",  # dates are not phones
    ],
)
def test_validators_reject_invalid_candidates(detector: Detector, text: str) -> None:
    types = {t for t, _ in spans_of(detector, text)}
    assert not types & {"CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "PHONE_NUMBER"}


def test_validator_functions() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB83 WEST 1234 5698 7654 32")
    assert validate_ssn("078-05-1121") and not validate_ssn("900-12-3456")
    assert validate_phone("+1 415-555-2671") == len("+1 415-555-2671")
    assert validate_phone("3911", "") == 0
    # A dangling extension marker is not part of the number (hypothesis found it: a card number took the digits).
    for cut in ("+1 415-555-2671 x ", "+1 415-555-2671 x", "+1 415-555-2671 ext. ", "+1 415-555-2671x"):
        assert validate_phone(cut, "4111 1111") == len("+1 415-555-2671"), cut
    assert validate_phone("+1 415-555-2671 x 12") == len("+1 415-555-2671 x 12")


def test_person_from_member_directory_lexicon_and_cues(detector: Detector) -> None:
    found = spans_of(detector, "Hi Maria, please loop in Michael Busch. Dear Zoë Müller, thanks! Oluwakemi Ilori wrote: ok")
    persons = {v for t, v in found if t == "PERSON"}
    assert {"Maria", "Michael Busch", "Zoë Müller", "Oluwakemi Ilori"} <= persons


def test_member_names_without_capitals_are_found(detector: Detector) -> None:
    assert ("PERSON", "鈴木陽子") in spans_of(detector, "Hi 鈴木陽子, the deck is ready.")


def test_places_products_and_common_words_are_not_persons(detector: Detector) -> None:
    text = "Will you join the Berlin offsite? May is busy. We shipped it in San Francisco."
    assert [v for t, v in spans_of(detector, text) if t == "PERSON"] == []


def test_rows_nulls_slices_and_chunked_arrays(detector: Detector) -> None:
    texts = ["nothing", None, "mail a.b@example.org", "", "call +1 415-555-2671"]
    full = detector.scan(pa.array(texts)).spans
    assert full.column("row").to_pylist() == [2, 4]
    sliced = detector.scan(pa.array(texts).slice(2, 3)).spans
    assert sliced.column("row").to_pylist() == [0, 2]
    chunked = detector.scan(pa.chunked_array([pa.array(texts[:3]), pa.array(texts[3:])])).spans
    assert chunked.to_pylist() == full.to_pylist()


def test_no_match_crosses_two_texts(detector: Detector) -> None:
    # Concatenated, these would read "jane@example.com" and "078-05-1121".
    result = detector.scan(pa.array(["jane@example", ".com", "078-05-", "1121"]))
    assert result.spans.num_rows == 0


def test_schema_of_the_result(detector: Detector) -> None:
    result = detector.scan(pa.array(["x@example.com is sick with cancer"]))
    assert result.spans.schema.names == ["row", "entity_type", "start", "end"]
    assert [str(f.type) for f in result.spans.schema] == ["int64", "string", "int32", "int32"]
    assert result.topics.schema.names == ["row", "topic", "score", "evidence_start", "evidence_end"]


def test_non_string_input_is_refused(detector: Detector) -> None:
    from consentgate.errors import DetectError

    with pytest.raises(DetectError):
        detector.scan(pa.array([1, 2, 3]))
