"""The screen and decide phases of the DuckDB engine: policy SQL, build-level reasons, slices, counts.

Owns ``decisions.parquet`` and the counts of the manifest (and has ``build.subjects`` write
the shards' subject bitmaps). A record is decided twice at most, so that no content is
read that the policy could not use:

1. **screen** (``plan.screen_sql``): the compiled policy over every record with no
   topics at all. Topics only ever add exclusion reasons, so a record the screen
   excludes is excluded whatever its text says; its text is never scanned
   (``content_scanned`` is false and its reasons are the screen's). Among the records
   the screen includes, one with a participant missing from the members source is
   excluded with ``PARTICIPANT_NOT_IN_MEMBERS`` (it could not be traced to its
   subjects for removal) and not scanned either. The rest are the *candidates*.
2. **decide** (``plan.decide_sql``, after detection): the policy's topic rules over
   the candidates and their detected topics (``compile_sql(output="topics")``: no other
   rule excludes a candidate, as the screen found); a candidate holding an entity whose
   redaction strategy is ``drop_record`` gets ``PII_DROP_RECORD``.

A record is included only if both passes include it. Every input record gets exactly
one decision, or the build stops; ``decisions.parquet`` is written in record-id order,
and a record id that repeats stops the build there (``unique_ids``), before anything
is published. Included records carry their shard and slice:
within a shard, included records ordered by ``(created_at, record_id)`` at position
``p`` of ``n`` go to slice ``p * slices // n``; excluded records are in no shard.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consentgate.build.files import ROW_GROUP_ROWS, prefetched, write_stream
from consentgate.build.plan import BuildPlan
from consentgate.build.subjects import write_subject_bitmaps
from consentgate.build.tasks import INCLUDED
from consentgate.build.sources import (POSITION_COLUMNS, SOURCE_READ_ERRORS, SourceTable, author_error, duplicate_error, id_hash_sum,
                                       null_error, one, parquet_scan, quote_ident, quote_str, read_error, streamed)
from consentgate.errors import BuildError
from consentgate.policy.sql import DUCKDB, SCREENED_COLUMNS, reasons_of

REASON_DROP = "PII_DROP_RECORD"
REASON_UNKNOWN_PARTICIPANT = "PARTICIPANT_NOT_IN_MEMBERS"
BUILD_REASONS = (REASON_DROP, REASON_UNKNOWN_PARTICIPANT)
REGION_SQL = "coalesce(m.subdivision, m.country, 'unknown')"
DECISIONS_SCHEMA = pa.schema([
    pa.field("record_id", pa.string(), nullable=False),
    # Dictionary-encoded in Arrow too: the writer then takes the codes as they are instead of hashing
    # 10M strings (0.31 -> 0.17 CPU-s to write this column at 10M records). pyarrow reads it back so; DuckDB as VARCHAR.
    pa.field("decision", pa.dictionary(pa.int8(), pa.string()), nullable=False),
    # Reason codes as dictionary indices: a tenth of the distinct values of a string list, and
    # encoding this column was most of the time taken to write the file (1.26 s of 2.8 s at 10M records).
    pa.field("reasons", pa.list_(pa.dictionary(pa.int32(), pa.string())), nullable=False),
    pa.field("shard", pa.int32(), nullable=True),
    pa.field("slice", pa.int32(), nullable=True),
    pa.field("content_scanned", pa.bool_(), nullable=False),
])
NO_TOPICS = "no_topics"
# The screen runs without topics: a record with topic codes there would be a broken query, kept
# out of ``screen`` as a null mask (``run_screen``), so a mask of 0 is the whole inclusion test.
_SCREEN_INCLUDES = "mask = 0"
CANDIDATES = "candidates"
_DECIDED = "decided"  # every record's id and packed decision, in id order (``_write_decisions``)
_DECIDED_RAW = "decided_raw"  # the same rows before the sort


@dataclass(frozen=True)
class DecideOutcome:
    included: int
    counts: dict[str, Any]
    subjects: list[int]  # members per shard (``subjects.write_subject_bitmaps``)


_FINGERPRINT = f"count(*), {id_hash_sum('record_id')}"
Fingerprint = tuple[int, int]


def _fingerprint(con: duckdb.DuckDBPyConnection, table: str) -> Fingerprint:
    """Row count and the sum of the record ids' hashes: equal fingerprints mean the same ids, each once (ids are unique in the source)."""
    row = one(con.execute(f"SELECT {_FINGERPRINT} FROM {table}"))
    assert row is not None
    return int(row[0]), int(row[1])


