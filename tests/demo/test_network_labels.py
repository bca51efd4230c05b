"""Ground truth: every label slices exactly a valid planted value; topics match their cues."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import phonenumbers
import pyarrow.compute as pc
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentgate import datamodel
from consentgate.demo import cues, pii, templates
from consentgate.demo.network import generate_network

Network = Any  # the gen_network fixture (tests/demo/conftest.py)


def _texts(net: Network) -> dict[str, str]:
    return dict(zip(net.records["record_id"].to_pylist(), net.records["text"].to_pylist()))


def _pii(net: Network) -> list[tuple[str, str, int, int]]:
    lab = net.labels.filter(pc.equal(net.labels["kind"], "pii"))
    return list(zip(*(lab[c].to_pylist() for c in ("record_id", "entity_type", "start", "end"))))


def _valid(entity: str, value: str, emails: set[str], names: set[str]) -> bool:
    if entity == "CREDIT_CARD":
        return pii.luhn_ok(value) and re.fullmatch(r"[\d -]{15,19}", value) is not None
    if entity == "IBAN_CODE":
        return pii.iban_ok(value)
    if entity == "US_SSN":
        return pii.ssn_ok(value) and re.fullmatch(r"\d{3}[- ]\d{2}[- ]\d{4}", value) is not None
    if entity == "PHONE_NUMBER":
        return phonenumbers.is_valid_number(phonenumbers.parse(value, "US"))
    if entity == "IP_ADDRESS":
        return ipaddress.ip_address(value).is_global
    if entity == "EMAIL_ADDRESS":
        return value in emails
    if entity == "PERSON":
        return value in names
    if entity == "URL":
        return re.fullmatch(r"https?://[\w.-]+\.[a-z]{2,}(/\S*)?", value) is not None
    return entity == "STREET_ADDRESS" and re.search(r"\d", value) is not None and "," in value


def test_every_pii_label_slices_a_valid_planted_value(gen_network: Network) -> None:
    text = _texts(gen_network)
    emails = set(gen_network.members["email"].to_pylist())
    names = set(gen_network.members["display_name"].to_pylist())
    labels = _pii(gen_network)
    assert len(labels) == gen_network.result.pii_labels > 1000
    for rid, entity, start, end in labels:
        value = text[rid][start:end]
        assert 0 <= start < end <= len(text[rid])
        assert value == value.strip() and value, (rid, entity)
        assert _valid(entity, value, emails, names), (rid, entity)


def test_spans_of_one_record_do_not_overlap(gen_network: Network) -> None:
    spans: dict[str, list[tuple[int, int]]] = {}
    for rid, _, start, end in _pii(gen_network):
        spans.setdefault(rid, []).append((start, end))
    for rid, items in spans.items():
        items.sort()
        assert all(a[1] <= b[0] for a, b in zip(items, items[1:])), rid


def test_person_labels_never_name_the_author(gen_network: Network) -> None:
    m, r = gen_network.members, gen_network.records
    name_of = dict(zip(m["member_id"].to_pylist(), m["display_name"].to_pylist()))
    author = dict(zip(r["record_id"].to_pylist(), r["author_id"].to_pylist()))
    text = _texts(gen_network)
    for rid, entity, start, end in _pii(gen_network):
        if entity == "PERSON":
            assert text[rid][start:end] in name_of.values()
            # Same-named members exist; only the author's own id must not be the one named.
            assert text[rid][start:end] != name_of[author[rid]] or list(name_of.values()).count(name_of[author[rid]]) > 1


def _name_hits(body: str, names: set[str], max_words: int) -> list[tuple[int, int]]:
    """Where a member's display name starts at a word start (Latin) or anywhere in a CJK run."""
    hits: list[tuple[int, int]] = []
    words = [m.span() for m in re.finditer(r"\S+", body)]
    for i, (start, _) in enumerate(words):
        for k in range(1, max_words + 1):
            if i + k > len(words):
                break
            candidate = body[start : words[i + k - 1][1]].rstrip(",.!?:;)\"'")
            if candidate in names:
                hits.append((start, start + len(candidate)))
    for run in re.finditer(r"[\u3040-\u9fff\uac00-\ud7af]+", body):
        for i in range(run.start(), run.end()):
            for j in range(i + 2, min(run.end(), i + 6) + 1):
                if body[i:j] in names:
                    hits.append((i, j))
    return hits


