"""Byte-level rebuilding of an Arrow string array with some ranges replaced.

Owns the arithmetic that lets redaction build its output without a Python string
per text: ``TextBytes`` maps character offsets of rows to byte offsets of the
array's data buffer (one lookup per offset, through the positions of the UTF-8
lead bytes where the text is not ASCII), and ``splice`` writes a new string array
in which given byte ranges are replaced by given strings, with one numpy gather
over all output bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from consentgate.errors import DetectError

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
_INT32_MAX = (1 << 31) - 1


@dataclass
class TextBytes:
    """The bytes of a string array and the map from characters of a row to bytes of the buffer.

    ``data`` is the data buffer from the first row's first byte to the last row's
    end; ``off`` (n + 1) are row offsets into it. Where the text is not ASCII,
    ``cont_chars[i]`` is the number of characters (lead bytes) before the i-th UTF-8
    continuation byte, so character ``q`` of the buffer starts at byte
    ``q + (continuation bytes with cont_chars <= q)``; ``char_off`` are the row
    offsets in characters. Only the continuation bytes are listed, so the map is
    small for mostly-ASCII text.
    """

    data: U8
    off: I64
    valid: npt.NDArray[np.bool_]
    cont_chars: I64 | None
    char_off: I64

    @staticmethod
    def of(arr: pa.StringArray) -> "TextBytes":
        n = len(arr)
        bufs = arr.buffers()
        off = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4).astype(np.int64)
        base = int(off[0])
        off -= base
        raw = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
        data = raw[base : base + int(off[-1])]
        valid = np.asarray(arr.is_valid()) if arr.null_count else np.ones(n, dtype=bool)
        if not data.size or int(data.max()) < 0x80:
            return TextBytes(data, off, valid, None, off)
        cont = np.flatnonzero((data & 0xC0) == 0x80)
        cont_chars = cont - np.arange(cont.size, dtype=np.int64)
        return TextBytes(data, off, valid, cont_chars, off - np.searchsorted(cont, off))

    def nchars(self, rows: I64) -> I64:
        """Characters in each of ``rows``."""
        return self.char_off[rows + 1] - self.char_off[rows]

    def byte_at(self, rows: I64, chars: I64) -> I64:
        """Data buffer position of character ``chars`` (0 ... nchars) of each row in ``rows``."""
        q = self.char_off[rows] + chars
        if self.cont_chars is None:
            return q
        pos: I64 = q + np.searchsorted(self.cont_chars, q, side="right")
        return pos


def gather(src: U8, start: I64, length: I64) -> U8:
    """The byte ranges ``[start[i], start[i] + length[i])`` of ``src``, concatenated (one numpy take)."""
    total = int(length.sum())
    if total > _INT32_MAX:
        raise DetectError("redacted texts exceed 2 GiB in one array", hint="Redact in smaller batches.", field="text")
    if not total:
        return np.zeros(0, np.uint8)
    out_start = np.cumsum(length) - length
    # 32-bit positions where they fit: the index array is as long as the output.
    dtype = np.int32 if src.size <= _INT32_MAX else np.int64
    idx = np.repeat((start - out_start).astype(dtype), length)
    idx += np.arange(total, dtype=dtype)
    return src[idx]


def substrings(data: U8, lo: I64, hi: I64) -> tuple[U8, I64]:
    """The byte ranges ``[lo[i], hi[i])`` of ``data`` concatenated, and their offsets (n + 1)."""
    length = hi - lo
    return gather(data, lo, length), np.concatenate([[0], np.cumsum(length)])


def splice(tb: TextBytes, rows: I64, lo: I64, hi: I64, tokens: pa.StringArray, tok: I64, valid: npt.NDArray[np.bool_]) -> pa.StringArray:
    """The texts of ``tb`` with bytes ``[lo[i], hi[i])`` of row ``rows[i]`` replaced by ``tokens[tok[i]]``.

    The ranges must be sorted by (row, lo) and must not overlap; ``valid`` is the
    validity of the output rows.
    """
    n = tb.off.size - 1
    tb_off = np.frombuffer(tokens.buffers()[1], dtype=np.int32, count=len(tokens) + 1, offset=tokens.offset * 4).astype(np.int64)
    tdata = tokens.buffers()[2]
    tbytes = np.frombuffer(tdata, dtype=np.uint8) if tdata is not None else np.zeros(0, np.uint8)
    t_start, t_len = tb_off[tok], tb_off[tok + 1] - tb_off[tok]
    # Pieces: kept original bytes before each range, the range's token, and the tail.
    prev_hi = np.concatenate([[0], hi])
    keep_len = np.concatenate([lo, [tb.data.size]]) - prev_hi
    src = np.empty(2 * lo.size + 1, dtype=np.int64)
    length = np.empty(2 * lo.size + 1, dtype=np.int64)
    src[0::2], length[0::2] = prev_hi, keep_len
    src[1::2], length[1::2] = tb.data.size + t_start, t_len
    out = gather(np.concatenate([tb.data, tbytes]), src, length)
    growth = np.bincount(rows, weights=t_len - (hi - lo), minlength=n).astype(np.int64)
    new_off = tb.off + np.concatenate([[0], np.cumsum(growth)])
    n_null = int(n - np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes()) if n_null else None
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(new_off.astype(np.int32).tobytes()), pa.py_buffer(out.tobytes()), bitmap, n_null
    )
