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
(fail closed). Only rows that have spans are rebuilt in Python; the others pass
through untouched.
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

from consentgate.errors import DetectError

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


def _span_columns(spans: pa.Table, n: int) -> tuple[npt.NDArray[np.int64], list[int], list[int], list[str]]:
    """Rows, starts, ends and types of ``spans``, sorted by (row, start, end, type)."""
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
    by_rank = sorted(names)
    return rows[order], starts[order].tolist(), ends[order].tolist(), [by_rank[c] for c in codes[order].tolist()]


def redact(texts: pa.Array, spans: pa.Table, strategies: Mapping[str, str], key: bytes | None) -> Redaction:
    """Apply ``strategies`` (entity type -> mask / pseudonym / drop_record) to ``spans`` of ``texts``."""
    _check(strategies, key)
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not pa.types.is_string(texts.type):
        texts = texts.cast(pa.string())
    n = len(texts)
    rows, starts, ends, types = _span_columns(spans, n)
    counts: dict[str, int] = {}
    for t in types:
        counts[t] = counts.get(t, 0) + 1
    dropped = np.zeros(n, dtype=bool)
    if not rows.size:
        return Redaction(texts, pa.array(dropped, pa.bool_()), counts)
    # Row groups of the sorted spans: [bounds[i], bounds[i + 1]) belong to affected[i].
    bounds = np.flatnonzero(np.diff(rows)) + 1
    affected = rows[np.concatenate([[0], bounds])]
    bounds_l = [0, *bounds.tolist(), int(rows.size)]
    originals = texts.take(pa.array(affected, pa.int64())).to_pylist()
    replacements: list[str | None] = []
    tokens: dict[tuple[str, str], str] = {}  # pseudonyms already computed in this call
    for i, (r, text) in enumerate(zip(affected.tolist(), originals)):
        if text is None:
            replacements.append(None)
            continue
        a, b = bounds_l[i], bounds_l[i + 1]
        new: str | None
        if b - a == 1:
            s, e = starts[a], ends[a]
            value = text[s:e]
            if len(value) < 4 or (text.find(value, s + 1) < 0 and text.find(value) == s):
                new = _redact_single(text, s, e, types[a], strategies, key, tokens)
            else:
                new = _redact_one(text, [(s, e, types[a])], strategies, key, tokens)
        else:
            new = _redact_one(text, list(zip(starts[a:b], ends[a:b], types[a:b])), strategies, key, tokens)
        if new is None:
            dropped[r] = True
        replacements.append(new)
    mask = np.zeros(n, dtype=bool)
    mask[affected] = True
    out = pc.replace_with_mask(texts, pa.array(mask), pa.array(replacements, pa.string()))
    return Redaction(out, pa.array(dropped, pa.bool_()), counts)
