"""Shared fixture: one 2,000-member network (seed 7) generated once per test session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from consentgate.demo.network import GenerateResult, generate_network


@dataclass(frozen=True)
class Network:
    result: GenerateResult
    members: pa.Table
    records: pa.Table
    consent: pa.Table
    labels: pa.Table


@pytest.fixture(scope="session")
def gen_network(tmp_path_factory: pytest.TempPathFactory) -> Network:
    out: Path = tmp_path_factory.mktemp("net") / "data"
    result = generate_network(members=2000, seed=7, out=out)
    return Network(
        result,
        pq.read_table(out / "members.parquet"),
        pq.read_table(out / "records.parquet"),
        pq.read_table(out / "consent_events.parquet"),
        pq.read_table(out / "labels.parquet"),
    )
