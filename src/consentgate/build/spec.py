"""The build spec: a YAML file saying what to build, from which sources, under which policy.

Owns the pydantic model of the spec (documented field by field in
docs/build-reference.md) and ``load_spec``, which parses the YAML, validates it,
resolves every relative path against the spec file's folder, and records the
SHA-256 of the spec bytes. Nothing here reads the sources themselves.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from consentgate.datamodel import CATEGORIES, ENTITY_TYPES, MEMBERS_SCHEMA, RECORDS_SCHEMA, SCOPES
from consentgate.errors import BuildError

Format = Literal["auto", "parquet", "csv", "jsonl"]
Strategy = Literal["mask", "pseudonym", "drop_record"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    """One input table: a file or folder (``path``), or a table in a DuckDB database file."""

    path: Path | None = None
    format: Format = "auto"
    database: Path | None = None
    table: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSpec:
        if (self.path is None) == (self.database is None):
            raise ValueError("give either `path` (a file or folder) or `database` + `table` (a DuckDB database)")
        if self.database is not None and (self.table is None or not _IDENT_RE.match(self.table)):
            raise ValueError("`table` must name a table in the DuckDB database (letters, digits, _ and dots)")
        if self.path is not None and self.table is not None:
            raise ValueError("`table` only goes with `database`")
        return self

    def resolved(self, base: Path) -> SourceSpec:
        return self.model_copy(update={
            "path": _resolve(base, self.path) if self.path is not None else None,
            "database": _resolve(base, self.database) if self.database is not None else None,
        })

    def describe(self) -> str:
        return str(self.path) if self.path is not None else f"{self.database}:{self.table}"


def _as_source(value: Any) -> Any:
    if isinstance(value, (str, Path)):
        return {"path": value}
    return value


class ConsentSpec(_Strict):
    """Consent comes from a ledger database URL, or from an events file loaded into a temporary ledger."""

    ledger: str | None = None
    events: SourceSpec | None = None

    @field_validator("events", mode="before")
    @classmethod
    def _coerce_events(cls, v: Any) -> Any:
        return _as_source(v)

    @model_validator(mode="after")
    def _one_kind(self) -> ConsentSpec:
        if (self.ledger is None) == (self.events is None):
            raise ValueError("give exactly one of `ledger` (a database URL) or `events` (a consent events file)")
        return self


class Sources(_Strict):
    members: SourceSpec
    records: SourceSpec
    consent: ConsentSpec

    @field_validator("members", "records", mode="before")
    @classmethod
    def _coerce(cls, v: Any) -> Any:
        return _as_source(v)


class TableMapping(_Strict):
    """How a non-canonical source maps onto the canonical schema.

    ``columns`` maps canonical column name -> source column name. ``category_values``
    maps source category values to canonical ones (unmapped values pass through and an
    unknown one is excluded by the policy as UNKNOWN_CATEGORY). ``participants_delimiter``
    says the participants column is one string joined by this delimiter.
    """

    columns: dict[str, str] = Field(default_factory=dict)
    category_values: dict[str, str] = Field(default_factory=dict)
    participants_delimiter: str | None = Field(default=None, min_length=1)


class Mapping(_Strict):
    records: TableMapping = Field(default_factory=TableMapping)
    members: TableMapping = Field(default_factory=TableMapping)

    @model_validator(mode="after")
    def _canonical_targets(self) -> Mapping:
        for table, schema, tm in (("records", RECORDS_SCHEMA, self.records), ("members", MEMBERS_SCHEMA, self.members)):
            for target in tm.columns:
                if target not in schema.names:
                    raise ValueError(f"mapping.{table}.columns: {target!r} is not a canonical {table} column ({', '.join(schema.names)})")
        for target in self.records.category_values.values():
            if target not in CATEGORIES:
                raise ValueError(f"mapping.records.category_values: {target!r} is not a canonical category")
        if self.members.category_values or self.members.participants_delimiter:
            raise ValueError("mapping.members takes only `columns`")
        return self


class PolicyRef(_Strict):
    """The policy file, and the ledger where its publication is looked up (default: the consent ledger)."""

    file: Path
    published_in: str | None = None


class BuildSpec(_Strict):
    """A validated build spec with absolute paths (see docs/build-reference.md)."""

    name: str
    sources: Sources
    mapping: Mapping = Field(default_factory=Mapping)
    policy: PolicyRef
    scope: str | None = None
    recipient: str | None = None
    as_of: datetime | None = None
    shards: int = Field(16, ge=1, le=65536)
    slices: int = Field(8, ge=1, le=4096)
    redaction: dict[str, Strategy] = Field(default_factory=dict)
    output: Path

    _sha256: str = PrivateAttr(default="")
    _path: Path | None = PrivateAttr(default=None)

    @field_validator("policy", mode="before")
    @classmethod
    def _policy_path(cls, v: Any) -> Any:
        return {"file": v} if isinstance(v, (str, Path)) else v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("name must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return v

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: str | None) -> str | None:
        if v is not None and v not in SCOPES:
            raise ValueError(f"unknown scope {v!r}; expected one of {', '.join(SCOPES)}")
        return v

    @field_validator("as_of")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and (v.tzinfo is None or v.utcoffset() is None):
            raise ValueError("as_of has no timezone; give an offset such as Z or +00:00")
        return v.astimezone(timezone.utc) if v is not None else None

    @field_validator("redaction")
    @classmethod
    def _entities(cls, v: dict[str, str]) -> dict[str, str]:
        for entity in v:
            if entity not in ENTITY_TYPES:
                raise ValueError(f"unknown entity type {entity!r}; expected one of {', '.join(ENTITY_TYPES)}")
        return dict(sorted(v.items()))

    @model_validator(mode="after")
    def _scope_or_recipient(self) -> BuildSpec:
        if self.scope is not None and self.recipient is not None:
            raise ValueError("give `scope` or `recipient`, not both")
        return self

    @property
    def sha256(self) -> str:
        """SHA-256 of the spec file bytes (empty for a spec built in memory)."""
        return self._sha256

    @property
    def path(self) -> Path | None:
        return self._path


def _resolve(base: Path, p: Path) -> Path:
    p = p.expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def resolve_ledger_url(url: str, base: Path) -> str:
    """A ``sqlite:///relative`` URL is taken relative to the spec's folder; other URLs are unchanged."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str(_resolve(base, Path(url[len(prefix):])))
    return url


