"""The manifest of a built dataset and its content hash.

Owns ``manifest.json``'s layout (docs/build-reference.md, "Manifest") and the rule
for ``content_hash``: SHA-256 of the canonical JSON (sorted keys, no spaces,
UTF-8) of the whole manifest except the two volatile keys ``build`` (build id,
wall-clock times, timings, worker count) and ``content_hash`` itself. Every
output file's SHA-256 is inside the hashed part, so the hash covers the data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

FORMAT = "consentgate.dataset/1"
MANIFEST = "manifest.json"
CARD = "README.md"
VOLATILE_KEYS = frozenset({"build", "content_hash"})


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def content_hash(manifest: dict[str, Any]) -> str:
    """The SHA-256 of everything deterministic in ``manifest``."""
    stable = {k: v for k, v in manifest.items() if k not in VOLATILE_KEYS}
    return hashlib.sha256(canonical_json(stable)).hexdigest()


def write_manifest(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Stamp ``content_hash`` into ``manifest`` and write it (pretty, sorted keys); returns the stamped dict."""
    stamped = dict(manifest)
    stamped["content_hash"] = content_hash(manifest)
    path.write_text(json.dumps(stamped, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return stamped


def read_manifest(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("manifest is not a JSON object")
    return data
