"""Every test package is collected: no folder under tests/ matches pytest's norecursedirs.

pytest's default norecursedirs includes ``build``, which once skipped tests/build/ in
every run without a word; pyproject.toml now lists the defaults without it.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_test_folder_is_skipped_by_norecursedirs() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    patterns = options["norecursedirs"]
    folders = [p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and not p.name.startswith(("_", "."))]
    assert "build" in folders
    assert not [(f, pat) for f in folders for pat in patterns if fnmatch.fnmatch(f, pat)]
