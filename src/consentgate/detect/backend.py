"""Multi-pattern scan engines: Hyperscan (default) and RE2 (fallback).

Owns compiling the candidate patterns and literal lexicons into one scanner and
running it over a whole scan buffer in one call. A scanner returns raw hits as
numpy arrays ``(pid, start, end)`` in *byte* offsets of the buffer, where start and
end delimit the pattern body (the one-character prefix and suffix removed).

Two kinds of entries go into a scanner:

* regex patterns (``PatternSpec``), scanned with start-of-match reporting;
* literals (names, topic phrases), scanned without start-of-match; the start is
  ``end - len(literal)`` and word boundaries are checked afterwards in numpy
  (``boundary_ok``).

Choose the backend with the ``backend`` argument or ``CONSENTGATE_DETECT_BACKEND``
(``auto``, ``hyperscan``, ``re2``). ``auto`` uses Hyperscan when it imports.
Compiled Hyperscan databases are cached on disk (``CONSENTGATE_CACHE_DIR``, default
``~/.cache/consentgate``), keyed by the SHA-256 of their patterns, because
compiling the full lexicon takes seconds.
"""

from __future__ import annotations

import array
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, Sequence

import numpy as np
import numpy.typing as npt

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
    patterns: Sequence[PatternSpec], literal_groups: Sequence[Sequence[Literal]], backend: str | None = None
) -> Scanner:
    """Compile ``patterns`` (ids 0..P-1) and the literal groups (following ids, in order).

    Each literal group is compiled (and cached) separately, so that a changing
    member directory does not recompile the large, stable name lexicon.
    """
    name = resolve_backend(backend)
    if name == "hyperscan":
        return HyperscanScanner(patterns, literal_groups)
    return Re2Scanner(patterns, [lit for group in literal_groups for lit in group])


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


def _cache_dir() -> Path:
    return Path(os.environ.get("CONSENTGATE_CACHE_DIR") or Path.home() / ".cache" / "consentgate")


def _cached_db(key_parts: Sequence[str], compile_fn: Any) -> Any:
    import hyperscan

    digest = hashlib.sha256("\x1f".join(key_parts).encode()).hexdigest()
    version = getattr(hyperscan, "__version__", "unknown")
    path = _cache_dir() / f"hs-{version}-{digest[:32]}.db"
    if path.is_file():
        try:
            db = hyperscan.loadb(path.read_bytes(), hyperscan.HS_MODE_BLOCK)
            db.scratch = hyperscan.Scratch(db)
            return db
        except Exception:  # noqa: BLE001 - a stale or corrupt cache entry is recompiled
            pass
    db = compile_fn()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hs-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(hyperscan.dumpb(db))
        os.replace(tmp, path)
    except OSError:
        pass  # caching is an optimisation only
    return db


@dataclass
class HyperscanScanner:
    """Hyperscan block-mode databases: one regex (start-of-match) and one literal."""

    patterns: Sequence[PatternSpec]
    literal_groups: Sequence[Sequence[Literal]]
    name: str = "hyperscan"
    _regex_db: Any = field(init=False, default=None)
    _lit_dbs: list[Any] = field(init=False, default_factory=list)
    _edge_db: Any = field(init=False, default=None)
    _lit_len: I64 = field(init=False)

    def __post_init__(self) -> None:
        import hyperscan as hs

        pats = list(self.patterns)
        if pats:
            exprs = [p.full().encode() for p in pats]
            flags = [hs.HS_FLAG_UTF8 | hs.HS_FLAG_SOM_LEFTMOST | (hs.HS_FLAG_CASELESS if p.caseless else 0) for p in pats]

            def compile_regex() -> Any:
                db = hs.Database(mode=hs.HS_MODE_BLOCK)
                db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=flags)
                return db

            self._regex_db = _cached_db(["regex"] + [f"{p.caseless}:{p.full()}" for p in pats], compile_regex)
        all_lits = [lit for group in self.literal_groups for lit in group]
        self._lit_len = np.array([len(x.text.encode()) for x in all_lits], dtype=np.int64)
        base = len(pats)
        short: list[tuple[int, Literal]] = []
        for group in self.literal_groups:
            longer = [(base + i, lit) for i, lit in enumerate(group) if not _edge_checked(lit)]
            short += [(base + i, lit) for i, lit in enumerate(group) if _edge_checked(lit)]
            if longer:
                self._lit_dbs.append(_compile_literals(longer))
            base += len(group)
        self._edge_db = _compile_edge_literals(short) if short else None

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
        dbs = [(db, 0) for db in self._lit_dbs] + ([(self._edge_db, 1)] if self._edge_db is not None else [])
        for lit_db, edge in dbs:
            raw = _collect(lit_db, buf)
            if raw.size:
                pid, e = raw[:, 0], raw[:, 2] - edge  # an edge pattern's end includes the byte after the name
                s = e - self._lit_len[pid - len(self.patterns)]
                ok = boundary_ok(arr, s, e)
                parts.append(Hits(pid[ok], s[ok], e[ok]))
        return _concat(parts)


def _compile_literals(lits: list[tuple[int, Literal]]) -> Any:
    import hyperscan as hs

    lexprs = [x.text.encode() for _, x in lits]
    lflags = [hs.HS_FLAG_CASELESS if x.caseless else 0 for _, x in lits]
    ids = [i for i, _ in lits]

    def compile_lits() -> Any:
        db = hs.Database(mode=hs.HS_MODE_BLOCK)
        db.compile(expressions=lexprs, ids=ids, elements=len(lexprs), flags=lflags, literal=True)
        return db

    return _cached_db(["lit", str(ids[0])] + [f"{i}:{x.caseless}:{x.text}" for i, x in lits], compile_lits)


# Short case-sensitive names ("Con", "Hell", "Tal") are mostly the start of a longer
# word ("Congrats", "Hello"); as plain literals they cost one Python callback per
# such hit (over half of all literal hits on message text). They are compiled
# instead as "name + one byte that is not a word byte" (the same byte test as
# ``boundary_ok``), so Hyperscan drops those hits itself. Longer names stay plain
# literals: as patterns they would make the cold compile much slower.
EDGE_MAX_BYTES: Final = 3
_NOT_WORD_BYTE: Final = "[" + "".join(f"\\x{b:02x}" for b in range(256) if not _WORD_TABLE[b]) + "]"


def _edge_checked(lit: Literal) -> bool:
    return not lit.caseless and len(lit.text.encode()) <= EDGE_MAX_BYTES


def _compile_edge_literals(lits: list[tuple[int, Literal]]) -> Any:
    import hyperscan as hs

    exprs = ["".join(f"\\x{b:02x}" for b in x.text.encode()).encode() + _NOT_WORD_BYTE.encode() for _, x in lits]
    ids = [i for i, _ in lits]

    def compile_edge() -> Any:
        db = hs.Database(mode=hs.HS_MODE_BLOCK)
        db.compile(expressions=exprs, ids=ids, elements=len(exprs), flags=[0] * len(exprs))
        return db

    return _cached_db(["lit-edge"] + [f"{i}:{x.text}" for i, x in lits], compile_edge)


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
