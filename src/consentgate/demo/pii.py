"""Realistic, checksum-valid PII values for the synthetic network, and their validators.

Owns the *values* planted into record texts (the templates in ``templates.py``
decide where they go): payment card numbers that pass Luhn, IBANs whose mod-97
check digits are right (several countries), US SSNs that follow the SSA area /
group / serial rules, phone numbers that ``phonenumbers.is_valid_number``
accepts (US national formats and international ``+CC`` formats), IPv4/IPv6
addresses, URLs and street addresses in US and European layouts.

Every generator takes a ``numpy.random.Generator`` and a count and returns a
list of strings, so the same seed gives the same values. The validators
(``luhn_ok``, ``iban_ok``, ``ssn_ok``) are the ground-truth checks the tests use.
Checksums are hand-written (a few lines each) because the math is the contract
being tested; phone validity is delegated to ``phonenumbers``.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Final

import numpy as np
import phonenumbers

# ---------------------------------------------------------------- cards (Luhn)

_CARD_BRANDS: Final = (("4", 16), ("51", 16), ("52", 16), ("54", 16), ("55", 16), ("34", 15), ("37", 15), ("6011", 16))


def luhn_ok(number: str) -> bool:
    """True when the digits of ``number`` (separators ignored) pass the Luhn check."""
    digits = [int(c) for c in number if c.isdigit()]
    if len(digits) < 12:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _luhn_check_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def _group(digits: str, sizes: tuple[int, ...], sep: str) -> str:
    parts, pos = [], 0
    for size in sizes:
        parts.append(digits[pos : pos + size])
        pos += size
    return sep.join(parts)


def card_numbers(rng: np.random.Generator, n: int) -> list[str]:
    """Visa / Mastercard / Amex / Discover numbers, grouped by spaces or dashes, or plain."""
    brands = rng.integers(0, len(_CARD_BRANDS), n)
    styles = rng.choice(3, n, p=[0.5, 0.2, 0.3])
    body_digits = rng.integers(0, 10, (n, 15))
    out: list[str] = []
    for i in range(n):
        prefix, length = _CARD_BRANDS[int(brands[i])]
        body = prefix + "".join(map(str, body_digits[i, : length - 1 - len(prefix)]))
        number = body + _luhn_check_digit(body)
        sizes = (4, 6, 5) if length == 15 else (4, 4, 4, 4)
        style = int(styles[i])
        out.append(number if style == 2 else _group(number, sizes, " " if style == 0 else "-"))
    return out


# ---------------------------------------------------------------- IBANs (mod 97)

# BBAN layouts: n = digit, a = upper-case letter (ECBS IBAN registry lengths).
_IBAN_BBAN: Final[dict[str, str]] = {
    "DE": "n" * 18,
    "FR": "n" * 23,
    "GB": "aaaa" + "n" * 14,
    "NL": "aaaa" + "n" * 10,
    "ES": "n" * 20,
    "IT": "a" + "n" * 22,
    "IE": "aaaa" + "n" * 14,
    "CH": "n" * 17,
    "PL": "n" * 24,
    "BE": "n" * 12,
}
IBAN_COUNTRIES: Final = tuple(_IBAN_BBAN)
_LETTERS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


_IBAN_DIGITS: Final = str.maketrans({ch: str(10 + i) for i, ch in enumerate(_LETTERS)})


def _iban_numeric(text: str) -> int:
    """ISO 13616: letters become 10..35, then the whole string is one integer."""
    return int(text.translate(_IBAN_DIGITS))


def iban_ok(value: str) -> bool:
    """True when ``value`` (spaces ignored) is a well-formed IBAN with correct mod-97 check digits."""
    compact = value.replace(" ", "").upper()
    if len(compact) < 15 or not compact[:2].isalpha() or not compact[2:4].isdigit() or not (compact.isalnum() and compact.isascii()):
        return False
    return _iban_numeric(compact[4:] + compact[:4]) % 97 == 1


def ibans(rng: np.random.Generator, n: int) -> list[str]:
    """IBANs of the countries in ``IBAN_COUNTRIES``; 60% printed in groups of four."""
    countries = rng.integers(0, len(IBAN_COUNTRIES), n)
    grouped = rng.random(n) < 0.6
    raw = rng.integers(0, 260, (n, 24))
    out: list[str] = []
    for i in range(n):
        country = IBAN_COUNTRIES[int(countries[i])]
        bban = "".join(
            _LETTERS[int(raw[i, j]) % 26] if kind == "a" else str(int(raw[i, j]) % 10)
            for j, kind in enumerate(_IBAN_BBAN[country])
        )
        check = 98 - _iban_numeric(bban + country + "00") % 97
        iban = f"{country}{check:02d}{bban}"
        out.append(" ".join(iban[k : k + 4] for k in range(0, len(iban), 4)) if grouped[i] else iban)
    return out


# ---------------------------------------------------------------- US SSNs


def ssn_ok(value: str) -> bool:
    """SSA rules: area 001-899 except 666, group 01-99, serial 0001-9999."""
    digits = "".join(c for c in value if c.isdigit())
    if len(digits) != 9:
        return False
    area, group, serial = int(digits[:3]), int(digits[3:5]), int(digits[5:])
    return 0 < area < 900 and area != 666 and group > 0 and serial > 0


def ssns(rng: np.random.Generator, n: int) -> list[str]:
    """SSNs as ``AAA-GG-SSSS`` (85%) or ``AAA GG SSSS``."""
    area = rng.integers(1, 899, n)
    area = np.where(area == 666, 667, area)
    group = rng.integers(1, 100, n)
    serial = rng.integers(1, 10000, n)
    dashed = rng.random(n) < 0.85
    return [
        f"{a:03d}-{g:02d}-{s:04d}" if d else f"{a:03d} {g:02d} {s:04d}"
        for a, g, s, d in zip(area.tolist(), group.tolist(), serial.tolist(), dashed.tolist())
    ]


# ---------------------------------------------------------------- phones

# Assigned NANP area codes in populous metros (all in use, none toll-free).
_US_AREA_CODES: Final = (
    201, 202, 206, 212, 213, 214, 215, 248, 267, 281, 303, 305, 310, 312, 313, 323, 347, 404, 408, 415,
    425, 469, 503, 510, 512, 602, 612, 617, 619, 626, 646, 650, 678, 702, 704, 713, 718, 720, 732, 773,
    786, 808, 818, 832, 858, 917, 919, 925, 949, 971,
)
_US_FORMATS: Final = ("({a}) {e}-{l}", "{a}-{e}-{l}", "{a}.{e}.{l}", "+1 {a}-{e}-{l}", "+1 ({a}) {e}-{l}", "+1 {a} {e} {l}")
INTL_PHONE_REGIONS: Final = ("GB", "DE", "FR", "NL", "IN", "BR", "CH", "IE", "ES", "IT", "AU", "JP", "SG", "MX", "SE", "PL")
_POOL_SIZE: Final = 512


def _us_phone_pool(rng: np.random.Generator) -> list[str]:
    pool: list[str] = []
    while len(pool) < _POOL_SIZE:
        area = _US_AREA_CODES[int(rng.integers(len(_US_AREA_CODES)))]
        exchange = int(rng.integers(200, 1000))
        if exchange % 100 == 11 or exchange == 555:
            continue
        line = int(rng.integers(0, 10000))
        number = phonenumbers.parse(f"{area}{exchange}{line:04d}", "US")
        if not phonenumbers.is_valid_number(number):
            continue
        fmt = _US_FORMATS[int(rng.integers(len(_US_FORMATS)))]
        pool.append(fmt.format(a=area, e=exchange, l=f"{line:04d}"))
    return pool


@lru_cache(maxsize=None)
def _example_nsn(region: str) -> str:
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None, region
    return phonenumbers.national_significant_number(example)


def _intl_phone_pool(rng: np.random.Generator) -> list[str]:
    pool: list[str] = []
    while len(pool) < _POOL_SIZE:
        region = INTL_PHONE_REGIONS[int(rng.integers(len(INTL_PHONE_REGIONS)))]
        nsn = _example_nsn(region)
        tail = f"{int(rng.integers(0, 10000)):04d}"
        number = phonenumbers.parse("+" + str(phonenumbers.country_code_for_region(region)) + nsn[:-4] + tail, None)
        if not phonenumbers.is_valid_number(number):
            continue
        style = phonenumbers.PhoneNumberFormat.E164 if rng.random() < 0.25 else phonenumbers.PhoneNumberFormat.INTERNATIONAL
        pool.append(phonenumbers.format_number(number, style))
    return pool


def phone_pools(rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Two pools of validated numbers: US formats and international formats."""
    return _us_phone_pool(rng), _intl_phone_pool(rng)


