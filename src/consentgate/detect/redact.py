"""Redaction of detected spans: mask, keyed pseudonym, or drop the record.

Owns ``redact(texts, spans, strategies, key) -> Redaction``.

* ``mask`` replaces a span with ``[ENTITY_TYPE]``;
* ``pseudonym`` replaces it with ``<ENTITY_TYPE_xxxxxx>``, the first six hex digits
  of HMAC-SHA256(key, entity type + normalised value). The same value gets the same
  token in every record of a dataset that uses the same key; the key is never logged
  or written;
* ``drop_record`` drops the whole record (its text becomes null, ``dropped`` true).

Overlapping or touching spans merge into one replacement first, and every other
occurrence of a detected value in the same text is redacted too, so redacted text
never keeps a detected value or part of one. A detected type with no strategy is masked
(fail closed).

The output is built without a Python string per text: spans are merged and labelled
with numpy, pseudonyms are computed once per distinct message (``pseudonym_array``),
and the new string array is one byte gather (``rebuild.py``). Only texts holding a
detected value more than once, a span outside the text, or nulls go through the
per-text Python rebuild (``_redact_one``), which ``redact_reference`` applies to
every text and the tests compare with.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
import re
import unicodedata
from dataclasses import dataclass
from typing import Final, Mapping

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from consentgate.detect.rebuild import TextBytes, splice, substrings
from consentgate.errors import DetectError

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

STRATEGIES: Final = ("mask", "pseudonym", "drop_record")
_SEVERITY: Final = {"mask": 0, "pseudonym": 1, "drop_record": 2}
_NUMERIC: Final = frozenset({"PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN"})
_NON_ALNUM: Final = re.compile(r"[^0-9A-Za-z]")
_DROP_ASCII_NON_ALNUM: Final = str.maketrans("", "", "".join(chr(c) for c in range(128) if not chr(c).isalnum()))


@dataclass
class Redaction:
    """Redacted texts (null where dropped), the dropped flags and spans redacted per type."""

    texts: pa.StringArray
    dropped: pa.BooleanArray
    counts: dict[str, int]


def _normalise(entity_type: str, value: str) -> str:
    if entity_type in _NUMERIC:
        if value.isascii():
            return value.translate(_DROP_ASCII_NON_ALNUM).upper()  # the same as the regex, faster
        return _NON_ALNUM.sub("", value).upper()
    if value.isascii():
        return " ".join(value.lower().split())  # NFKC and casefold change no ASCII text but case
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


def pseudonym(entity_type: str, value: str, key: bytes) -> str:
    """The keyed pseudonym token of ``value`` (``<PERSON_5f2a9c>`` style)."""
    inner, outer = _hmac_pads(key)
    h = inner.copy()
    h.update(f"{entity_type}\x1f{_normalise(entity_type, value)}".encode("utf-8"))
    o = outer.copy()
    o.update(h.digest())
    return f"<{entity_type}_{o.digest()[:3].hex()}>"


@lru_cache(maxsize=8)
def _hmac_pads(key: bytes) -> tuple["hashlib._Hash", "hashlib._Hash"]:
    """HMAC-SHA256 (RFC 2104) inner and outer hashes with the key pads absorbed.

    Equal to ``hmac.digest(key, msg, "sha256")`` (tested); copying the two prepared
    hashes costs a third of setting up the key on every call. Kept in process memory only.
    """
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


def _check(strategies: Mapping[str, str], key: bytes | None) -> None:
    for etype, strategy in strategies.items():
        if strategy not in STRATEGIES:
            raise DetectError(
                f"unknown redaction strategy {strategy!r} for {etype}",
                hint=f"Use one of {', '.join(STRATEGIES)}.",
                field=etype,
                value=strategy,
            )
    if key is None and "pseudonym" in strategies.values():
        raise DetectError(
            "pseudonym redaction needs a key",
            hint="Set pseudonym_key in consentgate.toml or CONSENTGATE_PSEUDONYM_KEY.",
            field="pseudonym_key",
        )
    if key is not None and len(key) < 16:
        raise DetectError("pseudonym key is shorter than 16 bytes", hint="Use a random key of at least 16 bytes.", field="pseudonym_key")


def _merge(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, list[tuple[int, int, str]]]]:
    """Merge overlapping or touching spans; each group keeps its members."""
    out: list[tuple[int, int, list[tuple[int, int, str]]]] = []
    if len(spans) == 1:
        s, e, t = spans[0]
        return [(s, e, [(s, e, t)])]
    for s, e, t in sorted(spans):
        if out and s <= out[-1][1]:
            ps, pe, members = out[-1]
            members.append((s, e, t))
            out[-1] = (ps, max(pe, e), members)
        else:
            out.append((s, e, [(s, e, t)]))
    return out


def _with_repeats(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Add every other occurrence of a detected value (4+ characters) in the same text.

    A value found once may appear again where the detector did not see it (glued to
    a word, say); redacted text must not keep it anywhere.
    """
    out = spans
    seen: set[str] = set()
    for s, e, t in spans:
        value = text[s:e]
        if len(value) < 4 or value in seen:
            continue
        seen.add(value)
        i = text.find(value)
        if i == s and text.find(value, s + 1) < 0:
            continue  # the common case: the value occurs once
        while i >= 0:
            if i != s:
                if out is spans:
                    out = list(spans)
                out.append((i, i + len(value), t))
            i = text.find(value, i + 1)
    return out


