"""Accuracy evaluation of the detector against labelled data.

Owns ``evaluate_presidio(path)`` for the presidio-research JSON format (a list of
``{"full_text", "spans": [{"entity_type", "start_position", "end_position"}]}``)
and ``evaluate_demo(folder)`` for the demo network's ``records.parquet`` +
``labels.parquet``. A predicted span matches a gold span of the same type when the
two overlap by at least one character (span-overlap matching, as in
presidio-research). Only the entity types consentgate detects are scored; gold
types outside that set (ORGANIZATION, GPE, DATE_TIME, ...) are ignored and listed.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Iterable

import pyarrow as pa

from consentgate.datamodel import ENTITY_TYPES, TOPICS
from consentgate.detect.engine import Detector
from consentgate.errors import InputError, SchemaError

# presidio-research type names that differ from ours.
TYPE_MAP: Final = {"DOMAIN_NAME": "URL", "IBAN": "IBAN_CODE", "SSN": "US_SSN", "EMAIL": "EMAIL_ADDRESS", "ADDRESS": "STREET_ADDRESS"}
PATTERN_TYPES: Final = tuple(t for t in ENTITY_TYPES if t not in ("PERSON", "STREET_ADDRESS"))


@dataclass
class Score:
    """Counts for one type: true positives on each side, predictions, gold."""

    tp_pred: int = 0
    tp_gold: int = 0
    pred: int = 0
    gold: int = 0

    @property
    def precision(self) -> float:
        return self.tp_pred / self.pred if self.pred else 1.0

    @property
    def recall(self) -> float:
        return self.tp_gold / self.gold if self.gold else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def add(self, other: "Score") -> None:
        self.tp_pred += other.tp_pred
        self.tp_gold += other.tp_gold
        self.pred += other.pred
        self.gold += other.gold

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4),
            "predicted": self.pred, "gold": self.gold,
        }


@dataclass
class EvalReport:
    """Per-type scores, the overall and pattern-type totals, ignored gold types."""

    per_type: dict[str, Score]
    texts: int
    ignored_types: dict[str, int] = field(default_factory=dict)
    topics: dict[str, Score] = field(default_factory=dict)

    def total(self, types: Iterable[str]) -> Score:
        out = Score()
        for t in types:
            if t in self.per_type:
                out.add(self.per_type[t])
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "per_type": {t: s.as_dict() for t, s in sorted(self.per_type.items())},
            "overall": self.total(self.per_type).as_dict(),
            "pattern_types": self.total(PATTERN_TYPES).as_dict(),
            "ignored_gold_types": dict(sorted(self.ignored_types.items())),
            "topics": {t: s.as_dict() for t, s in sorted(self.topics.items())},
        }


def score_spans(
    gold: dict[int, list[tuple[str, int, int]]], pred: dict[int, list[tuple[str, int, int]]], types: Iterable[str]
) -> dict[str, Score]:
    """Span-overlap precision/recall per type, over rows keyed by index."""
    scores = {t: Score() for t in types}
    for row in set(gold) | set(pred):
        g = gold.get(row, [])
        p = pred.get(row, [])
        for t, s, e in g:
            if t in scores:
                scores[t].gold += 1
                if any(pt == t and ps < e and s < pe for pt, ps, pe in p):
                    scores[t].tp_gold += 1
        for t, s, e in p:
            if t in scores:
                scores[t].pred += 1
                if any(gt == t and gs < e and s < ge for gt, gs, ge in g):
                    scores[t].tp_pred += 1
    return scores


def predicted_by_row(spans: pa.Table) -> dict[int, list[tuple[str, int, int]]]:
    """Spans table -> {row: [(type, start, end)]}."""
    out: dict[int, list[tuple[str, int, int]]] = {}
    cols = [spans.column(c).to_pylist() for c in ("row", "entity_type", "start", "end")]
    for r, t, s, e in zip(*cols):
        out.setdefault(int(r), []).append((str(t), int(s), int(e)))
    return out


def load_presidio(path: Path) -> tuple[list[str], dict[int, list[tuple[str, int, int]]], Counter[str]]:
    """Texts, gold spans (mapped to our type names) and the ignored gold types."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {path} as JSON: {type(exc).__name__}", file=str(path)) from None
    if not isinstance(data, list):
        raise SchemaError(f"{path}: expected a JSON list of samples", file=str(path))
    texts: list[str] = []
    gold: dict[int, list[tuple[str, int, int]]] = {}
    ignored: Counter[str] = Counter()
    for i, sample in enumerate(data):
        if not isinstance(sample, dict) or not isinstance(sample.get("full_text"), str):
            raise SchemaError(f"{path}: sample {i} has no string 'full_text'", file=str(path), row=i, field="full_text")
        texts.append(sample["full_text"])
        for span in sample.get("spans") or []:
            try:
                etype = TYPE_MAP.get(span["entity_type"], span["entity_type"])
                s, e = int(span["start_position"]), int(span["end_position"])
            except (KeyError, TypeError, ValueError):
                raise SchemaError(
                    f"{path}: sample {i} has a span without entity_type/start_position/end_position",
                    file=str(path), row=i, field="spans",
                ) from None
            if etype in ENTITY_TYPES:
                gold.setdefault(i, []).append((etype, s, e))
            else:
                ignored[etype] += 1
    return texts, gold, ignored


