"""The generated demo network's planted PII and topics are found (issue 5 targets).

Uses a seed other than the one used while writing the topic lexicon, so that the
figure is not a replay of the tuning sample.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from consentgate.demo.network import generate_network
from consentgate.detect.evaluate import Score, evaluate_demo


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> object:
    out: Path = tmp_path_factory.mktemp("demo")
    generate_network(members=300, seed=2024, out=out)
    return evaluate_demo(out)


def test_planted_pii_recall_at_least_098(demo_report: object) -> None:
    total = demo_report.total(demo_report.per_type)  # type: ignore[attr-defined]
    assert total.gold > 500
    assert total.recall >= 0.98, demo_report.as_dict()["per_type"]  # type: ignore[attr-defined]
    for etype, score in demo_report.per_type.items():  # type: ignore[attr-defined]
        if score.gold >= 20:
            assert score.recall >= 0.95, (etype, score.as_dict())


def test_topic_recall_at_least_090(demo_report: object) -> None:
    total = Score()
    for score in demo_report.topics.values():  # type: ignore[attr-defined]
        total.add(score)
    assert total.gold > 100
    assert total.recall >= 0.9, demo_report.as_dict()["topics"]  # type: ignore[attr-defined]
    assert total.precision >= 0.9
