"""The Faker-derived name lexicon is cached on disk: the cached one equals a fresh build, and a
bad cache entry is rebuilt rather than trusted."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from consentgate.detect import lexicon


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("CONSENTGATE_CACHE_DIR", str(tmp_path))
    lexicon.name_lexicon.cache_clear()
    yield tmp_path
    lexicon.name_lexicon.cache_clear()


def test_the_cached_lexicon_equals_a_fresh_build(cache: Path) -> None:
    built = lexicon.name_lexicon()  # builds and writes the cache entry
    [entry] = list(cache.glob("names-*.json"))
    lexicon.name_lexicon.cache_clear()
    loaded = lexicon.name_lexicon()  # now read from the entry
    assert loaded is not built and loaded == built == lexicon._build_name_lexicon()
    assert len(loaded.first) > 10_000 and "Grant" in loaded.first | loaded.last and "grant" in loaded.common
    assert sorted(json.loads(entry.read_text(encoding="utf-8"))) == ["common", "first", "last"]


@pytest.mark.parametrize("content", ["not json", '{"first": [], "last": []}', '{"first": [1], "last": [], "common": []}'])
def test_a_bad_cache_entry_is_rebuilt(cache: Path, content: str) -> None:
    path = lexicon._lexicon_cache_path()
    assert path is not None and path.parent == cache
    path.write_text(content, encoding="utf-8")
    got = lexicon.name_lexicon()
    assert got == lexicon._build_name_lexicon()
    assert lexicon._read_lexicon(path) == got  # and the entry was rewritten


def test_the_key_changes_with_what_the_lists_depend_on(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = lexicon._lexicon_cache_path()
    monkeypatch.setattr(unicodedata, "unidata_version", "0.0.0")
    assert lexicon._lexicon_cache_path() != first


def test_an_unwritable_cache_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("CONSENTGATE_CACHE_DIR", str(blocker / "cache"))  # mkdir fails under a file
    lexicon.name_lexicon.cache_clear()
    try:
        assert lexicon.name_lexicon() == lexicon._build_name_lexicon()
    finally:
        lexicon.name_lexicon.cache_clear()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]
