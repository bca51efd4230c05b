"""The detector's disk cache: where entries live, how they are keyed and written.

Owns ``cache_dir`` (``CONSENTGATE_CACHE_DIR``, else ``~/.cache/consentgate``),
``code_key`` (a SHA-256 started over the source of the modules that make an entry and
Python's Unicode tables, so that an entry made by other code is never read) and
``write_entry`` (an atomic write that leaves no partial file). Three kinds of entry use
it: compiled Hyperscan databases (``backend``), the Faker name lexicon (``lexicon``) and
the split of a large member directory (``members``). Caching is an optimisation only:
an entry that cannot be written is skipped, one that cannot be read is rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import unicodedata
from pathlib import Path


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
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
