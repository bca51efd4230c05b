"""Atomic output folders: a dataset appears complete, or not at all.

Owns the life of a build's temporary folder. It is created next to the final
folder (same file system, so the final ``rename`` is atomic) with a hidden name
``.<name>.partial-<pid>-<token>``, every file is fsynced before the rename, and
the parent folder after it. A folder with that name is never a complete build
(``build verify`` refuses it); leftovers of killed runs are removed by the next
run once their process is gone.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

from consentgate.errors import BuildError

PARTIAL_MARK = ".partial-"
OLD_MARK = ".replaced-"
_PARTIAL_RE = re.compile(r"^\.(?P<name>.+)\.(partial|replaced)-(?P<pid>\d+)-[0-9a-f]+$")


def is_partial_name(name: str) -> bool:
    """True for the hidden temporary folders of a build in progress (or of a killed one)."""
    return _PARTIAL_RE.match(name) is not None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(final: Path) -> list[Path]:
    """Remove temporary folders left for ``final`` by builds whose process no longer runs."""
    removed: list[Path] = []
    if not final.parent.is_dir():
        return removed
    for entry in final.parent.iterdir():
        m = _PARTIAL_RE.match(entry.name)
        if m and m.group("name") == final.name and entry.is_dir() and not _pid_alive(int(m.group("pid"))):
            if OLD_MARK in entry.name and not final.exists():
                os.rename(entry, final)  # killed between the two renames of a --replace: put the old build back
                continue
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def check_output_free(final: Path, replace: bool) -> None:
    """Refuse an existing output folder unless ``replace``; refuse a path that is a file."""
    if final.exists() and not final.is_dir():
        raise BuildError(f"output path {final} exists and is not a folder", hint="Choose another `output` in the spec.", file=str(final))
    if final.exists() and not replace:
        raise BuildError(
            f"output folder {final} already exists",
            hint="Pass --replace to replace it (atomically), or change `output` in the spec.", file=str(final),
        )


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (files first, then their folders)."""
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFolder:
    """``with AtomicFolder(final, replace) as tmp: ...write into tmp...; commit()``; aborts on error."""

    def __init__(self, final: Path, *, replace: bool) -> None:
        self.final = final
        self.replace = replace
        self.tmp = final.parent / f".{final.name}{PARTIAL_MARK}{os.getpid()}-{secrets.token_hex(4)}"
        self.committed = False

    def __enter__(self) -> Path:
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            remove_stale(self.final)
        except OSError as exc:
            raise BuildError(f"cannot create the output folder next to {self.final}: {exc.strerror}", file=str(self.final)) from None
        check_output_free(self.final, self.replace)
        try:
            self.tmp.mkdir()
        except OSError as exc:
            raise BuildError(f"cannot create the output folder next to {self.final}: {exc.strerror}", file=str(self.final)) from None
        return self.tmp

    def commit(self) -> None:
        """fsync everything, then rename the temporary folder into place (replacing the old one if allowed)."""
        check_output_free(self.final, self.replace)
        fsync_tree(self.tmp)
        old: Path | None = None
        if self.final.exists():
            old = self.final.parent / f".{self.final.name}{OLD_MARK}{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(self.final, old)
        os.rename(self.tmp, self.final)
        _fsync_dir(self.final.parent)
        self.committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            shutil.rmtree(self.tmp, ignore_errors=True)
