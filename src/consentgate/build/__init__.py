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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from consentgate.build.explain import explain_record
    from consentgate.build.plan import BuildPlan, Engine, EngineResult, NullProgress, Progress, StepConfig, get_engine
    from consentgate.build.run import BuildResult, run_build
    from consentgate.build.sharding import shard_array, shard_of
    from consentgate.build.spec import BuildSpec, load_spec, parse_spec
    from consentgate.build.verify import VerifyReport, list_builds, verify_build

# Imported on first use (PEP 562), not with the package: a build's worker processes import
# ``consentgate.build.tasks``, and with it this package, and need none of these (the spec
# and run modules bring pydantic and the policy compiler: 0.3 s per worker).
_HOME = {
    "explain_record": "explain",
    "BuildPlan": "plan", "Engine": "plan", "EngineResult": "plan", "NullProgress": "plan", "Progress": "plan",
    "StepConfig": "plan", "get_engine": "plan",
    "BuildResult": "run", "run_build": "run",
    "shard_array": "sharding", "shard_of": "sharding",
    "BuildSpec": "spec", "load_spec": "spec", "parse_spec": "spec",
    "VerifyReport": "verify", "list_builds": "verify", "verify_build": "verify",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'consentgate.build' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"consentgate.build.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


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