def _redact_one(
    text: str, spans: list[tuple[int, int, str]], strategies: Mapping[str, str], key: bytes | None, tokens: dict[tuple[str, str], str]
) -> str | None:
    spans = _with_repeats(text, spans)
    parts: list[str] = []
    pos = 0
    for s, e, members in _merge(spans):
        s, e = max(0, s), min(len(text), e)
        if len(members) == 1:
            etype = members[0][2]
            strategy = strategies.get(etype, "mask")
        else:
            # The label of a merged group is its longest member's type; its strategy the strictest.
            etype = max(members, key=lambda m: (m[1] - m[0], -m[0]))[2]
            strategy = max((strategies.get(m[2], "mask") for m in members), key=_SEVERITY.__getitem__)
        if strategy == "drop_record":
            return None
        parts.append(text[pos:s])
        parts.append(_token(text, s, e, etype, strategy, key, tokens))
        pos = max(pos, e)
    parts.append(text[pos:])
    return "".join(parts)


def _token(text: str, s: int, e: int, etype: str, strategy: str, key: bytes | None, tokens: dict[tuple[str, str], str]) -> str:
    if strategy != "pseudonym":
        return f"[{etype}]"
    assert key is not None
    value = text[s:e]
    token = tokens.get((etype, value))
    if token is None:
        token = tokens[(etype, value)] = pseudonym(etype, value, key)
    return token


def _redact_single(
    text: str, s: int, e: int, etype: str, strategies: Mapping[str, str], key: bytes | None, tokens: dict[tuple[str, str], str]
) -> str | None:
    """The common case: one span, whose value does not occur again in the text."""
    strategy = strategies.get(etype, "mask")
    if strategy == "drop_record":
        return None
    s, e = max(0, s), min(len(text), e)
    return text[:s] + _token(text, s, e, etype, strategy, key, tokens) + text[e:]


def _span_columns(spans: pa.Table, n: int) -> tuple[I64, I64, I64, I64, list[str]]:
    """Rows, starts, ends and type codes of ``spans`` sorted by (row, start, end, type), and the type names.

    A type code is the rank of its name in string order, so sorting by code sorts by name.
    """
    for col in ("row", "entity_type", "start", "end"):
        if col not in spans.column_names:
            raise DetectError(f"spans table lacks column {col!r}", field=col)
    rows = np.asarray(spans.column("row").to_numpy(zero_copy_only=False), dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise DetectError("spans refer to rows outside the texts", field="row")
    starts = np.asarray(spans.column("start").to_numpy(zero_copy_only=False), dtype=np.int64)
    ends = np.asarray(spans.column("end").to_numpy(zero_copy_only=False), dtype=np.int64)
    etypes = pc.fill_null(spans.column("entity_type").combine_chunks().cast(pa.string()), "None")
    encoded = etypes.dictionary_encode()
    names = [str(x) for x in encoded.dictionary.to_pylist()]
    rank = np.argsort(np.argsort(np.array(names, dtype=object)))  # type code -> its rank in string order
    codes = rank[np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)] if names else rows
    order = np.lexsort((codes, ends, starts, rows))
    return rows[order], starts[order], ends[order], codes[order], sorted(names)


def _counts(codes: I64, names: list[str]) -> dict[str, int]:
    """Spans per type, in the order the types first appear in the sorted spans."""
    found, first, count = np.unique(codes, return_index=True, return_counts=True)
    return {names[int(found[i])]: int(count[i]) for i in np.argsort(first, kind="stable").tolist()}


