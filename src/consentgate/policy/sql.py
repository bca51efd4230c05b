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

# Reason codes are joined with the ASCII unit separator while aggregating (a topic containing
# it would be split; topics come from the detector's closed vocabulary).
SEP: Final = "chr(31)"
_VERSION_REGEX: Final = "[0-9]{1,9}([.][0-9]{1,9}){0,3}"
_PAD: Final = 9


@dataclass(frozen=True)
class Dialect:
    """The engine-specific spellings; everything else in the query is shared SQL."""

    name: str

    def explode(self, list_expr: str) -> str:
        """One output row per list element, in a select list."""
        return f"unnest({list_expr})" if self.name == "duckdb" else f"explode({list_expr})"

    def string_agg(self, expr: str) -> str:
        """Join a group's non-null strings with the code separator."""
        if self.name == "duckdb":
            return f"string_agg({expr}, {SEP})"
        return f"concat_ws({SEP}, collect_list({expr}))"

    def split_sorted_distinct(self, expr: str) -> str:
        """Split a separator-joined string into a sorted list without duplicates."""
        if self.name == "duckdb":
            return f"list_sort(list_distinct(string_split({expr}, {SEP})))"
        return f"array_sort(array_distinct(split({expr}, {SEP})))"

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
        "a_subj AS (\n  SELECT record_id, category, created_at, rule, author_id AS member_id, TRUE AS is_author FROM rec\n)",
        _participants_cte(dialect),
        *_subject_chain("a", cp, t, scope, required, as_of, dialect),
        *_subject_chain("p", cp, t, scope, required, as_of, dialect),
        f"p_agg AS (\n  SELECT record_id, {dialect.string_agg('codes')} AS codes FROM p_codes WHERE codes IS NOT NULL GROUP BY record_id\n)",
        _topic_codes_cte(cp, t, dialect),
        "fin AS (\n  SELECT a.record_id, concat_ws("
        f"{SEP}, CASE a.rule WHEN 'unknown' THEN 'UNKNOWN_CATEGORY' WHEN 'exclude' THEN 'CATEGORY_EXCLUDED' END,\n"
        f"    CASE WHEN a.created_at > {dialect.timestamp(as_of)} THEN 'CREATED_AFTER_AS_OF' END, a.codes, p.codes, ta.codes) AS codes\n"
        "  FROM a_codes a LEFT JOIN p_agg p ON p.record_id = a.record_id LEFT JOIN ta ON ta.record_id = a.record_id\n)",
    ]
    select = (
        "SELECT record_id,\n  CASE WHEN codes = '' THEN 'include' ELSE 'exclude' END AS decision,\n"
        f"  CASE WHEN codes = '' THEN {dialect.empty_string_list()} ELSE {dialect.split_sorted_distinct('codes')} END AS reasons\n"
        "FROM fin"
    )
    header = f"-- consentgate policy {cp.policy.name} {cp.policy.version} scope={scope} as_of={as_of.isoformat()} dialect={dialect.name}\n"
    return header + "WITH\n" + ",\n".join(ctes) + "\n" + select


def _category_case(cp: CompiledPolicy) -> str:
    by_rule: dict[str, list[str]] = {}
    for category in CATEGORIES:
        by_rule.setdefault(cp.category_rule[category], []).append(category)
    whens = " ".join(f"WHEN category IN {_in_list(cats)} THEN {_lit(rule)}" for rule, cats in sorted(by_rule.items()))
    return f"CASE {whens} ELSE 'unknown' END"