def evaluate_presidio(path: Path, detector: Detector | None = None) -> EvalReport:
    """Score the detector on a presidio-research JSON file."""
    texts, gold, ignored = load_presidio(path)
    det = detector or Detector()
    result = det.scan(pa.array(texts, pa.string()))
    scores = score_spans(gold, predicted_by_row(result.spans), ENTITY_TYPES)
    return EvalReport(scores, len(texts), dict(ignored))


def evaluate_demo(folder: Path, detector: Detector | None = None) -> EvalReport:
    """Score PII spans and topics on a demo folder (records + labels, members for names)."""
    import pyarrow.parquet as pq

    records_path, labels_path = folder / "records.parquet", folder / "labels.parquet"
    for p in (records_path, labels_path):
        if not p.is_file():
            raise InputError(f"{p} does not exist", hint="Point `detect eval` at a folder written by `consentgate demo generate`.", file=str(p))
    records = _read_columns(records_path, ["record_id", "text"])
    labels = _read_columns(labels_path, ["record_id", "kind", "entity_type", "start", "end", "topic"])
    members_path = folder / "members.parquet"
    names: list[str] = []
    if detector is None and members_path.is_file():
        names = [n for n in _read_columns(members_path, ["display_name"]).column("display_name").to_pylist() if n]
    det = detector or Detector(names)
    ids = records.column("record_id").to_pylist()
    index = {rid: i for i, rid in enumerate(ids)}
    result = det.scan(records.column("text"))
    gold: dict[int, list[tuple[str, int, int]]] = {}
    gold_topics: set[tuple[int, str]] = set()
    cols = [labels.column(c).to_pylist() for c in ("record_id", "kind", "entity_type", "start", "end", "topic")]
    for rid, kind, etype, s, e, topic in zip(*cols):
        row = index.get(rid)
        if row is None:
            continue
        if kind == "pii" and etype is not None and s is not None and e is not None:
            gold.setdefault(row, []).append((str(etype), int(s), int(e)))
        elif kind == "topic" and topic is not None:
            gold_topics.add((row, str(topic)))
    scores = score_spans(gold, predicted_by_row(result.spans), ENTITY_TYPES)
    pred_topics = set(zip(result.topics.column("row").to_pylist(), result.topics.column("topic").to_pylist()))
    topic_scores: dict[str, Score] = {}
    for t in TOPICS:
        gold_rows = {r for r, x in gold_topics if x == t}
        pred_rows = {r for r, x in pred_topics if x == t}
        tp = len(gold_rows & pred_rows)
        topic_scores[t] = Score(tp, tp, len(pred_rows), len(gold_rows))
    return EvalReport(scores, len(ids), {}, topic_scores)


def _read_columns(path: Path, columns: list[str]) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"cannot read {path} as Parquet: {type(exc).__name__}", file=str(path)) from None
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise SchemaError(f"{path} lacks column(s) {', '.join(missing)}", file=str(path), field=missing[0])
    return pq.read_table(path, columns=columns)
