"""Policy as code: load a policy YAML, decide records (Python reference and SQL), lint, diff, publish.

Public API (see docs/interfaces.md, "Policy", and docs/policy-reference.md):

- ``load_policy(path) -> Policy`` / ``parse_policy(bytes, source=)``: validated model, ``Policy.sha256``.
- ``evaluate(record, ctx) -> Decision`` with ``EvalContext``, ``Record``, ``Member``, ``ConsentState``.
- ``compile_sql(policy, *, scope, as_of, tables) -> str``, ``SqlTables``, ``decide_arrow(...)``.
- ``compile_policy(policy) -> CompiledPolicy`` (``pii_strategies()``, ``redact_topics()`` for the build stage).
- ``check_publishable(policy, published, at)``, ``published_fields(policy)``.
- ``lint_policy(policy) -> list[LintFinding]``, ``diff_policies(old, new) -> DiffReport``.

This package imports nothing from ``consentgate.cli``, ``.service`` or ``.build``.
"""

from __future__ import annotations

from consentgate.policy.compiled import CompiledPolicy, compile_policy, gpc_scopes
from consentgate.policy.diff import DiffReport, diff_policies
from consentgate.policy.lint import LintFinding, lint_policy
from consentgate.policy.evaluate import (
    REASON_CODES,
    ConsentState,
    Decision,
    EvalContext,
    Finding,
    Member,
    Record,
    evaluate,
)
from consentgate.policy.loader import load_policy, parse_policy
from consentgate.policy.model import Policy, parse_version
from consentgate.policy.publish import check_publishable, published_fields
from consentgate.policy.sql import DUCKDB, SPARK, Dialect, SqlTables, compile_sql, decide_arrow

__all__ = [
    "DUCKDB",
    "REASON_CODES",
    "SPARK",
    "CompiledPolicy",
    "ConsentState",
    "Decision",
    "DiffReport",
    "Dialect",
    "EvalContext",
    "Finding",
    "LintFinding",
    "Member",
    "Policy",
    "Record",
    "SqlTables",
    "check_publishable",
    "compile_policy",
    "compile_sql",
    "decide_arrow",
    "diff_policies",
    "evaluate",
    "gpc_scopes",
    "lint_policy",
    "load_policy",
    "parse_policy",
    "parse_version",
    "published_fields",
]
