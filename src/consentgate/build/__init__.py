"""Dataset builds: a reproducible, sharded, evidence-carrying training set from a build spec.

Public API (docs/interfaces.md, "Build"; reference in docs/build-reference.md)::

    load_spec(path) -> BuildSpec
    run_build(spec, *, engine="duckdb", workers=None, replace=False, progress=True) -> BuildResult
    verify_build(dir) -> VerifyReport
    list_builds(root) -> list[dict]
    explain_record(spec, record_id) -> dict
    Engine / BuildPlan / get_engine        the engine interface (DuckDB now; the plan is engine-neutral)
    shard_of(key, shards)                  the SISA sharding rule
"""

from __future__ import annotations

from consentgate.build.explain import explain_record
from consentgate.build.plan import BuildPlan, Engine, EngineResult, NullProgress, Progress, StepConfig, get_engine
from consentgate.build.run import BuildResult, run_build
from consentgate.build.sharding import shard_array, shard_of
from consentgate.build.spec import BuildSpec, load_spec, parse_spec
from consentgate.build.verify import VerifyReport, list_builds, verify_build

__all__ = [
    "BuildPlan",
    "BuildResult",
    "BuildSpec",
    "Engine",
    "EngineResult",
    "NullProgress",
    "Progress",
    "StepConfig",
    "VerifyReport",
    "explain_record",
    "get_engine",
    "list_builds",
    "load_spec",
    "parse_spec",
    "run_build",
    "shard_array",
    "shard_of",
    "verify_build",
]
