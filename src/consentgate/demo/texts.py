"""Record texts of the synthetic network: which sentences each record gets.

Owns the per-record *choices* (opener, body, topic sentence, PII sentences,
closer) at the rates in ``templates.CATEGORY_TEXT`` / ``cues.TOPIC_WEIGHTS``,
and hands them to ``render.py``. Returns the texts with ground-truth labels:
PII spans and the topics planted into each record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa

from consentgate.datamodel import CATEGORIES, TOPICS
from consentgate.demo import cues, regions, templates
from consentgate.demo.members import Members
from consentgate.demo.records import CAT, Structure
from consentgate.demo.render import SlotFiller, join_segments, render_segment

LOCAL_CLOSER_RATE: Final = 0.35  # share of closers in the author's language, where one exists


@dataclass(frozen=True)
class Texts:
    text: pa.Array
    pii_rows: np.ndarray
    pii_types: np.ndarray  # object array of entity type names
    pii_start: np.ndarray
    pii_end: np.ndarray
    topic_rows: np.ndarray
    topic_names: np.ndarray  # object array of topic names


def _pooled(pools: list[tuple[str, ...]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Concatenate per-key pools; return (flat pool, start per key, size per key)."""
    flat = [t for pool in pools for t in pool]
    sizes = np.array([len(p) for p in pools], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return flat, starts, sizes


def _pick(rng: np.random.Generator, key: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """A uniform index into each record's pool (pool chosen by ``key``)."""
    out: np.ndarray = starts[key] + (rng.random(key.shape[0]) * sizes[key]).astype(np.int64)
    return out


def _category_pool(attr: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    pools = []
    for cat in CATEGORIES:
        if attr == "openers" and cat == "job.application":
            pools.append(tuple(c.clause for c in cues.JOB_APPLICATION_CUES))
        else:
            pools.append(getattr(templates.CATEGORY_TEXT[cat], attr))
    return _pooled(pools)


def _topic_pool() -> tuple[list[str], dict[tuple[str, str], tuple[int, int]], list[str]]:
    """Every frame x cue sentence, with the (frame kind, topic) -> (start, size) index."""
    flat: list[str] = []
    topic_of: list[str] = []
    index: dict[tuple[str, str], tuple[int, int]] = {}
    for kind, frames in cues.TOPIC_FRAMES.items():
        for topic in TOPICS:
            start = len(flat)
            for frame in frames:
                for cue in cues.TOPIC_CUES[topic]:
                    flat.append(frame.replace("{CUE}", cue.clause))
                    topic_of.append(topic)
            index[(kind, topic)] = (start, len(flat) - start)
    return flat, index, topic_of


def _topic_choice(rng: np.random.Generator, category: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    flat, index, _ = _topic_pool()
    n = category.shape[0]
    rate = np.array([templates.CATEGORY_TEXT[c].topic_rate for c in CATEGORIES])[category]
    has = rng.random(n) < rate
    weights = np.array([cues.TOPIC_WEIGHTS[t] for t in TOPICS])
    topic: np.ndarray = np.asarray(rng.choice(len(TOPICS), n, p=weights / weights.sum()))
    # A job application already carries job_search in its opener; give it another topic.
    js = TOPICS.index("job_search")
    is_app = category == CAT["job.application"]
    topic = np.where(is_app & (topic == js), (topic + 1 + rng.integers(0, len(TOPICS) - 1, n)) % len(TOPICS), topic)
    kinds = list(cues.TOPIC_FRAMES)
    frame_kind = np.array([kinds.index(templates.CATEGORY_TEXT[c].frame) for c in CATEGORIES])[category]
    starts = np.zeros((len(kinds), len(TOPICS)), dtype=np.int64)
    sizes = np.zeros((len(kinds), len(TOPICS)), dtype=np.int64)
    for (kind, t), (s, z) in index.items():
        starts[kinds.index(kind), TOPICS.index(t)] = s
        sizes[kinds.index(kind), TOPICS.index(t)] = z
    pick = starts[frame_kind, topic] + (rng.random(n) * sizes[frame_kind, topic]).astype(np.int64)
    return flat, np.where(has, pick, -1), np.where(has, topic, -1)


def _pii_choice(rng: np.random.Generator, category: np.ndarray, present: np.ndarray, members: int) -> tuple[list[str], np.ndarray]:
    entities = list(templates.PII_SENTENCES)
    weights = np.array([templates.PII_WEIGHTS[e] for e in entities])
    if members < 2:  # no other member to name or e-mail
        weights[[entities.index("PERSON"), entities.index("EMAIL_ADDRESS"), entities.index("URL")]] = 0
    flat, starts, sizes = _pooled([templates.PII_SENTENCES[e] for e in entities])
    entity: np.ndarray = np.asarray(rng.choice(len(entities), category.shape[0], p=weights / weights.sum()))
    return flat, np.where(present, _pick(rng, entity, starts, sizes), -1)


def _closer_choice(rng: np.random.Generator, category: np.ndarray, culture: np.ndarray) -> tuple[list[str], np.ndarray]:
    flat, starts, sizes = _category_pool("closers")
    choice = _pick(rng, category, starts, sizes)
    local_pools = [templates.LOCAL_CLOSERS.get(c, ()) for c in regions.CULTURES]
    local_flat, lstarts, lsizes = _pooled(local_pools)
    is_message = np.isin(category, [CAT[c] for c in ("message.direct", "message.inmail", "message.group")])
    use_local = is_message & (lsizes[culture] > 0) & (rng.random(category.shape[0]) < LOCAL_CLOSER_RATE)
    local_choice = len(flat) + _pick(rng, culture, lstarts, np.maximum(lsizes, 1))
    return flat + local_flat, np.where(use_local, local_choice, choice)


def build_texts(rng: np.random.Generator, members: Members, s: Structure) -> Texts:
    """Texts and labels for every record of ``s``."""
    n = s.count
    filler = SlotFiller(rng, members, s.author, s.recipient)
    cat = s.category.astype(np.int64)
    segments = []
    for attr in ("openers", "bodies"):
        flat, starts, sizes = _category_pool(attr)
        segments.append(render_segment(flat, _pick(rng, cat, starts, sizes), filler))
    topic_flat, topic_choice, topic = _topic_choice(rng, cat)
    segments.append(render_segment(topic_flat, topic_choice, filler))
    pii_rate = np.array([templates.CATEGORY_TEXT[c].pii_rate for c in CATEGORIES])[cat]
    first = rng.random(n) < pii_rate
    second = first & (rng.random(n) < templates.SECOND_PII_RATE)
    for present in (first, second):
        pii_flat, pii_choice = _pii_choice(rng, cat, present, members.count)
        segments.append(render_segment(pii_flat, pii_choice, filler))
    closer_flat, closer_choice = _closer_choice(rng, cat, members.culture[s.author].astype(np.int64))
    segments.append(render_segment(closer_flat, closer_choice, filler))
    text, labels = join_segments(segments)
    rows = np.concatenate(labels.rows) if labels.rows else np.zeros(0, np.int64)
    start = np.concatenate(labels.starts) if labels.starts else np.zeros(0, np.int64)
    length = np.concatenate(labels.lengths) if labels.lengths else np.zeros(0, np.int64)
    types = np.concatenate(labels.types) if labels.types else np.zeros(0, object)
    app_rows = np.flatnonzero(cat == CAT["job.application"])
    topic_rows = np.concatenate([np.flatnonzero(topic >= 0), app_rows])
    topic_names = np.concatenate(
        [np.array(TOPICS, dtype=object)[topic[topic >= 0]], np.full(app_rows.size, "job_search", dtype=object)]
    )
    return Texts(text, rows, types, start, start + length, topic_rows, topic_names)


def _slot_mean(pool: tuple[str, ...], entity: str) -> float:
    hits = [sum(1 for p in templates.parse(t) if p.slot and templates.slot_kind(p.slot) in _ALIASES[entity]) for t in pool]
    return sum(hits) / len(pool) if pool else 0.0


_ALIASES: Final = {e: {e, "RECIPIENT"} if e == "PERSON" else {e} for e in templates.PII_SENTENCES}


def expected_pii_per_record() -> dict[str, float]:
    """Expected planted values of each entity type per record, from the documented rates."""
    from consentgate.demo.records import CATEGORY_WEIGHTS

    total_w = sum(templates.PII_WEIGHTS.values())
    out: dict[str, float] = {}
    for entity in templates.PII_SENTENCES:
        value = 0.0
        for cat, share in CATEGORY_WEIGHTS.items():
            text = templates.CATEGORY_TEXT[cat]
            openers = tuple(c.clause for c in cues.JOB_APPLICATION_CUES) if cat == "job.application" else text.openers
            fixed = _slot_mean(openers, entity) + _slot_mean(text.bodies, entity) + _slot_mean(text.closers, entity)
            sentences = text.pii_rate * (1 + templates.SECOND_PII_RATE) * templates.PII_WEIGHTS[entity] / total_w
            value += share * (fixed + sentences)
        out[entity] = value
    return out


def expected_topic_per_record() -> dict[str, float]:
    """Expected share of records labelled with each topic, from the documented rates."""
    from consentgate.demo.records import CATEGORY_WEIGHTS

    total_w = sum(cues.TOPIC_WEIGHTS.values())
    share = {t: w / total_w for t, w in cues.TOPIC_WEIGHTS.items()}
    app_share = {t: 0.0 if t == "job_search" else s + share["job_search"] / (len(TOPICS) - 1) for t, s in share.items()}
    out = {t: 0.0 for t in TOPICS}
    for cat, w in CATEGORY_WEIGHTS.items():
        rate = templates.CATEGORY_TEXT[cat].topic_rate
        mix = app_share if cat == "job.application" else share
        for t in TOPICS:
            out[t] += w * rate * mix[t]
    out["job_search"] += CATEGORY_WEIGHTS["job.application"]
    return out
