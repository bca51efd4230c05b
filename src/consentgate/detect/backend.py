"""Multi-pattern scan engines: Hyperscan (default) and RE2 (fallback).

Owns compiling the candidate patterns and literal lexicons into one scanner and
running it over a whole scan buffer in one call. A scanner returns raw hits as
numpy arrays ``(pid, start, end)`` in *byte* offsets of the buffer, where start and
end delimit the pattern body (the one-character prefix and suffix removed).

Two kinds of entries go into a scanner:

* regex patterns (``PatternSpec``), scanned with start-of-match reporting;
* literals (names, topic phrases), scanned without start-of-match; the start is
  ``end - len(literal)``. Each literal must be followed by a non-word byte, which
  Hyperscan checks itself (``EDGE_IN_DATABASE``); the byte before it is checked
  afterwards in numpy (``boundary_ok``).

Choose the backend with the ``backend`` argument or ``CONSENTGATE_DETECT_BACKEND``
(``auto``, ``hyperscan``, ``re2``). ``auto`` uses Hyperscan when it imports.
Compiled Hyperscan databases are cached on disk (``CONSENTGATE_CACHE_DIR``, default
``~/.cache/consentgate``), keyed by the SHA-256 of their patterns, because
compiling the full lexicon takes seconds.
"""

from __future__ import annotations

import array
import contextlib
import functools
import hashlib
import os
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, Callable, Final, Iterator, Mapping, Protocol, Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from consentgate.detect.cache import cache_dir, touch, trusted, write_entry
from consentgate.detect.patterns import PatternSpec
from consentgate.errors import DetectError

BACKENDS: Final = ("auto", "hyperscan", "re2")
ENV_BACKEND: Final = "CONSENTGATE_DETECT_BACKEND"

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Literal:
    """A literal phrase; ``caseless`` compares ASCII letters without case."""

    text: str
    caseless: bool = False


@dataclass(frozen=True)
class LiteralGroup:
    """Literals compiled together, held as one Arrow string array (no object per literal).

    A member directory gives a million literals; ``texts`` keeps them in Arrow
    buffers, and the cache key of their database hashes those buffers directly.
    """

    texts: pa.StringArray
    caseless: npt.NDArray[np.bool_]

    @staticmethod
    def of(literals: Sequence[Literal]) -> "LiteralGroup":
        return LiteralGroup(
            pa.array([x.text for x in literals], pa.string()), np.array([x.caseless for x in literals], dtype=bool)
        )

    @staticmethod
    def caseless_all(texts: pa.StringArray) -> "LiteralGroup":
        return LiteralGroup(texts, np.ones(len(texts), dtype=bool))

    def __len__(self) -> int:
        return len(self.texts)

    def byte_lengths(self) -> I64:
        return np.asarray(pc.binary_length(self.texts), dtype=np.int64) if len(self.texts) else np.zeros(0, np.int64)

    def literals(self) -> list[Literal]:
        """One ``Literal`` per entry (for the RE2 fallback and small groups)."""
        return [Literal(t, bool(c)) for t, c in zip(self.texts.to_pylist(), self.caseless.tolist())]

    def select(self, mask: npt.NDArray[np.bool_]) -> "LiteralGroup":
        return LiteralGroup(self.texts.filter(pa.array(mask)), self.caseless[mask])

    def digest(self, h: "hashlib._Hash") -> None:
        """Feed the texts (lengths and bytes) and the case flags into ``h``."""
        lengths = self.byte_lengths()
        h.update(len(lengths).to_bytes(8, "little"))
        h.update(lengths.tobytes())
        h.update(self.caseless.astype(np.uint8).tobytes())
        if lengths.size:
            bufs = self.texts.buffers()
            offsets = np.frombuffer(bufs[1], dtype=np.int32, count=len(self.texts) + 1, offset=self.texts.offset * 4)
            h.update(memoryview(bufs[2])[int(offsets[0]) : int(offsets[-1])])


GroupLike = LiteralGroup | Sequence[Literal]