def _check_policy_output(con: duckdb.DuckDBPyConnection, table: str, want: Fingerprint,
                         invalid_if: str = "decision IS NULL OR decision NOT IN ('include', 'exclude')") -> int:
    """Stop unless ``table`` holds exactly one valid decision per record of the source whose
    fingerprint is ``want``; return the record count."""
    row = one(con.execute(f"SELECT {_FINGERPRINT}, count(*) FILTER (WHERE {invalid_if}) FROM {table}"))
    assert row is not None
    got, invalid = (int(row[0]), int(row[1])), int(row[2])
    if got != want or invalid:
        raise BuildError(
            f"the policy query gave {got[0]} decisions for {want[0]} records ({invalid} invalid, or ids that differ)",
            hint="The compiled policy must decide every record exactly once; report this with the policy file.",
        )
    return want[0]


class Group(NamedTuple):
    """Records counted by the screen's ``group_key``: one (category, author's region, author's tier)."""

    key: int
    category: str
    region: str
    tier: str
    records: int


def _groups_of_screen(con: duckdb.DuckDBPyConnection) -> list[Group]:
    """Every record counted by (category, author's region, author's tier), from the screen's
    ``group_key`` (``compile_sql(extras=True)``): the keys of every possible group are computed
    the same way and looked up, so the records are not read again for the manifest's counts.
    The candidates keep their key, so the included ones are counted from it too (``_counts``)."""
    key = DUCKDB.hash_of("c.category", "g.region", "g.tier")
    names = con.execute(
        f"SELECT {key}, c.category, g.region, g.tier FROM (SELECT DISTINCT category FROM records) c, "
        f"(SELECT DISTINCT {REGION_SQL} AS region, coalesce(m.tier, 'unknown') AS tier FROM members m "
        "UNION SELECT 'unknown', 'unknown') g"
    ).fetchall()
    by_key = {int(k): (str(c), str(r), str(t)) for k, c, r, t in names}
    counts = con.execute("SELECT group_key, count(*) FROM screen GROUP BY ALL").fetchall()
    if len(by_key) != len(names):
        raise BuildError("two record groups of the manifest's counts have the same group key (a hash collision)",
                         hint="Report this with --debug output.")
    if any(int(k) not in by_key for k, _ in counts):
        raise BuildError("a record's group key matches no (category, region, tier) of the sources",
                         hint="Report this with --debug output: the screen and the build compute group keys differently.")
    return [Group(int(k), *by_key[int(k)], int(n)) for k, n in counts]


