"""The members table of the synthetic network (vectorised, seeded).

Owns who the members are: region (``regions.REGION_MIX``), tier (about 10%
premium), birth year (about 2% minors), display name from their culture's name
pool (with Latin-script and foreign names mixed in), a unique e-mail address,
and a join date. Returns both the Arrow table (``datamodel.MEMBERS_SCHEMA``)
and the per-member numpy arrays the later stages need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consentgate.datamodel import MEMBERS_SCHEMA
from consentgate.demo import regions, timeline

PREMIUM_RATE: Final = 0.10
MINOR_RATE: Final = 0.02
MINOR_BIRTH_YEARS: Final = (2009, 2011)  # inclusive: age 14-16 in 2025, under 18 until 2027
ADULT_BIRTH_YEARS: Final = (1955, 2004)  # inclusive: age 21-70 in 2025
EMAIL_DOMAINS: Final = ("gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com", "hotmail.com", "mail.com")
# Native-script cultures take e-mail local parts from their Latin counterpart.
_EMAIL_CULTURE: Final = {"cn": "cn_latin", "hk": "hk_latin", "jp": "jp_latin", "kr": "us"}


@dataclass(frozen=True)
class Members:
    table: pa.Table
    ids: pa.Array  # member_id strings
    names: pa.Array  # display names
    emails: pa.Array
    handles: pa.Array  # ASCII handles (e-mail local parts) for URLs
    culture: np.ndarray  # index into regions.CULTURES
    group: np.ndarray  # region group name per member (object array)
    subdivision: np.ndarray  # object array, None when absent
    premium: np.ndarray  # bool
    minor: np.ndarray  # bool
    joined: np.ndarray  # int64 microseconds UTC
    activity: np.ndarray  # float64 probabilities, sums to 1

    @property
    def count(self) -> int:
        return int(self.joined.shape[0])


def format_ids(prefix: str, n: int, width: int) -> pa.Array:
    """``prefix`` + zero-padded ``0..n-1`` (``m00000042``), as an Arrow string array."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(n, dtype=np.int64)), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _names(rng: np.random.Generator, culture: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """Display names and ASCII e-mail stems, per member."""
    n = culture.shape[0]
    display: list[pa.Array] = []
    stems: list[pa.Array] = []
    rows: list[np.ndarray] = []
    for ci, cname in enumerate(regions.CULTURES):
        idx = np.flatnonzero(culture == ci)
        if idx.size == 0:
            continue
        first, last, spec = regions.name_pool(cname)
        f = pa.array(first).take(pa.array(rng.integers(0, len(first), idx.size)))
        l_ = pa.array(last).take(pa.array(rng.integers(0, len(last), idx.size)))
        pair = (l_, f) if spec.family_first else (f, l_)
        display.append(pc.binary_join_element_wise(pair[0], pair[1], spec.joiner))
        ef, el = regions.folded_pool(_EMAIL_CULTURE.get(cname, cname))
        stems.append(
            pc.binary_join_element_wise(
                pa.array(ef).take(pa.array(rng.integers(0, len(ef), idx.size))),
                pa.array(el).take(pa.array(rng.integers(0, len(el), idx.size))),
                ".",
            )
            if cname in _EMAIL_CULTURE
            else pc.binary_join_element_wise(
                pa.array(ef).take(pa.array(pc.index_in(f, pa.array(first)))),
                pa.array(el).take(pa.array(pc.index_in(l_, pa.array(last)))),
                ".",
            )
        )
        rows.append(idx)
    order = np.empty(n, dtype=np.int64)
    order[np.concatenate(rows)] = np.arange(n)
    return pa.concat_arrays(display).take(pa.array(order)), pa.concat_arrays(stems).take(pa.array(order))


def _cultures(rng: np.random.Generator, region_idx: np.ndarray) -> np.ndarray:
    code = {c: i for i, c in enumerate(regions.CULTURES)}
    culture: np.ndarray = np.array([code[r.culture] for r in regions.REGION_MIX], dtype=np.int16)[region_idx]
    for native, (latin, share) in regions.LATIN_SHARE.items():
        flip = (culture == code[native]) & (rng.random(culture.shape[0]) < share)
        culture[flip] = code[latin]
    foreign = np.asarray(rng.random(culture.shape[0]) < regions.FOREIGN_NAME_SHARE, dtype=bool)
    culture[foreign] = rng.integers(0, len(regions.CULTURES), int(foreign.sum()))
    return culture


def generate_members(rng: np.random.Generator, n: int) -> Members:
    """``n`` members; every column comes from ``rng`` so the same seed gives the same table."""
    weights = np.array([r.weight for r in regions.REGION_MIX])
    region_idx = rng.choice(len(regions.REGION_MIX), n, p=weights / weights.sum())
    country = np.array([r.country for r in regions.REGION_MIX], dtype=object)[region_idx]
    subdivision = np.array([r.subdivision for r in regions.REGION_MIX], dtype=object)[region_idx]
    premium = rng.random(n) < PREMIUM_RATE
    minor = rng.random(n) < MINOR_RATE
    adult_year = np.clip(np.rint(rng.normal(1988, 10, n)), *ADULT_BIRTH_YEARS).astype(np.int32)
    minor_year = rng.integers(MINOR_BIRTH_YEARS[0], MINOR_BIRTH_YEARS[1] + 1, n).astype(np.int32)
    birth_year = np.where(minor, minor_year, adult_year)
    joined = timeline.spread(rng, np.full(n, timeline.NETWORK_START, dtype=np.int64), timeline.LAST_JOIN, skew=0.7)
    minor_joined = timeline.spread(rng, np.full(n, timeline.MINOR_JOIN_START, dtype=np.int64), timeline.LAST_JOIN)
    joined = np.where(minor, minor_joined, joined)
    culture = _cultures(rng, region_idx)
    names, stems = _names(rng, culture)
    ids = format_ids("m", n, 8)
    number = pc.cast(pa.array(np.arange(n, dtype=np.int64)), pa.string())
    handles = pc.binary_join_element_wise(stems, number, "")
    domains = pa.array(EMAIL_DOMAINS).take(pa.array(rng.integers(0, len(EMAIL_DOMAINS), n)))
    emails = pc.binary_join_element_wise(handles, domains, "@")
    activity = rng.lognormal(0.0, 1.0, n)
    table = pa.Table.from_arrays(
        [
            ids,
            pa.array(country, pa.string()),
            pa.array(subdivision, pa.string()),
            pa.array(birth_year, pa.int32()),
            pa.array(np.where(premium, "premium", "free"), pa.string()),
            names,
            emails,
            pa.array(joined, pa.int64()).cast(MEMBERS_SCHEMA.field("joined_at").type),
        ],
        schema=MEMBERS_SCHEMA,
    )
    group = np.array([regions.region_group(c) for c in np.unique(country)], dtype=object)
    group_of = dict(zip(np.unique(country).tolist(), group.tolist()))
    return Members(
        table=table,
        ids=ids,
        names=names,
        emails=emails,
        handles=handles,
        culture=culture,
        group=np.array([group_of[c] for c in country], dtype=object),
        subdivision=subdivision,
        premium=premium,
        minor=minor,
        joined=joined.astype(np.int64),
        activity=activity / activity.sum(),
    )
