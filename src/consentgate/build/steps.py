"""The per-batch steps of a build plan: pure functions over Arrow record batches.

Owns ``annotate`` (sharding key and shard, PII spans and topics from
``consentgate.detect``) and ``redact_batch`` (redaction of the records that were
included). They do no I/O and keep no state except one ``Detector`` per process,
so any engine can run them: DuckDB's engine in a process pool, a Spark engine in
``mapInArrow``. The same input gives the same output whatever the batching.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consentgate.build.plan import StepConfig
from consentgate.build.sharding import shard_array, shard_keys
from consentgate.datamodel import RECORDS_SCHEMA

if TYPE_CHECKING:
    from consentgate.detect import Detector

SPAN_TYPE = pa.struct([pa.field("entity_type", pa.string()), pa.field("start", pa.int32()), pa.field("end", pa.int32())])
SPANS_TYPE = pa.list_(pa.field("item", SPAN_TYPE))

# What detection reads of a record: its id, the sharding key and the text. The other columns
# (category, author, participants, time) join back by record id when a shard is written.
DETECT_SCHEMA = pa.schema([RECORDS_SCHEMA.field(n) for n in ("record_id", "thread_id", "text")])
ANNOTATED_SCHEMA = pa.schema(
    [*DETECT_SCHEMA, pa.field("shard", pa.int32(), nullable=False), pa.field("spans", SPANS_TYPE), pa.field("drop", pa.bool_())]
)
TOPICS_SCHEMA = pa.schema([pa.field("record_id", pa.string()), pa.field("topic", pa.string())])
TOPIC_ENTITY = "SENSITIVE_TOPIC"
_SPAN_TABLE = pa.schema([("row", pa.int64()), ("entity_type", pa.string()), ("start", pa.int32()), ("end", pa.int32())])
OUTPUT_SCHEMA = pa.schema([*RECORDS_SCHEMA, pa.field("slice", pa.int32(), nullable=False)])

_names: pa.Array | None = None
_detector: Detector | None = None


def init_worker(member_names: pa.Array | None) -> None:
    """Set this process's member names (pool initializer, or called once in-process); the detector is built lazily.

    The names come as one Arrow string array (distinct and sorted: the detector then
    skips its own sort); pool workers read it from a file (``tasks.init_from_file``).
    """
    global _names, _detector
    same = member_names is not None and _names is not None and member_names.equals(_names)
    if not same or _detector is None:
        _names = member_names
        _detector = None


def detector(cfg: StepConfig) -> Detector:
    """This process's detector (built on first use unless ``build_detector`` built it already)."""
    return _detector if _detector is not None else build_detector()


def build_detector() -> Detector:
    """Build this process's detector for the names ``init_worker`` set (building compiles the pattern
    databases, or loads them from the cache)."""
    global _detector
    from consentgate.detect import Detector

    _detector = Detector(member_names=_names if _names is not None and len(_names) else None)
    return _detector


def _group_rows(rows: np.ndarray, values: pa.Array, n: int, list_type: pa.DataType) -> pa.ListArray:
    """Per-row lists of ``values`` (``rows[i]`` is the row of ``values[i]``), keeping their order within a row."""
    order = np.argsort(rows, kind="stable")
    taken = pc.take(values, pa.array(order, pa.int64())) if len(values) else values
    counts = np.bincount(rows, minlength=n) if n else np.zeros(0, np.int64)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), taken, type=list_type)


def spans_to_lists(spans: pa.Table, n: int) -> pa.ListArray:
    """Per-row lists of ``(entity_type, start, end)`` from a ``ScanResult.spans`` table over ``n`` rows."""
    rows = spans.column("row").to_numpy() if spans.num_rows else np.zeros(0, np.int64)
    values = pa.StructArray.from_arrays(
        [spans.column(c).combine_chunks().cast(f.type) for c, f in zip(("entity_type", "start", "end"), SPAN_TYPE)],
        fields=list(SPAN_TYPE),
    ) if spans.num_rows else pa.array([], SPAN_TYPE)
    return _group_rows(rows, values, n, SPANS_TYPE)


