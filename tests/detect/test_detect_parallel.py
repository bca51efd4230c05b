"""The process pool gives exactly the serial result, and long texts scan in windows."""

from __future__ import annotations

import pyarrow as pa

from consentgate.detect import Detector
from consentgate.detect import segments
from tests_detect_corpus import corpus


def test_pool_matches_serial(detector: Detector) -> None:
    texts = pa.array(corpus(3000))
    serial = detector.scan(texts)
    pooled = Detector(detector.member_names, backend=detector.backend, workers=2, batch_bytes=16_384).scan(texts)
    assert pooled.spans.equals(serial.spans)
    assert pooled.topics.equals(serial.topics)


def test_long_text_windows_give_the_same_offsets(detector: Detector) -> None:
    unit = "Zoë 日本 🎉 mail ann.lee@example.org and +1 415-555-2671; "
    text = unit * ((segments.LONG_TEXT * 3) // len(unit.encode()) + 7)
    got = detector.scan(pa.array(["short one x@y.io", text])).spans.to_pylist()
    long_spans = [(s["entity_type"], s["start"], s["end"]) for s in got if s["row"] == 1 and s["entity_type"] != "PERSON"]
    persons = [s["start"] for s in got if s["row"] == 1 and s["entity_type"] == "PERSON"]
    assert persons == [i * len(unit) for i in range(text.count(unit))]  # "Zoë" in every unit
    expected = []
    for i in range(text.count(unit)):
        base = i * len(unit)
        for value, etype in (("ann.lee@example.org", "EMAIL_ADDRESS"), ("+1 415-555-2671", "PHONE_NUMBER")):
            start = base + unit.index(value)
            expected.append((etype, start, start + len(value)))
    assert sorted(long_spans) == sorted(expected)