def phones(rng: np.random.Generator, n: int, pools: tuple[list[str], list[str]] | None = None) -> list[str]:
    """Valid phone numbers: 55% US national/+1 formats, 45% international (+CC) formats."""
    us_pool, intl_pool = pools if pools is not None else phone_pools(rng)
    is_us = rng.random(n) < 0.55
    pick = rng.integers(0, _POOL_SIZE, n)
    return [us_pool[p] if u else intl_pool[p] for u, p in zip(is_us.tolist(), pick.tolist())]


# ---------------------------------------------------------------- network addresses


# First octets whose whole /8 is globally routable (no private, CGNAT, loopback,
# link-local, documentation or benchmark ranges inside).
_GLOBAL_V4_FIRST: Final = np.array([o for o in range(11, 224) if o not in (100, 127, 169, 172, 192, 198, 203)])


def ip_addresses(rng: np.random.Generator, n: int) -> list[str]:
    """Globally routable IPv4 (70%) and IPv6 in RIR-allocated space (2400::-2aff::, compressed form)."""
    is_v4 = rng.random(n) < 0.7
    octets = rng.integers(0, 256, (n, 4))
    first = _GLOBAL_V4_FIRST[rng.integers(0, _GLOBAL_V4_FIRST.size, n)]
    v6 = rng.integers(0, 1 << 16, (n, 8))
    out: list[str] = []
    for i in range(n):
        if is_v4[i]:
            out.append(f"{first[i]}.{octets[i, 1]}.{octets[i, 2]}.{1 + octets[i, 3] % 254}")
        else:
            groups = [0x2400 + int(v6[i, 0]) % 0x0700] + [int(g) for g in v6[i, 1:]]
            if rng.random() < 0.5:
                groups[4:7] = [0, 0, 0]
            value = 0
            for g in groups:
                value = (value << 16) | g
            out.append(ipaddress.IPv6Address(value).compressed)
    return out


