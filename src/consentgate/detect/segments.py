"""The scan buffer of a batch: texts joined with NUL separators, and maps back to rows.

Owns how a batch of an Arrow string array becomes one buffer for the multi-pattern
scan (``Segments``; long texts cut into overlapping windows so memory stays bounded),
how byte offsets in that buffer become character offsets (``CharView``), and how an
input is cut into batches (``iter_batches``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Iterator

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from consentgate.detect.backend import Hits
from consentgate.errors import DetectError

I64 = npt.NDArray[np.int64]

LONG_TEXT: Final = 1 << 20  # texts above this many bytes are scanned in windows
WINDOW: Final = 1 << 20
OVERLAP: Final = 4096  # longest span found whole across a window edge, in bytes
BATCH_ROWS: Final = 65536


@dataclass
class CharView:
    """The scan buffer decoded once, and the byte -> character map of that buffer.

    For an ASCII buffer bytes are characters; for UTF-8, ``cont`` holds the positions
    of continuation bytes, and the character offset of byte ``i`` is ``i`` minus the
    continuation bytes before it. ``lead_cum`` (invalid UTF-8 only) maps every byte.
    """

    text: str
    lead_cum: npt.NDArray[np.int64] | None
    cont: npt.NDArray[np.int64] | None = None

    @staticmethod
    def of(seg: "Segments") -> "CharView":
        raw = np.frombuffer(seg.buf, dtype=np.uint8)
        if not raw.size or int(raw.max()) < 0x80:
            return CharView(seg.buf.decode("ascii"), None)
        try:
            text = seg.buf.decode("utf-8")
        except UnicodeDecodeError:
            return CharView.invalid(seg.buf)
        # Character offset of byte i = i - (continuation bytes before i).
        cont = np.flatnonzero((raw & 0xC0) == 0x80)
        return CharView(text, None, cont)

    @staticmethod
    def invalid(buf: bytes) -> "CharView":
        """Invalid UTF-8 (not a valid Arrow string array): one character per undecodable byte."""
        text = buf.decode("utf-8", "surrogateescape")
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        nbytes = np.select(
            [(cps >= 0xDC80) & (cps <= 0xDCFF), cps < 0x80, cps < 0x800, cps < 0x10000], [1, 1, 2, 3], 4
        ).astype(np.int64)
        char_start = np.cumsum(nbytes) - nbytes
        lead_cum = np.searchsorted(char_start, np.arange(len(buf) + 1), side="left").astype(np.int64)
        return CharView(text, lead_cum)

    def chars(self, pos: I64) -> I64:
        """Character offsets of buffer byte offsets ``pos``."""
        if self.cont is not None:
            return pos - np.searchsorted(self.cont, pos, side="left")
        return pos if self.lead_cum is None else self.lead_cum[pos]

    def row_chars(self, seg: "Segments", sg: I64, pos: I64) -> I64:
        """Character offset within its row of batch character offset ``pos`` in segment ``sg``."""
        return seg.char_base[sg] + pos - self.chars(seg.buf_start[sg])


# ---------------------------------------------------------------------- segments


@dataclass
class Segments:
    """The scan buffer and, per segment, its row, buffer range and character base."""

    buf: bytes
    row: I64
    buf_start: I64  # first body byte of the segment in buf
    buf_end: I64
    own_lo: I64  # hits must start in [own_lo, own_hi) (buffer coordinates)
    own_hi: I64
    char_base: I64  # characters of the row before the segment
    windowed: bool = False

    def assign(self, hits: Hits) -> Hits:
        """Drop hits that cross a segment end or start outside the segment's own range."""
        if not hits.pid.size:
            return hits
        sg = np.searchsorted(self.buf_start, hits.start, side="right") - 1
        sg = np.clip(sg, 0, self.row.size - 1)
        ok = (hits.start >= self.own_lo[sg]) & (hits.start < self.own_hi[sg]) & (hits.end <= self.buf_end[sg])
        ok &= hits.end > hits.start
        return Hits(hits.pid[ok], hits.start[ok], hits.end[ok])


def segment_groups(arr: pa.StringArray) -> Iterator[Segments]:
    """One ``Segments`` for a batch of ordinary texts, or one per window of a long text."""
    offsets = _offsets(arr)
    lengths = np.diff(offsets)
    if arr.null_count:
        lengths = np.where(np.asarray(arr.is_valid()), lengths, 0)
    data = arr.buffers()[2]
    body = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    if len(arr) and lengths.max(initial=0) > LONG_TEXT:
        yield from _segments_windowed(body, offsets, lengths)
    else:
        yield _segments(body, offsets, lengths)