def redact(texts: pa.Array, spans: pa.Table, strategies: Mapping[str, str], key: bytes | None) -> Redaction:
    """Apply ``strategies`` (entity type -> mask / pseudonym / drop_record) to ``spans`` of ``texts``."""
    arr, (rows, starts, ends, codes, names), counts = _prepared(texts, spans, strategies, key)
    if not rows.size:
        return Redaction(arr, pa.array(np.zeros(len(arr), dtype=bool), pa.bool_()), counts)
    return _redact_arrays(arr, rows, starts, ends, codes, names, strategies, key, counts)


def _prepared(
    texts: pa.Array, spans: pa.Table, strategies: Mapping[str, str], key: bytes | None
) -> tuple[pa.StringArray, tuple[I64, I64, I64, I64, list[str]], dict[str, int]]:
    """Checked arguments: the texts as one string array, the sorted span columns, the counts per type."""
    _check(strategies, key)
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not pa.types.is_string(texts.type):
        texts = texts.cast(pa.string())
    cols = _span_columns(spans, len(texts))
    return texts, cols, _counts(cols[3], cols[4])


def _redact_arrays(
    texts: pa.StringArray, rows: I64, starts: I64, ends: I64, codes: I64, names: list[str],
    strategies: Mapping[str, str], key: bytes | None, counts: dict[str, int],
) -> Redaction:
    """Merge, label and replace the spans of all ordinary texts with numpy; the rest go through ``_python_rows``.

    A text is rebuilt in Python (``_redact_one``) when it is null, has a span outside
    it or empty, or holds a detected value (4+ characters) anywhere but at its span.
    """
    tb = TextBytes.of(texts)
    affected, bounds = _row_groups(rows)
    originals = texts.take(pa.array(affected, pa.int64())).to_pylist()
    aidx = np.repeat(np.arange(affected.size), np.diff(bounds))
    odd = (starts < 0) | (ends <= starts) | (ends > tb.nchars(rows)) | ~tb.valid[rows]
    slow = np.zeros(affected.size, dtype=bool)
    slow[aidx[odd]] = True
    _mark_repeats(originals, aidx, starts, ends, slow)
    tokens: dict[tuple[str, str], str] = {}
    g = _Groups.of(tb, *(x[~slow[aidx]] for x in (rows, starts, ends, codes)))
    sev = np.array([_SEVERITY[strategies.get(name, "mask")] for name in names], dtype=np.int64)
    g_sev = np.maximum.reduceat(sev[g.member_codes], g.first) if g.first.size else g.first
    dropped_rows = np.unique(g.row[g_sev == 2])
    keep = ~np.isin(g.row, dropped_rows)
    # Replacement strings: a mask label per type, then the distinct pseudonyms, then whole slow texts.
    table: list[str] = [f"[{name}]" for name in names]
    tok = g.code.copy()
    pseudo = np.flatnonzero(keep & (g_sev == 1))
    if pseudo.size:
        assert key is not None
        data, offsets = substrings(tb.data, g.bs[pseudo], g.be[pseudo])
        ids, distinct = pseudonym_array(names, g.code[pseudo], data, offsets, key)
        tok[pseudo] = len(table) + ids
        table += distinct.to_pylist()
    slow_a = np.flatnonzero(slow)
    slow_new = _python_rows(
        [originals[a] for a in slow_a.tolist()], [(bounds[a], bounds[a + 1]) for a in slow_a.tolist()],
        starts, ends, [names[c] for c in codes.tolist()], strategies, key, tokens,
    )
    slow_rows = affected[slow_a]
    replaced = np.array([t is not None for t in slow_new], dtype=bool)
    table_slow = len(table)
    table += [t for t in slow_new if t is not None]
    dropped = np.zeros(len(texts), dtype=bool)
    dropped[dropped_rows] = True
    dropped[slow_rows[~replaced & tb.valid[slow_rows]]] = True
    # Ranges to replace, in buffer order: kept groups of fast texts, whole slow texts.
    sr = slow_rows[replaced]
    r_row = np.concatenate([g.row[keep], sr])
    r_lo = np.concatenate([g.bs[keep], tb.off[sr]])
    r_hi = np.concatenate([g.be[keep], tb.off[sr + 1]])
    r_tok = np.concatenate([tok[keep], table_slow + np.arange(sr.size, dtype=np.int64)])
    order = np.lexsort((r_lo, r_row))
    out = splice(tb, r_row[order], r_lo[order], r_hi[order], pa.array(table, pa.string()), r_tok[order], tb.valid & ~dropped)
    return Redaction(out, pa.array(dropped, pa.bool_()), counts)


