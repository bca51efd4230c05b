"""The detector: one multi-pattern scan per batch of an Arrow string array.

Owns ``Detector`` and ``ScanResult``. For each batch it

1. builds one scan buffer from the array's data buffer with numpy: a NUL byte before
   and after every text (so that no match crosses two texts and every pattern's
   one-character prefix and suffix exist); texts longer than ``LONG_TEXT`` bytes are
   cut into overlapping windows, so memory stays bounded for a 50 MB text
   (``segments.py``);
2. runs the compiled scanner once over that buffer (``backend.py``);
3. maps hits back to rows with ``np.searchsorted`` over the segment offsets, and
   byte offsets to character offsets by counting the UTF-8 continuation bytes
   before them (``segments.CharView``);
4. validates candidates (``validators.py``), resolves overlaps by priority, builds
   PERSON spans (``person.py``) and scores topics (``topics.py``).

Only candidate hits are touched in Python; texts are never looped over one by one.
"""

from __future__ import annotations

import bisect
import json
import os
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from consentgate.detect import person as P
from consentgate.detect.backend import Literal, LiteralGroup, Scanner, build_scanner, resolve_backend
from consentgate.detect.lexicon import name_lexicon, topic_lexicon
from consentgate.detect.members import NamesInput, cached_member_tokens, distinct_names, release_free_memory
from consentgate.detect.patterns import PATTERNS
from consentgate.detect.segments import CharView, Segments, iter_batches, segment_groups, string_chunks
from consentgate.detect.topics import TopicTable, score_topics
from consentgate.detect.validators import VALIDATORS
from consentgate.errors import DetectError

I64 = npt.NDArray[np.int64]

SPANS_SCHEMA: Final = pa.schema(
    [("row", pa.int64()), ("entity_type", pa.string()), ("start", pa.int32()), ("end", pa.int32())]
)
TOPICS_SCHEMA: Final = pa.schema(
    [("row", pa.int64()), ("topic", pa.string()), ("score", pa.float64()), ("evidence_start", pa.int32()), ("evidence_end", pa.int32())]
)

BATCH_BYTES: Final = 4 << 20

# Overlaps between types are resolved in this order (first wins).
PRIORITY: Final = (
    "email", "url_scheme", "iban", "card", "ssn", "ipv4", "ipv6", "phone", "url_bare",
    "street_us", "street_eu_zip", "street_eu_prefix", "street_eu_suffix", "street_num_name_num", "street_unit",
)
_KIND_NAME: Final = 0
_KIND_TOPIC: Final = 1


@dataclass
class ScanResult:
    """Spans (character offsets) and topics found in a string array."""

    spans: pa.Table
    topics: pa.Table


@dataclass
class _Literals:
    """The literal groups of the scanner and what each literal id means."""

    groups: list[LiteralGroup]
    kind: npt.NDArray[np.int8]
    name_flags: npt.NDArray[np.int8]
    topic: npt.NDArray[np.int16]
    weight: npt.NDArray[np.float64]


def _build_literals(member_names: pa.StringArray) -> tuple[_Literals, P.PersonContext]:
    """Name tokens and topic phrases (one group), then the members' full names (a second group)."""
    lex = name_lexicon()
    full, member_tokens = cached_member_tokens(member_names)
    tokens: dict[str, int] = {}
    for t in lex.first:
        tokens[t] = tokens.get(t, 0) | P.FIRST
    for t in lex.last:
        tokens[t] = tokens.get(t, 0) | P.LAST
    for t in member_tokens:
        tokens[t] = tokens.get(t, 0) | P.MEMBER
    common = lex.common
    names = sorted(t for t in tokens if t.lower() not in common)
    topics = topic_lexicon()
    topic_names = sorted(topics.phrases)
    base_group: list[Literal] = [Literal(t) for t in names]
    kind = [_KIND_NAME] * len(names)
    flags = [tokens[t] for t in names]
    tix = [-1] * len(names)
    weight = [0.0] * len(names)
    for ti, topic in enumerate(topic_names):
        for phrase, w in sorted(topics.phrases[topic].items()):
            base_group.append(Literal(phrase, caseless=True))
            kind.append(_KIND_TOPIC)
            flags.append(0)
            tix.append(ti)
            weight.append(w)
    n = len(full)
    lits = _Literals(
        [LiteralGroup.of(base_group), LiteralGroup.caseless_all(full)],
        np.concatenate([np.array(kind, dtype=np.int8), np.full(n, _KIND_NAME, dtype=np.int8)]),
        np.concatenate([np.array(flags, dtype=np.int8), np.full(n, P.MEMBER_FULL, dtype=np.int8)]),
        np.concatenate([np.array(tix, dtype=np.int16), np.full(n, -1, dtype=np.int16)]),
        np.concatenate([np.array(weight, dtype=np.float64), np.zeros(n, dtype=np.float64)]),
    )
    return lits, P.PersonContext(lex, member_tokens)


