"""The engine's bounded process pool: every result comes back, and a slow start is reported once."""

from __future__ import annotations

import time

import pytest

from consentgate.build import duckdb_engine
from consentgate.build.duckdb_engine import _Runner


def _run(jobs: list[tuple[float]], monkeypatch: pytest.MonkeyPatch, slow_after: float) -> tuple[int, int]:
    monkeypatch.setattr(duckdb_engine, "SLOW_START_S", slow_after)
    runner = _Runner(2, None)
    results: list[object] = []
    notices: list[float] = []
    try:
        runner.map_bounded(time.sleep, iter(jobs), results.append, on_slow_start=lambda: notices.append(time.perf_counter()))
    finally:
        runner.close()
    return len(results), len(notices)


def test_a_pool_that_returns_nothing_for_a_while_is_reported_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Six jobs of 0.5 s on two workers (plus their start-up): nothing is back 0.2 s after the first job went in.
    assert _run([(0.5,)] * 6, monkeypatch, slow_after=0.2) == (6, 1)


def test_a_pool_that_answers_in_time_is_not_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run([(0.0,)] * 9, monkeypatch, slow_after=60.0) == (9, 0)
