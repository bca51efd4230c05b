"""The decide phase of the DuckDB engine: policy SQL, build-level reasons, shards, slices, counts.

Owns ``decisions.parquet`` and the counts of the manifest. The policy's compiled
SQL (``plan.decide_sql``) gives each record a decision and reasons; the build
adds two reasons of its own, both fail-closed:

- ``PII_DROP_RECORD``: the record holds an entity whose redaction strategy is
  ``drop_record``;
- ``PARTICIPANT_NOT_IN_MEMBERS``: a participant is missing from the members
  source, so the record could not be traced to its subjects for removal.

A record is included only if the policy includes it and neither applies. Every
input record must get exactly one policy decision, or the build stops.
Slices: within a shard, included records ordered by ``(created_at, record_id)``
at position ``p`` of ``n`` go to slice ``p * slices // n``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from consentgate.build.files import ROW_GROUP_ROWS, write_stream
from consentgate.build.plan import BuildPlan
from consentgate.build.sources import one, quote_str
from consentgate.errors import BuildError

REASON_DROP = "PII_DROP_RECORD"
REASON_UNKNOWN_PARTICIPANT = "PARTICIPANT_NOT_IN_MEMBERS"
BUILD_REASONS = (REASON_DROP, REASON_UNKNOWN_PARTICIPANT)
REGION_SQL = "coalesce(m.subdivision, m.country, 'unknown')"
DECISIONS_SCHEMA = pa.schema([
    pa.field("record_id", pa.string(), nullable=False),
    pa.field("decision", pa.string(), nullable=False),
    pa.field("reasons", pa.list_(pa.string()), nullable=False),
    pa.field("shard", pa.int32(), nullable=False),
    pa.field("slice", pa.int32(), nullable=True),
])


@dataclass(frozen=True)
class DecideOutcome:
    included: int
    counts: dict[str, Any]


def _views(con: duckdb.DuckDBPyConnection, work: Path) -> None:
    if any((work / "t").glob("*.parquet")):
        con.execute(f"CREATE OR REPLACE TEMP VIEW topics AS SELECT record_id, topic FROM read_parquet({quote_str(str(work / 't' / '*.parquet'))})")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE topics (record_id VARCHAR, topic VARCHAR)")
    con.execute(f"CREATE OR REPLACE TEMP VIEW ann AS SELECT record_id, shard, \"drop\" FROM read_parquet({quote_str(str(work / 'n' / '*.parquet'))})")


def _check_policy_output(con: duckdb.DuckDBPyConnection, expected: int) -> None:
    row = one(con.execute(
        "SELECT count(*), count(DISTINCT record_id), count(*) FILTER (WHERE decision NOT IN ('include', 'exclude') OR decision IS NULL) FROM policy_out"
    ))
    assert row is not None
    missing = one(con.execute("SELECT count(*), min(record_id) FROM records r WHERE NOT EXISTS (SELECT 1 FROM policy_out p WHERE p.record_id = r.record_id)"))
    assert missing is not None
    if row[0] != expected or row[1] != expected or row[2] or missing[0]:
        raise BuildError(
            f"the policy query gave {row[0]} decisions for {expected} records ({row[1]} distinct, {row[2]} invalid, {missing[0]} records without one)",
            hint="The compiled policy must decide every record exactly once; report this with the policy file.",
        )


def run_decide(con: duckdb.DuckDBPyConnection, plan: BuildPlan, work: Path, out: Path) -> DecideOutcome:
    """Decide every record, write ``decisions.parquet`` and ``_work/included.parquet``; return the counts."""
    _views(con, work)
    expected = one(con.execute("SELECT count(*) FROM records"))
    assert expected is not None
    con.execute(f"CREATE OR REPLACE TEMP TABLE policy_out AS SELECT record_id, decision, reasons FROM ({plan.decide_sql})")
    _check_policy_output(con, int(expected[0]))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE unknown_part AS SELECT DISTINCT record_id FROM "
        "(SELECT record_id, unnest(participants) AS member_id FROM records) x "
        "WHERE NOT EXISTS (SELECT 1 FROM members m WHERE m.member_id = x.member_id)"
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE final AS
        WITH base AS (
            SELECT r.record_id, r.created_at, r.category, r.author_id, a.shard, p.decision AS policy_decision,
                   list_sort(list_distinct(list_concat(
                       CAST(coalesce(p.reasons, []) AS VARCHAR[]),
                       CASE WHEN a."drop" THEN ['{REASON_DROP}'] ELSE CAST([] AS VARCHAR[]) END,
                       CASE WHEN u.record_id IS NOT NULL THEN ['{REASON_UNKNOWN_PARTICIPANT}'] ELSE CAST([] AS VARCHAR[]) END
                   ))) AS reasons,
                   (a."drop" OR u.record_id IS NOT NULL) AS blocked
            FROM (SELECT record_id, created_at, category, author_id FROM records) r
            JOIN ann a ON a.record_id = r.record_id
            JOIN policy_out p ON p.record_id = r.record_id
            LEFT JOIN unknown_part u ON u.record_id = r.record_id
        ), decided AS (
            SELECT *, CASE WHEN policy_decision = 'include' AND NOT blocked THEN 'include' ELSE 'exclude' END AS decision FROM base
        )
        SELECT record_id, decision, reasons, CAST(shard AS INTEGER) AS shard, category, author_id,
               CASE WHEN decision = 'include' THEN CAST(
                   (row_number() OVER w - 1) * {int(plan.slices)} // count(*) OVER (PARTITION BY shard, decision) AS INTEGER) END AS slice
        FROM decided
        WINDOW w AS (PARTITION BY shard, decision ORDER BY created_at, record_id)
    """)
    write_stream(out / "decisions.parquet", DECISIONS_SCHEMA, con.sql(
        "SELECT record_id, decision, reasons, shard, slice FROM final ORDER BY record_id"
    ).to_arrow_reader(ROW_GROUP_ROWS))
    con.execute(
        f"COPY (SELECT record_id, shard, slice FROM final WHERE decision = 'include' ORDER BY shard, record_id) "
        f"TO {quote_str(str(work / 'included.parquet'))} (FORMAT parquet)"
    )
    counts = _counts(con)
    for table in ("final", "policy_out", "unknown_part"):
        con.execute(f"DROP TABLE {table}")  # free DuckDB's memory before the shard writers start
    return DecideOutcome(included=int(counts["by_decision"].get("include", 0)), counts=counts)


def _pairs(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in con.execute(sql).fetchall()}


def _split(con: duckdb.DuckDBPyConnection, expr: str) -> dict[str, dict[str, int]]:
    rows = con.execute(
        f"SELECT {expr} AS k, decision, count(*) FROM final f LEFT JOIN members m ON m.member_id = f.author_id GROUP BY ALL ORDER BY 1, 2"
    ).fetchall()
    out: dict[str, dict[str, int]] = {}
    for key, decision, n in rows:
        out.setdefault(str(key), {})[str(decision)] = int(n)
    return out


def _counts(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    return {
        "records": int(one(con.execute("SELECT count(*) FROM final"))[0]),  # type: ignore[index]
        "by_decision": _pairs(con, "SELECT decision, count(*) FROM final GROUP BY 1 ORDER BY 1"),
        "by_reason": _pairs(con, "SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM final) GROUP BY 1 ORDER BY 1"),
        "by_category": _split(con, "f.category"),
        "by_region": _split(con, REGION_SQL),
        "by_tier": _split(con, "coalesce(m.tier, 'unknown')"),
    }
