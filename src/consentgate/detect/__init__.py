"""PII and sensitive-topic detection and redaction (issue 5).

Public API (docs/interfaces.md, "Detect"):

* ``Detector(member_names=None, *, backend=None, workers=1, batch_bytes=...)``
  (``member_names``: any iterable of strings, or an Arrow string array, fastest) and
  ``Detector.scan(texts) -> ScanResult`` with ``spans`` and ``topics`` tables;
  ``Detector.to_bytes()`` / ``Detector.from_bytes(data)`` (also used by pickle) carry a
  built detector, compiled databases included, to another process;
* ``redact(texts, spans, strategies, key) -> Redaction``.

This package imports nothing from ``consentgate.cli``, ``.service`` or ``.build``.
"""

from __future__ import annotations

from consentgate.detect.engine import SPANS_SCHEMA, TOPICS_SCHEMA, Detector, ScanResult
from consentgate.detect.redact import STRATEGIES, Redaction, redact

__all__ = ["Detector", "ScanResult", "Redaction", "redact", "STRATEGIES", "SPANS_SCHEMA", "TOPICS_SCHEMA"]
