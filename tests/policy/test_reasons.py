"""Every reason code from a minimal case, decided by the reference evaluator AND DuckDB (they must agree)."""

from __future__ import annotations

from datetime import datetime

import pytest

from consentgate.errors import PolicyError
from consentgate.policy import EvalContext, compile_sql, evaluate
from policy_cases import T0, UTC, decide_both, grant, make_policy, member, record


def one(policy_overrides: dict[str, object] | None = None, **kw: object) -> tuple[str, ...]:
    policy = make_policy(**(policy_overrides or {}))
    records = kw.pop("records", [record("r1", "a")])
    members = kw.pop("members", [member("a")])
    return decide_both(policy, records, members, **kw)["r1"]  # type: ignore[arg-type]


def test_baseline_is_included() -> None:
    assert one() == ()


def test_unknown_category() -> None:
    assert one(records=[record("r1", "a", category="message.carrier-pigeon")]) == ("UNKNOWN_CATEGORY",)


def test_category_excluded_by_exact_key_beating_glob() -> None:
    overrides = {"categories": {"*": {"require": "author"}, "post": "exclude"}}
    assert one(overrides) == ("CATEGORY_EXCLUDED",)
    assert one(overrides, records=[record("r1", "a", category="comment")]) == ()


def test_category_with_no_rule_is_excluded() -> None:
    assert one({"categories": {"comment": {"require": "author"}}}) == ("CATEGORY_EXCLUDED",)


def test_contract_excluded_for_premium_messages_only() -> None:
    overrides = {"tiers": {"premium": {"exclude": ["message.*"]}}}
    premium = [member("a", tier="premium")]
    assert one(overrides, members=premium, records=[record("r1", "a", category="message.inmail")]) == ("CONTRACT_EXCLUDED",)
    assert one(overrides, members=premium, records=[record("r1", "a", category="post")]) == ()


def test_unknown_tier_is_contract_excluded() -> None:
    assert one(members=[member("a", tier="platinum")]) == ("CONTRACT_EXCLUDED",)


def test_unknown_subject() -> None:
    assert one(members=[member("someone-else")]) == ("UNKNOWN_SUBJECT",)


def test_minor_rule_fails_closed_on_the_ambiguous_birth_year() -> None:
    assert one(members=[member("a", birth_year=T0.year - 17)]) == ("MINOR",)
    # Born in as_of.year - 18: may still be 17 at as_of, so a minor.
    assert one(members=[member("a", birth_year=T0.year - 18)]) == ("MINOR",)
    assert one(members=[member("a", birth_year=T0.year - 19)]) == ()


def test_record_created_after_as_of_is_excluded() -> None:
    from datetime import timedelta

    assert one(records=[record("r1", "a", created_at=T0 + timedelta(seconds=1))]) == ("CREATED_AFTER_AS_OF",)
    assert one(records=[record("r1", "a", created_at=T0)]) == ()


def test_jurisdiction_excluded_by_default_when_not_written() -> None:
    assert one({"jurisdictions": {"US": "opt_out"}}, members=[member("a", country="BR")]) == ("JURISDICTION_EXCLUDED",)


def test_consent_denied_including_gpc() -> None:
    assert one(consent=[grant("a", choice="deny")]) == ("CONSENT_DENIED",)
    assert one(consent=[grant("a", choice="deny", source="gpc")]) == ("CONSENT_DENIED",)


def test_opt_in_required_and_satisfied() -> None:
    overrides = {"jurisdictions": {"default": "opt_in"}}
    assert one(overrides) == ("OPT_IN_REQUIRED",)
    assert one(overrides, consent=[grant("a")]) == ()


def test_notice_not_elapsed_for_opt_out_basis_only() -> None:
    overrides = {"published_at": datetime(2025, 5, 20, tzinfo=UTC), "effective_at": datetime(2025, 6, 20, tzinfo=UTC), "notice_days": 30}
    assert one(overrides) == ("NOTICE_NOT_ELAPSED",)
    assert one(overrides, consent=[grant("a")]) == ()  # an explicit grant does not wait for notice
    # published 2025-05-20 + 30 days = 2025-06-19
    assert one(overrides, as_of=datetime(2025, 6, 18, 23, 59, tzinfo=UTC)) == ("NOTICE_NOT_ELAPSED",)
    assert one(overrides, as_of=datetime(2025, 6, 19, tzinfo=UTC)) == ()


def test_consent_scope_outdated_for_affiliate_added_later() -> None:
    overrides = {"jurisdictions": {"default": "opt_in"}}
    old = [grant("a", scope="affiliate", version="2024.2")]
    assert one(overrides, consent=old, scope="affiliate") == ("CONSENT_SCOPE_OUTDATED",)
    assert one(overrides, consent=[grant("a", scope="affiliate", version="2025.1.0")], scope="affiliate") == ()
    # first_party recipients are older (since 2023.1): the same old grant covers them.
    assert one(overrides, consent=[grant("a", version="2024.2")]) == ()