_MAGIC: Final = b"consentgate-detector/1\n"


class Detector:
    """Finds PII spans and sensitive topics in Arrow string arrays.

    ``member_names``: the member directory's display names (most important PERSON
    signal), any iterable of strings or an Arrow string array (fastest). ``backend``:
    ``auto`` / ``hyperscan`` / ``re2`` (default from ``CONSENTGATE_DETECT_BACKEND``).
    ``workers``: processes for ``scan`` (1 = in process).

    A detector pickles (``to_bytes``): the compiled databases travel with it, so a
    process pool can build it once in the parent and ship it to every worker.
    """

    def __init__(
        self,
        member_names: NamesInput = None,
        *,
        backend: str | None = None,
        workers: int = 1,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        self._setup(distinct_names(member_names), backend, workers, batch_bytes, {})

    def _setup(
        self, names: pa.StringArray, backend: str | None, workers: int, batch_bytes: int, preloaded: dict[str, bytes]
    ) -> None:
        self._names = names
        self.backend = resolve_backend(backend)
        self.workers = max(1, int(workers))
        self.batch_bytes = max(1024, int(batch_bytes))
        self._lits, self._person = _build_literals(names)
        # Splitting a large directory and loading its databases leave temporaries in the allocators,
        # which would stay in a long-lived worker's RSS. Handed back after each step: the peak for
        # 757k names falls 399 -> 330 MB, and a build's detect-phase peak 1.46 -> 1.40 GiB (session 6).
        release_free_memory()
        self._scanner: Scanner = build_scanner(PATTERNS, self._lits.groups, self.backend, preloaded)
        release_free_memory()
        self._n_patterns = len(PATTERNS)
        self._topic_names = sorted(topic_lexicon().phrases)
        self._thresholds = np.array([topic_lexicon().thresholds[t] for t in self._topic_names])
        self._entity = [p.kind for p in PATTERNS]
        self._is_cue = np.array([k == "CUE" for k in self._entity], dtype=bool)
        self._cue_after = next(i for i, p in enumerate(PATTERNS) if p.name == "cue_after")
        self._prio = np.array([PRIORITY.index(p.name) if p.name in PRIORITY else 99 for p in PATTERNS], dtype=np.int64)
        self._validated = np.array([k in VALIDATORS for k in self._entity], dtype=bool)

    @property
    def member_names(self) -> list[str]:
        """The distinct member names, sorted."""
        return list(self._names.to_pylist())

    @property
    def member_names_array(self) -> pa.StringArray:
        """The distinct member names, sorted, as an Arrow array (no Python objects)."""
        return self._names

    @property
    def scanner(self) -> Scanner:
        """The compiled pattern databases (``backend.Scanner``), for measuring the matcher alone
        (bench/detect_vs_presidio.py); scanning goes through ``scan``."""
        return self._scanner

    # ------------------------------------------------------------------ serialisation

    def to_bytes(self) -> bytes:
        """This detector with its compiled databases, for ``from_bytes`` in another process."""
        dbs = self._scanner.serialised()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, pa.schema([("name", pa.string())])) as writer:
            writer.write_batch(pa.record_batch([self._names], names=["name"]))
        names = sink.getvalue().to_pybytes()
        header = json.dumps(
            {
                "backend": self.backend, "workers": self.workers, "batch_bytes": self.batch_bytes,
                "names": len(names), "databases": [[k, len(v)] for k, v in dbs.items()],
            }
        ).encode()
        return b"".join([_MAGIC, len(header).to_bytes(8, "little"), header, names, *dbs.values()])

    @classmethod
    def from_bytes(cls, data: bytes) -> "Detector":
        """The detector ``to_bytes`` wrote; its databases load without compiling or reading the cache."""
        try:
            if not data.startswith(_MAGIC):
                raise ValueError("not a serialised consentgate detector")
            pos = len(_MAGIC) + 8
            hlen = int.from_bytes(data[len(_MAGIC) : pos], "little")
            header = json.loads(data[pos : pos + hlen])
            pos += hlen
            names = pa.ipc.open_stream(pa.py_buffer(data[pos : pos + header["names"]])).read_all().column(0).combine_chunks()
            pos += header["names"]
            preloaded: dict[str, bytes] = {}
            for key, size in header["databases"]:
                preloaded[str(key)] = data[pos : pos + int(size)]
                pos += int(size)
            if pos != len(data):
                raise ValueError(f"{len(data) - pos} bytes left over")
        except (ValueError, KeyError, TypeError, pa.ArrowException) as exc:
            raise DetectError(f"cannot read a serialised detector: {exc}", field="detector") from exc
        det = cls.__new__(cls)
        det._setup(names, header["backend"], header["workers"], header["batch_bytes"], preloaded)
        return det

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (Detector.from_bytes, (self.to_bytes(),))

    # ------------------------------------------------------------------ public

    def scan(self, texts: pa.Array | pa.ChunkedArray) -> ScanResult:
        """Scan every text; rows of the result index into ``texts`` (nulls have none)."""
        arrays = string_chunks(texts)
        if self.workers > 1:
            from consentgate.detect.parallel import scan_parallel

            return scan_parallel(self, arrays)
        spans: list[pa.Table] = []
        topics: list[pa.Table] = []
        for base, batch in iter_batches(arrays, self.batch_bytes):
            s, t = self.scan_batch(batch, base)
            spans.append(s)
            topics.append(t)
        return ScanResult(_concat(spans, SPANS_SCHEMA), _concat(topics, TOPICS_SCHEMA))

    def scan_batch(self, arr: pa.StringArray, row_base: int = 0) -> tuple[pa.Table, pa.Table]:
        """Scan one batch; row numbers are offset by ``row_base``.

        A batch holding a text longer than ``LONG_TEXT`` is scanned one window at a
        time, so memory stays bounded by the window size.
        """
        spans: list[pa.Table] = []
        topics: list[pa.Table] = []
        for seg in segment_groups(arr):
            s, t = self._scan_segments(seg, row_base)
            spans.append(s)
            topics.append(t)
        if len(spans) == 1:
            return spans[0], topics[0]
        return _concat(spans, SPANS_SCHEMA), _concat(topics, TOPICS_SCHEMA)

    def _scan_segments(self, seg: "Segments", row_base: int) -> tuple[pa.Table, pa.Table]:
        hits = seg.assign(self._scanner.scan(seg.buf))
        view = CharView.of(seg)
        # Every hit in character offsets of the decoded batch (one vectorised lookup).
        cs, ce = view.chars(hits.start), view.chars(hits.end)
        sg = np.searchsorted(seg.buf_start, hits.start, side="right") - 1 if hits.pid.size else hits.pid
        out = _Found()
        is_pat = hits.pid < self._n_patterns
        taken = self._entities(view, hits.pid, cs, ce, sg, seg.row, is_pat, out)
        self._persons(view, hits.pid, cs, ce, sg, seg.row, is_pat, taken, out)
        spans = self._spans_table(seg, view, out, row_base)
        topics = self._topics_table(seg, view, hits.pid, cs, ce, sg, is_pat, row_base)
        return spans, topics

    # ------------------------------------------------------------------ entities

    def _entities(
        self, view: "CharView", pid_all: I64, cs_all: I64, ce_all: I64, sg_all: I64, seg_row: I64,
        is_pat: npt.NDArray[np.bool_], out: "_Found",
    ) -> "_Intervals":
        """Accept validated, non-overlapping entity candidates into ``out``; return all accepted spans.

        Candidates are taken in priority order. One that overlaps no other candidate
        (``_isolated``) has no priority decision to wait for, so those are settled
        first, without the interval bookkeeping; the result is the same.
        """
        sel = np.nonzero(is_pat)[0]
        sel = sel[~self._is_cue[pid_all[sel]]]
        pid, st, en, sgs = pid_all[sel], cs_all[sel], ce_all[sel], sg_all[sel]
        if pid.size:
            # Longest body per (pattern, start); then priority order, then position.
            order = np.lexsort((-en, st, pid))
            pid, st, en, sgs = pid[order], st[order], en[order], sgs[order]
            first = np.ones(pid.size, dtype=bool)
            first[1:] = (pid[1:] != pid[:-1]) | (st[1:] != st[:-1])
            pid, st, en, sgs = pid[first], st[first], en[first], sgs[first]
            order = np.lexsort((-en, st, self._prio[pid]))
            pid, st, en, sgs = pid[order], st[order], en[order], sgs[order]
        taken: dict[int, _Intervals] = {}
        text = view.text
        entity = self._entity
        memo: dict[tuple[str, str, str], int] = {}  # validator results within this batch
        iso = _isolated(st, en)
        self._accept_isolated(text, pid[iso], st[iso], en[iso], sgs[iso], memo, out)
        rest = ~iso
        pid, st, en, sgs = pid[rest], st[rest], en[rest], sgs[rest]
        for p, s, e, sg, row in zip(pid.tolist(), st.tolist(), en.tolist(), sgs.tolist(), seg_row[sgs].tolist()):
            spans = taken.get(row)
            if spans is None:
                spans = taken[row] = _Intervals()
            elif spans.overlaps(s, e):
                # A lower-priority candidate running into an accepted span keeps only
                # the part before it ("+1 415-555-2671 4111 1111 ..." -> the phone).
                cut = spans.first_start_after(s)
                if cut is None or cut <= s or spans.overlaps(s, cut):
                    continue
                e = cut
            etype = entity[p]
            check = VALIDATORS.get(etype)
            if check is not None:
                cand = text[s:e]
                following = text[e : e + 8]
                key = (etype, cand, following)
                keep = memo.get(key)
                if keep is None:
                    keep = memo[key] = check(cand, following)
                if keep <= 0:
                    continue
                if keep < e - s:
                    e = s + keep
                    if spans.overlaps(s, e):
                        continue
            spans.add(s, e)
            out.add(sg, etype, s, e)
        return out.intervals()

    def _accept_isolated(
        self, text: str, pid: I64, st: I64, en: I64, sgs: I64, memo: dict[tuple[str, str, str], int], out: "_Found"
    ) -> None:
        """Accept candidates that overlap no other: all of an unvalidated type, the rest as their validator says."""
        checked = self._validated[pid]
        plain = np.flatnonzero(~checked)
        entity = self._entity
        out.extend(sgs[plain], [entity[p] for p in pid[plain].tolist()], st[plain], en[plain])
        idx = np.flatnonzero(checked)
        for p, s, e, sg in zip(pid[idx].tolist(), st[idx].tolist(), en[idx].tolist(), sgs[idx].tolist()):
            etype = entity[p]
            cand = text[s:e]
            following = text[e : e + 8]
            key = (etype, cand, following)
            keep = memo.get(key)
            if keep is None:
                keep = memo[key] = VALIDATORS[etype](cand, following)
            if keep > 0:
                out.add(sg, etype, s, s + min(keep, e - s))

    # ------------------------------------------------------------------ persons

    def _persons(
        self, view: "CharView", pid_all: I64, cs_all: I64, ce_all: I64, sg_all: I64, seg_row: I64,
        is_pat: npt.NDArray[np.bool_], taken: "_Intervals", out: "_Found",
    ) -> None:
        lit = ~is_pat
        lid = pid_all - self._n_patterns
        name_sel = lit & (self._lits.kind[np.where(lit, lid, 0)] == _KIND_NAME)
        cue_sel = is_pat & self._is_cue[np.where(is_pat, pid_all, 0)]
        sel = np.nonzero(name_sel | cue_sel)[0]
        if not sel.size:
            return
        # A name hit inside an accepted entity (a street, an e-mail address) can only
        # give a PERSON span overlapping it, which is dropped: skip it before its rules run.
        sel = sel[~(name_sel[sel] & out.overlaps(cs_all[sel], ce_all[sel]))]
        # By position; at one position the longest hit (a member's full name) first.
        sel = sel[np.lexsort((cs_all[sel] - ce_all[sel], cs_all[sel]))]
        pids, sgs = pid_all[sel], sg_all[sel]
        n_pat = self._n_patterns
        flags = np.where(pids >= n_pat, self._lits.name_flags[np.maximum(pids - n_pat, 0)], -1)
        text = view.text
        ctx = self._person
        cue_after = self._cue_after
        entity_rows = set(seg_row[np.array(out.sg, dtype=np.int64)].tolist())  # rows with an accepted entity
        found: dict[int, list[tuple[int, int]]] = {}
        row_sg: dict[int, int] = {}
        for s, e, pid, sg, row, fl in zip(
            cs_all[sel].tolist(), ce_all[sel].tolist(), pids.tolist(), sgs.tolist(), seg_row[sgs].tolist(), flags.tolist()
        ):
            mine = found.get(row)
            if mine is None:
                mine = found[row] = []
                row_sg[row] = sg
            # Hits come in start order and found spans never overlap: only the last can contain this hit.
            elif mine and mine[-1][0] <= s and e <= mine[-1][1]:
                continue
            if fl < 0:
                got = P.cue_name(ctx, text, s, e, after=pid == cue_after)
            elif fl & P.MEMBER_FULL:
                got = (s, e)
            else:
                got = P.extend_name(ctx, text, s, e, fl)
            if got is None:
                continue
            bs, be = got
            if be <= bs:
                continue
            if row in entity_rows and taken.overlaps(bs, be):  # batch offsets: rows never overlap
                continue
            # Merge with an overlapping PERSON already found in this row (the last one,
            # or a few before it when a left extension reached back).
            k = len(mine) - 1
            while k >= 0 and mine[k][1] >= bs:
                k -= 1
            k += 1
            if k < len(mine):
                merged = (min(mine[k][0], bs), max(max(te for _, te in mine[k:]), be))
                del mine[k:]
                mine.append(merged)
            else:
                mine.append((bs, be))
        for row, row_spans in found.items():
            sg = row_sg[row]
            for bs, be in row_spans:
                out.add(sg, "PERSON", bs, be)

    # ------------------------------------------------------------------ tables

    def _spans_table(self, seg: "Segments", view: "CharView", out: "_Found", row_base: int) -> pa.Table:
        if not out.sg:
            return SPANS_SCHEMA.empty_table()
        sg = np.array(out.sg, dtype=np.int64)
        cs = view.row_chars(seg, sg, np.array(out.start, dtype=np.int64))
        ce = view.row_chars(seg, sg, np.array(out.end, dtype=np.int64))
        rows = seg.row[sg] + row_base
        order = np.lexsort((ce, cs, rows))
        types = out.types
        return pa.table(
            {
                "row": pa.array(rows[order], pa.int64()),
                "entity_type": pa.array([types[i] for i in order.tolist()], pa.string()),
                "start": pa.array(cs[order], pa.int32()),
                "end": pa.array(ce[order], pa.int32()),
            },
            schema=SPANS_SCHEMA,
        )

    def _topics_table(
        self, seg: "Segments", view: "CharView", pid: I64, cs_all: I64, ce_all: I64, sg_all: I64,
        is_pat: npt.NDArray[np.bool_], row_base: int,
    ) -> pa.Table:
        lit = ~is_pat
        lid = np.where(lit, pid - self._n_patterns, 0)
        sel = np.nonzero(lit & (self._lits.kind[lid] == _KIND_TOPIC))[0]
        if not sel.size:
            return TOPICS_SCHEMA.empty_table()
        st, en, l, sg = cs_all[sel], ce_all[sel], lid[sel], sg_all[sel]
        table: TopicTable = score_topics(
            seg.row[sg], self._lits.topic[l].astype(np.int64), l, self._lits.weight[l], self._thresholds
        )
        if not table.keep.size:
            return TOPICS_SCHEMA.empty_table()
        k = table.keep
        cs = view.row_chars(seg, sg[k], st[k])
        ce = view.row_chars(seg, sg[k], en[k])
        rows = seg.row[sg[k]] + row_base
        topic_idx = self._lits.topic[l[k]]
        order = np.lexsort((cs, topic_idx, rows))
        return pa.table(
            {
                "row": pa.array(rows[order], pa.int64()),
                "topic": pa.array([self._topic_names[int(t)] for t in topic_idx[order]], pa.string()),
                "score": pa.array(table.score[order], pa.float64()),
                "evidence_start": pa.array(cs[order], pa.int32()),
                "evidence_end": pa.array(ce[order], pa.int32()),
            },
            schema=TOPICS_SCHEMA,
        )


