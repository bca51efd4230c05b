"""Compile a policy to ONE standard SQL query (DuckDB now, Spark SQL later) and run it on Arrow tables.

Owns ``compile_sql`` and ``SqlTables``. The query reads ``records``, ``members``,
``consent`` (the ledger snapshot) and ``topics`` and returns ``record_id``,
``decision`` and ``reasons`` (sorted list). It spells exactly the rules of
``evaluate.py`` (property tests compare them record for record); every rule that
depends only on the policy and ``as_of`` is resolved in Python first
(``compiled.py``), so the SQL only holds CASE / IN lists of constants.

Portability: the query uses CTEs, CASE, LEFT JOIN, UNION ALL, GROUP BY,
``substr``, ``length``, ``lpad``, ``split_part`` and ``||``, which DuckDB and Spark
SQL (3.3+) share. The few constructs that differ (exploding a list, list
aggregation, the empty list, timestamp literals, full-match regex) are isolated
in ``Dialect``; only ``DUCKDB`` is exercised by the tests today.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Final

from consentgate.datamodel import CATEGORIES, TIERS
from consentgate.policy.compiled import CompiledPolicy, compile_policy, minor_cutoff_birth_year
from consentgate.policy.evaluate import PARTICIPANT_PREFIX, TOPIC_PREFIX, check_scope
from consentgate.policy.model import VERSION_PARTS, Policy, version_key

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

_VERSION_REGEX: Final = "[0-9]{1,9}([.][0-9]{1,9}){0,3}"
_PAD: Final = 9


@dataclass(frozen=True)
class Dialect:
    """The engine-specific spellings; everything else in the query is shared SQL."""

    name: str

    def explode(self, list_expr: str) -> str:
        """One output row per list element, in a select list."""
        return f"unnest({list_expr})" if self.name == "duckdb" else f"explode({list_expr})"

    def sorted_distinct_agg(self, expr: str) -> str:
        """Aggregate non-null values into a sorted list without duplicates."""
        if self.name == "duckdb":
            return f"list_sort(list_distinct(list({expr})))"
        return f"array_sort(collect_set({expr}))"

    def empty_string_list(self) -> str:
        return "CAST([] AS VARCHAR[])" if self.name == "duckdb" else "CAST(array() AS ARRAY<STRING>)"

    def timestamp(self, value: datetime) -> str:
        """An instant literal in UTC."""
        text = value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        return f"TIMESTAMPTZ '{text}+00:00'" if self.name == "duckdb" else f"TIMESTAMP '{text}Z'"

    def full_match(self, expr: str, pattern: str) -> str:
        if self.name == "duckdb":
            return f"regexp_full_match({expr}, {_lit(pattern)})"
        return f"({expr} RLIKE {_lit('^' + pattern + '$')})"


DUCKDB: Final = Dialect("duckdb")
SPARK: Final = Dialect("spark")


@dataclass(frozen=True)
class SqlTables:
    """Relations the query reads: table or view names (or a parenthesised subquery) chosen by the caller."""

    records: str = "records"
    members: str = "members"
    consent: str = "consent"
    topics: str = "topics"


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_list(values: Iterable[str]) -> str:
    return "(" + ", ".join(_lit(v) for v in sorted(values)) + ")"


def compile_sql(
    policy: Policy | CompiledPolicy,
    *,
    scope: str,
    as_of: datetime,
    tables: SqlTables | None = None,
    dialect: Dialect = DUCKDB,
) -> str:
    """One SQL query deciding every record for ``scope`` at ``as_of`` (see module docstring).

    Raises ``PolicyError`` when the policy names no recipient in ``scope``.
    """
    cp = policy if isinstance(policy, CompiledPolicy) else compile_policy(policy)
    required = check_scope(cp, scope)
    t = tables or SqlTables()
    ctes = [
        f"rec AS (\n  SELECT record_id, category, author_id, participants, created_at,\n    {_category_case(cp)} AS rule\n  FROM {t.records}\n)",
        _subjects_cte(dialect),
        _member_state_cte(cp, t, scope, dialect),
        "sf AS (\n  SELECT *, (has_row AND NOT granted) AS denied,\n"
        f"    (granted AND COALESCE({_version_covers('policy_version', required, dialect)}, FALSE)) AS valid\n  FROM ms\n)",
        _codes_cte(cp, t, as_of, dialect),
        f"agg AS (\n  SELECT record_id, {dialect.sorted_distinct_agg('reason')} AS reasons\n  FROM codes GROUP BY record_id\n)",
    ]
    select = (
        "SELECT r.record_id,\n  CASE WHEN a.record_id IS NULL THEN 'include' ELSE 'exclude' END AS decision,\n"
        f"  COALESCE(a.reasons, {dialect.empty_string_list()}) AS reasons\n"
        "FROM rec r LEFT JOIN agg a ON a.record_id = r.record_id"
    )
    header = f"-- consentgate policy {cp.policy.name} {cp.policy.version} scope={scope} as_of={as_of.isoformat()} dialect={dialect.name}\n"
    return header + "WITH\n" + ",\n".join(ctes) + "\n" + select


def _category_case(cp: CompiledPolicy) -> str:
    by_rule: dict[str, list[str]] = {}
    for category in CATEGORIES:
        by_rule.setdefault(cp.category_rule[category], []).append(category)
    whens = " ".join(f"WHEN category IN {_in_list(cats)} THEN {_lit(rule)}" for rule, cats in sorted(by_rule.items()))
    return f"CASE {whens} ELSE 'unknown' END"


def _subjects_cte(dialect: Dialect) -> str:
    return (
        "subj AS (\n"
        "  SELECT record_id, category, created_at, author_id AS member_id, TRUE AS is_author FROM rec\n"
        "  UNION ALL\n"
        "  SELECT record_id, category, created_at, member_id, FALSE AS is_author\n"
        f"  FROM (SELECT record_id, category, created_at, author_id, {dialect.explode('participants')} AS member_id\n"
        "        FROM rec WHERE rule = 'all_participants') p\n"
        "  WHERE member_id IS NULL OR author_id IS NULL OR member_id <> author_id\n"
        ")"
    )


def _subdivision_key() -> str:
    """SQL spelling of ``regions.region_key_of``."""
    return (
        "CASE WHEN m.subdivision IS NULL THEN NULL "
        "WHEN substr(m.subdivision, 1, length(m.country) + 1) = m.country || '-' THEN m.subdivision "
        "ELSE m.country || '-' || m.subdivision END"
    )


def _mode_case(cp: CompiledPolicy) -> str:
    whens: list[str] = []
    for column, mapping in (("sub_key", cp.sub_modes), ("country", cp.country_modes)):
        by_mode: dict[str, list[str]] = {}
        for region, mode in mapping.items():
            by_mode.setdefault(mode, []).append(region)
        whens += [f"WHEN {column} IN {_in_list(regions)} THEN {_lit(mode)}" for mode, regions in sorted(by_mode.items())]
    if not whens:
        return _lit(cp.default_mode)
    return f"CASE {' '.join(whens)} ELSE {_lit(cp.default_mode)} END"


def _member_state_cte(cp: CompiledPolicy, t: SqlTables, scope: str, dialect: Dialect) -> str:
    return (
        "ms AS (\n"
        "  SELECT record_id, is_author, category, created_at, known, birth_year, tier, has_row, granted, policy_version,\n"
        f"    {_mode_case(cp)} AS mode\n"
        "  FROM (\n"
        "    SELECT s.record_id, s.is_author, s.category, s.created_at,\n"
        "      m.member_id IS NOT NULL AS known, m.birth_year, m.tier, m.country,\n"
        f"      {_subdivision_key()} AS sub_key,\n"
        "      c.member_id IS NOT NULL AS has_row,\n"
        "      COALESCE(c.choice = 'grant', FALSE) AS granted, c.policy_version\n"
        "    FROM subj s\n"
        f"    LEFT JOIN {t.members} m ON m.member_id = s.member_id\n"
        f"    LEFT JOIN {t.consent} c ON c.member_id = s.member_id AND c.purpose = {_lit(cp.policy.purpose)} AND c.scope = {_lit(scope)}\n"
        "  ) j\n"
        ")"
    )


def _version_covers(column: str, required: str, dialect: Dialect) -> str:
    """SQL for ``evaluate.version_covers``: well-formed and, padded part by part, >= required."""
    need = "".join(str(p).zfill(_PAD) for p in version_key(required))
    parts = ", ".join(f"lpad(split_part({column}, '.', {i}), {_PAD}, '0')" for i in range(1, VERSION_PARTS + 1))
    return f"({dialect.full_match(column, _VERSION_REGEX)} AND concat({parts}) >= {_lit(need)})"


def _reason(code: str) -> str:
    return f"CASE WHEN is_author THEN {_lit(code)} ELSE {_lit(PARTICIPANT_PREFIX + code)} END"


def _codes_cte(cp: CompiledPolicy, t: SqlTables, as_of: datetime, dialect: Dialect) -> str:
    topic_whens = " ".join(f"WHEN {_lit(topic)} THEN {_lit(action)}" for topic, action in sorted(cp.topic_action.items()))
    subject_rules: list[tuple[str, str]] = [
        ("UNKNOWN_SUBJECT", "NOT known"),
        ("MINOR", f"known AND (birth_year IS NULL OR birth_year > {minor_cutoff_birth_year(as_of, cp.minimum_age)})"),
        ("CONTRACT_EXCLUDED", f"known AND ({_contract_condition(cp)})"),
        ("JURISDICTION_EXCLUDED", "known AND mode = 'excluded'"),
        ("CONSENT_DENIED", "known AND denied"),
        ("OPT_IN_REQUIRED", "known AND mode = 'opt_in' AND NOT has_row"),
        ("CONSENT_SCOPE_OUTDATED", "known AND mode = 'opt_in' AND granted AND NOT valid"),
    ]
    if as_of < cp.notice_end:
        subject_rules.append(("NOTICE_NOT_ELAPSED", "known AND mode = 'opt_out' AND NOT denied AND NOT valid"))
    if not cp.policy.retroactive:
        subject_rules.append(("RETROACTIVE_USE", f"known AND NOT valid AND created_at < {dialect.timestamp(cp.policy.effective_at)}"))
    parts = [
        "  SELECT record_id, 'UNKNOWN_CATEGORY' AS reason FROM rec WHERE rule = 'unknown'",
        "  SELECT record_id, 'CATEGORY_EXCLUDED' AS reason FROM rec WHERE rule = 'exclude'",
        f"  SELECT record_id, {_lit(TOPIC_PREFIX)} || topic AS reason FROM {t.topics}\n"
        f"    WHERE topic IS NOT NULL AND (CASE topic {topic_whens} ELSE {_lit(cp.default_topic_action)} END) = 'exclude'",
    ]
    parts += [f"  SELECT record_id, {_reason(code)} AS reason FROM sf WHERE {cond}" for code, cond in subject_rules]
    return "codes AS (\n" + "\n  UNION ALL\n".join(parts) + "\n)"


def _contract_condition(cp: CompiledPolicy) -> str:
    terms = [f"tier IS NULL OR tier NOT IN {_in_list(TIERS)}"]
    for tier in TIERS:
        if cp.tier_excluded[tier]:
            terms.append(f"(tier = {_lit(tier)} AND category IN {_in_list(cp.tier_excluded[tier])})")
    return " OR ".join(terms)


def decide_arrow(
    policy: Policy | CompiledPolicy,
    *,
    scope: str,
    as_of: datetime,
    records: pa.Table,
    members: pa.Table,
    consent: pa.Table,
    topics: pa.Table,
    threads: int | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Run the compiled query in DuckDB over Arrow tables; returns the decisions table.

    Uses ``con`` when given (its views ``records``/``members``/``consent``/``topics`` are
    replaced), else a private in-memory database.
    """
    import duckdb

    own = con is None
    db = duckdb.connect(":memory:") if con is None else con
    try:
        if threads is not None:
            db.execute(f"SET threads = {int(threads)}")
        for name, table in (("records", records), ("members", members), ("consent", consent), ("topics", topics)):
            db.register(name, table)
        return db.sql(compile_sql(policy, scope=scope, as_of=as_of)).to_arrow_table()
    finally:
        if own:
            db.close()
