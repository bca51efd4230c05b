"""Who wrote what, to whom, and when: the structure of the records table.

Owns categories, authors, participants, threads and timestamps (texts are
rendered later by ``render.py``). Messages live in threads: a direct-message
thread is a pair of members, an InMail thread a premium sender and a
recipient (only the sender writes), a group thread 3-8 members. Every message
record carries all of its thread's participants, author included; every other
record has ``participants == [author]``. Comments point at an earlier post
through ``thread_id`` (the post's record id). Records are ordered by
``created_at`` and numbered in that order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa

from consentgate.datamodel import CATEGORIES
from consentgate.demo import timeline
from consentgate.demo.members import Members

CATEGORY_WEIGHTS: Final[dict[str, float]] = {
    "message.direct": 0.24,
    "message.inmail": 0.03,
    "message.group": 0.10,
    "post": 0.13,
    "comment": 0.17,
    "article": 0.02,
    "profile.summary": 0.05,
    "ai.prompt": 0.08,
    "ai.output": 0.08,
    "feedback": 0.03,
    "job.application": 0.07,
}
GROUP_SIZE: Final = (3, 8)  # inclusive
MESSAGES_PER_THREAD: Final = {"message.direct": 4, "message.inmail": 2, "message.group": 6}
CAT: Final = {c: i for i, c in enumerate(CATEGORIES)}


@dataclass(frozen=True)
class Structure:
    category: np.ndarray  # int8 index into CATEGORIES
    author: np.ndarray  # int64 member index
    recipient: np.ndarray  # int64 member index of another participant, -1 outside messages
    part_offsets: np.ndarray  # int32 offsets into part_values (len n + 1)
    part_values: np.ndarray  # int64 member indices
    thread: np.ndarray  # int64 thread number, -1 when none (comments: -2 - post record index)
    created: np.ndarray  # int64 microseconds UTC

    @property
    def count(self) -> int:
        return int(self.category.shape[0])


def _categories(rng: np.random.Generator, n: int, members: Members) -> np.ndarray:
    weights = np.array([CATEGORY_WEIGHTS[c] for c in CATEGORIES])
    if members.count < 2:  # nobody to message
        weights[[CAT[c] for c in ("message.direct", "message.inmail", "message.group")]] = 0
    if not members.premium.any():
        weights[CAT["message.inmail"]] = 0
    return rng.choice(len(CATEGORIES), n, p=weights / weights.sum()).astype(np.int8)


def _others(rng: np.random.Generator, anchor: np.ndarray, k: int, m: int) -> np.ndarray:
    """``k`` distinct members per row, all different from ``anchor`` (needs k < m)."""
    draws = np.sort(rng.integers(1, m - k + 1, (anchor.shape[0], k)), axis=1) + np.arange(k)
    out: np.ndarray = (anchor[:, None] + draws) % m
    return out


def _threads(rng: np.random.Generator, members: Members, cat: str, n_records: int) -> tuple[np.ndarray, np.ndarray]:
    """Threads of one category as (flat member indices, offsets); first member = InMail sender."""
    m = members.count
    n_threads = max(1, n_records // MESSAGES_PER_THREAD[cat])
    pool_p = members.activity
    if cat == "message.inmail":
        pool_p = np.where(members.premium, members.activity, 0.0)
        pool_p = pool_p / pool_p.sum()
    first = rng.choice(m, n_threads, p=pool_p)
    if cat == "message.group":
        hi = min(GROUP_SIZE[1], m)
        sizes = rng.integers(min(GROUP_SIZE[0], hi), hi + 1, n_threads)
    else:
        sizes = np.full(n_threads, 2, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    flat = np.empty(int(offsets[-1]), dtype=np.int64)
    flat[offsets[:-1]] = first
    for size in np.unique(sizes).tolist():
        rows = np.flatnonzero(sizes == size)
        others = _others(rng, first[rows], size - 1, m)
        for j in range(size - 1):
            flat[offsets[rows] + 1 + j] = others[:, j]
    return flat, offsets


def generate_structure(rng: np.random.Generator, members: Members, n: int) -> Structure:
    """``n`` records: categories, authors, participants, threads and times, sorted by time."""
    category = _categories(rng, n, members)
    author = rng.choice(members.count, n, p=members.activity)
    recipient = np.full(n, -1, dtype=np.int64)
    thread = np.full(n, -1, dtype=np.int64)
    start = members.joined[author]
    sizes = np.ones(n, dtype=np.int64)
    source = np.arange(n, dtype=np.int64)  # where each record's participant list starts in `pool`
    pool_parts: list[np.ndarray] = []
    pool_base = n
    thread_base = 0
    for cat in ("message.direct", "message.inmail", "message.group"):
        rows = np.flatnonzero(category == CAT[cat])
        if rows.size == 0:
            continue
        flat, offs = _threads(rng, members, cat, rows.size)
        lens = np.diff(offs)
        pick = rng.integers(0, lens.size, rows.size)
        size = lens[pick]
        pos = np.zeros(rows.size, np.int64) if cat == "message.inmail" else rng.integers(0, 1 << 30, rows.size) % size
        other = (pos + 1 + rng.integers(0, 1 << 30, rows.size) % (size - 1)) % size
        author[rows] = flat[offs[pick] + pos]
        recipient[rows] = flat[offs[pick] + other]
        thread[rows] = thread_base + pick
        start[rows] = np.maximum.reduceat(members.joined[flat], offs[:-1])[pick]
        sizes[rows] = size
        source[rows] = pool_base + offs[pick]
        pool_parts.append(flat)
        pool_base += flat.size
        thread_base += lens.size
    pool = np.concatenate([author, *pool_parts])
    created = timeline.spread(rng, np.maximum(start, members.joined[author]), timeline.END, skew=0.6)
    order = np.argsort(created, kind="stable")
    category, author, recipient, thread, created, sizes, source = (
        a[order] for a in (category, author, recipient, thread, created, sizes, source)
    )
    part_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    within = np.arange(int(part_offsets[-1]), dtype=np.int64) - np.repeat(part_offsets[:-1].astype(np.int64), sizes)
    part_values = pool[np.repeat(source, sizes) + within]
    _link_comments(rng, category, thread, created)
    return Structure(category, author, recipient, part_offsets, part_values, thread, created)


def _link_comments(rng: np.random.Generator, category: np.ndarray, thread: np.ndarray, created: np.ndarray) -> None:
    """Point each comment at a random earlier post (encoded as ``-2 - post_row``)."""
    posts = np.flatnonzero(category == CAT["post"])
    comments = np.flatnonzero(category == CAT["comment"])
    if posts.size == 0 or comments.size == 0:
        return
    earlier = np.searchsorted(created[posts], created[comments], side="left")
    has = earlier > 0
    pick = (rng.random(comments.size) * np.maximum(earlier, 1)).astype(np.int64)
    thread[comments[has]] = -2 - posts[pick[has]]


def participants_array(s: Structure, member_ids: pa.Array) -> pa.ListArray:
    """The ``participants`` column: lists of member id strings."""
    return pa.ListArray.from_arrays(pa.array(s.part_offsets, pa.int32()), member_ids.take(pa.array(s.part_values)))