class _Found:
    """Accepted spans of one scan: segment, entity type and character offsets in the batch text."""

    __slots__ = ("sg", "types", "start", "end")

    def __init__(self) -> None:
        self.sg: list[int] = []
        self.types: list[str] = []
        self.start: list[int] = []
        self.end: list[int] = []

    def add(self, sg: int, etype: str, start: int, end: int) -> None:
        self.sg.append(sg)
        self.types.append(etype)
        self.start.append(start)
        self.end.append(end)

    def extend(self, sg: I64, types: list[str], start: I64, end: I64) -> None:
        self.sg += sg.tolist()
        self.types += types
        self.start += start.tolist()
        self.end += end.tolist()

    def intervals(self) -> "_Intervals":
        """The spans found so far as one sorted ``_Intervals`` (batch offsets, so rows never overlap)."""
        order = np.argsort(np.array(self.start, dtype=np.int64), kind="stable")
        out = _Intervals()
        out.starts = np.array(self.start, dtype=np.int64)[order].tolist()
        out.ends = np.array(self.end, dtype=np.int64)[order].tolist()
        return out

    def overlaps(self, start: I64, end: I64) -> npt.NDArray[np.bool_]:
        """Per interval ``[start, end)``: whether it overlaps a span found so far.

        Offsets are those of the whole batch text, where rows never overlap, so one
        sorted list of the (non-overlapping) spans answers for every row at once.
        """
        if not self.start:
            return np.zeros(start.shape, dtype=bool)
        ts, te = np.array(self.start, dtype=np.int64), np.array(self.end, dtype=np.int64)
        order = np.argsort(ts, kind="stable")
        ts, te = ts[order], te[order]
        i = np.searchsorted(ts, start, side="right")
        before = (i > 0) & (te[np.maximum(i - 1, 0)] > start)
        after = (i < ts.size) & (ts[np.minimum(i, ts.size - 1)] < end)
        return before | after


