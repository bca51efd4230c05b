"""Vectorised template rendering: record texts plus exact ground-truth labels.

Owns turning per-record template choices into text. A record's text is the
non-empty segments (opener, body, topic, PII 1, PII 2, closer) joined by single
spaces. Each segment is rendered *per template group*: all records that use
one template get their slot values in one call and are concatenated with one
Arrow kernel, so no Python runs per record except inside the few PII value
generators. Every planted PII value yields a label ``(row, entity_type,
start, end)`` in character (code point) offsets, computed from the lengths of
the literal parts and slot values before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consentgate.demo import pii, templates
from consentgate.demo.members import Members


@dataclass
class PiiLabels:
    """Labels of one segment; ``start`` is relative to the segment until ``shift``."""

    rows: list[np.ndarray] = field(default_factory=list)
    types: list[np.ndarray] = field(default_factory=list)
    starts: list[np.ndarray] = field(default_factory=list)
    lengths: list[np.ndarray] = field(default_factory=list)

    def add(self, rows: np.ndarray, entity: str, start: np.ndarray, length: np.ndarray) -> None:
        self.rows.append(rows)
        self.types.append(np.full(rows.size, entity, dtype=object))
        self.starts.append(start.copy())
        self.lengths.append(length)


class SlotFiller:
    """Draws slot values for a group of records (rows into the records table)."""

    def __init__(self, rng: np.random.Generator, members: Members, author: np.ndarray, recipient: np.ndarray) -> None:
        self.rng = rng
        self.members = members
        self.author = author
        self.recipient = recipient
        self._phone_pools: tuple[list[str], list[str]] | None = None
        self._fillers = {k: pa.array(v, pa.string()) for k, v in templates.FILLERS.items()}

    def _other_member(self, rows: np.ndarray) -> pa.Array:
        m = self.members.count
        return pa.array((self.author[rows] + self.rng.integers(1, max(m, 2), rows.size)) % m)

    def fill(self, slot: str, rows: np.ndarray) -> pa.Array:
        kind = templates.slot_kind(slot)
        n = rows.size
        if kind in self._fillers:
            pool = self._fillers[kind]
            return pool.take(pa.array(self.rng.integers(0, len(pool), n)))
        if kind == "RECIPIENT":
            return self.members.names.take(pa.array(self.recipient[rows]))
        if kind == "PERSON":
            return self.members.names.take(self._other_member(rows))
        if kind == "EMAIL_ADDRESS":
            return self.members.emails.take(self._other_member(rows))
        if kind == "URL":
            handles = self.members.handles.take(self._other_member(rows)).to_pylist()
            return pa.array(pii.urls(self.rng, n, handles), pa.string())
        if kind == "PHONE_NUMBER":
            if self._phone_pools is None:
                self._phone_pools = pii.phone_pools(self.rng)
            return pa.array(pii.phones(self.rng, n, self._phone_pools), pa.string())
        generators = {
            "CREDIT_CARD": pii.card_numbers,
            "IBAN_CODE": pii.ibans,
            "US_SSN": pii.ssns,
            "IP_ADDRESS": pii.ip_addresses,
            "STREET_ADDRESS": pii.street_addresses,
        }
        return pa.array(generators[kind](self.rng, n), pa.string())


@lru_cache(maxsize=4096)
def _parsed(template: str) -> tuple[templates.Part, ...]:
    return templates.parse(template)


def _render_group(template: str, rows: np.ndarray, filler: SlotFiller, labels: PiiLabels) -> pa.Array:
    parts = _parsed(template)
    if len(parts) == 1:
        return pa.repeat(pa.scalar(template, pa.string()), rows.size)
    pieces: list[pa.Array | str] = []
    pos = np.zeros(rows.size, dtype=np.int64)
    for part in parts:
        if part.literal:
            pieces.append(part.literal)
            pos += len(part.literal)
        if part.slot is None:
            continue
        values = filler.fill(part.slot, rows)
        length = pc.utf8_length(values).to_numpy(zero_copy_only=False).astype(np.int64)
        kind = templates.slot_kind(part.slot)
        if kind in templates.PII_SLOTS:
            labels.add(rows, "PERSON" if kind == "RECIPIENT" else kind, pos, length)
        pieces.append(values)
        pos += length
    return pc.binary_join_element_wise(*pieces, "")


def render_segment(pool: Sequence[str], choice: np.ndarray, filler: SlotFiller) -> tuple[pa.Array, PiiLabels]:
    """Text of one segment for every record; ``choice`` indexes ``pool`` (-1 = no segment).

    Records whose segment is absent or renders to "" get null, so that joining
    segments with ``null_handling="skip"`` puts exactly one space between parts.
    """
    n = choice.shape[0]
    labels = PiiLabels()
    order = np.argsort(choice, kind="stable")
    counts = np.bincount(choice + 1, minlength=len(pool) + 1)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    chunks: list[pa.Array] = []
    for t in range(-1, len(pool)):
        rows = order[bounds[t + 1] : bounds[t + 2]]
        if rows.size == 0:
            continue
        if t < 0 or pool[t] == "":
            chunks.append(pa.nulls(rows.size, pa.string()))
        else:
            chunks.append(_render_group(pool[t], rows, filler, labels))
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    return pa.concat_arrays(chunks).take(pa.array(inverse)), labels


def join_segments(segments: Sequence[tuple[pa.Array, PiiLabels]]) -> tuple[pa.Array, PiiLabels]:
    """Join segments with single spaces; shift each label by its segment's start."""
    n = len(segments[0][0])
    offset = np.zeros(n, dtype=np.int64)
    merged = PiiLabels()
    for text, labels in segments:
        for rows, types, starts, lengths in zip(labels.rows, labels.types, labels.starts, labels.lengths):
            merged.rows.append(rows)
            merged.types.append(types)
            merged.starts.append(starts + offset[rows])
            merged.lengths.append(lengths)
        length = pc.utf8_length(text).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        offset += np.where(length >= 0, length + 1, 0)
    joined = pc.binary_join_element_wise(*(t for t, _ in segments), " ", null_handling="skip")
    return joined, merged
