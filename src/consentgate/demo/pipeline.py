"""The stages of the end-to-end demo, one function each (see demo/run.py).

Each stage calls the package that owns the work (demo.network, ledger, policy,
DuckDB via the policy's compiled SQL) and returns plain values, so a later stage
implementation (the build pipeline, a Spark engine) can replace one at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from consentgate.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "policies"
RECOMMENDED = "recommended.yaml"
STORY = "default-on-2024.yaml"


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo writes, all inside one output folder."""

    out: Path

    @property
    def data(self) -> Path:
        return self.out / "data"

    @property
    def ledger_url(self) -> str:
        return f"sqlite:///{(self.out / 'ledger.db').resolve()}"

    @property
    def dataset(self) -> Path:
        return self.out / "dataset"

    @property
    def spec(self) -> Path:
        return self.out / "build.yaml"


@dataclass
class DemoResult:
    """Figures of one demo run, for the summary and for tests."""

    paths: DemoPaths
    generated: str
    events: int
    policy: str
    story_policy: str
    records_in: int
    records_out: int
    records_scanned: int = 0  # records whose text was read at all (the rest were excluded without it)
    # (group key) -> (included, excluded)
    by_category: dict[str, tuple[int, int]] = field(default_factory=dict)
    by_region: dict[str, tuple[int, int]] = field(default_factory=dict)
    top_reasons: list[tuple[str, int]] = field(default_factory=list)
    story_included: int = 0
    story_private_messages: int = 0
    content_hash: str = ""


def example_policy(name: str) -> Path:
    """Path of a shipped example policy (examples/policies/ in a checkout)."""
    path = EXAMPLES / name
    if not path.is_file():
        raise InputError(f"example policy {path} is missing", hint="Run the demo from a consentgate checkout.", file=str(path))
    return path


Status = Callable[[str], Any]


def run_stages(paths: DemoPaths, *, members: int, seed: int, as_of: datetime, status: Status) -> "Prepared":
    """generate -> ledger -> publish policies; returns what the build stage needs."""
    from consentgate.demo.network import generate_network
    from consentgate.ledger import open_ledger
    from consentgate.policy import load_policy

    status("generating the synthetic network")
    generated = generate_network(members=members, seed=seed, out=paths.data)

    status("recording consent events in the SQLite ledger")
    ledger = open_ledger(paths.ledger_url)
    events = ledger.import_file(paths.data / "consent_events.parquet")

    status("publishing the example policies in the ledger")
    policy_file, story_file = example_policy(RECOMMENDED), example_policy(STORY)
    policy, story = load_policy(policy_file), load_policy(story_file)
    for p in (policy, story):
        _publish(ledger, p)
    write_build_spec(paths, policy_file, as_of)
    return Prepared(generated=generated.describe(), events=events, policy=policy, story=story)


@dataclass(frozen=True)
class Prepared:
    """Output of the stages before the build."""

    generated: str
    events: int
    policy: Any
    story: Any


def write_build_spec(paths: DemoPaths, policy_file: Path, as_of: datetime) -> None:
    """The demo's build spec (docs/build-reference.md), kept beside the output so it can be re-run."""
    import yaml

    spec = {
        "name": "demo",
        "sources": {
            "members": "data/members.parquet",
            "records": "data/records.parquet",
            "consent": {"ledger": paths.ledger_url},
        },
        "policy": str(policy_file),
        "scope": "first_party",
        "as_of": as_of.isoformat(),
        "output": "dataset",
    }
    paths.spec.write_text(
        "# Written by `consentgate demo`; re-run with `consentgate build run <this file> --replace`.\n"
        + yaml.safe_dump(spec, sort_keys=False)
    )


def _publish(ledger: Any, policy: Any) -> None:
    from consentgate.ledger import PublishedPolicy
    from consentgate.policy import published_fields

    # The synthetic network's history is dated in the past, and so are the example policies:
    # their publication is recorded as a backfill, and the demo's dataset card says so.
    ledger.publish_policy(PublishedPolicy(**published_fields(policy)), backfill=True)