def _mark_repeats(originals: list[str | None], aidx: I64, starts: I64, ends: I64, slow: npt.NDArray[np.bool_]) -> None:
    """Mark the texts where a span's value (4+ characters) occurs anywhere but at the span."""
    sel = np.flatnonzero(~slow[aidx] & (ends - starts >= 4))
    for a, s, e in zip(aidx[sel].tolist(), starts[sel].tolist(), ends[sel].tolist()):
        text = originals[a]
        assert text is not None
        value = text[s:e]
        if text.find(value) != s or text.find(value, s + 1) >= 0:
            slow[a] = True


@dataclass
class _Groups:
    """Spans of the fast texts merged into groups: overlapping or touching spans of a row form one.

    Per group: row, character and buffer bounds, label type (the longest member's,
    first in (start, end, type) order on ties); ``first`` indexes each group's first
    member in ``member_codes``.
    """

    row: I64
    cs: I64
    ce: I64
    bs: I64
    be: I64
    code: I64
    first: I64
    member_codes: I64

    @staticmethod
    def of(tb: TextBytes, rows: I64, starts: I64, ends: I64, codes: I64) -> "_Groups":
        bs, be = tb.byte_at(rows, starts), tb.byte_at(rows, ends)
        new = np.ones(rows.size, dtype=bool)
        if rows.size > 1:
            # Buffer positions shifted by the row number: rows never touch, spans of one row may.
            new[1:] = bs[1:] + rows[1:] > np.maximum.accumulate(be + rows)[:-1]
        first = np.flatnonzero(new)
        if not first.size:
            z = np.zeros(0, dtype=np.int64)
            return _Groups(z, z, z, z, z, z, z, z)
        gid = np.cumsum(new) - 1
        label = np.lexsort((np.arange(rows.size), starts, starts - ends, gid))[first]
        return _Groups(
            rows[first], starts[first], np.maximum.reduceat(ends, first), bs[first], np.maximum.reduceat(be, first),
            codes[label], first, codes,
        )


def pseudonym_array(type_names: list[str], codes: I64, data: U8, offsets: I64, key: bytes) -> tuple[I64, pa.StringArray]:
    """``pseudonym(type_names[codes[i]], value i, key)`` for values ``data[offsets[i]:offsets[i + 1]]`` (UTF-8).

    Returns, per value, an index into the distinct tokens, and those tokens. The
    values are normalised with byte tables (Python only for free text that is not
    ASCII or has unusual spacing), and the HMAC runs once per distinct message,
    from the prepared key pads.
    """
    types = pa.array(type_names, pa.string()).take(pa.array(codes))
    norm = _normalised(np.array([t in _NUMERIC for t in type_names], dtype=bool)[codes], data, offsets, types)
    encoded = pc.binary_join_element_wise(types, norm, _SEP).dictionary_encode()
    messages = encoded.dictionary.cast(pa.binary()).to_pylist()
    inner, outer = _hmac_pads(key)
    icopy, ocopy = inner.copy, outer.copy
    digests = bytearray()
    for m in messages:
        h = icopy()
        h.update(m)
        o = ocopy()
        o.update(h.digest())
        digests += o.digest()[:3]
    d = np.frombuffer(bytes(digests), dtype=np.uint8)
    hexed = _HEX[np.stack([d >> 4, d & 15], axis=1).ravel()]
    hex_arr = pa.StringArray.from_buffers(
        len(messages), pa.py_buffer(np.arange(0, 6 * len(messages) + 1, 6, dtype=np.int32).tobytes()), pa.py_buffer(hexed.tobytes())
    )
    ids = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    first = _first_index(ids, len(messages))
    tokens = pc.binary_join_element_wise(_LT, types.take(pa.array(first)), _US, hex_arr, _GT, _EMPTY)
    return ids, tokens


def _normalised(numeric: npt.NDArray[np.bool_], data: U8, offsets: I64, types: pa.StringArray) -> pa.StringArray:
    """``_normalise`` of every value, by byte tables where that gives the same result.

    Numeric types keep their ASCII letters and digits, upper-cased (any other
    character, ASCII or not, is dropped). Free text that is ASCII with single inner
    spaces is lower-cased; other free text goes through ``_normalise``.
    """
    n = numeric.size
    lengths = np.diff(offsets)
    owner = np.repeat(np.arange(n, dtype=np.int64), lengths)
    num_byte = numeric[owner]
    space = data == 0x20
    odd = _ODD_TEXT[data]
    odd[1:] |= space[1:] & space[:-1]
    odd &= ~num_byte
    slow = np.bincount(owner[odd], minlength=n) > 0
    filled = lengths > 0
    slow[filled] |= space[offsets[:-1][filled]] | space[offsets[1:][filled] - 1]
    slow &= ~numeric
    keep = ~num_byte | _ALNUM[data]
    out = np.where(num_byte, _UPPER[data], _LOWER[data])[keep]
    new_off = np.concatenate([[0], np.cumsum(np.bincount(owner[keep], minlength=n))]).astype(np.int32)
    norm = pa.StringArray.from_buffers(n, pa.py_buffer(new_off.tobytes()), pa.py_buffer(out.tobytes()))
    if slow.any():
        idx = np.flatnonzero(slow)
        done = [
            _normalise(t, bytes(data[offsets[i] : offsets[i + 1]]).decode("utf-8"))
            for i, t in zip(idx.tolist(), types.take(pa.array(idx)).to_pylist())
        ]
        norm = pc.replace_with_mask(norm, pa.array(slow), pa.array(done, pa.string()))
    return norm


