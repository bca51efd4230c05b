"""Backend selection and the RE2 fallback, which must find what Hyperscan finds."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from consentgate.detect import Detector
from consentgate.detect.backend import ENV_BACKEND, resolve_backend
from consentgate.errors import DetectError

BENCH = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "pii" / "presidio-research-synth_dataset_v2.json"

CORPUS = [
    "Hi Maria, mail me at maria.lopez@example.com or call +1 415-555-2671.",
    "Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, SSN 078-05-1121",
    "Zoë Müller lives at 12 Maple Street. 日本語 🎉 ip 192.168.1.1 and 2001:db8::1",
    "I was diagnosed with cancer and need sick leave. My salary is low.",
    "Thanks, Jean-Pierre Dupont",
    "see https://example.com/a?b=1. ok; Michael Busch wrote: hello",
    "Hi 鈴木陽子, we are unionizing: union meeting at the union hall.",
]


def _table(det: Detector, texts: list[str]) -> tuple[list[dict[str, object]], set[tuple[int, str]]]:
    result = det.scan(pa.array(texts))
    topics = set(zip(result.topics.column("row").to_pylist(), result.topics.column("topic").to_pylist()))
    return result.spans.to_pylist(), topics


def test_re2_fallback_finds_the_same_spans_and_topics(detector: Detector, re2_detector: Detector) -> None:
    assert re2_detector.backend == "re2" and detector.backend == "hyperscan"
    assert _table(re2_detector, CORPUS) == _table(detector, CORPUS)


@pytest.mark.skipif(not BENCH.is_file() and not os.environ.get("CI"), reason="shared benchmark file ../shared/benchmarks/pii not present beside the checkout (CI always has it)")
def test_re2_fallback_agrees_on_the_benchmark_set(detector: Detector, re2_detector: Detector) -> None:
    texts = [s["full_text"] for s in json.loads(BENCH.read_text(encoding="utf-8"))][:400]
    hs_spans, hs_topics = _table(detector, texts)
    re_spans, re_topics = _table(re2_detector, texts)
    key = lambda s: (s["row"], s["entity_type"], s["start"], s["end"])  # noqa: E731
    same = len({key(s) for s in hs_spans} & {key(s) for s in re_spans})
    assert same >= 0.98 * max(len(hs_spans), len(re_spans))


def test_backend_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_BACKEND, "re2")
    assert resolve_backend(None) == "re2"
    assert resolve_backend("hyperscan") == "hyperscan"
    monkeypatch.setenv(ENV_BACKEND, "nope")
    with pytest.raises(DetectError, match="unknown detection backend"):
        resolve_backend(None)


def test_auto_falls_back_to_re2_when_hyperscan_does_not_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_BACKEND, raising=False)
    monkeypatch.setitem(sys.modules, "hyperscan", None)  # makes `import hyperscan` raise ImportError
    assert resolve_backend("auto") == "re2"
