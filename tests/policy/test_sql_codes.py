"""The compiled query's reason bits: one distinct bit per code, covering every code the reference evaluator can give."""

from __future__ import annotations

from consentgate.policy.evaluate import PARTICIPANT_PREFIX, REASON_CODES
from consentgate.policy.sql import RECORD_CODES, SUBJECT_CODES, mask_codes


def test_every_reason_code_has_its_own_bit() -> None:
    pairs = mask_codes()
    bits = [b for b, _ in pairs]
    assert len(set(bits)) == len(bits) and all(b > 0 and b & (b - 1) == 0 for b in bits)  # distinct powers of two
    assert max(bits) < 1 << 62  # fits a signed BIGINT
    codes = {c for _, c in pairs}
    assert set(REASON_CODES) == set(SUBJECT_CODES) | set(RECORD_CODES)
    assert codes == set(REASON_CODES) | {PARTICIPANT_PREFIX + c for c in SUBJECT_CODES}
