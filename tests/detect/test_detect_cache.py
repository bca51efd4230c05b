"""The detector's cache folder stays under its size cap: least recently used entries go first,
never the one just written; a read marks an entry used; stale compile locks go too."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from consentgate.detect import cache, members


def _entry(folder: Path, name: str, age_s: float, size: int = 1000) -> Path:
    p = folder / name
    p.write_bytes(b"x" * size)
    t = time.time() - age_s
    os.utime(p, (t, t))
    return p


def test_least_recently_used_entries_go_first_and_other_files_stay(tmp_path: Path) -> None:
    oldest = _entry(tmp_path, "hs-0.9.1-aaaa.db", 300)
    middle = _entry(tmp_path, "members-bbbb.arrow", 200)
    newest = _entry(tmp_path, "names-1.0-cccc.json", 100)
    other = _entry(tmp_path, "notes.txt", 400, size=5000)  # not a cache entry: never counted or deleted
    assert cache.prune(tmp_path, limit=2500) == [oldest]
    assert middle.exists() and newest.exists() and other.exists()
    cache.touch(middle)  # read just now: the newest-used entry
    assert cache.prune(tmp_path, limit=1500) == [newest]
    assert middle.exists()


def test_the_entry_just_written_stays_even_alone_over_the_cap(tmp_path: Path) -> None:
    old = _entry(tmp_path, "hs-0.9.1-aaaa.db", 100)
    kept = _entry(tmp_path, "hs-0.9.1-bbbb.db", 200, size=4000)
    assert cache.prune(tmp_path, keep=kept, limit=0) == [old]
    assert kept.exists()


def test_write_entry_prunes_to_the_configured_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTGATE_CACHE_MAX_MB", str(2500 / 2**20))
    first = _entry(tmp_path, "hs-0.9.1-aaaa.db", 300)
    second = _entry(tmp_path, "hs-0.9.1-bbbb.db", 200)
    third = tmp_path / "hs-0.9.1-cccc.db"
    cache.write_entry(third, b"y" * 1000)
    assert third.read_bytes() == b"y" * 1000
    assert not first.exists() and second.exists()
    monkeypatch.setenv("CONSENTGATE_CACHE_MAX_MB", "not a number")  # ignored: the default cap
    assert cache.max_bytes() == int(cache.MAX_MB_DEFAULT * 2**20)


def test_stale_compile_locks_go_with_their_entry(tmp_path: Path) -> None:
    orphan = _entry(tmp_path, "hs-0.9.1-aaaa.lock", 2 * 3600, size=0)  # its database is gone, and it is old
    young = _entry(tmp_path, "hs-0.9.1-bbbb.lock", 60, size=0)  # perhaps held by a compile in progress
    _entry(tmp_path, "hs-0.9.1-cccc.db", 10)
    with_db = _entry(tmp_path, "hs-0.9.1-cccc.lock", 2 * 3600, size=0)
    cache.prune(tmp_path, limit=10**9)
    assert not orphan.exists() and young.exists() and with_db.exists()


def test_a_cache_hit_marks_the_entry_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTGATE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(members, "CACHE_MIN_NAMES", 10)
    names = members.distinct_names([f"Ana Name{i:04d}" for i in range(50)])
    members.cached_member_tokens(names)
    [entry] = list(tmp_path.glob("members-*.arrow"))
    old = time.time() - 3600
    os.utime(entry, (old, old))
    members.cached_member_tokens(names)  # read from the entry
    assert entry.stat().st_mtime > old + 3000


def test_an_entry_others_can_write_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Entries are unsigned: a member-name split planted where others can write must not be used.
    folder = tmp_path / "cache"
    monkeypatch.setenv("CONSENTGATE_CACHE_DIR", str(folder))
    monkeypatch.setattr(members, "CACHE_MIN_NAMES", 10)
    names = members.distinct_names([f"Ana Name{i:04d}" for i in range(50)])
    other = members.distinct_names([f"Bo Other{i:04d}" for i in range(50)])
    members.cached_member_tokens(other)
    [planted] = list(folder.glob("members-*.arrow"))
    planted.rename(members._tokens_cache_path(names))  # the other directory's split under this one's key
    assert members.cached_member_tokens(names)[0].equals(members.member_tokens_arrow(other)[0])  # read: the attack works here
    entry = members._tokens_cache_path(names)
    assert entry is not None and cache.trusted(entry)
    folder.chmod(0o777)
    assert not cache.trusted(entry)
    assert members.cached_member_tokens(names)[0].equals(members.member_tokens_arrow(names)[0])  # not read: recomputed
    folder.chmod(0o700)
    entry.chmod(0o666)
    assert not cache.trusted(entry)
    entry.chmod(0o600)
    assert cache.trusted(entry)
