"""``build verify`` and ``build list``: check a dataset folder against its manifest.

Owns ``verify_build``, which refuses a folder that is not a complete build (a
hidden temporary folder, no manifest) and otherwise recomputes every file's
SHA-256 and row count, the ``content_hash``, and the counts that the files
themselves determine: decisions by decision and by reason, each shard's rows,
each record's shard and slice in the data against ``decisions.parquet``, and the
subject bitmaps' sizes. It reports every difference, not just the first.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from consentgate.build.atomic import is_partial_name
from consentgate.build.sharding import shard_name
from consentgate.build.sources import one, parquet_scan
from consentgate.build.files import sha256_file
from consentgate.build.manifest import FORMAT, MANIFEST, content_hash, read_manifest
from consentgate.errors import BuildVerifyError, InputError


@dataclass
class VerifyReport:
    """The outcome of ``verify_build``; ``ok`` only when ``problems`` is empty."""

    path: str
    ok: bool
    content_hash: str | None
    files_checked: int
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_rows(path: Path) -> int | None:
    """Rows of a Parquet file (from its footer), members of a roaring bitmap; None for other files."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(str(path)).metadata.num_rows)
    if path.suffix == ".roaring":
        from pyroaring import BitMap

        return len(BitMap.deserialize(path.read_bytes()))
    return None


def _refuse(folder: Path, why: str) -> BuildVerifyError:
    return BuildVerifyError(f"{folder} is not a complete build: {why}",
                            hint="Only a folder that `consentgate build run` finished can be verified; rebuild it.", file=str(folder))


