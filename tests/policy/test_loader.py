"""Bad policies: one clear error each, naming file and line, and nothing published.

Each case edits one line of a small valid policy. The error must be a PolicyValidationError
whose message ends with ``<file>:<line>``; through the CLI (`policy publish`) it exits 2 with
``Error: ...<file>:<line>`` and the ledger holds no published policy afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from consentgate.cli.app import main
from consentgate.errors import PolicyValidationError
from consentgate.ledger import open_ledger
from consentgate.policy import load_policy, parse_policy

GOOD = """\
name: test-policy
version: "2025.1"
published_at: 2025-01-01
effective_at: 2025-02-01
notice_days: 30
retroactive: false
purpose: ai_training
recipients:
  - name: linkedin
    scope: first_party
    since: "2024.2"
jurisdictions:
  default: excluded
  US: opt_out
minimum_age: 18
categories:
  post: {require: author}
  message.*: exclude
tiers:
  premium: {exclude: ["message.*"]}
sensitive_topics:
  default: exclude
pii:
  EMAIL_ADDRESS: mask
gpc:
  US-CA: [affiliate]
"""

# (case id, line to replace (1-based; 0 = append), replacement text, expected error line, message fragment)
BAD: list[tuple[str, int, str, int, str]] = [
    ("unknown-key", 0, "colour: blue", 27, "unknown key 'colour'"),
    ("unknown-nested-key", 17, "  post: {require: author, because: yes}", 17, "unknown key 'because'"),
    ("unknown-region", 14, "  XX: opt_out", 14, "unknown region 'XX'"),
    ("unknown-subdivision-country", 26, "  ZZ-CA: [affiliate]", 26, "ZZ is not an ISO 3166-1"),
    ("unknown-category", 17, "  posts: {require: author}", 17, "unknown category 'posts'"),
    ("bad-date", 3, "published_at: 2025-13-01", 3, "invalid value for published_at"),
    ("not-a-date", 3, "published_at: last tuesday", 3, "invalid value for published_at"),
    ("effective-before-published", 4, "effective_at: 2024-12-01", 4, "is before published_at"),
    ("negative-notice", 5, "notice_days: -5", 5, "invalid value for notice_days"),
    ("duplicate-recipient", 11, '    since: "2024.2"\n  - name: linkedin\n    scope: affiliate', 12, "duplicate recipient 'linkedin'"),
    ("yaml-syntax", 17, "  post: {require: author", 18, "YAML syntax error"),
    ("duplicate-key", 14, "  default: opt_out", 14, "duplicate key 'default'"),
    ("bad-mode", 14, "  US: maybe", 14, "invalid value for jurisdictions.US"),
    ("unknown-topic", 22, "  gossip: exclude", 22, "unknown topic 'gossip'"),
    ("unknown-entity-type", 24, "  EMAIL: mask", 24, "unknown entity type 'EMAIL'"),
    ("bad-pii-strategy", 24, "  EMAIL_ADDRESS: shred", 24, "invalid value for pii.EMAIL_ADDRESS"),
    ("bad-version", 2, 'version: "v2"', 2, "invalid value for version"),
    ("since-after-version", 11, '    since: "2026.1"', 11, "newer than the policy version"),
    ("unknown-tier", 20, '  gold: {exclude: ["message.*"]}', 20, "unknown member tier 'gold'"),
    ("unknown-scope", 10, "    scope: fourth_party", 10, "invalid value for recipients.0.scope"),
    ("tier-pattern-matches-nothing", 20, '  premium: {exclude: ["mesage.*"]}', 20, "unknown category 'mesage.*'"),
    ("missing-name", 1, "# no name", 1, "missing required key 'name'"),
    ("bad-purpose", 7, "purpose: marketing", 7, "invalid value for purpose"),
    ("groups-disagree", 14, "  EU: opt_out\n  EEA: excluded", 15, "groups EU and EEA give"),
    ("bad-category-rule", 18, "  message.*: include", 18, "expected `exclude` or a mapping"),
    ("age-out-of-range", 15, "minimum_age: 200", 15, "invalid value for minimum_age"),
    ("bad-boolean", 6, "retroactive: sometimes", 6, "invalid value for retroactive"),
]


def _edit(line: int, text: str) -> str:
    lines = GOOD.splitlines()
    if line == 0:
        lines.append(text)
    else:
        lines[line - 1] = text
    return "\n".join(lines) + "\n"


def test_the_base_policy_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    policy = load_policy(path)
    assert policy.version == "2025.1" and len(policy.sha256) == 64


@pytest.mark.parametrize(("case", "line", "text", "expected_line", "fragment"), BAD, ids=[b[0] for b in BAD])
def test_bad_policy_one_clear_error_with_file_and_line(tmp_path: Path, case: str, line: int, text: str, expected_line: int, fragment: str) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_text(_edit(line, text))
    with pytest.raises(PolicyValidationError) as info:
        load_policy(path)
    message = info.value.message
    assert fragment in message, message
    assert message.endswith(f"{path}:{expected_line}"), message
    assert info.value.details["line"] == expected_line


@pytest.mark.parametrize(("case", "line", "text", "expected_line", "fragment"), BAD[:16], ids=[b[0] for b in BAD[:16]])
def test_publish_refuses_bad_policy_and_publishes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, line: int, text: str, expected_line: int, fragment: str
) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_text(_edit(line, text))
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert main(["policy", "publish", str(path), "--db", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and f"{path}:{expected_line}" in err and fragment in err
    with open_ledger(url) as ledger:
        assert ledger.published_policies() == []


def test_empty_and_non_mapping_and_non_utf8(tmp_path: Path) -> None:
    for name, data, fragment in [
        ("empty.yaml", b"# nothing\n", "empty"),
        ("list.yaml", b"- a\n- b\n", "must be a YAML mapping"),
        ("latin1.yaml", "name: caf\xe9\n".encode("latin-1"), "not UTF-8"),
    ]:
        with pytest.raises(PolicyValidationError, match=fragment):
            parse_policy(data, source=name)


def test_norway_and_versions_stay_strings() -> None:
    text = _edit(14, "  NO: opt_out\n  US: opt_out").replace('version: "2025.1"', "version: 2025.10").replace('since: "2024.2"', "since: 2025.10")
    policy = parse_policy(text.encode(), source="x.yaml")
    assert policy.version == "2025.10"
    assert policy.jurisdictions["NO"] == "opt_out"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyValidationError, match="cannot read policy file"):
        load_policy(tmp_path / "absent.yaml")


def test_sha256_is_of_the_file_bytes(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "p.yaml"
    path.write_text(GOOD + "# a comment changes the hash\n")
    assert load_policy(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