def run_screen(con: duckdb.DuckDBPyConnection, plan: BuildPlan, records: SourceTable) -> tuple[int, list[Group]]:
    """Decide every record without content; create the ``candidates`` table; return how many
    records it holds and every record counted by group (``_groups_of_screen``).

    The screen's query also tells, per record, whether its author is missing from its
    participants, and whether a column the policy reads is null: either stops the build
    here (``sources.author_error``, ``sources.null_error``), and so does a value in those
    columns that DuckDB cannot read (``sources.read_error``)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {NO_TOPICS} (record_id VARCHAR, topic VARCHAR)")
    # The screen keeps each record's reason bits (``compile_sql(output="mask")``): 10M code lists cost more
    # to build and hold than 10M integers; they are spelled out once per distinct mask when written.
    # ``screen`` and ``unknown_part`` are plain tables (not TEMP): the decisions are sorted from them
    # through a second connection (``_write_decisions``).
    try:
        con.execute(f"CREATE OR REPLACE TABLE screen AS SELECT record_id, CASE WHEN tcodes IS NULL THEN mask END AS mask, "
                    f"group_key, author_missing, incomplete FROM ({plan.screen_sql})")
    except SOURCE_READ_ERRORS as exc:
        # The first full read of the records' policy columns (the sources check reads only ids and text).
        raise read_error(records.label, exc) from None
    _check_policy_output(con, "screen", (records.rows, records.id_hash_sum), "mask IS NULL")
    # The null checks of the columns the screen reads are made here, in its pass (``sources.open_source``'s ``later_nulls``).
    bad = one(con.execute("SELECT bool_or(incomplete), min(record_id) FILTER (WHERE author_missing) FROM screen"))
    if bad[0]:
        raise null_error(con, "records", "record_id", records.label, list(SCREENED_COLUMNS))
    if bad[1] is not None:
        raise author_error(records.label, bad[1])
    groups = _groups_of_screen(con)
    # The candidates' columns (no text) that the later steps need: their participants (the unknown-participant check and
    # the subject bitmaps), their creation times (slices) and the rest for the shard files (the included records' COPY).
    # From a Parquet source, each candidate's place in it too: the detection workers read the text there (``build.positions``).
    places = POSITION_COLUMNS if records.positioned else ()
    con.execute(f"CREATE OR REPLACE TEMP TABLE {CANDIDATES} AS SELECT r.record_id, r.category, r.author_id, r.participants, r.created_at, "
                f"s.group_key{''.join(f', r.{c}' for c in places)} FROM {quote_ident(records.positioned or records.view)} r "
                f"JOIN (SELECT record_id, group_key FROM screen WHERE {_SCREEN_INCLUDES}) s ON s.record_id = r.record_id")
    # Only record_id and mask of the screen are read from here on: the rest is dropped (at once, no copy), so
    # that less waits in memory or on disk while the detection workers run (10M records: 408 -> ~250 MiB).
    for column in ("group_key", "author_missing", "incomplete"):
        con.execute(f"ALTER TABLE screen DROP COLUMN {column}")
    # A repeated id among the candidates would join with itself above and upset the decide pass's
    # own checks; it is named here (the rest of the ids are checked in order when the decisions are written).
    twin = one(con.execute(f"SELECT record_id FROM {CANDIDATES} GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1"))
    if twin is not None:
        raise duplicate_error(con, "records", "record_id", records.label, twin[0])
    con.execute(
        "CREATE OR REPLACE TABLE unknown_part AS SELECT DISTINCT x.record_id FROM "
        f"(SELECT record_id, unnest(participants) AS member_id FROM {CANDIDATES}) x "
        "WHERE NOT EXISTS (SELECT 1 FROM members m WHERE m.member_id = x.member_id)"
    )
    con.execute(f"DELETE FROM {CANDIDATES} WHERE record_id IN (SELECT record_id FROM unknown_part)")
    con.execute(f"CREATE OR REPLACE TEMP TABLE cand AS SELECT record_id{''.join(f', {c}' for c in places)} FROM {CANDIDATES}")
    n = one(con.execute("SELECT count(*) FROM cand"))
    assert n is not None
    return int(n[0]), groups


class RepeatedId(Exception):
    """Raised by ``unique_ids`` (and turned into an ``InputError`` by its caller): ``record_id`` repeats."""

    def __init__(self, record_id: str) -> None:
        super().__init__("a record id repeats")
        self.record_id = record_id


def unique_ids(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Pass through batches sorted by ``record_id`` (first column); raise ``RepeatedId`` at the first id that
    repeats, ``BuildError`` at the first that is out of order.

    This is the build's check that record ids are unique: the decisions are written in
    id order anyway, so a repeat sits next to its twin, and comparing neighbours costs
    nothing next to a separate hash aggregation over every id (``sources.open_source``).
    The same comparison checks the order itself: an id smaller than the one before it
    stops the build (``BuildError``) rather than let a repeat go unnoticed.
    """
    last: str | None = None
    for batch in batches:
        ids = batch.column(0)
        n = len(ids)
        if n and last is not None:
            _check_step(last, ids[0].as_py())
        if n > 1:
            step = pc.less_equal(ids.slice(1), ids.slice(0, n - 1))
            if pc.any(step).as_py():
                i = int(pc.index(step, True).as_py())
                _check_step(ids[i].as_py(), ids[i + 1].as_py())
        if n:
            last = ids[n - 1].as_py()
        yield batch


def _check_step(before: str, after: str) -> None:
    if after == before:
        raise RepeatedId(before)
    if after < before:
        raise BuildError("the decisions reached the writer out of record-id order",
                         hint="Report this with --debug output: the build relies on DuckDB keeping a sorted table's order.")


