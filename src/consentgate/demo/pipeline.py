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
    def snapshot(self) -> Path:
        return self.out / "consent-snapshot.parquet"

    @property
    def dataset(self) -> Path:
        return self.out / "dataset"


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
    # (group key) -> (included, excluded)
    by_category: dict[str, tuple[int, int]] = field(default_factory=dict)
    by_region: dict[str, tuple[int, int]] = field(default_factory=dict)
    top_reasons: list[tuple[str, int]] = field(default_factory=list)
    story_included: int = 0
    story_private_messages: int = 0


def example_policy(name: str) -> Path:
    """Path of a shipped example policy (examples/policies/ in a checkout)."""
    path = EXAMPLES / name
    if not path.is_file():
        raise InputError(f"example policy {path} is missing", hint="Run the demo from a consentgate checkout.", file=str(path))
    return path


Status = Callable[[str], Any]


def run_stages(paths: DemoPaths, *, members: int, seed: int, as_of: datetime, status: Status) -> DemoResult:
    """generate -> ledger -> policy -> decide -> write; returns the figures."""
    from consentgate.demo.network import generate_network
    from consentgate.ledger import open_ledger
    from consentgate.policy import check_publishable, load_policy

    status("generating the synthetic network")
    generated = generate_network(members=members, seed=seed, out=paths.data)

    status("recording consent events in the SQLite ledger")
    ledger = open_ledger(paths.ledger_url)
    events = ledger.import_file(paths.data / "consent_events.parquet")

    status("publishing the example policies")
    policy = load_policy(example_policy(RECOMMENDED))
    story = load_policy(example_policy(STORY))
    for p in (policy, story):
        _publish(ledger, p)
    check_publishable(policy, ledger.published_policy(policy.name, policy.version), as_of)

    status("taking the consent snapshot")
    ledger.snapshot(as_of, paths.snapshot)

    status("deciding every record in DuckDB")
    from consentgate.demo.decide import decide_and_write

    return decide_and_write(paths, policy=policy, story=story, as_of=as_of, generated=generated.describe(), events=events)


def _publish(ledger: Any, policy: Any) -> None:
    from consentgate.ledger import PublishedPolicy
    from consentgate.policy import published_fields

    ledger.publish_policy(PublishedPolicy(**published_fields(policy)))


