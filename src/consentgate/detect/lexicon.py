"""Lexicons: person names from Faker, common words, member names, topic phrases.

Owns building the word lists the detector compiles as literals:

* first and last names from every locale of the installed Faker package
  (``faker.providers.person.<locale>.Provider``), built at first use and cached
  (``name_lexicon``), never downloaded;
* common English words (Faker's ``lorem.en_US`` word list) that must not count as a
  name on their own ("Will", "May", "Grant");
* member directory names: each ``display_name`` as a whole and its tokens;
* topic phrases from ``topics.yaml`` shipped beside this module.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Final, Iterable

import yaml

from consentgate.datamodel import TOPICS
from consentgate.detect.cache import cache_dir, code_key, touch, trusted, write_entry
from consentgate.errors import DetectError

_NAME_TOKEN: Final = re.compile(r"^[^\W\d_][^\W\d_'’-]*(?:['’-][^\W\d_]+)*$")
MIN_NAME_LEN: Final = 3


@dataclass(frozen=True)
class NameLexicon:
    """First and last names (as written, capitalised) and words that are not names alone."""

    first: frozenset[str]
    last: frozenset[str]
    common: frozenset[str]


def _provider_list(provider: Any, attr: str) -> list[str]:
    for klass in provider.__mro__:
        value = klass.__dict__.get(attr)
        if isinstance(value, (list, tuple, set, frozenset)):
            return [v for v in value if isinstance(v, str)]
        if isinstance(value, dict):
            return [v for v in value if isinstance(v, str)]
        if value is not None:
            return []
    return []


def _usable(name: str) -> bool:
    return len(name) >= MIN_NAME_LEN and name[0].isupper() and bool(_NAME_TOKEN.match(name))


@lru_cache(maxsize=1)
def name_lexicon() -> NameLexicon:
    """Every Faker locale's first and last names (single tokens, capitalised, >= 3 letters).

    Built once per installation and kept in the detector cache as JSON: building it imports
    every Faker person and address locale (0.4 s and about 30 MB that stay in each process,
    and each detection worker of a build is a new process). The cache key covers what the
    lists depend on: Faker's version, Python's Unicode tables and this module's source.
    """
    path = _lexicon_cache_path()
    cached = _read_lexicon(path) if path is not None else None
    if cached is not None:
        return cached
    lexicon = _build_name_lexicon()
    if path is not None:
        _write_lexicon(path, lexicon)
    return lexicon


def _lexicon_cache_path() -> Path | None:
    h = code_key(__file__)
    try:
        faker_version = metadata.version("faker")
    except metadata.PackageNotFoundError:
        return None  # no cache without a version to key it on
    if h is None:
        return None
    h.update(faker_version.encode())
    return cache_dir() / f"names-{faker_version}-{h.hexdigest()[:32]}.json"


def _read_lexicon(path: Path) -> NameLexicon | None:
    """The cached lexicon at ``path``, or None when there is none or it is not one (it is then rebuilt)."""
    if not trusted(path):
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        lists = [data[k] for k in ("first", "last", "common")]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not all(isinstance(x, list) and all(isinstance(w, str) for w in x) for x in lists):
        return None
    touch(path)
    return NameLexicon(frozenset(lists[0]), frozenset(lists[1]), frozenset(lists[2]))


def _write_lexicon(path: Path, lexicon: NameLexicon) -> None:
    data = {"first": sorted(lexicon.first), "last": sorted(lexicon.last), "common": sorted(lexicon.common)}
    write_entry(path, json.dumps(data, ensure_ascii=False).encode("utf-8"))


def _build_name_lexicon() -> NameLexicon:
    import faker.providers.lorem.en_US as lorem
    import faker.providers.person as person

    first: set[str] = set()
    last: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"faker.providers.person.{module.name}").Provider
        for attr in ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary"):
            first.update(n for n in _provider_list(provider, attr) if _usable(n))
        last.update(n for n in _provider_list(provider, "last_names") if _usable(n))
    common = {w.lower() for w in lorem.Provider.word_list}
    common.update(_EXTRA_COMMON)
    # Places that are also given or family names ("Laura", "Austin") stay usable as names.
    cities, countries = _place_and_language_names()
    common.update(w.lower() for w in cities - first - last)
    common.update(w.lower() for w in countries)
    return NameLexicon(frozenset(first), frozenset(last), frozenset(common))


def _place_and_language_names() -> tuple[set[str], set[str]]:
    """Single-word (city and region names, country and language names) from Faker."""
    import faker.providers.address as address
    import faker.providers.person as person

    places: set[str] = set()
    countries: set[str] = set(person.Provider.language_names)
    for module in pkgutil.iter_modules(address.__path__):
        provider = importlib.import_module(f"faker.providers.address.{module.name}").Provider
        for attr in ("cities", "city_names", "states", "provinces", "regions", "big_cities"):
            places.update(x for x in _provider_list(provider, attr) if " " not in x)
        countries.update(x for x in _provider_list(provider, "countries") if " " not in x)
    return places, countries


# Sentence starters and calendar words that are also given names in some locale.
# Faker's lorem list covers most common words; these few are frequent in messages.
_EXTRA_COMMON: Final = frozenset(
    "hi hey hello dear thanks thank cheers regards best sincerely monday tuesday wednesday thursday friday saturday "
    "sunday january february march april may june july august september october november december happy great "
    "sure yes no ok okay please sorry congrats welcome good nice will can may june august grant mark bill rose "
    "faith hope joy dawn summer autumn winter spring sky star page case chase cash rich price young long king "
    "street avenue road lane drive court suite apt unit box via rue calle team group company the our your "
    "are is was were be been am do does did have has had can could would should shall must might let lets let's "
    "a an and or but if so what when where who whom why how this that these those it its i you he she we they me "
    "him her us them my his their just also not all any some one two three quick see here there thank "
    "translate summarise summarize draft write suggest rewrite explain make help share sharing saved great "
    "morning afternoon evening everyone folks team all hi hey hello dear big excited celebrating congratulations "
    "english german french spanish italian dutch polish portuguese chinese japanese korean hindi arabic "
    "austin boston denver seattle chicago atlanta phoenix dallas houston brooklyn paris london berlin "
    "atlas horizon spark python java rust kotlin swift hr sql api ceo cto vp san santa los las new fort port "
    "mount saint st lake north south east west upper lower love date hate dr mr mrs ms prof sir "
    "inc ltd llc corp co plc gmbh ag sa group union orchestra investments associates technologies partners "
    "bank university college school hospital foundation agency institute society club coves parks extensions "
    "research ventures capital labs systems solutions services consulting holdings industries media studio"
    .split()
)


def member_name_tokens(names: Iterable[str]) -> tuple[list[str], set[str]]:
    """Distinct full display names (two tokens or more) and their single name tokens.

    The plain Python statement of the rules: ``members.member_tokens_arrow`` computes
    the same with Arrow kernels, calls this for the rare names holding whitespace other
    than the plain space, and is property-tested equal to it (tests/detect/test_detect_members.py).
    """
    full: set[str] = set()
    tokens: set[str] = set()
    for raw in names:
        if not isinstance(raw, str):
            continue
        name = " ".join(raw.split())
        parts = [p for p in name.split(" ") if _usable(p)]
        if (len(name.split(" ")) >= 2 and len(name) >= 5) or (len(name) >= 2 and not name.isascii() and not parts):
            full.add(name)  # whole names, and names in scripts without capitals (CJK)
        tokens.update(parts)
    return sorted(full), tokens


@dataclass(frozen=True)
class TopicLexicon:
    """Phrases per topic with weights, and the score threshold per topic."""

    phrases: dict[str, dict[str, float]]
    thresholds: dict[str, float]


@lru_cache(maxsize=1)
def topic_lexicon() -> TopicLexicon:
    """Load ``topics.yaml`` (shipped with the package) and check it names only known topics."""
    text = resources.files("consentgate.detect").joinpath("topics.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    phrases: dict[str, dict[str, float]] = {}
    thresholds: dict[str, float] = {}
    for topic, body in data["topics"].items():
        if topic not in TOPICS:
            raise DetectError(f"topics.yaml names unknown topic {topic!r}", value=topic)
        thresholds[topic] = float(body["threshold"])
        table: dict[str, float] = {}
        for weight_key, weight in (("strong", 1.0), ("medium", 0.35), ("weak", 0.15)):
            for phrase in body.get(weight_key, []) or []:
                table[" ".join(str(phrase).lower().split())] = weight
        phrases[topic] = table
    missing = set(TOPICS) - set(phrases)
    if missing:
        raise DetectError(f"topics.yaml lacks topics {sorted(missing)}")
    return TopicLexicon(phrases, thresholds)
