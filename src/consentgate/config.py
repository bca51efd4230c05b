"""Typed settings for every consentgate command and the service.

Resolution order, lowest to highest priority:

    defaults  <  consentgate.toml  <  CONSENTGATE_* environment variables  <  CLI flags

The TOML file is ``./consentgate.toml`` unless ``--config`` or ``CONSENTGATE_CONFIG``
names another. Keys are the field names below (``db_url = "sqlite:///x.db"``);
environment variables are the upper-case names with the ``CONSENTGATE_`` prefix
(``CONSENTGATE_DB_URL``). CLI flags are passed as keyword overrides to
``load_settings``. Secrets (``pseudonym_key``) are ``SecretStr`` and never printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from consentgate.errors import ConfigError

DEFAULT_CONFIG_FILE = "consentgate.toml"


class Settings(BaseSettings):
    """Every setting consentgate reads. See docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="CONSENTGATE_", extra="forbid", toml_file=DEFAULT_CONFIG_FILE)

    db_url: str = Field("sqlite:///consentgate.db", description="Ledger database URL (sqlite:///PATH or postgresql+psycopg://...)")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256, description="Worker processes for builds and detection")
    batch_size: int = Field(65536, ge=1, description="Records per Arrow batch in streaming stages")
    pseudonym_key: SecretStr | None = Field(None, description="HMAC key for pseudonym redaction; never logged")
    log_level: str = Field("WARNING", pattern="^(DEBUG|INFO|WARNING|ERROR)$", description="Log level")
    default_scope: str = Field("first_party", pattern="^(first_party|affiliate|third_party)$", description="Recipient scope when none is given")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get("CONSENTGATE_CONFIG", DEFAULT_CONFIG_FILE)
        # First wins: CLI flags (init) > environment > TOML > field defaults.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_path))


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Resolve settings; ``overrides`` are CLI flags (``None`` values are ignored).

    Raises ``ConfigError`` naming the source and field at fault.
    """
    flags = {k: v for k, v in overrides.items() if v is not None}
    previous = os.environ.get("CONSENTGATE_CONFIG")
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"config file {config_file} does not exist", file=str(config_file))
        os.environ["CONSENTGATE_CONFIG"] = str(config_file)
    try:
        return Settings(**flags)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid setting {field!r}: {first['msg']}", field=field) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise ConfigError(f"cannot read configuration: {exc}") from None
    finally:
        if config_file is not None:
            if previous is None:
                os.environ.pop("CONSENTGATE_CONFIG", None)
            else:
                os.environ["CONSENTGATE_CONFIG"] = previous