def as_group(group: GroupLike) -> LiteralGroup:
    return group if isinstance(group, LiteralGroup) else LiteralGroup.of(list(group))


@dataclass
class Hits:
    """Raw hits of one scan: pattern ids and body byte offsets."""

    pid: I64
    start: I64
    end: I64

    @staticmethod
    def empty() -> "Hits":
        z = np.zeros(0, dtype=np.int64)
        return Hits(z, z.copy(), z.copy())


class Scanner(Protocol):
    """What the detector needs from a backend."""

    name: str

    def scan(self, buf: bytes) -> Hits: ...

    def serialised(self) -> dict[str, bytes]: ...


def resolve_backend(requested: str | None) -> str:
    """The backend to use: the argument, else the environment, else ``auto``."""
    choice = (requested or os.environ.get(ENV_BACKEND) or "auto").strip().lower()
    if choice not in BACKENDS:
        raise DetectError(
            f"unknown detection backend {choice!r}",
            hint=f"Use one of {', '.join(BACKENDS)} (argument or {ENV_BACKEND}).",
            value=choice,
        )
    if choice == "auto":
        try:
            import hyperscan  # noqa: F401
        except ImportError:
            return "re2"
        return "hyperscan"
    return choice


def build_scanner(
    patterns: Sequence[PatternSpec],
    literal_groups: Sequence[GroupLike],
    backend: str | None = None,
    preloaded: Mapping[str, bytes] | None = None,
) -> Scanner:
    """Compile ``patterns`` (ids 0..P-1) and the literal groups (following ids, in order).

    Each literal group is compiled (and cached) separately, so that a changing
    member directory does not recompile the large, stable name lexicon.
    ``preloaded``: serialised Hyperscan databases by cache key (``Scanner.serialised()``
    of another process), used before the disk cache.
    """
    name = resolve_backend(backend)
    groups = [as_group(g) for g in literal_groups]
    if name == "hyperscan":
        return HyperscanScanner(patterns, groups, preloaded=preloaded)
    return Re2Scanner(patterns, [lit for group in groups for lit in group.literals()])


# --------------------------------------------------------------------------- utilities


def lead_len(lead: U8) -> I64:
    """UTF-8 sequence length from lead bytes (continuation bytes count as 1)."""
    out = np.ones(lead.shape, dtype=np.int64)
    out[lead >= 0xC0] = 2
    out[lead >= 0xE0] = 3
    out[lead >= 0xF0] = 4
    return out


def last_char_len(arr: U8, end: I64) -> I64:
    """Byte length of the character that ends just before each ``end``."""
    n = np.ones(end.shape, dtype=np.int64)
    b1 = arr[end - 1]
    multi = b1 >= 0x80
    if multi.any():
        idx = np.nonzero(multi)[0]
        for k in (2, 3, 4):
            pos = np.maximum(end[idx] - k, 0)
            is_lead = arr[pos] >= 0xC0
            n[idx[is_lead]] = k
            idx = idx[~is_lead]
            if idx.size == 0:
                break
    return n


_WORD_TABLE: Final = np.zeros(256, dtype=bool)
for _c in b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_":
    _WORD_TABLE[_c] = True
# Non-ASCII bytes count as word characters except the lead bytes of the punctuation,
# symbol and space blocks listed in patterns.WORD_EDGE (approximated by lead byte).
_WORD_TABLE[0x80:] = True
_WORD_TABLE[0xE2] = False  # U+2000-U+2FFF: punctuation, symbols, arrows
_WORD_TABLE[0xE3] = False  # U+3000-U+3FFF: CJK punctuation (and kana; acceptable)
_WORD_TABLE[0xF0] = False  # U+10000+: emoji and symbols