def _views(con: duckdb.DuckDBPyConnection, work: Path) -> None:
    if any((work / "t").glob("*.parquet")):
        con.execute(f"CREATE OR REPLACE TEMP VIEW topics AS SELECT record_id, topic FROM {parquet_scan(work / 't', '*.parquet')}")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE topics (record_id VARCHAR, topic VARCHAR)")
    if any((work / "n").glob("*.parquet")):
        con.execute(f"CREATE OR REPLACE TEMP VIEW ann AS SELECT record_id, shard, \"drop\" FROM {parquet_scan(work / 'n', '*.parquet')}")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE ann (record_id VARCHAR, shard INTEGER, \"drop\" BOOLEAN)")


def run_decide(con: duckdb.DuckDBPyConnection, plan: BuildPlan, work: Path, out: Path, groups: list[Group],
               member_index: Path, while_writing: Callable[[], None] | None = None) -> DecideOutcome:
    """Decide the candidates with their topics, write ``decisions.parquet``, ``_work/included/shard=K/``
    (the included records' other columns, one folder per shard: no sort) and the shards' subject
    bitmaps; return the counts.

    ``while_writing`` is called when only the decisions' writer thread is left to wait for
    (0.2 s on one core at 10M records): the engine starts its shard writers there."""
    _views(con, work)
    con.execute(f"CREATE OR REPLACE TEMP TABLE policy_out AS SELECT record_id, decision, reasons FROM ({plan.decide_sql})")
    candidates = _check_policy_output(con, "policy_out", _fingerprint(con, "cand"))
    if _fingerprint(con, "ann") != _fingerprint(con, "cand"):
        raise BuildError("detection did not annotate every candidate record exactly once", hint="Report this with --debug output.")
    con.execute(f"""
        CREATE OR REPLACE TABLE scanned AS
        WITH d AS (
            SELECT p.record_id, a.shard, r.created_at, r.group_key,
                   CASE WHEN a."drop" THEN list_sort(list_append(CAST(p.reasons AS VARCHAR[]), '{REASON_DROP}'))
                        ELSE CAST(p.reasons AS VARCHAR[]) END AS reasons,
                   p.decision = 'include' AND NOT a."drop" AS included
            FROM policy_out p JOIN ann a ON a.record_id = p.record_id JOIN {CANDIDATES} r ON r.record_id = p.record_id
        )
        SELECT record_id, group_key, CASE WHEN included THEN 'include' ELSE 'exclude' END AS decision, reasons,
               CASE WHEN included THEN CAST(shard AS INTEGER) END AS shard,
               CASE WHEN included THEN CAST((row_number() OVER w - 1) * {int(plan.slices)} // count(*) OVER (PARTITION BY shard, included) AS INTEGER) END AS slice
        FROM d
        WINDOW w AS (PARTITION BY shard, included ORDER BY created_at, record_id)
    """)
    con.execute("DROP TABLE policy_out")
    # The records the screen excluded, and those it included but held back for an unknown participant
    # (``unknown_part`` holds only included ones): a filter and a small join, the same rows as an
    # anti-join of every record against the candidates. A view: read twice, never stored.
    con.execute("CREATE OR REPLACE VIEW unscanned AS SELECT record_id, mask FROM screen "
                f"WHERE NOT ({_SCREEN_INCLUDES}) UNION ALL "
                "SELECT s.record_id, s.mask FROM screen s SEMI JOIN unknown_part u ON u.record_id = s.record_id")
    total = one(con.execute("SELECT count(*) FROM screen"))  # every record (checked when the screen ran)
    threads = one(con.execute("SELECT current_setting('threads')"))[0]
    by_reason, writing = _write_decisions(con, out, int(total[0]))
    try:  # from here on a failure waits for the writer thread before the folder can be removed
        # DuckDB works on while a thread writes decisions.parquet; with one thread, so that the
        # writer (single-threaded Parquet encoding, the longest task left) keeps a core.
        con.execute("SET threads = 1")
        con.execute(
            "COPY (SELECT s.record_id, s.shard, s.slice, c.category, c.author_id, c.participants, c.created_at FROM scanned s "
            f"JOIN {CANDIDATES} c ON c.record_id = s.record_id WHERE s.decision = 'include') "
            f"TO {quote_str(str(work / INCLUDED))} (FORMAT parquet, PARTITION_BY (shard), WRITE_PARTITION_COLUMNS true)"
        )
        counts = _counts(con, by_reason, groups)
        subjects = write_subject_bitmaps(con, work / INCLUDED, member_index, out, plan.shards)
        if while_writing is not None:
            while_writing()
    except BaseException:
        wait([writing])  # nothing may still write into the folder that is about to be removed
        raise
    finally:
        con.execute(f"SET threads = {int(threads)}")
    _check_written(con, plan, writing)
    counts["content_scanned"] = candidates
    con.execute("DROP VIEW unscanned")
    for table in ("scanned", "screen", "unknown_part", "cand", CANDIDATES, _DECIDED):
        con.execute(f"DROP TABLE {table}")  # free DuckDB's memory before the shard writers get their tasks
    return DecideOutcome(included=int(counts["by_decision"].get("include", 0)), counts=counts, subjects=subjects)


