"""The member directory as the detector needs it, computed over Arrow arrays.

Owns turning ``display_name`` values into (a) one sorted Arrow array of distinct
names, (b) the full names compiled as caseless literals and (c) the single name
tokens that join the name lexicon. The rules are those of
``lexicon.member_name_tokens`` (the plain Python reference; property-tested equal):

* a name is normalised by ``" ".join(name.split())``;
* a full name is a normalised name of two tokens or more and 5 characters or more,
  or a non-ASCII name of 2 characters or more with no usable token (CJK);
* a token is kept when ``lexicon._usable`` accepts it.

With 1M member names the Python loop takes seconds; here the splitting, counting and
filtering are Arrow and numpy kernels, and ``_usable`` runs once per *distinct* token
(tens of thousands). Names holding a whitespace character other than the plain space
(tabs, no-break spaces, ...) are rare and go through the Python reference.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Final, Iterable, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc  # noqa: F401  (pa.ipc for the cache entries)

from consentgate.detect import lexicon as lexicon_module
from consentgate.detect.cache import cache_dir, code_key, touch, trusted, write_entry
from consentgate.detect.lexicon import _usable, member_name_tokens
from consentgate.errors import DetectError

# Every character ``str.split()`` splits on except the plain space (tested against
# ``str.isspace`` over all of Unicode).
ODD_SPACE: Final = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_ODD_SPACE_RE: Final = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in ODD_SPACE) + "]"

CACHE_MIN_NAMES: Final = 50_000  # smaller directories are split each time (``cached_member_tokens``)

NamesInput: TypeAlias = Iterable[str] | pa.Array | pa.ChunkedArray | None


def distinct_names(names: NamesInput) -> pa.StringArray:
    """The distinct strings of ``names`` in code point order; nulls and non-strings are skipped."""
    if names is None:
        return pa.array([], pa.string())
    if isinstance(names, (pa.Array, pa.ChunkedArray)):
        arr = _as_string_array(names)
    else:
        values = names if isinstance(names, list) else list(names)
        if not all(type(v) is str for v in values):
            values = [v for v in values if isinstance(v, str)]
        try:
            arr = pa.array(values, pa.string())
        except (UnicodeEncodeError, pa.ArrowException) as exc:
            raise DetectError("member names must be valid Unicode strings", field="member_names") from exc
    return sorted_distinct(arr.drop_null() if arr.null_count else arr)


def sorted_distinct(arr: pa.Array) -> pa.StringArray:
    """``arr``'s distinct values in code point order (UTF-8 byte order is code point order).

    An input that is already sorted and distinct (a directory read with ``ORDER BY``)
    is checked in one vectorised comparison and returned as is.
    """
    n = len(arr)
    if n > 1 and not pc.all(pc.less(arr.slice(0, n - 1), arr.slice(1))).as_py():
        arr = arr.take(pc.sort_indices(arr))
        keep = np.ones(n, dtype=bool)
        keep[1:] = np.asarray(pc.not_equal(arr.slice(0, n - 1), arr.slice(1)))
        arr = arr.filter(pa.array(keep))
    if not isinstance(arr, pa.StringArray):
        raise DetectError(f"member names must be strings, got {arr.type}", field="member_names", value=str(arr.type))
    return arr


def _as_string_array(names: pa.Array | pa.ChunkedArray) -> pa.Array:
    arr = names.combine_chunks() if isinstance(names, pa.ChunkedArray) else names
    if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.string())
    if not pa.types.is_string(arr.type):
        raise DetectError(f"member names must be strings, got {arr.type}", field="member_names", value=str(arr.type))
    return arr


def cached_member_tokens(names: pa.StringArray) -> tuple[pa.StringArray, frozenset[str]]:
    """``member_tokens_arrow(names)``, kept in the detector cache keyed by the names' bytes.

    A build's detection workers are new processes, each splitting the same directory
    (0.55 s for 757k names); the member directory changes far more slowly than builds
    run, as with the compiled name database beside it. The key covers the names and the
    code and Unicode tables that split them; a bad entry is recomputed. Directories under
    ``CACHE_MIN_NAMES`` names are split in well under 50 ms and not cached.
    """
    path = _tokens_cache_path(names) if len(names) >= CACHE_MIN_NAMES else None
    if path is not None:
        cached = _read_tokens(path)
        if cached is not None:
            return cached
    full, tokens = member_tokens_arrow(names)
    if path is not None:
        _write_tokens(path, full, tokens)
    return full, tokens


def _tokens_cache_path(names: pa.StringArray) -> Path | None:
    h = code_key(__file__, lexicon_module.__file__)
    if h is None:
        return None
    if names.offset:
        names = pa.concat_arrays([names])  # offsets from 0, as the digest below expects
    n = len(names)
    h.update(f"member-tokens/1\0{n}\0".encode())
    if n:
        offsets_buf, data_buf = names.buffers()[1:3]
        offsets = np.frombuffer(offsets_buf, dtype=np.int32, count=n + 1)
        h.update(offsets.tobytes())
        if data_buf is not None:
            h.update(memoryview(data_buf)[: int(offsets[-1])])
    return cache_dir() / f"members-{h.hexdigest()[:32]}.arrow"


def _read_tokens(path: Path) -> tuple[pa.StringArray, frozenset[str]] | None:
    if not trusted(path):
        return None
    try:
        with pa.OSFile(str(path), "rb") as fh:
            table = pa.ipc.open_file(fh).read_all()
        value, is_token = table.column("value").combine_chunks(), table.column("is_token").combine_chunks()
        if not (pa.types.is_string(value.type) and pa.types.is_boolean(is_token.type)) or value.null_count or is_token.null_count:
            return None
        full = value.filter(pc.invert(is_token))
        tokens = value.filter(is_token).to_pylist()
    except (OSError, KeyError, pa.ArrowException):
        return None
    touch(path)
    return full, frozenset(tokens)


def _write_tokens(path: Path, full: pa.StringArray, tokens: frozenset[str]) -> None:
    value = pa.concat_arrays([full, pa.array(sorted(tokens), pa.string())])
    is_token = np.zeros(len(value), dtype=bool)
    is_token[len(full):] = True
    table = pa.table({"value": value, "is_token": pa.array(is_token)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    write_entry(path, sink.getvalue().to_pybytes())


def member_tokens_arrow(names: pa.StringArray) -> tuple[pa.StringArray, frozenset[str]]:
    """Sorted distinct full names and the usable name tokens (``lexicon.member_name_tokens`` rules)."""
    odd = pc.fill_null(pc.match_substring_regex(names, _ODD_SPACE_RE), False)
    plain = names.filter(pc.invert(odd))
    full_parts: list[pa.Array] = []
    tokens: set[str] = set()
    if pc.any(odd).as_py():
        odd_full, odd_tokens = member_name_tokens(names.filter(odd).to_pylist())
        full_parts.append(pa.array(odd_full, pa.string()))
        tokens |= odd_tokens
    plain_full, plain_tokens = _plain_tokens(plain)
    full_parts.append(plain_full)
    full = full_parts[0] if len(full_parts) == 1 else pa.concat_arrays(full_parts)
    return sorted_distinct(full), frozenset(tokens | plain_tokens)


def _plain_tokens(names: pa.Array) -> tuple[pa.Array, set[str]]:
    """Full names and usable tokens of names whose only whitespace is the plain space."""
    n = len(names)
    split = pc.split_pattern(names, " ")
    flat = split.flatten()
    parent = np.asarray(pc.list_parent_indices(split), dtype=np.int64)
    tok_bytes = np.asarray(pc.binary_length(flat))
    keep = tok_bytes > 0
    flat, parent, tok_bytes = flat.filter(pa.array(keep)), parent[keep], tok_bytes[keep]
    uniq = pc.unique(flat)
    usable_u = np.array([_usable(t) for t in uniq.to_pylist()], dtype=bool)
    usable = usable_u[np.asarray(pc.index_in(flat, uniq))] if len(flat) else np.zeros(0, bool)
    count = _per_row(parent, np.ones(parent.size, np.int64), n)
    joins = np.maximum(count - 1, 0)
    chars = _per_row(parent, np.asarray(pc.utf8_length(flat), dtype=np.int64), n) + joins
    norm_bytes = _per_row(parent, tok_bytes.astype(np.int64), n) + joins
    n_usable = _per_row(parent, usable.astype(np.int64), n)
    ascii_ = np.asarray(pc.string_is_ascii(names), dtype=bool) if n else np.zeros(0, bool)
    is_full = ((count >= 2) & (chars >= 5)) | ((chars >= 2) & ~ascii_ & (n_usable == 0))
    # A name with leading, trailing or repeated spaces differs from its normalised form.
    changed = is_full & (np.asarray(pc.binary_length(names), dtype=np.int64) != norm_bytes)
    same = names.filter(pa.array(is_full & ~changed))
    fixed = pa.array([" ".join(s.split()) for s in names.filter(pa.array(changed)).to_pylist()], pa.string())
    full = same if not len(fixed) else pa.concat_arrays([same, fixed])
    return full, set(uniq.filter(pa.array(usable_u)).to_pylist())


def _per_row(parent: npt.NDArray[np.int64], values: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.int64]:
    """Sum of ``values`` per row (``parent[i]`` is the row of ``values[i]``)."""
    return np.bincount(parent, weights=values, minlength=n).astype(np.int64)


def release_free_memory() -> None:
    """Hand freed heap pages back to the operating system.

    Turning a large member directory into a detector frees most of what it allocates
    (about 130 MB of temporaries for 757k names), but pyarrow's allocator and glibc's
    heap keep such pages for reuse; in a long-lived worker they would stay in its RSS.
    """
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL(None).malloc_trim(0)  # glibc only; elsewhere there is nothing to call
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        pass
