"""PII value generators and their validators (the checks the labels are held to)."""

from __future__ import annotations

import ipaddress
import re

import numpy as np
import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.demo import pii

SEEDS = st.integers(0, 2**32)


@settings(max_examples=20, deadline=None)
@given(seed=SEEDS)
def test_cards_pass_luhn_and_one_changed_digit_fails(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for card in pii.card_numbers(rng, 50):
        assert pii.luhn_ok(card)
        digits = [i for i, c in enumerate(card) if c.isdigit()]
        pos = digits[int(rng.integers(len(digits)))]
        changed = card[:pos] + str((int(card[pos]) + 1 + int(rng.integers(9))) % 10) + card[pos + 1 :]
        assert not pii.luhn_ok(changed)


@settings(max_examples=20, deadline=None)
@given(seed=SEEDS)
def test_ibans_pass_mod97_and_a_swapped_pair_or_changed_digit_fails(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = pii.ibans(rng, 50)
    assert {v[:2] for v in pii.ibans(rng, 400)} == set(pii.IBAN_COUNTRIES)
    for iban in values:
        assert pii.iban_ok(iban)
        compact = iban.replace(" ", "")
        changed = compact[:-1] + str((int(compact[-1]) + 1) % 10)
        assert not pii.iban_ok(changed)


def test_known_good_and_bad_checksums() -> None:
    assert pii.luhn_ok("4111 1111 1111 1111") and not pii.luhn_ok("4111 1111 1111 1112")
    assert pii.iban_ok("DE89 3704 0044 0532 0130 00") and pii.iban_ok("GB82WEST12345698765432")
    assert not pii.iban_ok("GB82WEST12345698765433") and not pii.iban_ok("DE89")
    assert pii.ssn_ok("123-45-6789")
    for bad in ("000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000", "12-345-678"):
        assert not pii.ssn_ok(bad), bad


@settings(max_examples=20, deadline=None)
@given(seed=SEEDS)
def test_ssns_follow_ssa_rules(seed: int) -> None:
    assert all(pii.ssn_ok(v) for v in pii.ssns(np.random.default_rng(seed), 200))


def test_phones_are_valid_in_us_and_international_formats() -> None:
    rng = np.random.default_rng(3)
    values = pii.phones(rng, 2000)
    regions = set()
    for v in values:
        number = phonenumbers.parse(v, "US")
        assert phonenumbers.is_valid_number(number), v
        regions.add(phonenumbers.region_code_for_number(number))
    assert "US" in regions and len(regions - {"US", "CA"}) >= 10
    assert any(v.startswith("(") for v in values) and any(v.startswith("+44") for v in values)


def test_ip_urls_and_addresses_look_right() -> None:
    rng = np.random.default_rng(4)
    ips = pii.ip_addresses(rng, 20_000)
    assert any(":" in ip for ip in ips) and any("." in ip for ip in ips)
    assert all(ipaddress.ip_address(ip).is_global for ip in ips)  # no private/documentation ranges
    assert all(u.startswith(("http://", "https://")) for u in pii.urls(rng, 50, ["anna"] * 50))
    addresses = pii.street_addresses(rng, 200)
    us = [a for a in addresses if re.fullmatch(r"\d+ \w+ \w+, [\w ]+, [A-Z]{2} \d{5}", a)]
    assert 60 < len(us) < 140  # about half are US layout
    assert any("straße" in a for a in addresses) and any(" rue " in a for a in addresses)
    assert any(re.search(r", \d{4} [A-Z]{2} ", a) for a in addresses)  # Dutch postcode


def test_same_seed_same_values() -> None:
    def draw(seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        return pii.card_numbers(rng, 5) + pii.ibans(rng, 5) + pii.phones(rng, 5) + pii.ip_addresses(rng, 5)

    assert draw(1) == draw(1) and draw(1) != draw(2)
