"""Publication control (with the real SQLite ledger), `policy explain` on real generated data, and layering."""

from __future__ import annotations

import ast
import json
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from consentgate.cli.app import main
from consentgate.datamodel import CONSENT_EVENTS_SCHEMA, LABELS_SCHEMA, UTC_TS
from consentgate.errors import PolicyNotPublishedError
from consentgate.ledger import PublishedPolicy, open_ledger
from consentgate.policy import check_publishable, load_policy, published_fields
from policy_cases import UTC, grant, member, members_table, record, records_table

ROOT = Path(__file__).resolve().parents[2]
RECOMMENDED = ROOT / "examples" / "policies" / "recommended.yaml"


def test_publish_then_builds_may_use_it_only_from_effective_at(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert main(["policy", "publish", str(RECOMMENDED), "--db", url, "--backfill"]) == 0  # dated 2025
    assert main(["policy", "publish", str(RECOMMENDED), "--db", url]) == 0  # idempotent: the first record stands
    policy = load_policy(RECOMMENDED)
    with open_ledger(url) as ledger:
        stored = ledger.published_policy(policy.name, policy.version)
        assert len(ledger.published_policies()) == 1
    assert stored is not None and stored.sha256 == policy.sha256 and stored.body == RECOMMENDED.read_text()
    assert stored.backfilled and stored.notice_from == policy.published_at
    assert "as a backfill" in capsys.readouterr().out
    check_publishable(policy, stored, policy.effective_at)
    with pytest.raises(PolicyNotPublishedError, match="not in effect at 2025-11-02.*takes effect 2025-11-03"):
        check_publishable(policy, stored, policy.effective_at - timedelta(days=1))
    capsys.readouterr()


def test_unpublished_policy_is_refused() -> None:
    policy = load_policy(RECOMMENDED)
    with pytest.raises(PolicyNotPublishedError, match="ai-training 2025.1 is not published"):
        check_publishable(policy, None, datetime(2026, 1, 1, tzinfo=UTC))


def test_effective_before_notice_ends_is_refused_naming_the_dates() -> None:
    policy = load_policy(RECOMMENDED)
    fields = published_fields(policy) | {"effective_at": policy.published_at + timedelta(days=10)}
    with pytest.raises(PolicyNotPublishedError) as info:
        check_publishable(policy, PublishedPolicy(**fields), datetime(2026, 1, 1, tzinfo=UTC))
    message = info.value.message
    assert "2025-09-28" in message and "2025-09-18" in message and "45 days" in message and "2025-11-02" in message


def test_a_changed_file_under_a_published_version_is_refused(tmp_path: Path) -> None:
    policy = load_policy(RECOMMENDED)
    stored = PublishedPolicy(**(published_fields(policy) | {"sha256": "0" * 64}))
    with pytest.raises(PolicyNotPublishedError, match="differs from the published file"):
        check_publishable(policy, stored, datetime(2026, 1, 1, tzinfo=UTC))


def test_publish_warns_when_effective_is_before_notice_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = RECOMMENDED.read_text().replace("effective_at: 2025-11-03", "effective_at: 2025-09-20")
    path = tmp_path / "early.yaml"
    path.write_text(text)
    assert main(["policy", "publish", str(path), "--db", f"sqlite:///{tmp_path / 'l.db'}", "--backfill"]) == 0
    assert "builds will refuse this policy" in capsys.readouterr().out


def test_publish_refuses_a_backdated_file_and_stores_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The story's quiet change: a policy published today under last year's date would skip its notice period."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    assert main(["policy", "publish", str(RECOMMENDED), "--db", url]) != 0
    out = capsys.readouterr()
    assert "Error:" in out.err and "says it was published 2025-09-18" in out.err and "--backfill" in out.err
    with open_ledger(url) as ledger:
        assert ledger.published_policies() == []


def test_notice_runs_from_when_the_ledger_recorded_the_publication() -> None:
    """A stored record whose file date is older than the ledger's record counts notice from the ledger's record."""
    policy = load_policy(RECOMMENDED)
    recorded = policy.effective_at - timedelta(days=10)  # recorded 10 days before it takes effect; 45 days' notice
    stored = PublishedPolicy(**published_fields(policy), recorded_at=recorded)
    with pytest.raises(PolicyNotPublishedError) as info:
        check_publishable(policy, stored, datetime(2026, 1, 1, tzinfo=UTC))
    message = info.value.message
    assert "the ledger recorded the publication 2025-10-24T00:00:00+00:00" in message and "counted from 2025-10-22T12:00" in message
    assert "45 days = 2025-12-06T12:00" in message
    check_publishable(policy, stored.model_copy(update={"backfilled": True}), datetime(2026, 1, 1, tzinfo=UTC))


def _write_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    t = datetime(2025, 12, 1, tzinfo=UTC)
    pq.write_table(members_table([member("a", "US", "US-CA"), member("b", "US", tier="premium")]), data / "members.parquet")
    pq.write_table(records_table([record("r1", "a", "message.group", ["a", "b"], created_at=t), record("r2", "a", "post", created_at=t)]), data / "records.parquet")
    events = [
        ("e1", "a", "grant", "2024.2", datetime(2025, 1, 1, tzinfo=UTC)),
        ("e2", "a", "deny", "2025.1", datetime(2026, 1, 1, tzinfo=UTC)),  # after as_of: ignored
        ("e3", "b", "deny", "2025.1", datetime(2025, 2, 1, tzinfo=UTC)),
    ]
    pq.write_table(pa.table({
        "event_id": [e[0] for e in events], "member_id": [e[1] for e in events], "purpose": ["ai_training"] * 3,
        "scope": ["first_party"] * 3, "choice": [e[2] for e in events], "source": ["member"] * 3,
        "policy_version": [e[3] for e in events], "recorded_at": pa.array([e[4] for e in events], UTC_TS),
    }, schema=CONSENT_EVENTS_SCHEMA), data / "consent_events.parquet")
    pq.write_table(pa.table({"record_id": ["r2"], "kind": ["topic"], "entity_type": pa.array([None], pa.string()),
                             "start": pa.array([None], pa.int32()), "end": pa.array([None], pa.int32()), "topic": ["health"]},
                            schema=LABELS_SCHEMA), data / "labels.parquet")
    return data


def test_explain_prints_reasons_rules_and_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write_dir(tmp_path)
    args = ["policy", "explain", "--policy", str(RECOMMENDED), "--data", str(data), "--as-of", "2025-12-15T00:00:00Z", "--scope", "first_party"]
    assert main([*args, "--record", "r1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["decision"] == "exclude"
    assert out["reasons"] == ["PARTICIPANT:CONSENT_DENIED", "PARTICIPANT:CONTRACT_EXCLUDED"]
    a = next(s for s in out["subjects"] if s["member_id"] == "a")
    assert a["consent"]["choice"] == "grant" and a["jurisdiction_mode"] == "opt_out" and len(a["events"]) == 1
    assert main([*args, "--record", "r2"]) == 0
    text = capsys.readouterr().out
    assert "SENSITIVE_TOPIC:health" in text and "labels.parquet" in text


def test_explain_unknown_record_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write_dir(tmp_path)
    assert main(["policy", "explain", "--policy", str(RECOMMENDED), "--data", str(data), "--record", "nope"]) == 2
    assert "record 'nope' is not in" in capsys.readouterr().err


def test_explain_on_a_generated_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from consentgate.demo.network import generate_network

    generate_network(members=40, seed=7, out=tmp_path)
    record_id = pq.read_table(tmp_path / "records.parquet", columns=["record_id"]).column(0)[0].as_py()
    assert main(["policy", "explain", "--policy", str(RECOMMENDED), "--data", str(tmp_path), "--record", record_id,
                 "--as-of", "2025-12-01T00:00:00Z", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["record_id"] == record_id and out["decision"] in ("include", "exclude")
    assert "display_name" not in json.dumps(out) and "email" not in json.dumps(out)


def test_policy_package_imports_nothing_from_cli_service_or_build() -> None:
    forbidden = ("consentgate.cli", "consentgate.service", "consentgate.build")
    for path in (ROOT / "src" / "consentgate" / "policy").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"
