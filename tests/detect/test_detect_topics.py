"""Sensitive topics: phrases, thresholds and evidence spans."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from consentgate.datamodel import TOPICS
from consentgate.detect import Detector
from consentgate.detect.lexicon import topic_lexicon
from consentgate.detect.topics import score_topics


def topics_of(det: Detector, text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in det.scan(pa.array([text])).topics.to_pylist():
        out.setdefault(t["topic"], []).append(text[t["evidence_start"] : t["evidence_end"]])
    return out


def test_lexicon_covers_every_topic() -> None:
    lex = topic_lexicon()
    assert set(lex.phrases) == set(TOPICS)
    assert all(0 < lex.thresholds[t] <= 1 for t in TOPICS)


def test_strong_phrase_flags_topic_with_evidence(detector: Detector) -> None:
    found = topics_of(detector, "Quick note: I was diagnosed with diabetes and my salary is too low.")
    assert "diabetes" in [e.lower() for e in found["health"]]
    assert "salary" in [e.lower() for e in found["compensation"]]


def test_one_weak_or_medium_phrase_is_not_enough(detector: Detector) -> None:
    assert topics_of(detector, "The news today was about money.") == {}
    assert "political" not in topics_of(detector, "Let's vote on the lunch place.")


def test_phrases_match_whole_words_only(detector: Detector) -> None:
    assert topics_of(detector, "I feel homesick and the unionized bricks") == {}


def test_scores_count_distinct_phrases_and_threshold() -> None:
    rows = np.array([0, 0, 0, 1], dtype=np.int64)
    topic = np.array([0, 0, 0, 0], dtype=np.int64)
    phrase = np.array([7, 7, 8, 7], dtype=np.int64)
    weight = np.array([0.35, 0.35, 0.35, 0.35])
    table = score_topics(rows, topic, phrase, weight, np.array([0.6]))
    # Row 0: two distinct medium phrases (0.7) pass; row 1: one medium (0.35) does not.
    assert table.keep.tolist() == [0, 1, 2]
    assert np.allclose(table.score, 0.7)