def lists_to_spans(lists: pa.Array | pa.ChunkedArray) -> pa.Table:
    """The inverse of ``spans_to_lists``: a spans table with ``row`` = position in ``lists``."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    flat = pc.list_flatten(lists)
    return pa.table({
        "row": pc.list_parent_indices(lists).cast(pa.int64()),
        "entity_type": flat.field("entity_type"),
        "start": flat.field("start"),
        "end": flat.field("end"),
    })


def _drop_flags(spans: pa.Table, n: int, drop_entities: tuple[str, ...]) -> pa.Array:
    flags = np.zeros(n, dtype=bool)
    if drop_entities and spans.num_rows:
        hit = pc.is_in(spans.column("entity_type"), value_set=pa.array(drop_entities, pa.string()))
        rows = pc.filter(spans.column("row"), hit).to_numpy()
        flags[rows] = True
    return pa.array(flags, pa.bool_())


def _topic_spans(topics: pa.Table, redact_topics: tuple[str, ...]) -> pa.Table:
    """The evidence of topics the policy redacts (rather than excludes), as spans of type TOPIC_ENTITY."""
    hit = pc.is_in(topics.column("topic"), value_set=pa.array(redact_topics, pa.string()))
    ev = topics.filter(hit)
    return pa.table({
        "row": ev.column("row").cast(pa.int64()),
        "entity_type": pa.array([TOPIC_ENTITY] * ev.num_rows, pa.string()),
        "start": ev.column("evidence_start").cast(pa.int32()),
        "end": ev.column("evidence_end").cast(pa.int32()),
    })


def annotate(cfg: StepConfig, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.Table]:
    """Records (``DETECT_SCHEMA``) -> (records + shard + spans + drop, topics as (record_id, topic)).

    ``spans`` holds the PII spans plus the evidence of topics the policy redacts.
    ``drop`` marks a record holding an entity whose strategy is ``drop_record``: it
    never reaches the dataset, whatever the policy decides. Each distinct text of
    the batch is scanned once (detection is per text, so this changes no result).
    """
    shards = shard_array(shard_keys(batch.column("record_id"), batch.column("thread_id")), cfg.shards)
    encoded = pc.dictionary_encode(batch.column("text"))
    unique, index = encoded.dictionary, encoded.indices
    u = len(unique)
    scan = detector(cfg).scan(unique)
    spans = scan.spans.select(["row", "entity_type", "start", "end"]).cast(_SPAN_TABLE)
    if cfg.redact_topics and scan.topics.num_rows:
        spans = pa.concat_tables([spans, _topic_spans(scan.topics, cfg.redact_topics).cast(_SPAN_TABLE)])
    annotated = pa.RecordBatch.from_arrays(
        [*batch.columns, shards, pc.take(spans_to_lists(spans, u), index), pc.take(_drop_flags(spans, u, cfg.drop_entities), index)],
        schema=ANNOTATED_SCHEMA,
    )
    topics = scan.topics.select(["row", "topic"]).group_by(["row", "topic"]).aggregate([])
    rows = topics.column("row").to_numpy() if topics.num_rows else np.zeros(0, np.int64)
    per_text = _group_rows(rows, topics.column("topic").combine_chunks().cast(pa.string()), u, pa.list_(pa.string()))
    per_record = pc.take(per_text, index)
    record_ids = pc.take(batch.column("record_id"), pc.list_parent_indices(per_record))
    return annotated, pa.table({"record_id": record_ids, "topic": pc.list_flatten(per_record)}, schema=TOPICS_SCHEMA)


def redact_batch(cfg: StepConfig, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, dict[str, int]]:
    """Annotated records (plus ``slice``) -> output rows with redacted text, and redaction counts by entity type."""
    from consentgate.detect import redact

    spans = lists_to_spans(batch.column("spans"))
    result: Any = redact(batch.column("text"), spans, cfg.strategies, cfg.pseudonym_key)
    if pc.any(result.dropped).as_py():
        # Records with drop_record entities were excluded before this step; the detector
        # and the redactor disagree, so stop rather than write a record that should go.
        from consentgate.errors import BuildError

        raise BuildError("redaction dropped a record that the build had already cleared",
                         hint="Report this: detection and redaction disagree about drop_record entities.")
    columns = [result.texts if name == "text" else batch.column(name) for name in OUTPUT_SCHEMA.names]
    out = pa.RecordBatch.from_arrays(columns, schema=OUTPUT_SCHEMA)
    return out, {str(k): int(v) for k, v in result.counts.items()}