_ALNUM: Final = np.zeros(256, dtype=bool)
_ALNUM[[*range(48, 58), *range(65, 91), *range(97, 123)]] = True
_LOWER: Final = np.arange(256, dtype=np.uint8)
_LOWER[65:91] += 32
_UPPER: Final = np.arange(256, dtype=np.uint8)
_UPPER[97:123] -= 32
# Bytes that make free text take the Python path: non-ASCII, and whitespace that
# ``str.split`` splits on other than the space.
_ODD_TEXT: Final = np.zeros(256, dtype=bool)
_ODD_TEXT[[9, 10, 11, 12, 13, 0x1C, 0x1D, 0x1E, 0x1F, *range(0x80, 0x100)]] = True
_HEX: Final = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Scalars made once: converting a Python string argument costs an import lookup per call.
_LT, _US, _GT, _EMPTY, _SEP = (pa.scalar(x, pa.string()) for x in ("<", "_", ">", "", "\x1f"))


def _first_index(codes: I64, n: int) -> I64:
    """For each code 0 .. n - 1, the first position where it occurs in ``codes``."""
    first = np.full(n, codes.size, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(codes.size, dtype=np.int64))
    return first


def redact_reference(texts: pa.Array, spans: pa.Table, strategies: Mapping[str, str], key: bytes | None) -> Redaction:
    """``redact`` rebuilding every affected text in Python, one at a time: the oracle the tests compare with."""
    texts, (rows, starts, ends, codes, names), counts = _prepared(texts, spans, strategies, key)
    n = len(texts)
    dropped = np.zeros(n, dtype=bool)
    if not rows.size:
        return Redaction(texts, pa.array(dropped, pa.bool_()), counts)
    affected, bounds = _row_groups(rows)
    originals = texts.take(pa.array(affected, pa.int64())).to_pylist()
    ranges = list(zip(bounds[:-1], bounds[1:]))
    new = _python_rows(originals, ranges, starts, ends, [names[c] for c in codes.tolist()], strategies, key, {})
    for r, old, text in zip(affected.tolist(), originals, new):
        dropped[r] = text is None and old is not None
    mask = np.zeros(n, dtype=bool)
    mask[affected] = True
    out = pc.replace_with_mask(texts, pa.array(mask), pa.array(new, pa.string()))
    return Redaction(out, pa.array(dropped, pa.bool_()), counts)


def _row_groups(rows: I64) -> tuple[I64, list[int]]:
    """The distinct rows of sorted ``rows`` and the bounds of their runs: row i is ``[bounds[i], bounds[i + 1])``."""
    cut = np.flatnonzero(np.diff(rows)) + 1
    return rows[np.concatenate([[0], cut])], [0, *cut.tolist(), int(rows.size)]


def _python_rows(
    originals: list[str | None], ranges: list[tuple[int, int]], starts: I64, ends: I64, types: list[str],
    strategies: Mapping[str, str], key: bytes | None, tokens: dict[tuple[str, str], str],
) -> list[str | None]:
    """Each text rebuilt with its spans ``ranges[i]`` (into the sorted spans) redacted (None: null or dropped)."""
    st, en = starts.tolist(), ends.tolist()
    out: list[str | None] = []
    for text, (a, b) in zip(originals, ranges):
        if text is None:
            out.append(None)
            continue
        if b - a == 1:
            s, e = st[a], en[a]
            value = text[s:e]
            if len(value) < 4 or (text.find(value, s + 1) < 0 and text.find(value) == s):
                out.append(_redact_single(text, s, e, types[a], strategies, key, tokens))
                continue
        out.append(_redact_one(text, list(zip(st[a:b], en[a:b], types[a:b])), strategies, key, tokens))
    return out
