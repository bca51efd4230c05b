"""Settings resolve in the order defaults < consentgate.toml < CONSENTGATE_* env < CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from consentgate.config import load_settings
from consentgate.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("CONSENTGATE_WORKERS", "CONSENTGATE_DB_URL", "CONSENTGATE_CONFIG", "CONSENTGATE_BATCH_SIZE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_apply_without_any_source() -> None:
    s = load_settings()
    assert s.db_url == "sqlite:///consentgate.db"
    assert s.batch_size == 65536


def test_precedence_toml_then_env_then_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "consentgate.toml").write_text('workers = 3\ndb_url = "sqlite:///toml.db"\nbatch_size = 10\n')
    s = load_settings()
    assert (s.workers, s.db_url, s.batch_size) == (3, "sqlite:///toml.db", 10)
    monkeypatch.setenv("CONSENTGATE_WORKERS", "5")
    s = load_settings()
    assert (s.workers, s.db_url) == (5, "sqlite:///toml.db")
    s = load_settings(workers=7, db_url=None)
    assert (s.workers, s.db_url) == (7, "sqlite:///toml.db")


def test_explicit_config_file(tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text("workers = 9\n")
    assert load_settings(other).workers == 9


@pytest.mark.parametrize(
    "toml, field",
    [("workers = 0\n", "workers"), ("nonsense_key = 1\n", "nonsense_key"), ('log_level = "LOUD"\n', "log_level")],
)
def test_bad_settings_name_the_field(tmp_path: Path, toml: str, field: str) -> None:
    (tmp_path / "consentgate.toml").write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert field in info.value.message


def test_bad_env_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTGATE_WORKERS", "many")
    with pytest.raises(ConfigError, match="workers"):
        load_settings()


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "consentgate.toml").write_text("workers = = 3\n")
    with pytest.raises(ConfigError):
        load_settings()


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.toml")


def test_secret_is_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", "super-secret-key")
    s = load_settings()
    assert s.pseudonym_key is not None
    assert "super-secret-key" not in repr(s) and "super-secret-key" not in str(s.model_dump())