_URL_HOSTS: Final = (
    "https://www.{co}.com/careers/{num}", "https://{co}.io/blog/{slug}", "https://github.com/{handle}",
    "https://calendly.com/{handle}/30min", "https://docs.{co}.com/share/{num}", "http://{handle}.dev",
    "https://www.{co}.com/events/{slug}-{num}", "https://drive.{co}.net/f/{num}", "https://{handle}.substack.com/p/{slug}",
)
_URL_WORDS: Final = ("roadmap", "offsite", "q3-review", "launch", "team-plan", "design-notes", "retro", "kickoff", "demo-day")
_URL_COMPANIES: Final = ("northwind", "contoso", "fabrikam", "tailspin", "adatum", "litware", "proseware", "wingtip", "fourthcoffee")


def urls(rng: np.random.Generator, n: int, handles: list[str]) -> list[str]:
    """Web addresses; ``handles`` are ASCII user handles to personalise some of them."""
    kinds = rng.integers(0, len(_URL_HOSTS), n)
    cos = rng.integers(0, len(_URL_COMPANIES), n)
    words = rng.integers(0, len(_URL_WORDS), n)
    nums = rng.integers(1000, 999999, n)
    return [
        _URL_HOSTS[k].format(co=_URL_COMPANIES[c], slug=_URL_WORDS[w], num=num, handle=h)
        for k, c, w, num, h in zip(kinds.tolist(), cos.tolist(), words.tolist(), nums.tolist(), handles)
    ]


# ---------------------------------------------------------------- street addresses

_US_STREETS: Final = ("Maple", "Oak", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Park", "Sunset", "Lincoln", "Highland")
_US_SUFFIX: Final = ("Street", "Avenue", "Boulevard", "Drive", "Lane", "Road", "Court", "Way")
_US_CITIES: Final = (
    ("San Francisco", "CA"), ("Oakland", "CA"), ("Austin", "TX"), ("Seattle", "WA"), ("Denver", "CO"), ("Chicago", "IL"),
    ("Brooklyn", "NY"), ("Boston", "MA"), ("Atlanta", "GA"), ("Portland", "OR"), ("Miami", "FL"), ("Arlington", "VA"),
)
_EU_LAYOUTS: Final = (
    ("{s}straße {n}, {z5} {c}", ("Linden", "Haupt", "Bahnhof", "Garten", "Schiller", "Goethe"), ("Berlin", "München", "Köln", "Hamburg")),
    ("{n} rue {s}, {z5} {c}", ("de la Paix", "Victor Hugo", "des Écoles", "du Moulin", "Pasteur"), ("Paris", "Lyon", "Nantes", "Lille")),
    ("{s} {n}, {z4} {l} {c}", ("Keizersgracht", "Prinsengracht", "Herengracht", "Damrak", "Kalverstraat"), ("Amsterdam", "Utrecht", "Rotterdam")),
    ("Calle {s} {n}, {z5} {c}", ("Mayor", "de Alcalá", "Gran Vía", "de Serrano", "del Prado"), ("Madrid", "Sevilla", "Valencia")),
    ("Via {s} {n}, {z5} {c}", ("Roma", "Garibaldi", "Dante", "Torino", "dei Mille"), ("Milano", "Roma", "Bologna")),
    ("ul. {s} {n}, {z2}-{z3} {c}", ("Marszałkowska", "Długa", "Piękna", "Floriańska"), ("Warszawa", "Kraków", "Gdańsk")),
)


def street_addresses(rng: np.random.Generator, n: int) -> list[str]:
    """US layout (50%) and European layouts (DE, FR, NL, ES, IT, PL)."""
    is_us = rng.random(n) < 0.5
    r = rng.integers(0, 1 << 30, (n, 6))
    out: list[str] = []
    for i in range(n):
        a, b, c, d, e, f = (int(x) for x in r[i])
        if is_us[i]:
            city, state = _US_CITIES[c % len(_US_CITIES)]
            street = f"{_US_STREETS[a % len(_US_STREETS)]} {_US_SUFFIX[b % len(_US_SUFFIX)]}"
            out.append(f"{100 + d % 9800} {street}, {city}, {state} {10000 + e % 89999:05d}")
            continue
        layout, streets, cities = _EU_LAYOUTS[a % len(_EU_LAYOUTS)]
        out.append(
            layout.format(
                s=streets[b % len(streets)], n=1 + d % 180, c=cities[c % len(cities)],
                z5=f"{10000 + e % 89999:05d}", z4=1000 + e % 8999, z2=f"{10 + e % 89:02d}", z3=f"{f % 1000:03d}",
                l=_LETTERS[f % 26] + _LETTERS[(f // 26) % 26],
            )
        )
    return out