@pytest.mark.parametrize("version", [None, "", "v2025", "2025.1.0.0.1", "2025..1", "1234567890.1"])
def test_unknown_grant_versions_never_cover(version: str | None) -> None:
    overrides = {"jurisdictions": {"default": "opt_in"}}
    assert one(overrides, consent=[grant("a", version=version)]) == ("CONSENT_SCOPE_OUTDATED",)


def test_versions_compare_as_dotted_integers() -> None:
    overrides = {"jurisdictions": {"default": "opt_in"}, "version": "2025.10",
                 "recipients": [{"name": "linkedin", "scope": "first_party", "since": "2025.10"}]}
    assert one(overrides, consent=[grant("a", version="2025.9")]) == ("CONSENT_SCOPE_OUTDATED",)
    assert one(overrides, consent=[grant("a", version="2025.10")]) == ()
    assert one(overrides, consent=[grant("a", version="2026")]) == ()


def test_retroactive_use_without_grant() -> None:
    overrides = {"retroactive": False, "effective_at": datetime(2025, 1, 1, tzinfo=UTC)}
    old = [record("r1", "a", created_at=datetime(2024, 12, 31, tzinfo=UTC))]
    assert one(overrides, records=old) == ("RETROACTIVE_USE",)
    assert one(overrides, records=old, consent=[grant("a")]) == ()
    assert one(overrides, records=[record("r1", "a", created_at=datetime(2025, 1, 1, tzinfo=UTC))]) == ()


def test_sensitive_topic_exclude_redact_allow() -> None:
    overrides = {"sensitive_topics": {"health": "exclude", "compensation": "redact", "default": "allow"}}
    assert one(overrides, topics=[("r1", "health"), ("r1", "compensation")]) == ("SENSITIVE_TOPIC:health",)
    assert one(overrides, topics=[("r1", "compensation"), ("r1", "political")]) == ()
    assert one({"sensitive_topics": {}}, topics=[("r1", "a-topic-nobody-listed")]) == ("SENSITIVE_TOPIC:a-topic-nobody-listed",)


def test_redacted_topics_are_reported_for_the_build() -> None:
    policy = make_policy(sensitive_topics={"compensation": "redact", "default": "allow"})
    ctx = EvalContext(policy, scope="first_party", as_of=T0, members={"a": member("a")}, consent={}, topics={"r1": {"compensation"}})
    decision = evaluate(record("r1", "a"), ctx)
    assert decision.decision == "include" and decision.redact_topics == ("compensation",)


def test_participant_reasons_only_when_the_category_requires_all() -> None:
    overrides = {"categories": {"message.*": {"require": "all_participants"}, "*": {"require": "author"}}}
    members = [member("a"), member("b")]
    denied = [grant("b", choice="deny")]
    dm = [record("r1", "a", category="message.direct", participants=["a", "b"])]
    assert one(overrides, records=dm, members=members, consent=denied) == ("PARTICIPANT:CONSENT_DENIED",)
    post = [record("r1", "a", category="post", participants=["b"])]
    assert one(overrides, records=post, members=members, consent=denied) == ()


def test_every_participant_counts_and_reasons_combine() -> None:
    overrides = {"categories": {"*": {"require": "all_participants"}}, "tiers": {"premium": {"exclude": ["message.*"]}}}
    members = [member("a"), member("b", tier="premium"), member("c", birth_year=T0.year - 10)]
    dm = [record("r1", "a", category="message.group", participants=["b", "c", "ghost", None, "a"])]
    assert one(overrides, records=dm, members=members) == (
        "PARTICIPANT:CONTRACT_EXCLUDED", "PARTICIPANT:MINOR", "PARTICIPANT:UNKNOWN_SUBJECT",
    )


def test_regions_subdivision_beats_country_beats_group() -> None:
    overrides = {"jurisdictions": {"default": "opt_in", "US": "opt_out", "US-CA": "excluded", "EEA": "excluded", "NO": "opt_out"}}
    assert one(overrides, members=[member("a", "US", "US-CA")]) == ("JURISDICTION_EXCLUDED",)
    assert one(overrides, members=[member("a", "US", "CA")]) == ("JURISDICTION_EXCLUDED",)
    assert one(overrides, members=[member("a", "US", "US-NY")]) == ()
    assert one(overrides, members=[member("a", "DE")]) == ("JURISDICTION_EXCLUDED",)
    assert one(overrides, members=[member("a", "NO")]) == ()
    assert one(overrides, members=[member("a", "ZZ")]) == ("OPT_IN_REQUIRED",)


def test_scope_without_recipient_is_refused() -> None:
    policy = make_policy()
    with pytest.raises(PolicyError, match="no recipient with scope third_party"):
        compile_sql(policy, scope="third_party", as_of=T0)
    with pytest.raises(PolicyError, match="no recipient with scope third_party"):
        EvalContext(policy, scope="third_party", as_of=T0, members={}, consent={})
