"""Validators that turn pattern candidates into detections.

Owns the checks that cut false positives after the multi-pattern scan: Luhn for
card numbers, ISO 13616 mod-97 for IBANs, SSA area/group/serial rules for US SSNs,
``ipaddress`` for IP addresses and the ``phonenumbers`` library for phone numbers.
Each validator takes the candidate text and returns the (possibly shortened)
accepted length in characters, or 0 to reject. Luhn and mod-97 are a few lines
each, so they are written here rather than adding a dependency.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Callable, Final

import phonenumbers

# Regions tried for phone numbers written without a country code: the network's
# largest markets. A number is accepted when it is a *possible* number for one of
# them (length and prefix rules), like Presidio's default leniency.
PHONE_REGIONS: Final = ("US", "GB", "DE", "FR", "IT", "ES", "NL", "BE", "CH", "AT", "SE", "DK", "NO", "FI", "IE", "PL", "IN", "BR", "CA", "AU")

# The same regions, in the order tried: the result is "valid for any of them", so the
# order changes only the work. Germany's plan accepts the most national numbers, so
# most candidates are settled by the first parse.
_TRY_ORDER: Final = ("DE", *(r for r in PHONE_REGIONS if r != "DE"))
assert sorted(_TRY_ORDER) == sorted(PHONE_REGIONS)

_DATE_LIKE: Final = re.compile(r"^(?:\d{4}([-/.])\d{1,2}\1\d{1,2}|\d{1,2}([-/.])\d{1,2}\2\d{2,4})(?: \d{1,2}(?::\d\d)?)?$")
# Postal codes and ids that phonenumbers would accept: 12345-678, 1234-567.
_NOT_PHONE: Final = re.compile(r"^(?:\d{4,5}-\d{3}|\d{3}-\d{2}-\d{4})$")
_PHONE_WORD: Final = re.compile(r"(?i)(?:office|mobile|cell|fax|home|work|tel|phone|desk|direct)\b")
_EXTENSION: Final = re.compile(r" ?(?:x|ext\.?) ?\d{1,5}$")
# An extension marker with no digits after it: what is left of "... 2671 x 4111 1111 ..." when a
# card number takes the digits (``engine._entities`` cuts a candidate at an accepted span).
_BARE_EXTENSION: Final = re.compile(r" ?(?:x|ext\.?)$")
_DIGITS: Final = re.compile(r"\d")


def digits(text: str) -> str:
    """Only the digits of ``text`` (what ``\\d`` matches: any Unicode decimal digit)."""
    if text.isascii():
        return text.translate(_DROP_ASCII_NON_DIGITS)  # the same, without the regex
    return "".join(_DIGITS.findall(text))


_DROP_ASCII_NON_DIGITS: Final = str.maketrans("", "", "".join(chr(c) for c in range(128) if not 48 <= c <= 57))


def luhn_ok(number: str) -> bool:
    """The Luhn (mod 10) checksum used by payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def validate_card(text: str) -> int:
    """Accept 12-19 digit numbers with a valid Luhn checksum, not all one digit."""
    d = digits(text)
    if not 12 <= len(d) <= 19 or len(set(d)) == 1 or not luhn_ok(d):
        return 0
    if not _brand_ok(d):
        return 0
    return len(text)


# (prefix range low, high, allowed lengths): issuer identification numbers of the
# major card schemes (ISO/IEC 7812; public scheme documentation).
_BRANDS: Final = (
    ("4", "4", (13, 16, 19)),  # Visa
    ("51", "55", (16,)),  # Mastercard
    ("2221", "2720", (16,)),  # Mastercard 2-series
    ("34", "34", (15,)), ("37", "37", (15,)),  # American Express
    ("6011", "6011", (16, 17, 18, 19)), ("644", "649", (16, 17, 18, 19)), ("65", "65", (16, 17, 18, 19)),  # Discover
    ("35", "35", (16, 17, 18, 19)), ("1800", "1800", (15,)), ("2131", "2131", (15,)),  # JCB (3528-3589; 35xx accepted)
    ("300", "305", (14, 15, 16)), ("36", "36", (14, 15, 16)), ("38", "39", (14, 15, 16)),  # Diners
    ("62", "62", (16, 17, 18, 19)),  # UnionPay
    ("50", "50", tuple(range(12, 20))), ("56", "69", tuple(range(12, 20))),  # Maestro
)


def _brand_ok(d: str) -> bool:
    for low, high, lengths in _BRANDS:
        head = d[: len(low)]
        if low <= head <= high and len(d) in lengths:
            return True
    return False