def _with_resolved_paths(spec: BuildSpec, base: Path) -> BuildSpec:
    consent = spec.sources.consent
    consent = consent.model_copy(update={
        "ledger": resolve_ledger_url(consent.ledger, base) if consent.ledger else None,
        "events": consent.events.resolved(base) if consent.events else None,
    })
    sources = spec.sources.model_copy(update={
        "members": spec.sources.members.resolved(base),
        "records": spec.sources.records.resolved(base),
        "consent": consent,
    })
    policy = spec.policy.model_copy(update={
        "file": _resolve(base, spec.policy.file),
        "published_in": resolve_ledger_url(spec.policy.published_in, base) if spec.policy.published_in else None,
    })
    return spec.model_copy(update={"sources": sources, "policy": policy, "output": _resolve(base, spec.output)})


def parse_spec(data: Any, *, base: Path, label: str, sha256: str = "", path: Path | None = None) -> BuildSpec:
    """Validate an already-parsed spec mapping; ``label`` names it in errors."""
    if not isinstance(data, dict):
        raise BuildError(f"build spec {label} is not a YAML mapping", hint="See docs/build-reference.md for the fields.", file=label)
    try:
        spec = BuildSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise BuildError(
            f"build spec {label}: field {field!r}: {first['msg']}",
            hint="Fix the field; docs/build-reference.md lists every field and its type.", file=label, field=field,
        ) from None
    spec = _with_resolved_paths(spec, base)
    spec._sha256 = sha256
    spec._path = path
    return spec


def load_spec(path: Path | str) -> BuildSpec:
    """Read and validate a build spec file; raises ``BuildError`` naming the file, line or field."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BuildError(f"cannot read build spec {path}: {exc.strerror}", hint="Check the spec path.", file=str(path)) from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise BuildError(f"build spec {path} is not valid YAML{where}", hint="Fix the YAML syntax.", file=str(path)) from None
    return parse_spec(data, base=path.resolve().parent, label=str(path), sha256=hashlib.sha256(raw).hexdigest(), path=path.resolve())
