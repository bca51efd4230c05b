"""Property: for random policies, members, consent and records, DuckDB SQL == the reference evaluator.

Hypothesis draws the policy (so failures shrink to a small policy) and a seed; each example then
generates a few hundred records, members, consent rows and topics from the seed and decides them
all in ONE DuckDB query. The test asserts that at least 10,000 records were compared per run.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentgate.datamodel import CATEGORIES, TOPICS
from consentgate.policy import ConsentState, Member, Record
from policy_cases import UTC, decide_both, make_policy

RECORDS_PER_EXAMPLE = 400
EXAMPLES = 30
VERSIONS = ["2023.1", "2024.2", "2025.1"]
GRANT_VERSIONS = VERSIONS + [None, "2024.2.1", "2025", "bad", "2025.1.0"]
REGIONS = ["US", "US-CA", "CA", "CA-QC", "EEA", "EU", "DE", "NO", "CN", "GB", "BR"]
MEMBER_REGIONS: list[tuple[str, str | None]] = [
    ("US", None), ("US", "US-CA"), ("US", "CA"), ("US", "US-NY"), ("CA", "QC"), ("CA", "CA-QC"), ("CA", None),
    ("DE", None), ("NO", None), ("CN", None), ("GB", "GB-ENG"), ("BR", None), ("ZZ", None), ("US", ""),
]
CATEGORY_KEYS = list(CATEGORIES) + ["message.*", "*", "ai.*", "profile.*"]
MODES = ["opt_in", "opt_out", "excluded"]
BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


def _day(draw_days: int) -> datetime:
    return BASE_TIME + timedelta(days=draw_days)


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    published = draw(st.integers(0, 700))
    effective = published + draw(st.integers(0, 90))
    scopes = draw(st.lists(st.sampled_from(["first_party", "affiliate", "third_party"]), min_size=1, max_size=3))
    recipients = [{"name": f"r{i}", "scope": s, "since": draw(st.sampled_from(VERSIONS))} for i, s in enumerate(scopes)]
    jurisdictions = draw(st.dictionaries(st.sampled_from(REGIONS), st.sampled_from(MODES), max_size=6))
    if "EU" in jurisdictions and "EEA" in jurisdictions:
        jurisdictions["EU"] = jurisdictions["EEA"]  # overlapping groups must agree (a loader rule)
    if draw(st.booleans()):
        jurisdictions["default"] = draw(st.sampled_from(MODES))
    rule = st.one_of(st.just("exclude"), st.sampled_from(["author", "all_participants"]).map(lambda r: {"require": r}))
    categories = draw(st.dictionaries(st.sampled_from(CATEGORY_KEYS), rule, min_size=1, max_size=6))
    tier_patterns = st.lists(st.sampled_from(CATEGORY_KEYS), max_size=3)
    tiers = draw(st.dictionaries(st.sampled_from(["free", "premium"]), tier_patterns.map(lambda p: {"exclude": p}), max_size=2))
    topics = draw(st.dictionaries(st.sampled_from(list(TOPICS) + ["default"]), st.sampled_from(["exclude", "redact", "allow"]), max_size=5))
    return {
        "version": "2025.1",
        "published_at": _day(published),
        "effective_at": _day(effective),
        "notice_days": draw(st.integers(0, 60)),
        "retroactive": draw(st.booleans()),
        "recipients": recipients,
        "jurisdictions": jurisdictions,
        "minimum_age": draw(st.integers(13, 21)),
        "categories": categories,
        "tiers": tiers,
        "sensitive_topics": topics,
    }


def _world(rng: random.Random, scope: str) -> tuple[list[Record], list[Member], list[ConsentState], list[tuple[str, str | None]]]:
    pool = [f"m{i}" for i in range(40)]
    members = []
    for member_id in pool:
        if rng.random() < 0.9:  # the rest are unknown subjects
            country, sub = rng.choice(MEMBER_REGIONS)
            tier = rng.choice(["free", "premium", "premium", "gold"] if rng.random() < 0.1 else ["free", "premium"])
            members.append(Member(member_id, country, sub, rng.randint(1950, 2015), tier))
    consent = []
    for member_id in pool:
        for s in ("first_party", "affiliate", "third_party"):
            if rng.random() < 0.5:
                choice = rng.choice(["grant", "grant", "deny", "withdrawn?"])
                at = _day(rng.randint(0, 800))
                consent.append(ConsentState(member_id, "ai_training", s, choice, rng.choice(["member", "gpc", "admin"]), rng.choice(GRANT_VERSIONS), at, rng.randint(1, 10**6)))
        if rng.random() < 0.2:  # another purpose must never count
            consent.append(ConsentState(member_id, "other_purpose", scope, "deny", "member", "2025.1", BASE_TIME, 1))
    records, topics = [], []
    for i in range(RECORDS_PER_EXAMPLE):
        rid = f"rec{i}"
        category = rng.choice(list(CATEGORIES) + ["bogus.category"])
        author = rng.choice(pool) if rng.random() < 0.98 else None
        participants = [rng.choice(pool) if rng.random() < 0.95 else None for _ in range(rng.randint(0, 4))]
        if author is not None and rng.random() < 0.3:
            participants.append(author)
        records.append(Record(rid, category, author, tuple(participants), _day(rng.randint(0, 800))))
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            topics.append((rid, rng.choice(list(TOPICS) + ["unlisted_topic", None])))
    return records, members, consent, topics


def test_sql_equals_reference_evaluator_on_at_least_10000_records() -> None:
    compared = [0]

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(policy=policies(), seed=st.integers(0, 2**32 - 1), as_of_day=st.integers(0, 900), data=st.data())
    def prop(policy: dict[str, Any], seed: int, as_of_day: int, data: st.DataObject) -> None:
        loaded = make_policy(**policy)
        scope = data.draw(st.sampled_from(sorted(loaded.scopes())))
        records, members, consent, topics = _world(random.Random(seed), scope)
        decided = decide_both(loaded, records, members, consent, topics, scope=scope, as_of=_day(as_of_day))
        compared[0] += len(decided)

    prop()
    assert compared[0] >= 10_000, compared[0]