def load_complete_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a complete build folder, or ``BuildVerifyError`` saying why it is not one."""
    if not folder.is_dir():
        raise _refuse(folder, "no such folder")
    if is_partial_name(folder.name):
        raise _refuse(folder, "it is the temporary folder of a build that did not finish")
    path = folder / MANIFEST
    if not path.is_file():
        raise _refuse(folder, f"{MANIFEST} is missing")
    try:
        manifest = read_manifest(path)
    except (OSError, ValueError) as exc:
        raise _refuse(folder, f"{MANIFEST} is not valid JSON ({type(exc).__name__})") from None
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("outputs"), list):
        raise _refuse(folder, f"{MANIFEST} is not a consentgate dataset manifest ({FORMAT})")
    return manifest


def _check_files(folder: Path, manifest: dict[str, Any], problems: list[str]) -> int:
    listed = {str(o["path"]): o for o in manifest["outputs"]}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
    for extra in sorted(present - set(listed)):
        problems.append(f"{extra}: file not listed in the manifest")
    for rel, entry in sorted(listed.items()):
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            problems.append(f"{rel}: sha256 {digest} differs from the manifest's {entry.get('sha256')}")
            continue
        try:
            rows = file_rows(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a verification failure
            problems.append(f"{rel}: unreadable ({type(exc).__name__})")
            continue
        if rows != entry.get("rows"):
            problems.append(f"{rel}: {rows} rows, manifest says {entry.get('rows')}")
    return len(listed)


def _check_counts(folder: Path, manifest: dict[str, Any], problems: list[str]) -> None:
    import duckdb

    counts = manifest.get("counts", {})
    shards = manifest.get("sharding", {})
    decisions = parquet_scan(folder / "decisions.parquet")
    con = duckdb.connect()
    try:
        got = dict(con.execute(f"SELECT decision, count(*) FROM {decisions} GROUP BY 1").fetchall())
        if {k: int(v) for k, v in got.items()} != counts.get("by_decision"):
            problems.append(f"decisions.parquet: counts by decision {got} differ from the manifest's {counts.get('by_decision')}")
        dup = one(con.execute(f"SELECT count(*) - count(DISTINCT record_id) FROM {decisions}"))
        if dup and dup[0]:
            problems.append(f"decisions.parquet: {dup[0]} duplicated record ids")
        scanned = one(con.execute(f"SELECT count(*) FILTER (WHERE content_scanned) FROM {decisions}"))
        if scanned is None or int(scanned[0]) != counts.get("content_scanned"):
            problems.append(f"decisions.parquet: {scanned[0] if scanned else '?'} records with content scanned, "
                            f"the manifest says {counts.get('content_scanned')}")
        reasons = dict(con.execute(f"SELECT r, count(*) FROM (SELECT unnest(reasons) r FROM {decisions}) GROUP BY 1").fetchall())
        if {k: int(v) for k, v in reasons.items()} != counts.get("by_reason"):
            problems.append("decisions.parquet: counts by reason differ from the manifest")
        n_shards = int(shards.get("shards", 0))
        for k in range(n_shards):
            _check_shard(con, folder, k, decisions, shards, problems)
    except duckdb.Error as exc:
        problems.append(f"cannot read the dataset files ({type(exc).__name__})")
    finally:
        con.close()


def _check_shard(con: Any, folder: Path, k: int, decisions: str, shards: dict[str, Any], problems: list[str]) -> None:
    name = shard_name(k)
    data = folder / "data" / f"{name}.parquet"
    if not data.is_file():
        problems.append(f"data/{name}.parquet: missing")
        return
    mismatch = one(con.execute(
        f"SELECT count(*) FROM (SELECT record_id, slice FROM {parquet_scan(data)}) d FULL JOIN "
        f"(SELECT record_id, slice FROM {decisions} WHERE decision = 'include' AND shard = {k}) x "
        "ON d.record_id = x.record_id WHERE d.record_id IS NULL OR x.record_id IS NULL OR d.slice IS DISTINCT FROM x.slice"
    ))
    if mismatch and mismatch[0]:
        problems.append(f"data/{name}.parquet: {mismatch[0]} records differ from decisions.parquet (included, shard {k}, slice)")
    rows = shards.get("rows", [])
    actual = file_rows(data)
    if k < len(rows) and actual != rows[k]:
        problems.append(f"data/{name}.parquet: {actual} rows, manifest sharding.rows says {rows[k]}")
    subjects = folder / "subjects" / f"{name}.roaring"
    expected = shards.get("subjects", [])
    if subjects.is_file() and k < len(expected) and file_rows(subjects) != expected[k]:
        problems.append(f"subjects/{name}.roaring: member count differs from the manifest")


def verify_build(folder: Path | str) -> VerifyReport:
    """Recompute every hash and count of a dataset folder; see the module docstring."""
    folder = Path(folder)
    manifest = load_complete_manifest(folder)
    problems: list[str] = []
    stored = manifest.get("content_hash")
    recomputed = content_hash(manifest)
    if stored != recomputed:
        problems.append(f"content_hash {stored} differs from the recomputed {recomputed}")
    checked = _check_files(folder, manifest, problems)
    if (folder / "decisions.parquet").is_file():
        _check_counts(folder, manifest, problems)
    else:
        problems.append("decisions.parquet: missing")
    return VerifyReport(path=str(folder), ok=not problems, content_hash=recomputed, files_checked=checked, problems=problems)


def list_builds(root: Path | str) -> list[dict[str, Any]]:
    """Complete builds in ``root`` and its sub-folders (one level), with their headline facts; temporary folders are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder", hint="Give the folder that holds your builds.", file=str(root))
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    out: list[dict[str, Any]] = []
    for folder in candidates:
        if is_partial_name(folder.name) or not (folder / MANIFEST).is_file():
            continue
        try:
            m = read_manifest(folder / MANIFEST)
        except (OSError, ValueError, json.JSONDecodeError):
            continue
        if m.get("format") != FORMAT:
            continue
        by = m.get("counts", {}).get("by_decision", {})
        out.append({
            "path": str(folder), "name": m.get("name"), "policy": f"{m['policy']['name']} {m['policy']['version']}",
            "scope": m.get("scope"), "as_of": m.get("as_of"), "included": by.get("include", 0), "excluded": by.get("exclude", 0),
            "content_hash": m.get("content_hash"), "built_at": m.get("build", {}).get("finished_at"),
        })
    return out
