"""What the generated network contains: coverage, structure, rates and consent history."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest

from consentgate import datamodel
from consentgate.demo import consent, members, records, regions, templates, texts, timeline
from consentgate.demo.timeline import POLICY_VERSIONS

Network = Any  # the gen_network fixture (tests/demo/conftest.py)


def _us(ts: Any) -> np.ndarray:
    return np.asarray(pc.cast(ts, "int64").to_numpy(zero_copy_only=False))


def test_every_category_region_group_tier_label_type_and_topic_is_present(gen_network: Network) -> None:
    m, r, lab = gen_network.members, gen_network.records, gen_network.labels
    assert set(r["category"].to_pylist()) == set(datamodel.CATEGORIES)
    groups = {regions.region_group(c) for c in m["country"].to_pylist()}
    assert groups == {"us", "eu_eea", "gb", "ch", "ca", "hk", "cn", "other", "unmapped"}
    assert set(m["tier"].to_pylist()) == set(datamodel.TIERS)
    subdivisions = set(m["subdivision"].drop_null().to_pylist())
    assert {"US-CA", "CA-QC", "CA-ON"} <= subdivisions
    assert {"DE", "FR", "NL", "IE", "ES", "IT", "SE", "PL", "NO", "GB", "CH", "HK", "CN", "BR", "IN"} <= set(m["country"].to_pylist())
    assert set(lab.filter(pc.equal(lab["kind"], "pii"))["entity_type"].to_pylist()) == set(datamodel.ENTITY_TYPES)
    assert set(lab.filter(pc.equal(lab["kind"], "topic"))["topic"].to_pylist()) == set(datamodel.TOPICS)
    assert set(lab["kind"].to_pylist()) == {"pii", "topic"}


def test_member_rates_are_as_documented(gen_network: Network) -> None:
    m = gen_network.members
    n = m.num_rows
    premium = pc.sum(pc.equal(m["tier"], "premium")).as_py() / n
    minors = np.asarray(m["birth_year"]) > timeline.REFERENCE_YEAR - 18
    assert abs(premium - members.PREMIUM_RATE) < 0.03
    assert abs(minors.mean() - members.MINOR_RATE) < 0.012
    assert set(np.asarray(m["birth_year"])[minors]) <= set(range(members.MINOR_BIRTH_YEARS[0], members.MINOR_BIRTH_YEARS[1] + 1))
    share = Counter(regions.region_group(c) for c in m["country"].to_pylist())
    weights = Counter[str]()
    for reg in regions.REGION_MIX:
        weights[regions.region_group(reg.country)] += reg.weight / 100
    for group, expected in weights.items():
        assert abs(share[group] / n - expected) < max(0.03, expected * 0.3), group


def test_ids_and_emails_are_unique_and_times_are_utc(gen_network: Network) -> None:
    m, r, c = gen_network.members, gen_network.records, gen_network.consent
    for table, col in ((m, "member_id"), (m, "email"), (r, "record_id"), (c, "event_id")):
        assert pc.count_distinct(table[col]).as_py() == table.num_rows, col
    assert r.schema.field("created_at").type.tz == "UTC"
    assert _us(m["joined_at"]).max() < timeline.END and _us(r["created_at"]).max() < timeline.END


def test_message_participants_threads_and_authors(gen_network: Network) -> None:
    m, r = gen_network.members, gen_network.records
    member_ids = m["member_id"].to_pylist()
    premium = {i for i, t in zip(member_ids, m["tier"].to_pylist()) if t == "premium"}
    joined = dict(zip(member_ids, _us(m["joined_at"]).tolist()))
    created = _us(r["created_at"])
    post_time = {}
    thread_members: dict[str, set[str]] = {}
    rows = zip(r["record_id"].to_pylist(), r["category"].to_pylist(), r["author_id"].to_pylist(),
               r["participants"].to_pylist(), r["thread_id"].to_pylist(), created.tolist())
    for rid, cat, author, parts, thread, at in rows:
        assert author in parts and len(set(parts)) == len(parts)
        assert at >= joined[author]
        if cat in datamodel.MESSAGE_CATEGORIES:
            assert thread is not None
            assert thread_members.setdefault(thread, set(parts)) == set(parts)  # one thread, one set of people
            low, high = (3, 8) if cat == "message.group" else (2, 2)
            assert low <= len(parts) <= high, (rid, cat)
            if cat == "message.inmail":
                assert author in premium
        else:
            assert parts == [author]
            if cat == "post":
                post_time[rid] = at
            if cat == "comment" and thread is not None:
                assert post_time[thread] <= at  # the post exists and came first
            elif cat != "comment":
                assert thread is None
    assert np.all(np.diff(created) >= 0)  # ordered by time


def test_consent_history_shape(gen_network: Network) -> None:
    m, c = gen_network.members, gen_network.consent
    for col, vocab in (("purpose", datamodel.PURPOSES), ("scope", datamodel.SCOPES), ("choice", datamodel.CHOICES),
                       ("source", datamodel.SOURCES)):
        assert set(c[col].to_pylist()) == set(vocab), col
    joined = dict(zip(m["member_id"].to_pylist(), _us(m["joined_at"]).tolist()))
    at = _us(c["recorded_at"])
    assert all(t >= joined[who] for who, t in zip(c["member_id"].to_pylist(), at.tolist()))
    assert np.all(np.diff(at) >= 0)
    versions = c["policy_version"].to_pylist()
    expected = [POLICY_VERSIONS[i] for i in timeline.policy_version_index(at)]
    assert all(v is None or v == e for v, e in zip(versions, expected))
    assert set(versions) == {None, *POLICY_VERSIONS}
    assert all(s == "import" for s, v in zip(c["source"].to_pylist(), versions) if v is None)
    silent = 1 - pc.count_distinct(c["member_id"]).as_py() / m.num_rows
    assert consent.SILENT_RATE <= silent < 0.5  # some members never chose anything
    # Choices both before and after the September 2024 change.
    assert (at < timeline.POLICY_2024).any() and (at >= timeline.POLICY_2024).any()


def test_gpc_signals_come_from_california_and_deny(gen_network: Network) -> None:
    m, c = gen_network.members, gen_network.consent
    sub = dict(zip(m["member_id"].to_pylist(), m["subdivision"].to_pylist()))
    gpc = c.filter(pc.equal(c["source"], "gpc"))
    assert gpc.num_rows > 0
    assert {sub[x] for x in gpc["member_id"].to_pylist()} == {"US-CA"}
    assert set(gpc["choice"].to_pylist()) == {"deny"}
    assert set(gpc["scope"].to_pylist()) == {"affiliate", "third_party"}


def test_explicit_opt_outs_and_opt_ins_and_changes_of_mind_exist(gen_network: Network) -> None:
    c = gen_network.consent.filter(pc.equal(gen_network.consent["source"], "member"))
    history: dict[str, list[str]] = {}
    for who, scope, choice in zip(c["member_id"].to_pylist(), c["scope"].to_pylist(), c["choice"].to_pylist()):
        if scope == "first_party":
            history.setdefault(who, []).append(choice)
    assert any(h[-1] == "deny" for h in history.values())
    assert any(h[-1] == "grant" for h in history.values())
    assert any(len(set(h)) == 2 for h in history.values())


def test_non_ascii_cjk_and_emoji_text_is_present(gen_network: Network) -> None:
    names = gen_network.members["display_name"].to_pylist()
    all_text = "\n".join(gen_network.records["text"].to_pylist())
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in names)
    assert any(any(ch in "éèüöäñçøåß" for ch in n) for n in names)
    assert any("\U0001f300" <= ch <= "\U0001faff" for ch in all_text)
    assert any("\u3040" <= ch <= "\u30ff" for ch in all_text)  # Japanese kana in closers
    assert not any(n != n.strip() or "  " in n for n in names)


def test_texts_are_varied(gen_network: Network) -> None:
    r = gen_network.records
    distinct = pc.count_distinct(r["text"]).as_py()
    assert distinct > 0.5 * r.num_rows
    by_cat = Counter(r["category"].to_pylist())
    assert min(by_cat.values()) > 0
    pools = sum(len(t.bodies) + len(t.openers) for t in templates.CATEGORY_TEXT.values())
    assert pools >= 100


def test_category_shares_follow_weights(gen_network: Network) -> None:
    counts = Counter(gen_network.records["category"].to_pylist())
    n = gen_network.records.num_rows
    for cat, weight in records.CATEGORY_WEIGHTS.items():
        assert abs(counts[cat] / n - weight) < 0.02 + weight * 0.1, cat


@pytest.mark.parametrize("entity", datamodel.ENTITY_TYPES)
def test_pii_rates_are_as_documented(gen_network: Network, entity: str) -> None:
    lab = gen_network.labels.filter(pc.equal(gen_network.labels["entity_type"], entity))
    observed = lab.num_rows / gen_network.records.num_rows
    expected = texts.expected_pii_per_record()[entity]
    assert abs(observed - expected) < 0.15 * expected + 0.002, (observed, expected)


@pytest.mark.parametrize("topic", datamodel.TOPICS)
def test_topic_rates_are_as_documented(gen_network: Network, topic: str) -> None:
    lab = gen_network.labels.filter(pc.equal(gen_network.labels["topic"], topic))
    observed = lab.num_rows / gen_network.records.num_rows
    expected = texts.expected_topic_per_record()[topic]
    assert abs(observed - expected) < 0.2 * expected + 0.002, (observed, expected)
