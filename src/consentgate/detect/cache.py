"""The detector's disk cache: where entries live, how they are keyed and written.

Owns ``cache_dir`` (``CONSENTGATE_CACHE_DIR``, else ``~/.cache/consentgate``),
``code_key`` (a SHA-256 started over the source of the modules that make an entry and
Python's Unicode tables, so that an entry made by other code is never read) and
``write_entry`` (an atomic write that leaves no partial file, then ``prune``). Three kinds
of entry use it: compiled Hyperscan databases (``backend``), the Faker name lexicon
(``lexicon``) and the split of a large member directory (``members``). Caching is an
optimisation only: an entry that cannot be written is skipped, one that cannot be read
(or was pruned meanwhile) is rebuilt.

The folder is kept under ``CONSENTGATE_CACHE_MAX_MB`` (default 2048): every member
directory gets its own entries (50 MB of compiled names per million), so a directory
that changes daily would otherwise fill the disk. After each write the least recently
used entries go first (a read marks its entry used: ``touch``), never the one just
written. A lock file (``backend``'s compile lock) goes with its entry once it is an hour old.

Entries are not signed, so an entry is only read (``trusted``) from a folder that this
user owns and nobody else can write, and only if this user owns it and nobody else can
write it: a planted detector database could otherwise miss names. Elsewhere the cache is
simply not used (each build rebuilds what it needs).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
import unicodedata
from pathlib import Path

MAX_MB_DEFAULT = 2048.0
ENTRY_PATTERNS = ("hs-*.db", "members-*.arrow", "names-*.json")  # what ``prune`` may delete (and stale locks)
_LOCK_GRACE_S = 3600.0  # a compile lock younger than this may be held: it stays


def cache_dir() -> Path:
    """Where the detector's cache entries are kept."""
    return Path(os.environ.get("CONSENTGATE_CACHE_DIR") or Path.home() / ".cache" / "consentgate")


def code_key(*module_files: str) -> "hashlib._Hash | None":
    """A SHA-256 over the source of ``module_files`` and Python's Unicode version, to be
    updated with the entry's own inputs; None when a source cannot be read (no caching)."""
    h = hashlib.sha256()
    try:
        for name in module_files:
            h.update(Path(name).read_bytes())
    except OSError:
        return None
    h.update(f"\0{unicodedata.unidata_version}\0".encode())
    return h


def write_entry(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file beside it, then a rename).
    On failure (unwritable folder, full disk) nothing is left behind and nothing is raised."""
    tmp: str | None = None
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return
    prune(path.parent, keep=path)


def trusted(path: Path) -> bool:
    """Whether the entry at ``path`` may be read: it and its folder belong to this user and are
    writable by nobody else (always true where the platform has no user ids)."""
    geteuid = getattr(os, "geteuid", None)
    if geteuid is None:
        return True
    uid = geteuid()
    try:
        for p in (path.parent, path):
            st = p.stat()
            if st.st_uid != uid or st.st_mode & 0o022:
                _warn_once(p)
                return False
    except OSError:
        return False
    return True


_warned: set[Path] = set()


def _warn_once(path: Path) -> None:
    if path not in _warned:
        _warned.add(path)
        logging.getLogger(__name__).warning(
            "detector cache %s belongs to another user or others can write it: not reading from it", path)


def max_bytes() -> int:
    """The cache folder's size cap (``CONSENTGATE_CACHE_MAX_MB``; a value that is not a number is ignored)."""
    raw = os.environ.get("CONSENTGATE_CACHE_MAX_MB")
    try:
        mb = float(raw) if raw else MAX_MB_DEFAULT
    except ValueError:
        mb = MAX_MB_DEFAULT
    return max(int(mb * 2**20), 0)


def touch(path: Path) -> None:
    """Mark the entry at ``path`` as just used (its modification time), so ``prune`` keeps it longer."""
    try:
        os.utime(path)
    except OSError:
        pass


def prune(folder: Path, *, keep: Path | None = None, limit: int | None = None) -> list[Path]:
    """Delete the least recently used entries of ``folder`` until they fit in ``limit`` bytes
    (default ``max_bytes()``), never ``keep``; return what was deleted. A process reading an
    entry as it goes keeps its open file (POSIX) or finds it gone and rebuilds it."""
    cap = max_bytes() if limit is None else limit
    entries: list[tuple[float, int, Path]] = []
    for pattern in ENTRY_PATTERNS:
        for p in folder.glob(pattern):
            try:
                st = p.stat()
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in entries)
    deleted: list[Path] = []
    for _, size, p in sorted(entries, key=lambda e: (e[0], e[2].name)):
        if total <= cap:
            break
        if keep is not None and p == keep:
            continue
        try:
            p.unlink()
        except OSError:
            continue
        total -= size
        deleted.append(p)
    _drop_stale_locks(folder)
    return deleted


def _drop_stale_locks(folder: Path) -> None:
    """Compile locks whose database is gone and that are over an hour old (no compile takes that long)."""
    now = time.time()
    for lock in folder.glob("hs-*.lock"):
        try:
            if not lock.with_suffix(".db").exists() and now - lock.stat().st_mtime > _LOCK_GRACE_S:
                lock.unlink()
        except OSError:
            continue
