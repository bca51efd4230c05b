"""files.prefetched: order kept, producer errors raised in the consumer, early close stops the producer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from consentgate.build.files import prefetched


def test_items_arrive_in_order() -> None:
    assert list(prefetched(iter(range(1000)), depth=3)) == list(range(1000))
    assert list(prefetched(iter([]))) == []


def test_a_producer_error_is_raised_in_the_consumer_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad batch")

    got: list[int] = []
    with pytest.raises(ValueError, match="bad batch"):
        for x in prefetched(items()):
            got.append(x)
    assert got == [1, 2]


def test_closing_early_stops_the_producer() -> None:
    produced: list[int] = []

    def items() -> Iterator[int]:
        for i in range(10_000):
            produced.append(i)
            yield i

    it = prefetched(items(), depth=2)
    assert next(it) == 0
    it.close()
    n = len(produced)
    time.sleep(0.2)
    assert len(produced) == n <= 5  # at most depth + a couple in flight, and nothing after the close
    assert not [t for t in threading.enumerate() if t.name == "consentgate-prefetch"]