def _write_decisions(con: duckdb.DuckDBPyConnection, out: Path, total: int) -> tuple[dict[str, int], Future[int]]:
    """Start writing ``decisions.parquet`` in record-id order, one row per record; return the count per
    reason and the writer (a thread: ``_check_written`` waits for it and checks what it wrote).

    Each distinct (decision, reasons) is a group with a small integer ``g``: DuckDB sorts the
    ids carrying that integer rather than the reason lists (a third of the time at 10M
    records), packed with the shard and slice into one BIGINT (``pack_sql``), and each sorted
    batch gets its decision, reasons, shard and slice back from it in Arrow.
    The rows are sorted into a table through a second connection to the same database
    (``scanned``, ``screen`` and ``unknown_part`` are plain tables so that it sees them)
    before this returns (``_sort_decisions``); the writer thread then streams that table into
    the file, so that ``con`` is free for the next queries and no whole copy of the ids is
    held in Arrow.
    """
    masks = con.execute("SELECT mask, count(*) FROM unscanned GROUP BY ALL").fetchall()
    kept = con.execute("SELECT decision, reasons, count(*) FROM scanned GROUP BY ALL").fetchall()
    groups = [("exclude", list(reasons_of(int(m))) or [REASON_UNKNOWN_PARTICIPANT], int(c)) for m, c in masks]
    groups += [(str(d), [str(x) for x in r], int(c)) for d, r, c in kept]
    if len(groups) >= PACK_MAX_GROUPS:
        raise BuildError(f"{len(groups)} distinct (decision, reasons) groups: the build can sort by at most {PACK_MAX_GROUPS - 1}",
                         hint="Report this with --debug output.")
    if sum(c for _, _, c in groups) != total:
        raise BuildError(f"the decisions hold {sum(c for _, _, c in groups)} rows for {total} records",
                         hint="Report this with --debug output: every record must be decided exactly once.")
    cur = con.cursor()
    try:
        _sort_decisions(cur, masks, groups)
        reader = cur.sql(f"SELECT record_id, packed FROM {_DECIDED}").to_arrow_reader(ROW_GROUP_ROWS)
        decisions_named = sorted({d for d, _, _ in groups})
        decision_dictionary = pa.array(decisions_named, pa.string())
        decision_code = np.array([decisions_named.index(d) for d, _, _ in groups], dtype=np.int8)
        reasons_of_g = _GroupReasons([r for _, r, _ in groups])
    except BaseException:
        cur.close()
        raise
    scanned_from = len(masks)  # groups below this are the unscanned records' masks

    def decisions(b: pa.RecordBatch) -> pa.RecordBatch:
        g, shard, slice_ = unpack(b.column(1))
        gi = np.asarray(g.to_numpy(zero_copy_only=False), dtype=np.int64)  # once per batch, for the lookups below
        if len(gi) and not 0 <= gi.min() <= gi.max() < len(groups):
            raise BuildError("a sorted decision names no decision group", hint="Report this with --debug output.")
        decision = pa.DictionaryArray.from_arrays(pa.array(decision_code[gi]), decision_dictionary)
        return pa.record_batch([b.column(0), decision, reasons_of_g.take(gi), shard, slice_,
                                pa.array(gi >= scanned_from)], schema=DECISIONS_SCHEMA)

    # Put together in a second thread while the writer thread encodes (``files.prefetched``).
    batches = prefetched(decisions(b) for b in unique_ids(streamed(reader)))
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="consentgate-decisions")
    writing = pool.submit(_stream_decisions, cur, out / "decisions.parquet", batches, total)
    pool.shutdown(wait=False)  # the thread ends with its one task; the caller waits on ``writing``
    by_reason: dict[str, int] = {}
    for _, reasons, n in groups:
        for r in reasons:
            by_reason[r] = by_reason.get(r, 0) + n
    return by_reason, writing


