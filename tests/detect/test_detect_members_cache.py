"""The member directory's split (full names and name tokens) is cached on disk by the names' bytes:
the cached split equals a fresh one, a changed directory misses, and a bad entry is recomputed."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from consentgate.detect import members


def _names(n: int, salt: str = "") -> pa.StringArray:
    firsts = ["Ana", "Bo", "Chen", "Dana", "Émile", "Jean-Pierre", "O'Neil", "Zoë"]
    return members.distinct_names([f"{firsts[i % 8]} {salt}Name{i:06d}" for i in range(n)] + ["李小龙", "  Odd   Spacing  "])


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CONSENTGATE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(members, "CACHE_MIN_NAMES", 100)
    return tmp_path


def test_the_cached_split_equals_a_fresh_one(cache: Path) -> None:
    names = _names(500)
    first = members.cached_member_tokens(names)
    [entry] = list(cache.glob("members-*.arrow"))
    again = members.cached_member_tokens(names)  # read from the entry
    fresh = members.member_tokens_arrow(names)
    assert again[0].equals(fresh[0]) and first[0].equals(fresh[0])
    assert again[1] == fresh[1] == first[1] and "Zoë" in again[1]
    assert entry.stat().st_size > 0
    members.cached_member_tokens(_names(500, salt="X"))  # another directory, another entry
    assert len(list(cache.glob("members-*.arrow"))) == 2
    sliced = pa.concat_arrays([pa.array(["zz"]), names]).slice(1)  # same names at an offset: same key
    assert members._tokens_cache_path(sliced) == members._tokens_cache_path(names)


@pytest.mark.parametrize("content", [b"", b"not arrow at all"])
def test_a_bad_entry_is_recomputed_and_replaced(cache: Path, content: bytes) -> None:
    names = _names(300)
    path = members._tokens_cache_path(names)
    assert path is not None
    path.write_bytes(content)
    got = members.cached_member_tokens(names)
    fresh = members.member_tokens_arrow(names)
    assert got[0].equals(fresh[0]) and got[1] == fresh[1]
    assert members._read_tokens(path) is not None


def test_small_directories_are_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTGATE_CACHE_DIR", str(tmp_path))
    members.cached_member_tokens(_names(50))
    assert not list(tmp_path.glob("members-*"))


def test_an_unwritable_cache_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("CONSENTGATE_CACHE_DIR", str(blocker / "cache"))  # mkdir fails under a file
    monkeypatch.setattr(members, "CACHE_MIN_NAMES", 100)
    names = _names(200)
    got = members.cached_member_tokens(names)
    fresh = members.member_tokens_arrow(names)
    assert got[0].equals(fresh[0]) and got[1] == fresh[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]
