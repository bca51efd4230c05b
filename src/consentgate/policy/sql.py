"""Compile a policy to ONE standard SQL query (DuckDB now, Spark SQL later) and run it on Arrow tables.

Owns ``compile_sql`` and ``SqlTables``. The query reads ``records``, ``members``,
``consent`` (the ledger snapshot) and ``topics`` and returns ``record_id``,
``decision`` and ``reasons`` (sorted list). It spells exactly the rules of
``evaluate.py`` (property tests compare them record for record); every rule that
depends only on the policy and ``as_of`` is resolved in Python first
(``compiled.py``), so the SQL only holds CASE / IN lists of constants.

Shape: member-level codes are computed once per member (``mem``), joined to each
record's author and, for categories that need every participant, to each other
participant; codes are bits of a BIGINT OR-ed together (``bit_or`` per record), and
only the distinct masks are spelled out as sorted code lists (``names``).

Portability: the query uses CTEs, CASE, LEFT JOIN, GROUP BY, ``bit_or``, ``&``,
``|``, ``substr``, ``length``, ``lpad``, ``split_part`` and ``||``, which DuckDB and
Spark SQL (3.3+) share. The few constructs that differ (exploding a list, list
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

    def hash_of(self, *exprs: str) -> str:
        """A 64-bit hash of the values (engine-specific: compare only with the same engine's)."""
        return f"hash({', '.join(exprs)})" if self.name == "duckdb" else f"xxhash64({', '.join(exprs)})"

    def list_contains(self, list_expr: str, value: str) -> str:
        return f"list_contains({list_expr}, {value})" if self.name == "duckdb" else f"array_contains({list_expr}, {value})"

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


# The record columns the policy reads (besides record_id): ``incomplete`` (``extras``) is true when one is null.
SCREENED_COLUMNS = ("category", "author_id", "participants", "created_at")


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_list(values: Iterable[str]) -> str:
    return "(" + ", ".join(_lit(v) for v in sorted(values)) + ")"


# Reason codes travel through the query as bits of one BIGINT: the author's subject codes in
# bits 0-15, other participants' in bits 16-31 (``bit_or`` over the participants), record
# codes from bit 32. Only the few distinct masks are spelled out as code lists, at the end.
# Building, joining and splitting code strings per row was the query's main cost
# (4x slower at 1M records, bench/policy_bench.py).
SUBJECT_CODES: Final = (
    "UNKNOWN_SUBJECT", "MINOR", "CONTRACT_EXCLUDED", "JURISDICTION_EXCLUDED", "CONSENT_DENIED",
    "OPT_IN_REQUIRED", "CONSENT_SCOPE_OUTDATED", "NOTICE_NOT_ELAPSED", "RETROACTIVE_USE",
)
RECORD_CODES: Final = ("UNKNOWN_CATEGORY", "CATEGORY_EXCLUDED", "CREATED_AFTER_AS_OF")
_PARTICIPANT_FACTOR: Final = 1 << 16
_RECORD_SHIFT: Final = 32


def _bit(code: str) -> int:
    if code in RECORD_CODES:
        return 1 << (_RECORD_SHIFT + RECORD_CODES.index(code))
    return 1 << SUBJECT_CODES.index(code)


def mask_codes() -> list[tuple[int, str]]:
    """Every (bit, reason code) pair the query can set, participants' codes with their prefix."""
    pairs = [(_bit(c), c) for c in SUBJECT_CODES + RECORD_CODES]
    return pairs + [(_bit(c) * _PARTICIPANT_FACTOR, PARTICIPANT_PREFIX + c) for c in SUBJECT_CODES]


def reasons_of(mask: int, tcodes: str | None = None) -> tuple[str, ...]:
    """The sorted reason codes of a ``mask`` / ``tcodes`` pair from an ``output="mask"`` query."""
    codes = {code for bit, code in mask_codes() if mask & bit}
    if tcodes:
        codes.update(tcodes.split("\x1f"))
    return tuple(sorted(codes))


def compile_sql(
    policy: Policy | CompiledPolicy,
    *,
    scope: str,
    as_of: datetime,
    tables: SqlTables | None = None,
    dialect: Dialect = DUCKDB,
    output: str = "reasons",
    extras: bool = False,
) -> str:
    """One SQL query deciding every record for ``scope`` at ``as_of`` (see module docstring).

    ``output="reasons"`` returns ``record_id, decision, reasons``. ``output="mask"`` returns
    ``record_id, mask, tcodes`` instead (the code bits and the separator-joined topic codes;
    the record is included when both are empty, ``reasons_of`` spells them): cheaper for
    an engine that keeps millions of decisions before writing them.
    ``extras`` (with ``output="mask"``) adds three columns a build needs from the same pass
    over the records, which change no decision: ``group_key``, ``hash_of(category,
    region, tier)`` of the record and its author (region is the author's subdivision,
    else country, else ``'unknown'``; tier ``'unknown'`` when missing, and both for an
    unknown author); ``author_missing``, whether the author is not among the record's
    participants; and ``incomplete``, whether the record lacks a category, author,
    participants list or creation time (the build refuses such a record).
    Decisions of incomplete records are not meaningful.
    ``output="topics"`` returns ``record_id, decision, reasons`` from the sensitive-topic
    rules alone: the decision of each record *given that no other rule excludes it*.
    Topics only ever add exclusion reasons, so for the records an ``output="mask"``
    query without topics includes (mask 0), this is exactly the whole policy's
    decision, at the cost of one join with ``topics`` instead of every member's codes
    again (a build's decide pass: 1.3 CPU-s at 1.44M candidates became 0.2).
    Raises ``PolicyError`` when the policy names no recipient in ``scope``.
    """
    if output not in ("reasons", "mask", "topics"):
        raise ValueError(f"output must be 'reasons', 'mask' or 'topics', not {output!r}")
    if extras and output != "mask":
        raise ValueError("extras need output='mask'")
    cp = policy if isinstance(policy, CompiledPolicy) else compile_policy(policy)
    required = check_scope(cp, scope)
    t = tables or SqlTables()
    header = f"-- consentgate policy {cp.policy.name} {cp.policy.version} scope={scope} as_of={as_of.isoformat()} dialect={dialect.name} output={output}\n"
    if output == "topics":
        return header + _topics_only(cp, t, dialect)
    record_bits = (
        f"CASE r.rule WHEN 'unknown' THEN {_bit('UNKNOWN_CATEGORY')} WHEN 'exclude' THEN {_bit('CATEGORY_EXCLUDED')} ELSE 0 END\n"
        f"    | CASE WHEN r.created_at > {dialect.timestamp(as_of)} THEN {_bit('CREATED_AFTER_AS_OF')} ELSE 0 END"
    )
    # The records are read twice rather than through one CTE: engines materialise a CTE with
    # two consumers, which at 10M records cost more than a second read of five columns.
    rec = f"(SELECT record_id, category, author_id, participants, created_at, {_category_case(cp)} AS rule FROM {t.records})"
    a_extra = f",\n    {_extra_columns('r', 'm', dialect)}" if extras else ""
    fin_extra = ", a.group_key, a.author_missing, a.incomplete" if extras else ""
    ctes = [
        _member_cte(cp, t, scope, required, as_of, dialect),
        f"a_codes AS (\n  SELECT r.record_id,\n    {record_bits}\n    | {_subject_bits(cp, 'r', 'm', dialect)} AS mask{a_extra}\n"
        f"  FROM {rec} r LEFT JOIN mem m ON m.member_id = r.author_id\n)",
        _participants_cte(cp, rec, dialect),
        _topic_codes_cte(cp, t, dialect),
        f"fin AS (\n  SELECT a.record_id, a.mask | COALESCE(p.mask, 0) AS mask, ta.codes AS tcodes{fin_extra}\n"
        "  FROM a_codes a LEFT JOIN p_agg p ON p.record_id = a.record_id LEFT JOIN ta ON ta.record_id = a.record_id\n)",
    ]
    if output == "mask":
        extra_cols = ", group_key, author_missing, incomplete" if extras else ""
        return header + "WITH\n" + ",\n".join(ctes) + f"\nSELECT record_id, mask, tcodes{extra_cols} FROM fin"
    ctes.append(_names_cte(dialect))
    select = (
        "SELECT f.record_id,\n  CASE WHEN f.mask = 0 AND f.tcodes IS NULL THEN 'include' ELSE 'exclude' END AS decision,\n"
        f"  CASE WHEN f.tcodes IS NULL THEN n.reasons ELSE {dialect.split_sorted_distinct(f'concat_ws({SEP}, n.codes, f.tcodes)')} END AS reasons\n"
        "FROM fin f JOIN names n ON n.mask = f.mask"
    )
    return header + "WITH\n" + ",\n".join(ctes) + "\n" + select


def _topics_only(cp: CompiledPolicy, t: SqlTables, dialect: Dialect) -> str:
    """``compile_sql(output="topics")``: every record of ``t.records`` decided by its exclusion topics alone."""
    return (
        f"WITH\n{_topic_codes_cte(cp, t, dialect)}\n"
        "SELECT r.record_id, CASE WHEN ta.codes IS NULL THEN 'include' ELSE 'exclude' END AS decision,\n"
        f"  CASE WHEN ta.codes IS NULL THEN {dialect.empty_string_list()} ELSE {dialect.split_sorted_distinct('ta.codes')} END AS reasons\n"
        f"FROM {t.records} r LEFT JOIN ta ON ta.record_id = r.record_id"
    )


def _category_case(cp: CompiledPolicy) -> str:
    by_rule: dict[str, list[str]] = {}
    for category in CATEGORIES:
        by_rule.setdefault(cp.category_rule[category], []).append(category)
    whens = " ".join(f"WHEN category IN {_in_list(cats)} THEN {_lit(rule)}" for rule, cats in sorted(by_rule.items()))
    return f"CASE {whens} ELSE 'unknown' END"


def _member_cte(cp: CompiledPolicy, t: SqlTables, scope: str, required: str, as_of: datetime, dialect: Dialect) -> str:
    """Once per member: ``bits``, the subject codes that do not depend on the record, and ``valid``."""
    rules = [
        ("MINOR", f"birth_year IS NULL OR birth_year > {minor_cutoff_birth_year(as_of, cp.minimum_age)}"),
        ("CONTRACT_EXCLUDED", f"tier IS NULL OR tier NOT IN {_in_list(TIERS)}"),
        ("JURISDICTION_EXCLUDED", "mode = 'excluded'"),
        ("CONSENT_DENIED", "has_row AND NOT granted"),
        ("OPT_IN_REQUIRED", "mode = 'opt_in' AND NOT has_row"),
        ("CONSENT_SCOPE_OUTDATED", "mode = 'opt_in' AND granted AND NOT valid"),
    ]
    if as_of < cp.notice_end:
        rules.append(("NOTICE_NOT_ELAPSED", "mode = 'opt_out' AND NOT (has_row AND NOT granted) AND NOT valid"))
    bits = "\n      | ".join(f"CASE WHEN {cond} THEN {_bit(code)} ELSE 0 END" for code, cond in rules)
    valid = f"CASE WHEN granted THEN COALESCE({_version_covers('policy_version', required, dialect)}, FALSE) ELSE FALSE END"
    return (
        "mem AS (\n"
        f"  SELECT member_id, tier, region, valid,\n      {bits} AS bits\n"
        f"  FROM (\n    SELECT *, {valid} AS valid FROM (\n"
        f"      SELECT m.member_id, m.birth_year, m.tier, m.region, {_mode_case(cp)} AS mode,\n"
        "        c.member_id IS NOT NULL AS has_row, COALESCE(c.choice = 'grant', FALSE) AS granted, c.policy_version\n"
        f"      FROM (SELECT member_id, birth_year, tier, country, {_subdivision_key()} AS sub_key, "
        f"COALESCE(m.subdivision, m.country) AS region FROM {t.members} m) m\n"
        f"      LEFT JOIN {t.consent} c ON c.member_id = m.member_id AND c.purpose = {_lit(cp.policy.purpose)} AND c.scope = {_lit(scope)}\n"
        "    ) j\n  ) v\n)"
    )


def _extra_columns(r: str, m: str, dialect: Dialect) -> str:
    """``group_key``, ``author_missing`` and ``incomplete`` of record ``r`` with author ``m`` (see ``compile_sql``'s ``extras``)."""
    key = dialect.hash_of(f"{r}.category", f"COALESCE({m}.region, 'unknown')", f"COALESCE({m}.tier, 'unknown')")
    incomplete = " OR ".join(f"{r}.{c} IS NULL" for c in SCREENED_COLUMNS)
    return (f"{key} AS group_key, NOT {dialect.list_contains(f'{r}.participants', f'{r}.author_id')} AS author_missing, "
            f"({incomplete}) AS incomplete")


def _subject_bits(cp: CompiledPolicy, r: str, m: str, dialect: Dialect) -> str:
    """The code bits (author positions) of subject ``m`` (a ``mem`` row, all NULL when unknown) for record ``r``."""
    terms = [f"{m}.bits"]
    for tier in TIERS:
        if cp.tier_excluded[tier]:
            terms.append(f"CASE WHEN {m}.tier = {_lit(tier)} AND {r}.category IN {_in_list(cp.tier_excluded[tier])} "
                         f"THEN {_bit('CONTRACT_EXCLUDED')} ELSE 0 END")
    if not cp.policy.retroactive:
        terms.append(f"CASE WHEN NOT {m}.valid AND {r}.created_at < {dialect.timestamp(cp.policy.effective_at)} "
                     f"THEN {_bit('RETROACTIVE_USE')} ELSE 0 END")
    return f"(CASE WHEN {m}.member_id IS NULL THEN {_bit('UNKNOWN_SUBJECT')} ELSE {' | '.join(terms)} END)"


def _participants_cte(cp: CompiledPolicy, rec: str, dialect: Dialect) -> str:
    """Every participant other than the author (once is enough: codes are OR-ed), for categories that require all."""
    group = [c for c in CATEGORIES if cp.category_rule[c] == "all_participants"] or ["\x1f"]  # none: match nothing
    return (
        "p_agg AS (\n"
        f"  SELECT p.record_id, bit_or({_PARTICIPANT_FACTOR} * {_subject_bits(cp, 'p', 'm', dialect)}) AS mask\n"
        f"  FROM (SELECT record_id, category, created_at, author_id, {dialect.explode('participants')} AS member_id\n"
        f"        FROM {rec} r WHERE category IN {_in_list(group)}) p\n"
        "  LEFT JOIN mem m ON m.member_id = p.member_id\n"
        "  WHERE p.member_id IS NULL OR p.author_id IS NULL OR p.member_id <> p.author_id\n"
        "  GROUP BY p.record_id\n)"
    )


def _names_cte(dialect: Dialect) -> str:
    """The code list of each distinct mask (a handful per build, however many records)."""
    spelled = ", ".join(f"CASE WHEN (mask & {bit}) <> 0 THEN {_lit(code)} END" for bit, code in mask_codes())
    return (
        "names AS (\n  SELECT mask, codes,\n"
        f"    CASE WHEN codes IS NULL THEN {dialect.empty_string_list()} ELSE {dialect.split_sorted_distinct('codes')} END AS reasons\n"
        f"  FROM (SELECT mask, NULLIF(concat_ws({SEP}, {spelled}), '') AS codes FROM (SELECT DISTINCT mask FROM fin) d) s\n)"
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



def _version_covers(column: str, required: str, dialect: Dialect) -> str:
    """SQL for ``evaluate.version_covers``: well-formed and, padded part by part, >= required."""
    need = "".join(str(p).zfill(_PAD) for p in version_key(required))
    parts = ", ".join(f"lpad(split_part({column}, '.', {i}), {_PAD}, '0')" for i in range(1, VERSION_PARTS + 1))
    return f"({dialect.full_match(column, _VERSION_REGEX)} AND concat({parts}) >= {_lit(need)})"



def _topic_codes_cte(cp: CompiledPolicy, t: SqlTables, dialect: Dialect) -> str:
    whens = " ".join(f"WHEN {_lit(topic)} THEN {_lit(action)}" for topic, action in sorted(cp.topic_action.items()))
    return (
        f"ta AS (\n  SELECT record_id, {dialect.string_agg(_lit(TOPIC_PREFIX) + ' || topic')} AS codes FROM {t.topics}\n"
        f"  WHERE topic IS NOT NULL AND (CASE topic {whens} ELSE {_lit(cp.default_topic_action)} END) = 'exclude'\n"
        "  GROUP BY record_id\n)"
    )




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
