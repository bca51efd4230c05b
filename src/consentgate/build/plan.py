"""The engine-neutral build plan and the ``Engine`` interface.

A ``BuildPlan`` is everything an engine needs and nothing engine-specific:

- the sources (``SourceSpec`` + ``Mapping``) and the consent snapshot file;
- ``screen_sql``: the policy compiled to one standard SQL query over the tables
  ``records``, ``members``, ``consent`` and an empty ``no_topics`` (docs/interfaces.md):
  every record decided without reading its content, returning each record's reason
  bits (``compile_sql(output="mask")``); only the records it includes
  (the *candidates*) are scanned;
- ``decide_sql``: the policy's sensitive-topic rules over ``candidates`` (those records)
  and the detected ``topics`` (``compile_sql(output="topics")``): the screen found no
  other reason to exclude a candidate, and topics only ever add reasons, so these rules
  decide what is left;
- the per-batch steps ``annotate`` (shard + PII/topic detection) and ``redact``,
  plain picklable functions over Arrow record batches (``consentgate.build.steps``),
  so that DuckDB + a process pool runs them today and Spark's ``mapInArrow`` can
  run the very same functions later;
- the sharding rule (``consentgate.build.sharding``), slice count and batch size.

An engine turns a plan into the data files, ``decisions.parquet`` and subject
bitmaps in a folder it is given, and returns what it wrote and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: worker processes import this module (``build.tasks``) without pydantic
    from consentgate.build.spec import Mapping, SourceSpec


# Rows per batch of candidates sent to detection, at most (``run_build`` clamps the ``batch_size``
# setting to it). Each worker holds two batches and their scan results: at 10M records 16,384 rows
# took the detect phase's peak from 1.21 to 1.04 GiB against 65,536, with no change in time; 8,192
# gave no further drop (session 10).
DETECT_BATCH_ROWS = 16384


@dataclass(frozen=True)
class StepConfig:
    """What the per-batch steps need; picklable, sent with each task. (The member names,
    large, go to each worker once: ``steps.init_worker``.)"""

    shards: int
    strategies: dict[str, str]
    pseudonym_key: bytes | None
    drop_entities: tuple[str, ...] = ()
    redact_topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildPlan:
    """One build, ready to run on any engine."""

    name: str
    records: SourceSpec
    members: SourceSpec
    mapping: Mapping
    consent_snapshot: Path
    screen_sql: str
    decide_sql: str
    shards: int
    slices: int
    batch_size: int  # rows per batch sent to detection, at most ``DETECT_BATCH_ROWS``
    steps: StepConfig
    extra: dict[str, Any] = field(default_factory=dict)


class Progress(Protocol):
    """Where an engine reports its phase and how many records it has processed in it."""

    def phase(self, name: str, total: int | None) -> None: ...

    def relabel(self, name: str, total: int | None) -> None:
        """Replace the current phase's line: it turned out to be waiting on something else."""
        ...

    def advance(self, n: int) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    """A progress sink that shows nothing (``--quiet``, tests, library use)."""

    def phase(self, name: str, total: int | None) -> None:
        return None

    def relabel(self, name: str, total: int | None) -> None:
        return None

    def advance(self, n: int) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass
class EngineResult:
    """What an engine wrote into the output folder and what it counted."""

    input_rows: dict[str, int]
    input_files: dict[str, tuple[Path, ...]]
    counts: dict[str, Any]
    redactions: dict[str, int]
    shard_rows: list[int]
    subject_counts: list[int]
    members_indexed: int
    timings: dict[str, float]
    versions: dict[str, str]


class Engine(Protocol):
    """A build engine: runs a ``BuildPlan`` with ``workers`` processes into folder ``out``."""

    name: str

    def run(self, plan: BuildPlan, out: Path, *, workers: int, progress: Progress) -> EngineResult: ...


def get_engine(name: str) -> Engine:
    """The engine called ``name``; only ``duckdb`` exists in this release."""
    from consentgate.errors import BuildError

    if name == "duckdb":
        from consentgate.build.duckdb_engine import DuckDBEngine

        return DuckDBEngine()
    raise BuildError(f"unknown build engine {name!r}", hint="This release has one engine: duckdb.", field="engine", value=name)
