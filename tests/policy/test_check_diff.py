"""`policy check` and `policy diff` on the shipped examples and on small targeted edits."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from consentgate.cli.app import main
from consentgate.policy import load_policy
from consentgate.policy.diff import diff_policies
from consentgate.policy.lint import has_errors, lint_policy
from policy_cases import UTC, make_policy, policy_dict

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
STORY = EXAMPLES / "default-on-2024.yaml"
RECOMMENDED = EXAMPLES / "recommended.yaml"


def test_check_fails_the_story_policy_with_clear_findings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(STORY), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and "Not legal advice" in report["note"]
    errors = {(f["code"], f["jurisdiction"]) for f in report["findings"] if f["severity"] == "error"}
    assert ("PRIVATE_COMMUNICATIONS", "US") in errors  # SCA: DMs and InMail included
    assert ("GPC_NOT_HONOURED", "US-CA") in errors
    assert ("CONSENT_MODEL_LOOSER", "BR") in errors and ("CONSENT_MODEL_LOOSER", "IN") in errors
    assert ("RETROACTIVE", "US") in errors
    warnings = {f["code"] for f in report["findings"] if f["severity"] == "warning"}
    assert {"SHORT_NOTICE", "PREMIUM_CONTRACT"} <= warnings
    assert all(f["line"] for f in report["findings"])
    cites = " ".join(f["citation"] for f in report["findings"])
    assert "2702" in cites and "7025" in cites


def test_check_passes_the_recommended_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(RECOMMENDED)]) == 0
    assert "OK: no errors." in capsys.readouterr().out


def test_story_policy_matches_the_brief() -> None:
    story, rec = load_policy(STORY), load_policy(RECOMMENDED)
    assert (story.version, rec.version) == ("2024.2", "2025.1")
    assert story.published_at == datetime(2024, 9, 18, tzinfo=UTC) and story.notice_days == 0 and story.retroactive
    assert "affiliate" in story.scopes() and {"microsoft", "azure-openai"} <= {r.name for r in story.recipients}
    for exempt in ("DE", "NO", "CH", "GB", "CA", "HK", "CN"):
        assert story.jurisdictions.get(exempt, story.jurisdictions.get("EEA")) == "excluded"
    assert story.default_mode == "opt_out"
    assert not rec.retroactive and rec.notice_days >= 30


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"jurisdictions": {"default": "excluded", "CN": "opt_out"}}, "CONSENT_MODEL_LOOSER"),
        ({"jurisdictions": {"default": "excluded", "EEA": "opt_out"}, "sensitive_topics": {"health": "allow"}}, "SENSITIVE_DATA"),
        ({"jurisdictions": {"default": "excluded", "GB": "opt_out"}}, "PRIVATE_COMMUNICATIONS"),
    ],
)
def test_lint_error_where_looser_than_table(overrides: dict[str, object], code: str) -> None:
    findings = lint_policy(make_policy(**overrides))
    assert any(f.severity == "error" and f.code == code for f in findings), findings


def test_short_notice_is_only_a_warning() -> None:
    policy = make_policy(jurisdictions={"default": "excluded", "GB": "opt_out"}, categories={"post": {"require": "author"}},
                         retroactive=False, notice_days=7, sensitive_topics={"default": "exclude"})
    findings = lint_policy(policy)
    assert not has_errors(findings)
    assert any(f.code == "SHORT_NOTICE" and f.severity == "warning" for f in findings)


def test_diff_story_to_recommended_only_narrows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "diff", str(STORY), str(RECOMMENDED), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    kinds = {c["kind"] for c in report["changes"]}
    assert "widening" not in kinds and "narrowing" in kinds and report["blocking"] is False
    keys = {(c["section"], c["key"]) for c in report["changes"] if c["kind"] == "narrowing"}
    assert {("categories", "message.direct"), ("categories", "message.inmail"), ("tiers", "premium"), ("policy", "retroactive")} <= keys


def test_diff_recommended_to_story_widens_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "diff", str(RECOMMENDED), str(STORY), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    widening = {(c["section"], c["key"]): c for c in report["changes"] if c["kind"] == "widening"}
    assert widening[("categories", "message.inmail")]["requires"] == "notice" and widening[("categories", "message.inmail")]["blocking"]
    assert widening[("tiers", "premium")]["requires"] == "fresh_consent"
    assert widening[("policy", "retroactive")]["requires"] == "fresh_consent"
    assert widening[("jurisdictions", "default")]["old"] == "excluded"
    assert report["notice_given_days"] == 0 and report["blocking"] is True


def test_diff_text_output_names_blocking_changes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "diff", str(RECOMMENDED), str(STORY)]) == 1
    out = capsys.readouterr().out
    assert "widening  categories.message.inmail: exclude -> author" in out and "BLOCKING" in out


def _write(tmp_path: Path, name: str, **overrides: object) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(policy_dict(**overrides), sort_keys=False))
    return path


def test_widening_with_enough_notice_passes_and_with_less_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _write(tmp_path, "old.yaml", jurisdictions={"default": "excluded"})
    enough = _write(tmp_path, "enough.yaml", jurisdictions={"default": "excluded", "US": "opt_out"}, notice_days=30,
                    effective_at=datetime(2024, 1, 31, tzinfo=UTC))
    short = _write(tmp_path, "short.yaml", jurisdictions={"default": "excluded", "US": "opt_out"}, notice_days=30,
                   effective_at=datetime(2024, 1, 10, tzinfo=UTC))  # declares 30 days but takes effect after 9
    assert main(["policy", "diff", str(old), str(enough)]) == 0
    assert main(["policy", "diff", str(old), str(short)]) == 1
    report = diff_policies(load_policy(old), load_policy(short))
    assert report.notice_given_days == 9
    assert [(c.key, c.kind, c.blocking) for c in report.changes if c.section == "jurisdictions"] == [("US", "widening", True)]
    back = diff_policies(load_policy(enough), load_policy(old))
    assert [(c.key, c.kind, c.blocking) for c in back.changes if c.section == "jurisdictions"] == [("US", "narrowing", False)]
    capsys.readouterr()


def test_fresh_consent_region_and_opt_in_widening() -> None:
    base = make_policy(jurisdictions={"default": "excluded"}, notice_days=90, effective_at=datetime(2024, 6, 1, tzinfo=UTC))
    to_opt_out = make_policy(jurisdictions={"default": "excluded", "CN": "opt_out"}, notice_days=90, effective_at=datetime(2024, 6, 1, tzinfo=UTC))
    to_opt_in = make_policy(jurisdictions={"default": "excluded", "CN": "opt_in"})
    cn = [c for c in diff_policies(base, to_opt_out).changes if c.key == "CN"][0]
    assert (cn.requires, cn.blocking) == ("fresh_consent", True)
    cn = [c for c in diff_policies(base, to_opt_in).changes if c.key == "CN"][0]
    assert (cn.kind, cn.requires, cn.blocking) == ("widening", "fresh_consent", False)


def test_group_changes_collapse_to_the_group() -> None:
    a = make_policy(jurisdictions={"default": "excluded"})
    b = make_policy(jurisdictions={"default": "excluded", "EEA": "opt_out"}, notice_days=30, effective_at=datetime(2024, 2, 1, tzinfo=UTC))
    keys = [c.key for c in diff_policies(a, b).changes if c.section == "jurisdictions"]
    assert keys == ["EEA"]


def test_build_stage_api_gpc_pii_and_spark_spelling() -> None:
    from consentgate.policy import SPARK, compile_policy, compile_sql, gpc_scopes

    rec = load_policy(RECOMMENDED)
    assert gpc_scopes(rec, "US", "US-CA") == ("first_party", "affiliate", "third_party")
    assert gpc_scopes(rec, "US", "CA") == ("first_party", "affiliate", "third_party")
    assert gpc_scopes(rec, "DE", None) == ("affiliate", "third_party")
    cp = compile_policy(rec)
    assert cp.pii_strategies()["US_SSN"] == "drop_record" and "compensation" in cp.redact_topics()
    assert rec.fideslang_data_use == "train_ai_system" and rec.dpv_purpose == "dpv:CommercialResearch"
    spark = compile_sql(rec, scope="first_party", as_of=datetime(2025, 12, 1, tzinfo=UTC), dialect=SPARK)
    assert "explode(participants)" in spark and "collect_list" in spark and "unnest" not in spark and "TIMESTAMPTZ" not in spark