def _offsets(arr: pa.StringArray) -> I64:
    """The ``len(arr) + 1`` offsets of ``arr`` into its data buffer, as int64."""
    return np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4).astype(np.int64)


def _segments(data: npt.NDArray[np.uint8], offsets: I64, lengths: I64) -> Segments:
    """One buffer for the whole batch; ``lengths`` is 0 for a null entry."""
    n = offsets.size - 1
    sizes = np.diff(offsets)
    d0 = int(offsets[0]) if n else 0
    body = data[d0 : int(offsets[-1])] if n else np.zeros(0, np.uint8)
    if body.size and (lengths != sizes).any():
        # Null entries may still point at bytes; blank them so they scan as empty.
        keep = np.repeat(lengths > 0, sizes)
        body = np.where(keep, body, 0).astype(np.uint8)
    rel = offsets - d0
    # Insert a NUL before every text and after the last one.
    out = np.insert(body, rel[:-1], 0) if n else np.zeros(0, np.uint8)
    out = np.concatenate([out, np.zeros(1, np.uint8)])
    starts = rel[:-1] + np.arange(1, n + 1)
    ends = starts + sizes
    row = np.arange(n, dtype=np.int64)
    return Segments(out.tobytes(), row, starts, ends, starts, ends + 1, np.zeros(n, np.int64))


def _segments_windowed(data: npt.NDArray[np.uint8], offsets: I64, lengths: I64) -> Iterator[Segments]:
    """Windows of ``WINDOW`` bytes (plus ``OVERLAP`` each side) over every text of the batch.

    Each window is its own scan buffer; a hit counts in the window whose own range
    holds its start, so spans up to ``OVERLAP`` bytes long are found whole once.
    """
    for r in range(offsets.size - 1):
        lo, n = int(offsets[r]), int(lengths[r])
        text = data[lo : lo + n]
        own = 0
        chars_before = 0
        while True:
            own_end = _char_boundary(text, min(n, own + WINDOW))
            w_lo = _char_boundary(text, max(0, own - OVERLAP))
            w_hi = _char_boundary(text, min(n, own_end + OVERLAP))
            piece = text[w_lo:w_hi]
            buf = b"\x00" + piece.tobytes() + b"\x00"
            cbase = chars_before - int(np.count_nonzero((text[w_lo:own] & 0xC0) != 0x80))
            own_hi = 1 + (own_end - w_lo) + (1 if own_end == n else 0)
            yield Segments(buf, _one(r), _one(1), _one(1 + piece.size), _one(1 + own - w_lo), _one(own_hi), _one(cbase), True)
            chars_before += int(np.count_nonzero((text[own:own_end] & 0xC0) != 0x80))
            if own_end >= n:
                break
            own = own_end


def _one(x: int) -> I64:
    return np.array([x], dtype=np.int64)


def _char_boundary(text: npt.NDArray[np.uint8], i: int) -> int:
    while 0 < i < text.size and (text[i] & 0xC0) == 0x80:
        i += 1
    return i


# ---------------------------------------------------------------------- arrays


def string_chunks(texts: pa.Array | pa.ChunkedArray) -> list[pa.StringArray]:
    chunks = texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]
    out: list[pa.StringArray] = []
    for c in chunks:
        if pa.types.is_large_string(c.type) or pa.types.is_string_view(c.type):
            c = c.cast(pa.string()) if c.nbytes < (1 << 31) - 1 else c
        if not pa.types.is_string(c.type):
            raise DetectError(f"detect needs a string array, got {c.type}", field="text", value=str(c.type))
        out.append(c)
    return out


def iter_batches(arrays: list[pa.StringArray], batch_bytes: int) -> Iterator[tuple[int, pa.StringArray]]:
    """Slices of at most ``batch_bytes`` of text (or one long text) and their first row number."""
    base = 0
    for arr in arrays:
        n = len(arr)
        if n == 0:
            continue
        offsets = _offsets(arr)
        i = 0
        while i < n:
            limit = offsets[i] + batch_bytes
            j = int(np.searchsorted(offsets, limit, side="right")) - 1
            j = min(max(j, i + 1), n, i + BATCH_ROWS)
            # A long text travels alone (it is scanned window by window).
            long_rows = np.flatnonzero(np.diff(offsets[i : j + 1]) > LONG_TEXT)
            if long_rows.size:
                j = i + max(int(long_rows[0]), 1)
            yield base + i, arr.slice(i, j - i)
            i = j
        base += n
