"""Fixed dates of the synthetic network's timeline (no wall clock anywhere).

Owns the instants every generator stage agrees on, as microseconds since the
Unix epoch in UTC (the unit of ``datamodel.UTC_TS``), and the mapping from an
instant to the privacy-policy version in force.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Final

import numpy as np


def micros(year: int, month: int, day: int) -> int:
    """Microseconds since the epoch of midnight UTC on the given date."""
    return int(datetime(year, month, day, tzinfo=timezone.utc).timestamp()) * 1_000_000


NETWORK_START: Final = micros(2012, 1, 1)  # earliest joined_at
MINOR_JOIN_START: Final = micros(2023, 1, 1)  # minors join from here
LEGACY_START: Final = micros(2023, 1, 1)  # earliest pre-change consent choice
GPC_START: Final = micros(2024, 1, 1)  # earliest GPC signal
POLICY_2024: Final = micros(2024, 9, 18)  # "2024.2": AI training default-on
POLICY_2025: Final = micros(2025, 6, 1)  # "2025.1": the recommended policy
LAST_JOIN: Final = micros(2025, 8, 31)
END: Final = micros(2025, 9, 30)  # nothing happens at or after this instant
REFERENCE_YEAR: Final = 2025  # "age" in docs and tests is REFERENCE_YEAR - birth_year

POLICY_VERSIONS: Final = ("2023.1", "2024.2", "2025.1")


def policy_version_index(at: np.ndarray) -> np.ndarray:
    """Index into ``POLICY_VERSIONS`` of the policy in force at each instant."""
    return (at >= POLICY_2024).astype(np.int8) + (at >= POLICY_2025).astype(np.int8)


def spread(rng: np.random.Generator, start: np.ndarray, end: int, skew: float = 1.0) -> np.ndarray:
    """Instants in ``[start, end)``; ``skew`` < 1 leans towards ``end`` (growth)."""
    u = rng.random(start.shape[0]) ** skew
    span = np.maximum(end - start, 1).astype(np.float64)
    out: np.ndarray = start + np.minimum((u * span).astype(np.int64), span.astype(np.int64) - 1)
    return out