def boundary_ok(arr: U8, start: I64, end: I64) -> npt.NDArray[np.bool_]:
    """True where the byte before ``start`` and the byte at ``end`` are not word bytes."""
    before = arr[np.maximum(start - 1, 0)]
    # A UTF-8 continuation byte before start means the previous character is non-ASCII;
    # find its lead byte to classify it.
    prev_lead = before.copy()
    cont = (before & 0xC0) == 0x80
    if cont.any():
        idx = np.nonzero(cont)[0]
        clen = last_char_len(arr, start[idx])
        prev_lead[idx] = arr[start[idx] - clen]
    after = arr[np.minimum(end, arr.size - 1)]
    return ~_WORD_TABLE[prev_lead] & ~_WORD_TABLE[after]


# --------------------------------------------------------------------------- hyperscan


def _cached_db(digest: str, compile_fn: Callable[[], Any], preloaded: Mapping[str, bytes]) -> Any:
    """The database with cache key ``digest``: from ``preloaded``, the disk cache, or compiled (and cached).

    Compiling holds a lock file beside the cache entry, so processes that start
    together (a pool's workers) compile a new database once: the others wait, then load it.
    """
    import hyperscan

    blob = preloaded.get(digest)
    if blob is not None:
        try:
            return _load(blob)
        except Exception as exc:  # noqa: BLE001 - hyperscan raises its own error types
            raise DetectError(f"cannot load a serialised Hyperscan database ({exc})", field="detector", value=digest[:12]) from exc
    version = getattr(hyperscan, "__version__", "unknown")
    path = cache_dir() / f"hs-{version}-{digest[:32]}.db"
    db = _load_file(path)
    if db is not None:
        return db
    with _compile_lock(path.with_suffix(".lock")):
        db = _load_file(path)  # compiled by another process while this one waited
        if db is not None:
            return db
        db = compile_fn()
        write_entry(path, hyperscan.dumpb(db))
    return db


def _load(blob: bytes) -> Any:
    import hyperscan

    db = hyperscan.loadb(blob, hyperscan.HS_MODE_BLOCK)
    db.scratch = hyperscan.Scratch(db)
    return db


def _load_file(path: Path) -> Any:
    """The cached database at ``path``, or None when there is none or it does not load."""
    if not path.is_file() or not trusted(path):
        return None
    try:
        db = _load(path.read_bytes())
    except Exception:  # noqa: BLE001 - a stale, corrupt or just-pruned cache entry is recompiled
        return None
    touch(path)
    return db