def iban_ok(text: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    s = text.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    rearranged = s[4:] + s[:4]
    if rearranged.isascii() and rearranged.isalnum():
        return int(rearranged.translate(_IBAN_DIGITS)) % 97 == 1  # A -> 10 ... Z -> 35
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


_IBAN_DIGITS: Final = str.maketrans({chr(65 + i): str(10 + i) for i in range(26)})


def validate_iban(text: str) -> int:
    """Accept the longest prefix (in whole groups) that passes mod-97."""
    t = text
    while len(t.replace(" ", "")) >= 15:
        if iban_ok(t):
            return len(t)
        t = t[:-1].rstrip()
    return 0


def validate_ssn(text: str) -> int:
    """SSA rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    d = digits(text)
    if len(d) != 9:
        return 0
    area, group, serial = d[:3], d[3:5], d[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return 0
    if len(set(d)) == 1 or d in ("123456789", "078051120", "219099999"):
        return 0
    return len(text)


def validate_ip(text: str) -> int:
    """Accept what ``ipaddress`` parses (v4 dotted quad or v6)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return 0
    if ":" in text and text.count(":") < 2:
        return 0
    return len(text)


@lru_cache(maxsize=1)
def _region_lengths() -> dict[str, frozenset[int]]:
    """Possible national number lengths per region, from phonenumbers' metadata."""
    out: dict[str, frozenset[int]] = {}
    for region in PHONE_REGIONS:
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        desc = meta.general_desc if meta is not None else None
        lengths = set(desc.possible_length or ()) if desc is not None else set()
        out[region] = frozenset(lengths)
    return out


def _phone_possible(text: str) -> bool:
    try:
        if text.startswith("+"):
            return phonenumbers.is_possible_number(phonenumbers.parse(text, None))
        n = len(digits(text))
        lengths = _region_lengths()
        for region in _TRY_ORDER:
            # Skip regions where neither the number nor the number without a
            # trunk prefix has a possible length (saves most parse calls).
            if lengths[region] and n not in lengths[region] and n - 1 not in lengths[region] and n - 2 not in lengths[region]:
                continue
            num = phonenumbers.parse(text, region)
            if phonenumbers.is_possible_number(num) and phonenumbers.is_valid_number(num):
                return True
    except phonenumbers.NumberParseException:
        return False
    return False


def validate_phone(text: str, following: str = "") -> int:
    """Accept a possible+valid number for a known region, trimming trailing groups.

    Without a leading ``+``, a run of plain digits needs 10 or more digits, and a
    number of fewer than 10 digits directly followed by a word is taken for a house
    number ("370 3911 Fourth Avenue"). ``following`` is the text after the candidate.
    """
    t = _BARE_EXTENSION.sub("", text.rstrip(" .-/(")).rstrip(" .-/(")
    if _DATE_LIKE.match(t) or _NOT_PHONE.match(t):
        return 0
    ext = _EXTENSION.search(t)
    core = t[: ext.start()] if ext else t
    if core.startswith("00"):
        core = "+" + core[2:]  # 00 is the international call prefix in most of the world
    n_digits = len(digits(core))
    if not core.startswith("+"):
        if (core.isdigit() and n_digits < 10) or n_digits > 12:
            return 0  # too short for a bare number; too long for a national one (card-like)
        if n_digits < 10 and following[:1] == " " and following[1:2].isalpha() and not _PHONE_WORD.match(following[1:]):
            return 0
    if ext and _phone_possible(core):
        return len(t)
    for _ in range(8):
        n = len(digits(t))
        if n < 7:
            return 0
        if n <= 15 and _phone_possible(t):
            return len(t)
        cut = max(t.rfind(" "), t.rfind("-"), t.rfind("."), t.rfind("/"))
        if cut <= 0:
            return 0
        t = t[:cut].rstrip(" .-/(")
    return 0


def validate_url(text: str) -> int:
    """Strip trailing sentence punctuation and unbalanced closing brackets."""
    t = text
    while t and t[-1] in ".,;:!?'\"":
        t = t[:-1]
    if t.endswith(")") and t.count("(") < t.count(")"):
        t = t[:-1]
    return len(t)


def validate_email(text: str) -> int:
    """Reject local parts or domains that start or end with a dot or hyphen."""
    local, _, domain = text.partition("@")
    if not local or local[0] in ".-" or domain.startswith("-"):
        return 0
    return len(text)


def _ignore_context(check: Callable[[str], int]) -> Callable[[str, str], int]:
    return lambda text, following: check(text)


# entity type -> check(candidate, text following it) -> accepted length (0 = reject)
VALIDATORS: Final[dict[str, Callable[[str, str], int]]] = {
    "CREDIT_CARD": _ignore_context(validate_card),
    "IBAN_CODE": _ignore_context(validate_iban),
    "US_SSN": _ignore_context(validate_ssn),
    "IP_ADDRESS": lambda text, following: 0 if re.match(r"\.\d", following) else validate_ip(text),
    "PHONE_NUMBER": validate_phone,
    "URL": _ignore_context(validate_url),
    "EMAIL_ADDRESS": _ignore_context(validate_email),
}
