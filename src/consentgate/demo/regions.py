"""Region mix and name pools of the synthetic professional network.

Owns *where* synthetic members live and *what they are called*: the weighted
country/subdivision mix (``REGION_MIX``), the region group of each country
(``REGION_GROUPS``, used by tests and docs; the policy engine keeps its own
mapping), and per-culture first/last name pools taken from Faker's pinned
locale lists (no Faker instance is created, so this is fast and deterministic).

``AQ`` (Antarctica) is a valid ISO 3166-1 code that no policy maps to a region
group; about 0.2% of members live there so that fail-closed handling of an
unmapped country can be tested (see docs/data-model.md).
"""

from __future__ import annotations

import importlib
import re
import unicodedata
from functools import lru_cache
from typing import Final, NamedTuple


class Region(NamedTuple):
    country: str
    subdivision: str | None
    weight: float  # percent of members
    culture: str


# Weights are percentages of members (they sum to 100). US states and Canadian
# provinces carry ISO 3166-2 subdivisions; other countries have none.
REGION_MIX: Final[tuple[Region, ...]] = (
    Region("US", "US-CA", 9.0, "us"),
    Region("US", "US-NY", 4.0, "us"),
    Region("US", "US-TX", 4.0, "us"),
    Region("US", "US-WA", 2.0, "us"),
    Region("US", "US-FL", 2.5, "us"),
    Region("US", "US-IL", 2.0, "us"),
    Region("US", "US-MA", 1.5, "us"),
    Region("US", "US-GA", 1.5, "us"),
    Region("US", "US-NJ", 1.5, "us"),
    Region("US", "US-CO", 1.0, "us"),
    Region("US", "US-VA", 1.5, "us"),
    Region("US", "US-PA", 1.5, "us"),
    Region("US", "US-OR", 1.0, "us"),
    Region("US", None, 2.5, "us"),
    Region("IN", None, 14.0, "in"),
    Region("BR", None, 7.0, "br"),
    Region("GB", None, 7.0, "gb"),
    Region("DE", None, 4.0, "de"),
    Region("FR", None, 3.5, "fr"),
    Region("NL", None, 1.5, "nl"),
    Region("IE", None, 0.8, "ie"),
    Region("ES", None, 2.0, "es"),
    Region("IT", None, 2.0, "it"),
    Region("SE", None, 1.0, "se"),
    Region("PL", None, 1.2, "pl"),
    Region("NO", None, 0.5, "no"),
    Region("IS", None, 0.1, "is"),
    Region("CH", None, 1.0, "ch"),
    Region("CA", "CA-ON", 1.8, "us"),
    Region("CA", "CA-QC", 1.1, "qc"),
    Region("CA", "CA-BC", 0.6, "us"),
    Region("CA", "CA-AB", 0.5, "us"),
    Region("HK", None, 1.0, "hk"),
    Region("CN", None, 3.0, "cn"),
    Region("AU", None, 2.5, "nz"),
    Region("JP", None, 1.5, "jp"),
    Region("SG", None, 1.0, "sg"),
    Region("MX", None, 2.5, "mx"),
    Region("ZA", None, 1.0, "za"),
    Region("NG", None, 1.2, "ng"),
    Region("KR", None, 1.0, "kr"),
    Region("AQ", None, 0.2, "us"),
)

EU_EEA: Final = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE IS LI NO".split()
)

REGION_GROUPS: Final[dict[str, str]] = {
    **{c: "eu_eea" for c in EU_EEA},
    "US": "us",
    "GB": "gb",
    "CH": "ch",
    "CA": "ca",
    "HK": "hk",
    "CN": "cn",
    **{c: "other" for c in ("IN", "BR", "AU", "JP", "SG", "MX", "ZA", "NG", "KR")},
}
"""Country -> region group. Countries absent here (``AQ``) are *unmapped*."""


def region_group(country: str) -> str:
    """The region group of a country, ``"unmapped"`` when no group covers it."""
    return REGION_GROUPS.get(country, "unmapped")


class Culture(NamedTuple):
    first_locale: str
    last_locale: str
    last_attr: str
    joiner: str  # between family and given name; "" for CJK native script
    family_first: bool
    romanized: bool  # use Faker's *_romanized_names lists