def _participants_cte(dialect: Dialect) -> str:
    """Every participant other than the author, for categories that require all participants.

    Authors are decided on the record row itself (no aggregation); only these rows are grouped.
    """
    return (
        "p_subj AS (\n"
        "  SELECT record_id, category, created_at, rule, member_id, FALSE AS is_author\n"
        f"  FROM (SELECT record_id, category, created_at, rule, author_id, {dialect.explode('participants')} AS member_id\n"
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


def _subject_chain(
    name: str, cp: CompiledPolicy, t: SqlTables, scope: str, required: str, as_of: datetime, dialect: Dialect
) -> list[str]:
    """``{name}_state`` (member and consent joined, mode resolved) and ``{name}_codes`` (the codes)."""
    state = (
        f"{name}_state AS (\n"
        "  SELECT *, (has_row AND NOT granted) AS denied,\n"
        f"    (CASE WHEN granted THEN COALESCE({_version_covers('policy_version', required, dialect)}, FALSE) ELSE FALSE END) AS valid,\n"
        f"    {_mode_case(cp)} AS mode\n"
        "  FROM (\n"
        "    SELECT s.record_id, s.is_author, s.category, s.created_at, s.rule,\n"
        "      m.member_id IS NOT NULL AS known, m.birth_year, m.tier, m.country,\n"
        f"      {_subdivision_key()} AS sub_key,\n"
        "      c.member_id IS NOT NULL AS has_row,\n"
        "      COALESCE(c.choice = 'grant', FALSE) AS granted, c.policy_version\n"
        f"    FROM {name}_subj s\n"
        f"    LEFT JOIN {t.members} m ON m.member_id = s.member_id\n"
        f"    LEFT JOIN {t.consent} c ON c.member_id = s.member_id AND c.purpose = {_lit(cp.policy.purpose)} AND c.scope = {_lit(scope)}\n"
        "  ) j\n"
        ")"
    )
    return [state, _subject_codes_cte(name, cp, as_of, dialect)]


def _version_covers(column: str, required: str, dialect: Dialect) -> str:
    """SQL for ``evaluate.version_covers``: well-formed and, padded part by part, >= required."""
    need = "".join(str(p).zfill(_PAD) for p in version_key(required))
    parts = ", ".join(f"lpad(split_part({column}, '.', {i}), {_PAD}, '0')" for i in range(1, VERSION_PARTS + 1))
    return f"({dialect.full_match(column, _VERSION_REGEX)} AND concat({parts}) >= {_lit(need)})"


def _subject_codes_cte(name: str, cp: CompiledPolicy, as_of: datetime, dialect: Dialect) -> str:
    """One pass over subject rows: every subject-level code that applies, separator-joined."""
    rules: list[tuple[str, str]] = [
        ("UNKNOWN_SUBJECT", "NOT known"),
        ("MINOR", f"known AND (birth_year IS NULL OR birth_year > {minor_cutoff_birth_year(as_of, cp.minimum_age)})"),
        ("CONTRACT_EXCLUDED", f"known AND ({_contract_condition(cp)})"),
        ("JURISDICTION_EXCLUDED", "known AND mode = 'excluded'"),
        ("CONSENT_DENIED", "known AND denied"),
        ("OPT_IN_REQUIRED", "known AND mode = 'opt_in' AND NOT has_row"),
        ("CONSENT_SCOPE_OUTDATED", "known AND mode = 'opt_in' AND granted AND NOT valid"),
    ]
    if as_of < cp.notice_end:
        rules.append(("NOTICE_NOT_ELAPSED", "known AND mode = 'opt_out' AND NOT denied AND NOT valid"))
    if not cp.policy.retroactive:
        rules.append(("RETROACTIVE_USE", f"known AND NOT valid AND created_at < {dialect.timestamp(cp.policy.effective_at)}"))
    prefix = f"CASE WHEN is_author THEN '' ELSE {_lit(PARTICIPANT_PREFIX)} END"
    cases = ",\n    ".join(f"CASE WHEN {cond} THEN {prefix} || {_lit(code)} END" for code, cond in rules)
    return f"{name}_codes AS (\n  SELECT record_id, rule, created_at, NULLIF(concat_ws({SEP},\n    {cases}), '') AS codes\n  FROM {name}_state\n)"


def _topic_codes_cte(cp: CompiledPolicy, t: SqlTables, dialect: Dialect) -> str:
    whens = " ".join(f"WHEN {_lit(topic)} THEN {_lit(action)}" for topic, action in sorted(cp.topic_action.items()))
    return (
        f"ta AS (\n  SELECT record_id, {dialect.string_agg(_lit(TOPIC_PREFIX) + ' || topic')} AS codes FROM {t.topics}\n"
        f"  WHERE topic IS NOT NULL AND (CASE topic {whens} ELSE {_lit(cp.default_topic_action)} END) = 'exclude'\n"
        "  GROUP BY record_id\n)"
    )


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