@contextlib.contextmanager
def _compile_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` while compiling; none where that is impossible."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except (ImportError, OSError):
        yield  # no lock (read-only cache directory, no fcntl): each process compiles
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _key(kind: str, ids: I64, *groups: LiteralGroup) -> "hashlib._Hash":
    """A hash over what a literal database is compiled from: its kind, ids and literals."""
    h = hashlib.sha256(f"{kind}\x1f".encode())
    h.update(ids.astype(np.int64).tobytes())
    for g in groups:
        g.digest(h)
    return h


@dataclass
class HyperscanScanner:
    """Hyperscan block-mode databases: regex (start-of-match) and one literal database per group."""

    patterns: Sequence[PatternSpec]
    literal_groups: Sequence[GroupLike]
    name: str = "hyperscan"
    preloaded: InitVar[Mapping[str, bytes] | None] = None  # used while loading, not kept
    databases: dict[str, Any] = field(init=False, default_factory=dict)  # cache key -> database
    _regex_db: Any = field(init=False, default=None)
    _lit_dbs: list[Any] = field(init=False, default_factory=list)
    _lit_len: I64 = field(init=False)
    _edge: bool = field(init=False, default=True)
    _lits: "_LiteralBytes | None" = field(init=False, default=None)

    def __post_init__(self, preloaded: Mapping[str, bytes] | None) -> None:
        blobs = preloaded or {}
        pats = list(self.patterns)
        if pats:
            self._regex_db = self._load(
                blobs,
                hashlib.sha256("\x1f".join(["regex"] + [f"{p.caseless}:{p.full()}" for p in pats]).encode()),
                lambda: _compile_regex(pats),
            )
        groups = [as_group(g) for g in self.literal_groups]
        lengths = [g.byte_lengths() for g in groups]
        self._lit_len = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        self._edge = EDGE_IN_DATABASE
        base = len(pats)
        for group in groups:
            ids = base + np.arange(len(group), dtype=np.int64)
            if len(group):
                kind = "lit-edge-space" if self._edge else "lit"
                compile_fn = functools.partial(_compile_literals, group, ids, self._edge)
                self._lit_dbs.append(self._load(blobs, _key(kind, ids, group), compile_fn))
            base += len(group)
        if self._edge and groups:
            self._lits = _LiteralBytes.of(groups)

    def _load(self, blobs: Mapping[str, bytes], h: "hashlib._Hash", compile_fn: Callable[[], Any]) -> Any:
        digest = h.hexdigest()
        db = _cached_db(digest, compile_fn, blobs)
        self.databases[digest] = db
        return db

    def serialised(self) -> dict[str, bytes]:
        """Every database of this scanner as ``hyperscan.dumpb`` bytes, by cache key."""
        import hyperscan as hs

        return {k: bytes(hs.dumpb(db)) for k, db in self.databases.items()}

    def scan(self, buf: bytes) -> Hits:
        arr = np.frombuffer(buf, dtype=np.uint8)
        parts: list[Hits] = []
        if self._regex_db is not None:
            raw = _collect(self._regex_db, buf)
            if raw.size:
                pid, s, e = raw[:, 0], raw[:, 1], raw[:, 2]
                s = s + lead_len(arr[s])
                e = e - last_char_len(arr, e)
                parts.append(Hits(pid, s, e))
        lit_buf = self.literal_buffer(buf)
        short_parts: list[Hits] = []
        for lit_db in self._lit_dbs:
            raw = _collect(lit_db, lit_buf)
            if not raw.size:
                continue
            pid, e = raw[:, 0], raw[:, 2] - (1 if self._edge else 0)  # the end includes the byte after the literal
            lid = pid - len(self.patterns)
            s = e - self._lit_len[lid]
            ok = boundary_ok(arr, s, e)
            if self._lits is not None:
                ok &= self._lits.matches(arr, lid, s, e)
                # Hits of short case-sensitive names come after all other literal hits
                # (the order of the earlier short-name database; ties at one position keep it).
                short = self._lits.short[lid] & ok
                short_parts.append(Hits(pid[short], s[short], e[short]))
                ok &= ~short
            parts.append(Hits(pid[ok], s[ok], e[ok]))
        return _concat(parts + short_parts)

    def literal_buffer(self, buf: bytes) -> bytes:
        """What the literal databases scan: ``buf`` with every non-word byte a space (their edges are checked inside Hyperscan)."""
        return _SPACE_NON_WORD[np.frombuffer(buf, dtype=np.uint8)].tobytes() if self._edge else buf

    def scan_raw(self, buf: bytes, lit_buf: bytes, handler: Callable[..., Any] | None) -> None:
        """Run the regex database over ``buf`` and the literal ones over ``lit_buf`` (``literal_buffer(buf)``),
        handing every match to ``handler`` (None: Hyperscan finds the matches but reports none).
        Measures what the binding itself costs (``bench/detect_vs_presidio.py``); detection uses ``scan``."""
        if self._regex_db is not None:
            self._regex_db.scan(buf, match_event_handler=handler)
        for lit_db in self._lit_dbs:
            lit_db.scan(lit_buf, match_event_handler=handler)


@dataclass
class _LiteralBytes:
    """The bytes of every literal, to check hits of literals that hold a non-word byte.

    Literals are matched over a buffer whose non-word bytes are all spaces, so a
    literal with a non-word byte inside ("Jean-Pierre", "sick leave") also matches
    with another non-word byte there ("sick-leave"); ``matches`` compares such hits
    with the literal's own bytes (ASCII letters without case where it is caseless).
    """

    data: U8
    start: I64
    caseless: npt.NDArray[np.bool_]
    check: npt.NDArray[np.bool_]
    short: npt.NDArray[np.bool_]

    @staticmethod
    def of(groups: Sequence[LiteralGroup]) -> "_LiteralBytes":
        datas: list[U8] = []
        starts: list[I64] = []
        base = 0
        for g in groups:
            bufs = g.texts.buffers()
            off = np.frombuffer(bufs[1], dtype=np.int32, count=len(g.texts) + 1, offset=g.texts.offset * 4).astype(np.int64)
            raw = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
            datas.append(raw[int(off[0]) : int(off[-1])])
            starts.append(off[:-1] - off[0] + base)
            base += int(off[-1] - off[0])
        data = np.concatenate(datas) if datas else np.zeros(0, np.uint8)
        start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        end = np.append(start[1:], data.size)
        non_word = np.flatnonzero(~_WORD_TABLE[data])  # few: mostly the spaces in full names
        check = np.zeros(start.size, dtype=bool)
        check[np.searchsorted(start, non_word, side="right") - 1] = True  # the literal holding each
        caseless = np.concatenate([g.caseless for g in groups]) if groups else np.zeros(0, bool)
        short = ~caseless & (end - start <= EDGE_MAX_BYTES)
        return _LiteralBytes(data, start, caseless, check, short)

    def matches(self, arr: U8, lid: I64, s: I64, e: I64) -> npt.NDArray[np.bool_]:
        """Whether each hit's bytes ``arr[s:e]`` are those of literal ``lid``."""
        ok = np.ones(lid.size, dtype=bool)
        idx = np.flatnonzero(self.check[lid])
        if idx.size:
            length = e[idx] - s[idx]
            owner = np.repeat(np.arange(idx.size, dtype=np.int64), length)
            within = np.arange(int(length.sum()), dtype=np.int64) - np.repeat(np.cumsum(length) - length, length)
            hit = arr[np.repeat(s[idx], length) + within]
            lit = self.data[np.repeat(self.start[lid[idx]], length) + within]
            fold = np.repeat(self.caseless[lid[idx]], length)
            differ = np.where(fold, _ASCII_LOWER[hit], hit) != np.where(fold, _ASCII_LOWER[lit], lit)
            ok[idx] = np.bincount(owner[differ], minlength=idx.size) == 0
        return ok


def _compile_regex(pats: list[PatternSpec]) -> Any:
    import hyperscan as hs

    exprs = [p.full().encode() for p in pats]
    flags = [hs.HS_FLAG_UTF8 | hs.HS_FLAG_SOM_LEFTMOST | (hs.HS_FLAG_CASELESS if p.caseless else 0) for p in pats]
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=flags)
    return db


def _compile_literals(group: LiteralGroup, ids: I64, edge: bool) -> Any:
    """The literals of ``group`` (``edge``: their non-word bytes as spaces, and one space after)."""
    import hyperscan as hs

    lexprs = group.texts.cast(pa.binary()).to_pylist()
    if edge:
        table = _SPACE_NON_WORD.tobytes()
        lexprs = [x.translate(table) + b" " for x in lexprs]
    lflags = np.where(group.caseless, hs.HS_FLAG_CASELESS, 0).tolist()
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    db.compile(expressions=lexprs, ids=ids.tolist(), elements=len(lexprs), flags=lflags, literal=True)
    return db


# Most name hits are the start of a longer word ("Con" in "Congrats", "Mark" in
# "Market"): as plain literals they cost one Python callback each, over half of all
# literal hits on message text. So every literal is compiled followed by a space and
# scanned over a copy of the buffer in which every non-word byte (what
# ``boundary_ok`` accepts after a hit) is a space: Hyperscan drops those hits
# itself, and the literals stay literals (fast to compile). Hyperscan's literal API
# here stops at a NUL byte, hence the space. Off (plain literals) for comparison in tests.
EDGE_IN_DATABASE: bool = True
EDGE_MAX_BYTES: Final = 3  # case-sensitive literals this short keep their hits last (``_LiteralBytes.short``)
_SPACE_NON_WORD: Final = np.where(_WORD_TABLE, np.arange(256), 0x20).astype(np.uint8)
_ASCII_LOWER: Final = np.arange(256, dtype=np.uint8)
_ASCII_LOWER[65:91] += 32


def _collect(db: Any, buf: bytes) -> npt.NDArray[np.int64]:
    # One flat int64 array (not a list of tuples): no per-hit objects for the garbage
    # collector to track, and numpy reads it without copying.
    out = array.array("q")
    extend = out.extend

    def on_match(pid: int, start: int, end: int, flags: int, ctx: Any) -> None:
        extend((pid, start, end))

    db.scan(buf, match_event_handler=on_match)
    return np.frombuffer(out, dtype=np.int64).reshape(-1, 3) if out else np.zeros((0, 3), dtype=np.int64)


def _concat(parts: list[Hits]) -> Hits:
    if not parts:
        return Hits.empty()
    if len(parts) == 1:
        return parts[0]
    return Hits(
        np.concatenate([p.pid for p in parts]),
        np.concatenate([p.start for p in parts]),
        np.concatenate([p.end for p in parts]),
    )


# --------------------------------------------------------------------------- RE2


@dataclass
class Re2Scanner:
    """The RE2 fallback: one compiled regex per pattern and per literal group.

    RE2 has no multi-pattern position reporting, so each pattern is searched in
    turn over the same buffer. Literals are grouped into one alternation per
    (case, length class) so that the scan stays a handful of passes; a literal hit
    is mapped back to its id through a dictionary.
    """

    patterns: Sequence[PatternSpec]
    literals: Sequence[Literal]
    name: str = "re2"
    _compiled: list[Any] = field(init=False, default_factory=list)
    _lit_groups: list[tuple[Any, dict[bytes, int], bool]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        import re2

        opts = re2.Options()
        opts.max_mem = 1 << 30
        self._compiled = [re2.compile(p.grouped().encode(), opts) for p in self.patterns]
        base = len(self.patterns)
        for caseless in (False, True):
            table: dict[bytes, int] = {}
            for i, lit in enumerate(self.literals):
                if lit.caseless == caseless:
                    key = lit.text.lower().encode() if caseless else lit.text.encode()
                    table.setdefault(key, base + i)
            if not table:
                continue
            # Longest first so that the alternation prefers whole phrases.
            alts = "|".join(re2.escape(k.decode()) for k in sorted(table, key=len, reverse=True))
            from consentgate.detect.patterns import WORD_EDGE

            expr = ("(?i)" if caseless else "") + f"{WORD_EDGE}({alts}){WORD_EDGE}"
            self._lit_groups.append((re2.compile(expr.encode(), opts), table, caseless))

    def serialised(self) -> dict[str, bytes]:
        """Nothing: RE2 patterns compile in milliseconds in each process."""
        return {}

    def scan(self, buf: bytes) -> Hits:
        pid: list[int] = []
        st: list[int] = []
        en: list[int] = []
        for i, rx in enumerate(self._compiled):
            _search_all(rx, buf, lambda m, i=i: (i, m.start(1), m.end(1)), pid, st, en)
        for rx, table, caseless in self._lit_groups:

            def lookup(m: Any, table: dict[bytes, int] = table, caseless: bool = caseless) -> tuple[int, int, int] | None:
                key = buf[m.start(1) : m.end(1)]
                found = table.get(key.lower() if caseless else key)
                return None if found is None else (found, m.start(1), m.end(1))

            _search_all(rx, buf, lookup, pid, st, en)
        return Hits(np.array(pid, dtype=np.int64), np.array(st, dtype=np.int64), np.array(en, dtype=np.int64))


def _search_all(rx: Any, buf: bytes, make: Any, pid: list[int], st: list[int], en: list[int]) -> None:
    pos = 0
    n = len(buf)
    while pos < n:
        m = rx.search(buf, pos)
        if m is None:
            return
        hit = make(m)
        if hit is not None:
            pid.append(hit[0])
            st.append(hit[1])
            en.append(hit[2])
        # The suffix character may be the prefix of the next hit: restart at body end.
        pos = max(m.end(1), m.start(1) + 1)
