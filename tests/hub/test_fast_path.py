"""The hub's scalar standardisation (customer_mdm.hub.standardise: fast_name, fast_phone, ...)
gives exactly what the pipeline's DataFrame standardisers give, value by value.

Values: the generator's own renderings (every name, birth-date, phone, region and address style
of every source) of a few hundred people, and variants of them (spaces, full-width forms,
honorifics, case, punctuation, other scripts). The DataFrame standardisers run once over all of
them (vectorised, as the standardise step runs them); each value then goes through the fast path
alone. A value the fast path does not take (None) falls back to the DataFrame path in the hub,
so only agreement is required of it -- and that it takes the generator's ordinary renderings.
No warehouse needed.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pandas as pd
import pytest

from customer_mdm.hub import matching
from customer_mdm.hub import standardise as hs
from customer_mdm.standardize.dates import standardize_birth_dates
from customer_mdm.standardize.names import standardize_names
from customer_mdm.standardize.phones import standardize_phones
from customer_mdm.standardize.regions import parse_addresses, standardize_regions
from mdm_devtools import generate as g

PEOPLE = 600


def _clean(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def _uniform(k: int) -> list[float]:
    return [1.0 / k] * k


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[str]]:
    """Raw values as the generator renders them for the sources, every style equally likely."""
    rng = np.random.Generator(np.random.PCG64(7))
    clock = g._Clock(_start(), 3)
    people = g._make_people(rng, PEOPLE, clock)
    pi = np.arange(PEOPLE, dtype=np.int64)
    t = np.full(PEOPLE, clock.last, dtype=np.int64)

    def u() -> np.ndarray:
        return rng.random(PEOPLE)

    names: list[str] = []
    for _ in range(4):
        names += [str(v) for v in g._render_name(people, pi, u(), u(), _uniform(8))]
    births: list[str] = []
    for _ in range(3):
        births += [str(v) for v in g._render_birth(people, pi, u(), u(), _uniform(6))]
    phones: list[str] = []
    for _ in range(3):
        rendered_phones, _invalid, _digits = g._render_phone(people, pi, t, u(), u(), _uniform(5), _uniform(8))
        phones += [str(v) for v in rendered_phones]
    province, city, district = g._render_geo(people, pi, t, u(), u(), u())
    callcentre_city = g._city_variant(g._ref().dist_city[people.dist_at(pi, t)], u(), [0.25] * 4)
    addresses = [str(v) for v in g._render_address(people, pi, t, u())]
    addresses += [str(v) for v in g._shipping_address(people, pi, t, u(), u())]
    return {
        "name": names,
        "birth": births,
        "phone": phones,
        "province": [str(v) for v in province],
        "city": [str(v) for v in city] + [str(v) for v in callcentre_city],
        "district": [str(v) for v in district],
        "address": addresses,
    }


def _start() -> Any:
    import inspect

    return inspect.signature(g.generate_landing).parameters["start"].default


_ODD = ["\u00b7", "\u200b", "\t", "\u3000", "é", "ß", "ア", "한", "Ж", "😀", "№", "\u00a0", "ｗ", "１", "（", "·"]


def _variants(values: list[str], seed: int) -> list[str]:
    """Typing variants: spaces, full-width forms, honorifics, case, punctuation, other scripts."""
    rnd = random.Random(seed)
    out: list[str] = []
    for v in values:
        if not v:
            continue
        k = rnd.randrange(len(v) + 1)
        out += [
            f" {v} ",
            v[:k] + " " + v[k:],
            v[:k] + "  " + v[k:],
            v.upper(),
            v.lower(),
            v.title(),
            "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in v),
            v + rnd.choice(["先生", "女士", "小姐", ".", "-", "88", "_1990"]),
            rnd.choice(["Mr. ", "Ms ", "Dr ", "+86 ", "0086", "86", "0", "(", "中国"]) + v,
            v[:k] + rnd.choice(_ODD) + v[k:],
            v[:k] + v[k + 1 :],
            v[:k] + rnd.choice("0123456789-/.年月日 ") + v[k:],
        ]
    return out + _EDGES


#: edge values of every kind (each standardiser gets all of them)
_EDGES = [
    *("", " ", "未知", "test", "N/A", "王", "Zhang", "x" * 120, "1" * 30, "2/30", "王先生", "Mr. Chen", "Wei Zhang"),
    *("xiaowang88", "wang.wei", "ZhangWei_1990", "linda", "曾小明", "尉迟敬德", "單于", "阿依古丽买买提", "王" * 8),
    *("1899-12-31", "1900-01-01", "2999-01-01", "1990-02-29", "2000-02-29", "1900-02-29", "1990-13-05", "1990-25-03"),
    *("03-07", "3月7日", "02-29", "13-25", "1990-03-07 08:00", "1990-03-07T08:00:00Z", "19900307", "1990年3月7日"),
    *("+86 138 0013 8000", "0086 13800138000", "8613800138000", "010-6512 3456", "(021) 6123 4567", "400-810-8888"),
    *("13800138000, 13900139000", "13800138000 ext 8", "+1 415 555 0100", "1380013800", "138001380001", "12345"),
    *("上海市浦东新区张江路1号", "沪闵行区莘庄镇1号", "广东深圳南山区科技园", "南京西路1号", "Shanghai闵行区1号"),
]


def _compare(values: list[str], frame: pd.DataFrame, fast: Any) -> tuple[int, list[tuple[str, str]]]:
    """(values the fast path took, (column, reason) of every disagreement) -- never the value."""
    taken = 0
    bad: list[tuple[str, str]] = []
    for i, value in enumerate(values):
        got = fast(value)
        if got is None:
            continue
        taken += 1
        got_d = dict(got)
        assert set(got_d) == set(frame.columns)
        for col in frame.columns:
            if _clean(got_d[col]) != _clean(frame.iloc[i][col]):
                bad.append((col, f"value #{i}"))
    return taken, bad


@pytest.mark.parametrize(
    ("kind", "standardise", "fast"),
    [
        ("name", standardize_names, hs.fast_name),
        ("phone", standardize_phones, hs.fast_phone),
        ("birth", standardize_birth_dates, hs.fast_birth_date),
        ("address", parse_addresses, hs.fast_address),
    ],
)
def test_fast_path_equals_the_dataframe_standardiser(rendered: dict[str, list[str]], kind: str, standardise, fast):
    plain = list(dict.fromkeys(rendered[kind]))
    variants = list(dict.fromkeys(_variants(plain, seed=len(kind))))
    values = plain + [v for v in variants if v not in set(plain)]
    frame = standardise(pd.Series(values, dtype=object)).reset_index(drop=True)
    taken, bad = _compare(values, frame, fast)
    assert not bad, bad[:10]
    # the fast path takes the generator's ordinary renderings (the hub's hot path) ...
    taken_plain = sum(fast(v) is not None for v in plain)
    assert taken_plain >= 0.97 * len(plain), (taken_plain, len(plain))
    # ... and most typing variants; what it declines goes to the DataFrame path
    assert taken >= 0.6 * len(values), (taken, len(values))


def test_fast_region_equals_standardize_regions(rendered: dict[str, list[str]]):
    rnd = random.Random(3)
    rows = list(zip(rendered["province"], rendered["city"][:PEOPLE], rendered["district"], strict=True))
    rows += [(None, c, None) for c in rendered["city"]]  # a call-centre city alone
    rows += [(rnd.choice([p, None, "", " "]), c.lower(), d + " ") for p, c, d in rows[:200]]
    rows = list(dict.fromkeys(rows))

    def col(k: int) -> pd.Series:
        return pd.Series([r[k] or None for r in rows], dtype=object)

    frame = standardize_regions(col(0), col(1), col(2)).reset_index(drop=True)
    bad = []
    for i, (p, c, d) in enumerate(rows):
        got = dict(hs.fast_region(p or None, c or None, d or None))
        for k in frame.columns:
            if _clean(got[k]) != _clean(frame.iloc[i][k]):
                bad.append((k, f"row #{i}"))
    assert not bad, bad[:10]


def test_the_matcher_and_the_api_use_the_fast_path(rendered: dict[str, list[str]]):
    """The hub's per-value wrappers answer from the fast path (and still equal the DataFrame path)."""
    names = list(dict.fromkeys(rendered["name"]))[:200]
    frame = standardize_names(pd.Series(names, dtype=object)).reset_index(drop=True)
    hs.fast_name.cache_clear()
    matching._std_name.cache_clear()
    for i, raw in enumerate(names):
        got = dict(matching._std_name(raw))
        assert {k: _clean(v) for k, v in got.items()} == {k: _clean(v) for k, v in frame.iloc[i].items()}
    assert hs.fast_name.cache_info().misses == len(names)  # every one went through the fast path

    phones = list(dict.fromkeys(rendered["phone"]))
    frame = standardize_phones(pd.Series(phones, dtype=object)).reset_index(drop=True)
    for i, raw in enumerate(phones):
        want = frame.iloc[i]["phone_e164"] if bool(frame.iloc[i]["phone_valid"]) and raw.strip() else None
        assert hs.standard_mobile(raw) == _clean(want)
