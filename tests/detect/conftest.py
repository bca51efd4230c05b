"""Fixtures for the detect tests: one Hyperscan and one RE2 detector per session.

Compiled Hyperscan databases are cached on disk (``CONSENTGATE_CACHE_DIR``), so only
the first run on a machine pays the compile time.
"""

from __future__ import annotations

import pytest

from consentgate.detect import Detector

MEMBERS = ["Maria Lopez", "Jean-Pierre Dupont", "鈴木陽子", "Oluwakemi Ilori"]


@pytest.fixture(scope="session")
def detector() -> Detector:
    return Detector(MEMBERS, backend="hyperscan")


@pytest.fixture(scope="session")
def re2_detector() -> Detector:
    return Detector(MEMBERS, backend="re2")