_CULTURES: Final[dict[str, Culture]] = {
    "us": Culture("en_US", "en_US", "last_names", " ", False, False),
    "gb": Culture("en_GB", "en_GB", "last_names", " ", False, False),
    "ie": Culture("en_IE", "en_IE", "last_names", " ", False, False),
    "nz": Culture("en_NZ", "en_NZ", "last_names", " ", False, False),
    "de": Culture("de_DE", "de_DE", "last_names", " ", False, False),
    "ch": Culture("de_CH", "fr_CH", "last_names", " ", False, False),
    "fr": Culture("fr_FR", "fr_FR", "last_names", " ", False, False),
    "qc": Culture("fr_CA", "fr_CA", "last_names", " ", False, False),
    "nl": Culture("nl_NL", "nl_NL", "last_names", " ", False, False),
    "es": Culture("es_ES", "es_ES", "last_names", " ", False, False),
    "mx": Culture("es_MX", "es_MX", "last_names", " ", False, False),
    "it": Culture("it_IT", "it_IT", "last_names", " ", False, False),
    "br": Culture("pt_BR", "pt_BR", "last_names", " ", False, False),
    "se": Culture("sv_SE", "sv_SE", "last_names", " ", False, False),
    "no": Culture("no_NO", "no_NO", "last_names", " ", False, False),
    "is": Culture("is_IS", "is_IS", "", " ", False, False),
    "pl": Culture("pl_PL", "pl_PL", "male_last_names", " ", False, False),
    "in": Culture("en_IN", "en_IN", "last_names", " ", False, False),
    "za": Culture("zu_ZA", "zu_ZA", "last_names", " ", False, False),
    "ng": Culture("yo_NG", "yo_NG", "last_names", " ", False, False),
    "cn": Culture("zh_CN", "zh_CN", "last_names", "", True, False),
    "cn_latin": Culture("zh_CN", "zh_CN", "last_romanized_names", " ", False, True),
    "hk": Culture("zh_TW", "zh_TW", "last_names", "", True, False),
    "hk_latin": Culture("zh_TW", "zh_TW", "last_romanized_names", " ", False, True),
    "jp": Culture("ja_JP", "ja_JP", "last_names", "", True, False),
    "jp_latin": Culture("ja_JP", "ja_JP", "last_romanized_names", " ", False, True),
    "kr": Culture("ko_KR", "ko_KR", "last_names", "", True, False),
    "sg": Culture("en_US", "zh_CN", "last_romanized_names", " ", False, False),
}

# Share of each region culture's members who carry a Latin-script name instead
# of a native CJK one; and the share of every region's members whose name comes
# from another culture (migration, expatriates).
LATIN_SHARE: Final[dict[str, tuple[str, float]]] = {"cn": ("cn_latin", 0.3), "hk": ("hk_latin", 0.5), "jp": ("jp_latin", 0.4)}
FOREIGN_NAME_SHARE: Final = 0.15
CULTURES: Final = tuple(_CULTURES)

# Hand-written because Faker's is_IS list has no family names (Icelanders use
# patronymics, which Faker builds at call time).
_ICELANDIC_LAST: Final = (
    "Jónsson", "Sigurðsson", "Guðmundsdóttir", "Einarsdóttir", "Magnússon", "Ólafsson",
    "Kristjánsdóttir", "Stefánsson", "Gunnarsdóttir", "Þórsson", "Helgadóttir", "Árnason",
)

_NAME_OK = re.compile(r"^[^\W\d_][^\W\d_'\-]*(?:[-'][^\W\d_]+)*$")


def _faker_list(locale: str, attr: str) -> list[str]:
    module = importlib.import_module(f"faker.providers.person.{locale}")
    raw = getattr(module.Provider, attr)
    names = list(raw.keys()) if isinstance(raw, dict) else list(raw)
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        name = str(name).strip()
        if name.isupper() and len(name) > 1:  # zh_TW romanized names are upper-case
            name = "-".join(part.capitalize() for part in name.split("-"))
        if 1 <= len(name) <= 20 and _NAME_OK.match(name) and name not in seen:
            seen.add(name)
            out.append(name)
    return out


@lru_cache(maxsize=None)
def name_pool(culture: str) -> tuple[tuple[str, ...], tuple[str, ...], Culture]:
    """First names, family names and the layout rules of one culture."""
    spec = _CULTURES[culture]
    first_attr = "first_romanized_names" if spec.romanized else "first_names"
    first = _faker_list(spec.first_locale, first_attr)
    last = list(_ICELANDIC_LAST) if culture == "is" else _faker_list(spec.last_locale, spec.last_attr)
    return tuple(first), tuple(last), spec


@lru_cache(maxsize=None)
def folded_pool(culture: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """ASCII-folded first and family names of a culture ("member"/"user" where nothing is left)."""
    first, last, _ = name_pool(culture)
    return tuple(ascii_fold(x) or "member" for x in first), tuple(ascii_fold(x) or "user" for x in last)


def ascii_fold(name: str) -> str:
    """Lower-case ASCII letters of ``name`` (accents stripped); "" for CJK."""
    folded = unicodedata.normalize("NFKD", name.replace("ß", "ss").replace("Þ", "th").replace("ð", "d"))
    return "".join(ch for ch in folded.lower() if "a" <= ch <= "z")
