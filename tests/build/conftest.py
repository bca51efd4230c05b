"""Fixtures for the build tests: a generated network, a real SQLite ledger with the policy published, specs.

Everything is real: the demo generator writes canonical Parquet, the ledger imports
the consent events and publishes examples/policies/recommended.yaml, and builds run
the DuckDB engine with the real detector.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from consentgate.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "examples" / "policies" / "recommended.yaml"
KEY = "test-pseudonym-key-0123456789"
AS_OF = "2026-01-01T00:00:00Z"


def make_ledger(folder: Path, events: Path, *, publish: bool = True) -> str:
    from consentgate.ledger import PublishedPolicy, open_ledger
    from consentgate.policy import load_policy, published_fields

    url = f"sqlite:///{folder / 'ledger.db'}"
    ledger = open_ledger(url)
    try:
        ledger.import_file(events)
        if publish:
            ledger.publish_policy(PublishedPolicy(**published_fields(load_policy(POLICY))), backfill=True)  # dated 2025
    finally:
        ledger.close()
    return url


@pytest.fixture(scope="session")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1,000-member network (about 10,000 records) with a published-policy ledger, shared read-only."""
    from consentgate.demo.network import generate_network

    folder = tmp_path_factory.mktemp("network")
    generate_network(members=1000, seed=11, out=folder / "data")
    make_ledger(folder, folder / "data" / "consent_events.parquet")
    return folder


@pytest.fixture(scope="session")
def small_network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 120-member network for the bad-input cases and crash trials."""
    from consentgate.demo.network import generate_network

    folder = tmp_path_factory.mktemp("small")
    generate_network(members=120, seed=5, out=folder / "data")
    make_ledger(folder, folder / "data" / "consent_events.parquet")
    return folder


@pytest.fixture()
def settings() -> Settings:
    return load_settings(pseudonym_key=KEY)


def spec_dict(net: Path, out: Path, **over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "test-build",
        "sources": {
            "members": str(net / "data" / "members.parquet"),
            "records": str(net / "data" / "records.parquet"),
            "consent": {"ledger": f"sqlite:///{net / 'ledger.db'}"},
        },
        "policy": str(POLICY),
        "scope": "first_party",
        "as_of": AS_OF,
        "shards": 4,
        "slices": 3,
        "output": str(out),
    }
    spec.update(over)
    return spec


@pytest.fixture()
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """``write_spec(net, **overrides) -> spec path`` (output defaults to tmp_path/out/ds)."""

    def _write(net: Path, name: str = "spec.yaml", **over: Any) -> Path:
        data = spec_dict(net, tmp_path / "out" / "ds", **over)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return _write


@pytest.fixture(scope="session")
def built(network: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One complete build of ``network`` with 1 worker, shared by the read-only tests."""
    from consentgate.build import load_spec, run_build

    folder = tmp_path_factory.mktemp("built")
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(network, folder / "ds")), encoding="utf-8")
    run_build(load_spec(spec), workers=1, progress=False, settings=load_settings(pseudonym_key=KEY))
    return folder / "ds"


def copy_data(net: Path, dest: Path) -> Path:
    """A private copy of a network's data folder and ledger (tests that alter inputs)."""
    shutil.copytree(net / "data", dest / "data")
    shutil.copy(net / "ledger.db", dest / "ledger.db")
    return dest
