"""The synthetic professional network: ``generate_network`` (public API).

Owns validating the arguments, seeding one independent random stream per
stage (members, records, texts, consent) from ``seed``, assembling the four
canonical tables (``datamodel.*_SCHEMA``) and writing them as Parquet with
fixed writer settings, so the same seed gives byte-identical files. Files are
written into a temporary folder next to ``out`` and renamed into place, so a
failure never leaves a half-written file. Shapes and rates are documented in
docs/data-model.md.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from consentgate.datamodel import CATEGORIES, LABELS_SCHEMA, RECORDS_SCHEMA
from consentgate.demo.consent import generate_consent
from consentgate.demo.members import Members, format_ids, generate_members
from consentgate.demo.records import Structure, generate_structure, participants_array
from consentgate.demo.texts import Texts, build_texts
from consentgate.errors import InputError

DEFAULT_RECORDS_PER_MEMBER: Final = 10.0
MAX_MEMBERS: Final = 20_000_000
MAX_RECORDS: Final = 200_000_000
FILES: Final = ("members.parquet", "records.parquet", "consent_events.parquet", "labels.parquet")
# Fixed writer settings: the bytes depend only on the data (and the pinned pyarrow).
_WRITE_OPTIONS: Final = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": 256 * 1024,
    "data_page_size": 1024 * 1024,
    "version": "2.6",
}
_STREAMS: Final = {"members": 1, "records": 2, "texts": 3, "consent": 4}


@dataclass(frozen=True)
class GenerateResult:
    """What ``generate_network`` wrote."""

    out: Path
    members: int
    records: int
    consent_events: int
    pii_labels: int
    topic_labels: int
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def labels(self) -> int:
        return self.pii_labels + self.topic_labels

    def describe(self) -> str:
        return (
            f"{self.members:,} members, {self.records:,} records, {self.consent_events:,} consent events, "
            f"{self.labels:,} labels ({self.pii_labels:,} PII spans, {self.topic_labels:,} topics)"
        )


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _STREAMS[stream]])))


def _check_args(members: int, seed: int, out: Path, records_per_member: float | None) -> float:
    if isinstance(members, bool) or not isinstance(members, int) or members <= 0 or members > MAX_MEMBERS:
        raise InputError(f"members must be a whole number from 1 to {MAX_MEMBERS:,}, got {members!r}",
                         hint="Pass --members with a positive number, e.g. --members 5000.", field="members", value=members)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative whole number, got {seed!r}",
                         hint="Pass --seed 0 or any positive number.", field="seed", value=seed)
    rpm = DEFAULT_RECORDS_PER_MEMBER if records_per_member is None else records_per_member
    if not isinstance(rpm, (int, float)) or isinstance(rpm, bool) or not math.isfinite(rpm) or rpm <= 0:
        raise InputError(f"records_per_member must be a positive number, got {records_per_member!r}",
                         hint="Pass --records-per-member with a positive number such as 10.", field="records_per_member",
                         value=records_per_member)
    if members * rpm > MAX_RECORDS:
        raise InputError(f"members x records_per_member asks for more than {MAX_RECORDS:,} records",
                         hint="Lower --members or --records-per-member.", field="records_per_member", value=rpm)
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {out} exists and is not a folder", hint="Choose a folder path for --out.", file=str(out))
    parent = out.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(f"parent of output path {out} is not a folder", hint="Choose a folder path for --out.", file=str(out))
    return float(rpm)


def _records_table(members: Members, s: Structure, t: Texts) -> tuple[pa.Table, pa.Array]:
    record_ids = format_ids("r", s.count, 9)
    thread_ids = format_ids("t", int(s.thread.max()) + 1 if s.count and s.thread.max() >= 0 else 0, 8)
    is_thread = s.thread >= 0
    is_comment = s.thread <= -2
    thread_col = pa.nulls(s.count, pa.string())
    if s.count:
        parts = np.where(is_thread, s.thread, 0)
        posts = np.where(is_comment, -2 - s.thread, 0)
        from_threads = thread_ids.take(pa.array(parts)) if len(thread_ids) else pa.nulls(s.count, pa.string())
        thread_col = pc.if_else(
            pa.array(is_thread), from_threads, pc.if_else(pa.array(is_comment), record_ids.take(pa.array(posts)), thread_col)
        )
    return pa.Table.from_arrays(
        [
            record_ids,
            pa.array(np.array(CATEGORIES, dtype=object)[s.category], pa.string()),
            members.ids.take(pa.array(s.author)),
            participants_array(s, members.ids),
            thread_col,
            pa.array(s.created, pa.int64()).cast(RECORDS_SCHEMA.field("created_at").type),
            t.text,
        ],
        schema=RECORDS_SCHEMA,
    ), record_ids


def _labels_table(record_ids: pa.Array, t: Texts) -> pa.Table:
    n_pii, n_topic = t.pii_rows.size, t.topic_rows.size
    rows = np.concatenate([t.pii_rows, t.topic_rows]).astype(np.int64)
    kind_topic = np.concatenate([np.zeros(n_pii, bool), np.ones(n_topic, bool)])
    start = np.concatenate([t.pii_start, np.zeros(n_topic, np.int64)])
    order = np.lexsort((start, kind_topic, rows))
    null_i32 = np.concatenate([np.zeros(n_pii, bool), np.ones(n_topic, bool)])[order]
    entity = np.concatenate([t.pii_types, np.full(n_topic, None, object)])[order]
    topic = np.concatenate([np.full(n_pii, None, object), t.topic_names])[order]
    end = np.concatenate([t.pii_end, np.zeros(n_topic, np.int64)])[order]
    return pa.Table.from_arrays(
        [
            record_ids.take(pa.array(rows[order])),
            pa.array(np.where(kind_topic[order], "topic", "pii"), pa.string()),
            pa.array(entity, pa.string()),
            pa.array(start[order].astype(np.int32), pa.int32(), mask=null_i32),
            pa.array(end.astype(np.int32), pa.int32(), mask=null_i32),
            pa.array(topic, pa.string()),
        ],
        schema=LABELS_SCHEMA,
    )


def _write_atomically(tables: dict[str, pa.Table], out: Path) -> dict[str, Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; the renamed folder should look like a normal one
    try:
        for name, table in tables.items():
            pq.write_table(table, tmp / name, **_WRITE_OPTIONS)  # type: ignore[arg-type]
        if not out.exists():
            os.replace(tmp, out)
        else:
            for name in tables:
                os.replace(tmp / name, out / name)
    except OSError as exc:
        raise InputError(f"cannot write the network to {out}: {exc.strerror or exc}", file=str(out)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {name: out / name for name in tables}


def generate_network(members: int, seed: int, out: Path, records_per_member: float | None = None) -> GenerateResult:
    """Generate the network and write members/records/consent_events/labels.parquet into ``out``.

    Raises ``InputError`` for a non-positive or absurd size, a negative seed, or
    an ``out`` that is an existing file. Same arguments, same bytes.
    """
    out = Path(out)
    rpm = _check_args(members, seed, out, records_per_member)
    n_records = max(1, int(round(members * rpm)))
    people = generate_members(_rng(seed, "members"), members)
    structure = generate_structure(_rng(seed, "records"), people, n_records)
    texts = build_texts(_rng(seed, "texts"), people, structure)
    records, record_ids = _records_table(people, structure, texts)
    labels = _labels_table(record_ids, texts)
    consent = generate_consent(_rng(seed, "consent"), people)
    tables = {"members.parquet": people.table, "records.parquet": records, "consent_events.parquet": consent, "labels.parquet": labels}
    files = _write_atomically(tables, out)
    return GenerateResult(out, members, records.num_rows, consent.num_rows, int(texts.pii_rows.size), int(texts.topic_rows.size), files)