def _sort_decisions(cur: duckdb.DuckDBPyConnection, masks: list[Any], groups: list[tuple[str, list[str], int]]) -> None:
    """Every record's id and packed decision (``pack_sql``), sorted by id into the table ``_DECIDED``.

    Sorted into a table, in two steps, and then read in its (insertion) order, which
    ``unique_ids`` checks. Sorting in the streamed query itself held the whole sorted run
    in memory while the writer drained it (DuckDB cannot evict it then), and at 20M records
    the COPY beside it ran out of memory at a 768 MB cap; one CREATE TABLE sorting the union
    of joins ran out too, where a sort of a plain table spills as it needs (it passed at 384 MB).
    """
    cur.execute("SET preserve_insertion_order = true")  # what the writer's plain scan of the table relies on
    cur.register("g_mask", pa.table({"mask": pa.array([int(m) for m, _ in masks], pa.int64()),
                                     "g": pa.array(range(len(masks)), pa.int32())}))
    cur.register("g_scan", pa.table({"decision": pa.array([d for d, _, _ in groups[len(masks):]], pa.string()),
                                     "reasons": pa.array([r for _, r, _ in groups[len(masks):]], pa.list_(pa.string())),
                                     "g": pa.array(range(len(masks), len(groups)), pa.int32())}))
    cur.execute(f"""
        CREATE OR REPLACE TABLE {_DECIDED_RAW} AS
            SELECT s.record_id, {pack_sql("k.g", "s.shard", "s.slice")} AS packed
            FROM scanned s JOIN g_scan k ON k.decision = s.decision AND k.reasons = s.reasons
            UNION ALL
            SELECT u.record_id, {pack_sql("k.g", "NULL", "NULL")} FROM unscanned u JOIN g_mask k ON k.mask = u.mask
    """)
    cur.execute(f"CREATE OR REPLACE TABLE {_DECIDED} AS SELECT record_id, packed FROM {_DECIDED_RAW} ORDER BY record_id")
    cur.execute(f"DROP TABLE {_DECIDED_RAW}")


# A decision's group, shard and slice packed into one BIGINT for the sort by record id: at 10M records,
# carrying one integer instead of four columns took the sort's memory from 410-450 to 353 MiB and its
# time from 0.93 to 0.71 s (docs/benchmarks.md, session 10). Bits: group << 40 | (shard + 1) << 20 |
# (slice + 1), 0 standing for a null shard or slice (``spec``: shards <= 65536, slices <= 4096, both
# under 2**20 - 1); a group fills what is left of a signed 64-bit integer above bit 40.
PACK_MAX_GROUPS = 1 << 23
_FIELD_BITS = (1 << 20) - 1


def pack_sql(group: str, shard: str, slice_: str) -> str:
    """The SQL expression packing ``group``, ``shard`` and ``slice_`` (null allowed for the last two)."""
    return (f"((CAST({group} AS BIGINT) << 40) | (CAST(coalesce({shard} + 1, 0) AS BIGINT) << 20) "
            f"| CAST(coalesce({slice_} + 1, 0) AS BIGINT))")