def test_member_names_appear_only_inside_person_labels(gen_network: Network) -> None:
    person: dict[str, list[tuple[int, int]]] = {}
    for rid, entity, start, end in _pii(gen_network):
        if entity == "PERSON":
            person.setdefault(rid, []).append((start, end))
    names = set(gen_network.members["display_name"].to_pylist())
    max_words = max(len(n.split()) for n in names)
    found = 0
    for rid, body in _texts(gen_network).items():
        for s, e in _name_hits(body, names, max_words):
            found += 1
            assert any(ls <= s and e <= le for ls, le in person.get(rid, [])), (rid, "unlabelled member name")
    assert found >= len([1 for spans in person.values() for _ in spans])  # the scan does find the labelled ones


def test_topic_labels_match_cue_phrases_exactly(gen_network: Network) -> None:
    text = _texts(gen_network)
    lab = gen_network.labels.filter(pc.equal(gen_network.labels["kind"], "topic"))
    labelled: dict[str, set[str]] = {}
    for rid, topic in zip(lab["record_id"].to_pylist(), lab["topic"].to_pylist()):
        assert topic not in labelled.get(rid, set()), "one label per record and topic"
        labelled.setdefault(rid, set()).add(topic)
    phrases = {t: [p.lower() for p in cues.cue_phrases(t)] for t in datamodel.TOPICS}
    for rid, body in text.items():
        low = body.lower()
        present = {t for t, ps in phrases.items() if any(p in low for p in ps)}
        assert present == labelled.get(rid, set()), rid
    cats = dict(zip(gen_network.records["record_id"].to_pylist(), gen_network.records["category"].to_pylist()))
    assert all("job_search" in labelled.get(rid, set()) for rid, c in cats.items() if c == "job.application")


def test_no_template_contains_a_cue_phrase() -> None:
    pools = [p for t in templates.CATEGORY_TEXT.values() for p in (t.openers, t.bodies, t.closers)]
    pools += list(templates.PII_SENTENCES.values()) + list(templates.LOCAL_CLOSERS.values())
    pools += [tuple(templates.FILLERS[k]) for k in templates.FILLERS]
    pools += [cues.TOPIC_FRAMES[k] for k in cues.TOPIC_FRAMES]
    literals = [t.lower() for pool in pools for t in pool]
    for topic in datamodel.TOPICS:
        for phrase in cues.cue_phrases(topic):
            assert not [t for t in literals if phrase.lower() in t], (topic, phrase)
        for cue in cues.TOPIC_CUES[topic]:
            assert cue.phrase in cue.clause
            others = [p.lower() for t in datamodel.TOPICS if t != topic for p in cues.cue_phrases(t)]
            assert not [p for p in others if p in cue.clause.lower()], (topic, cue.clause)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=st.integers(1, 60), seed=st.integers(0, 2**32), rpm=st.floats(0.2, 8.0))
def test_any_small_network_has_exact_spans_and_valid_participants(tmp_path: Path, members: int, seed: int, rpm: float) -> None:
    out = tmp_path / f"n{members}-{seed}"
    result = generate_network(members=members, seed=seed, out=out, records_per_member=rpm)
    rec = pq.read_table(out / "records.parquet")
    lab = pq.read_table(out / "labels.parquet")
    assert rec.num_rows == result.records == max(1, round(members * rpm))
    text = dict(zip(rec["record_id"].to_pylist(), rec["text"].to_pylist()))
    for rid, kind, entity, start, end in zip(*(lab[c].to_pylist() for c in ("record_id", "kind", "entity_type", "start", "end"))):
        if kind == "pii":
            value = text[rid][start:end]
            assert value and value == value.strip() and entity in datamodel.ENTITY_TYPES
    for author, parts in zip(rec["author_id"].to_pylist(), rec["participants"].to_pylist()):
        assert author in parts