class _Intervals:
    """Non-overlapping byte intervals of one row, kept sorted for O(log n) overlap tests."""

    __slots__ = ("starts", "ends")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def overlaps(self, s: int, e: int) -> bool:
        i = bisect.bisect_right(self.starts, s)
        if i > 0 and self.ends[i - 1] > s:
            return True
        return i < len(self.starts) and self.starts[i] < e

    def first_start_after(self, s: int) -> int | None:
        """Start of the first interval that starts after ``s``, if any."""
        i = bisect.bisect_right(self.starts, s)
        return self.starts[i] if i < len(self.starts) else None

    def add(self, s: int, e: int) -> None:
        i = bisect.bisect_right(self.starts, s)
        self.starts.insert(i, s)
        self.ends.insert(i, e)


def _isolated(st: I64, en: I64) -> npt.NDArray[np.bool_]:
    """Whether each interval ``[st, en)`` (batch offsets) overlaps no other interval."""
    order = np.argsort(st, kind="stable")
    s, e = st[order], en[order]
    alone = np.ones(s.size, dtype=bool)
    if s.size > 1:
        alone[1:] &= np.maximum.accumulate(e)[:-1] <= s[1:]
        alone[:-1] &= s[1:] >= e[:-1]
    out = np.empty_like(alone)
    out[order] = alone
    return out


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables).combine_chunks()


def default_workers() -> int:
    """Worker processes when none are given: the machine's cores."""
    return os.cpu_count() or 1