def unpack(packed: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(group, shard, slice) of ``pack_sql``'s values as Arrow int32 arrays, shard and slice null where packed as 0."""
    p = np.asarray(packed.to_numpy(zero_copy_only=False), dtype=np.int64)
    shard = (p >> 20) & _FIELD_BITS
    slice_ = p & _FIELD_BITS
    return (pa.array((p >> 40).astype(np.int32)),
            pa.array((shard - 1).astype(np.int32), mask=shard == 0),
            pa.array((slice_ - 1).astype(np.int32), mask=slice_ == 0))


class _GroupReasons:
    """The reasons of each group, gathered per row as ``DECISIONS_SCHEMA``'s ``reasons`` (list of dictionary codes).

    ``take`` builds the list array from offsets with numpy: Arrow's own take on a list
    array was as slow as encoding the column (1 s for 10M rows).
    """

    def __init__(self, lists: list[list[str]]) -> None:
        codes = sorted({r for rs in lists for r in rs})
        index = {c: i for i, c in enumerate(codes)}
        self.dictionary = pa.array(codes, pa.string())
        self.flat = np.array([index[r] for rs in lists for r in rs], dtype=np.int32)
        self.lengths = np.array([len(rs) for rs in lists], dtype=np.int32)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def take(self, g: np.ndarray) -> pa.ListArray:
        """The reasons of group ``g[i]`` for each row ``i`` (``g``: int64 group numbers)."""
        lengths = self.lengths[g]
        offsets = np.zeros(len(g) + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        # Position j of row i's list is flat[starts[g[i]] + j]: the row's start repeated, plus a running count.
        pos = np.repeat(self.starts[g] - offsets[:-1], lengths) + np.arange(int(offsets[-1]), dtype=np.int64)
        values = pa.DictionaryArray.from_arrays(pa.array(self.flat[pos], pa.int32()), self.dictionary)
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def _stream_decisions(cur: duckdb.DuckDBPyConnection, path: Path, batches: Generator[pa.RecordBatch, None, None], total: int) -> int:
    """Writer thread: write the sorted decisions; stop unless exactly ``total`` rows were written."""
    try:
        rows = write_stream(path, DECISIONS_SCHEMA, batches)
    finally:
        batches.close()  # stops the producer thread (if the writer failed) before its connection closes
        cur.close()
    if rows != total:
        raise BuildError(f"the decisions hold {rows} rows for {total} records",
                         hint="Report this with --debug output: every record must be decided exactly once.")
    return rows


def _check_written(con: duckdb.DuckDBPyConnection, plan: BuildPlan, writing: Future[int]) -> None:
    """Wait for ``decisions.parquet`` (the writer checks its row count); a repeated
    record id stops the build with the source's error."""
    try:
        writing.result()
    except RepeatedId as rep:
        raise duplicate_error(con, "records", "record_id", plan.records.describe(), rep.record_id) from None


def _counts(con: duckdb.DuckDBPyConnection, by_reason: dict[str, int], every: list[Group]) -> dict[str, Any]:
    """Counts by decision, reason (given) and by category, region and tier of the author."""
    # ``every``: all records by group (``run_screen``); the included ones here by the group key they
    # kept from the screen (no join); excluded = all - included.
    kept = {int(k): int(n) for k, n in con.execute(
        "SELECT group_key, count(*) FROM scanned WHERE decision = 'include' GROUP BY ALL").fetchall()}
    if not kept.keys() <= {g.key for g in every}:
        raise BuildError("an included record's group key is not among the screen's groups",
                         hint="Report this with --debug output: the screen and decide passes disagree.")
    rows = []
    for key, category, region, tier, n in every:
        inc = kept.get(key, 0)
        rows += [(category, region, tier, "include", inc)] if inc else []
        rows += [(category, region, tier, "exclude", int(n) - inc)] if int(n) > inc else []
    splits: list[dict[str, dict[str, int]]] = [{}, {}, {}]
    by_decision: dict[str, int] = {}
    for category, region, tier, decision, n in rows:
        by_decision[decision] = by_decision.get(decision, 0) + int(n)
        for split, value in zip(splits, (category, region, tier)):
            cell = split.setdefault(str(value), {})
            cell[decision] = cell.get(decision, 0) + int(n)
    return {
        "records": sum(by_decision.values()),
        "by_decision": dict(sorted(by_decision.items())),
        "by_reason": dict(sorted(by_reason.items())),
        "by_category": _sorted(splits[0]),
        "by_region": _sorted(splits[1]),
        "by_tier": _sorted(splits[2]),
    }


def _sorted(split: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {k: dict(sorted(v.items())) for k, v in sorted(split.items())}
