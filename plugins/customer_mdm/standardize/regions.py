"""Chinese regions: province/city/district columns and free-text addresses to standard names.

The reference is :mod:`customer_mdm.reference` (``cn_regions.csv``: all 34 provincial-level and
333 prefecture-level divisions with their aliases, plus districts of the municipalities and
major cities). Everything works on *distinct* values: the caller (:mod:`.step`) deduplicates
and joins back, and these functions deduplicate once more internally, so a column with many
repeats costs one standardisation per distinct value (or per distinct row for
:func:`standardize_regions`).

Public functions
----------------
:func:`standardize_regions` ``(province, city, district) -> DataFrame``
    ``province_std``, ``city_std``, ``district_std``, ``region_issue`` for three raw columns
    (CRM ``province``/``city``/``district``, portal changes, a callcenter ``city`` alone ...).
    Values may be standard names, short names (``上海``, ``广东``), abbreviations (``沪``, ``粤``),
    pinyin/English in any case and spacing (``Shanghai``, ``inner mongolia``, ``Xi'an``),
    traditional characters (``廣東``), full-width characters, former names (``闸北区``).
    Missing levels are inferred: the province from the city (``深圳`` -> 广东省/深圳市), the city
    from the district when only one city of the reference has it (``浦东新区`` -> 上海市/上海市),
    a municipality's city from its province (``沪`` -> 上海市/上海市). A district written in the
    city column (``浦东``, ``昆山``) is taken as the district.
:func:`parse_addresses` ``(raw) -> DataFrame``
    ``province_std``, ``city_std``, ``district_std``, ``street``, ``address_issue`` for one-line
    addresses that start with the region (``沪闵行区莘庄镇…``, ``广东深圳南山区科技园``,
    ``上海市上海市浦东新区…``, ``深圳市南山区…``) and for street addresses without one (CRM
    ``address``: regions None, the cleaned street kept).
:func:`region_of_city` ``(name) -> (province, city) | None``
    One city-like value (callcenter ``city``, store ``store_city``) to its standard province and
    city, None when unknown or ambiguous.

Issue codes (one per row, the first that applies in this order)
---------------------------------------------------------------
``region_issue``: ``unknown_province``, ``unknown_city``, ``city_not_in_province`` (both kept as
written), ``ambiguous_city`` (``Taizhou`` without a province: 台州/泰州), ``unknown_district``
(only for cities whose districts the reference lists), ``district_not_in_city`` (both kept),
``ambiguous_district`` (``鼓楼区`` without a city). None when all is well, including empty input.

``address_issue``: ``city_not_in_province``, ``district_not_in_city``, ``ambiguous_city``,
``ambiguous_district``, ``no_region`` (no region at the start: a plain street address),
``no_street`` (a region and nothing after it). None when all is well and for missing input.

Address parsing
---------------
The line is NFKC-normalised (full-width letters, digits and punctuation become ASCII), ``。``
``、`` and typographic quotes/dashes are mapped to ASCII, whitespace runs collapse to one space
and spaces next to a Chinese character are dropped (``12号 阳光花园`` -> ``12号阳光花园``). A
leading postcode and ``中国`` are skipped. The region prefix is then matched against the
reference aliases with a character trie (longest-prefix lookups, traditional characters folded
to simplified for matching only), over every combination of province, city and district in
that order, each optional, separators allowed in between. The parse that consumes the most
characters wins; ties prefer consistent parses and a written province. A city outside the
written province is kept and flagged, a district outside the written city too (only when the
reference lists that city's districts; otherwise the district's name is kept as written).

Guards against street names that begin with a place name: a short name followed by ``路``/
``街``/``道``/``巷``/``弄``/``大道``/``大街``/``胡同`` (optionally after one of 东西南北中) is not a
region (``南京西路``, ``中山路``); a one-character province abbreviation (``沪``) and city names
that are also common words (``东方``, ``中山``, ``北海``, ``三明``...) only count when a city or
district of theirs follows; a district without its suffix (``闵行``) only counts after its
province or city. For a city whose districts the reference does not list, a district-like word
right after the city (2-4 characters ending in 区/县/市/旗, not 开发区, 小区 ...) is taken as
the district as written.

Speed: the parse of an address depends only on the characters it read (the region and, at
most, the one or two characters after it), so each distinct such prefix is parsed once per
call and the other addresses are answered from a dict (:class:`_HeadCache`).

A line that starts with Latin words is first tried as a province and/or city in English or
pinyin (``Guangdong Shenzhen 南山区…``, ``Shanghai闵行区…``): words that name a region are
replaced by its standard Chinese name and the line is parsed as above. A development zone
where the district goes (``深圳高新区科技路…``, ``苏州工业园区…``) leaves the district empty and is
not part of the street (which then matches the records that name the district).

Known gaps: no district lists below most prefecture-level cities (their districts are passed
through as written, unverified); English/pinyin districts, and regions in English further into
the line, are not parsed; district names that recur across China are only resolved with their city or province;
a street address without region that begins with a place name not followed by a road word
(``上海花园3栋``, ``南京大学…``) is read as that region.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from functools import cache, lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd

from customer_mdm.reference import load_cn_regions, load_cn_t2s_chars

__all__ = [
    "ADDRESS_ISSUES",
    "REGION_ISSUES",
    "parse_addresses",
    "region_of_city",
    "standardize_regions",
]

REGION_ISSUES = (
    "unknown_province",
    "unknown_city",
    "city_not_in_province",
    "ambiguous_city",
    "unknown_district",
    "district_not_in_city",
    "ambiguous_district",
)
ADDRESS_ISSUES = (
    "city_not_in_province",
    "district_not_in_city",
    "ambiguous_city",
    "ambiguous_district",
    "no_region",
    "no_street",
)

_PROVINCE, _CITY, _DISTRICT = 0, 1, 2
_LEVELS = {"province": _PROVINCE, "city": _CITY, "district": _DISTRICT}
# how much an alias may be trusted at the start of an address
_FULL, _SHORT, _WEAK = 0, 1, 2
#: endings that make an alias a full name (``延边州`` but not ``杭州``), per level
_FULL_SUFFIXES = (
    ("省", "市", "自治区", "特别行政区", "特区"),
    ("市", "地区", "盟", "林区", "县"),
    ("区", "县", "市", "旗"),
)

#: Short city names that are also common words or street/compound names: at the start of an
#: address they only count when one of the city's districts follows.
_WEAK_CITY_WORDS = frozenset(
    "东方 中山 北海 黄山 白山 大理 玉树 红河 文山 三明 普洱 安康 吉安 泰安 万宁 新星 双河 白杨 昆玉 北屯 "
    "海东 海北 海西 黄南 阿里 山南 兴安 定安 白沙 昌江".split()
)

#: District names that exist in more than one city of China (the reference lists districts of
#: a few cities only, so it cannot see all duplicates): never used to infer a city on their own.
_RECURRING_DISTRICTS = frozenset(
    "朝阳区 南山区 西湖区 普陀区 长安区 宝山区 青山区 白云区 龙华区 新城区 铁西区 市中区 河东区 通州区 "
    "鼓楼区 和平区 江北区 城区 郊区 矿区 新华区 桥西区 桥东区 海州区 城中区".split()
)

# After NFKC: these become ASCII too (NFKC leaves them alone).
_PUNCT = str.maketrans(
    {
        "。": ".",
        "、": ",",
        "“": '"',
        "”": '"',
        "„": '"',
        "‘": "'",
        "’": "'",
        "—": "-",
        "–": "-",
        "―": "-",
        "‐": "-",
        "‑": "-",
        "〜": "~",
        "【": "[",
        "】": "]",
        "〔": "[",
        "〕": "]",
        "「": '"',
        "」": '"',
        "『": '"',
        "』": '"',
        "\u200b": "",
        "\ufeff": "",
    }
)
_PUNCT_RE = re.compile("[" + "".join(chr(c) for c in _PUNCT) + "]")
_SEPARATORS = frozenset(" ,;:/\\|-_.·()[]\"'~")
#: stripped from the start of the street (brackets and quotes are kept: ``(漕河泾)``)
_STREET_LSTRIP = " ,;:/\\|-_.·~"
_POSTCODE = re.compile(r"\d{6}(?!\d) ?")
_CJK = r"\u2e80-\u9fff\uf900-\ufaff"
_SPACE_NEXT_TO_CJK = re.compile(rf" (?=[{_CJK}])|(?<=[{_CJK}]) ")
_NOT_WORD = re.compile(rf"[^0-9a-z{_CJK}]+")
_LATIN_EXT = re.compile(r"[\u00c0-\u024f\u1e00-\u1eff]")
_ROAD_AFTER = frozenset("路街道巷弄")
_ROAD_AFTER2 = ("大道", "大街", "胡同")
_ROAD_AFTER2_FIRST = frozenset(w[0] for w in _ROAD_AFTER2)
_DIRECTION = frozenset("东西南北中")
_COUNTRY_PREFIXES = ("中华人民共和国", "中国大陆", "中国")
_LATIN_SUFFIXES = (
    "specialadministrativeregion",
    "autonomousregion",
    "autonomousprefecture",
    "municipality",
    "prefecture",
    "province",
    "district",
    "county",
    "league",
    "sheng",
    "city",
    "zizhiqu",
    "zizhizhou",
    "diqu",
    "meng",
    "sar",
    "shi",
    "qu",
    "xian",
)
_CN_SUFFIXES = ("特别行政区", "自治区", "自治州", "自治县", "地区", "省", "市", "区", "县", "盟", "州", "旗")
#: a district right after a city the reference has no districts for
_LOOSE_DISTRICT = re.compile(r"[\u4e00-\u9fff]{2,4}?(?:区|县|市|旗)")
_NOT_A_DISTRICT = re.compile(
    r"[路街道巷弄号楼村镇乡]"
    r"|(?:开发|园|保税|小|社|景|工业|商务|示范|试验|度假|管理|校|厂|片|功能|实验|高新)区$"
    r"|超市$"
)


class _Group(NamedTuple):
    level: int
    ids: tuple[int, ...]
    strength: int


class _State(NamedTuple):
    prov: tuple[int, ...] | None
    city: tuple[int, ...] | None
    dist: tuple[int, ...] | None
    dist_name_only: bool  # district matched by name in a city whose districts the reference lacks
    bad_city: bool  # city not in the written province
    bad_dist: bool  # district not in the written city/province


class _Ref:
    """The reference as lookup structures (built once per process)."""

    def __init__(self) -> None:
        t2s = load_cn_t2s_chars()
        self.t2s = str.maketrans(t2s)
        self.trad_re = re.compile("[" + "".join(sorted(t2s)) + "]")
        self.name: list[str] = []
        self.level: list[int] = []
        self.kind: list[str] = []
        self.prov: list[int] = []
        self.city: list[int] = []
        ids: dict[tuple[str, ...], int] = {}
        aliases: list[tuple[str, ...]] = []
        for row in load_cn_regions():
            i = len(self.name)
            lvl = _LEVELS[row.level]
            if lvl == _PROVINCE:
                ids[("p", row.name)] = i
                prov, city = i, -1
            elif lvl == _CITY:
                prov = ids[("p", row.province)]
                ids[("c", row.province, row.name)] = i
                city = i
            else:
                prov = ids[("p", row.province)]
                city = ids[("c", row.province, row.city)]
            self.name.append(row.name)
            self.level.append(lvl)
            self.kind.append(row.kind)
            self.prov.append(prov)
            self.city.append(city)
            aliases.append((row.name, *row.aliases))
        n = len(self.name)
        self.covered_city = {self.city[i] for i in range(n) if self.level[i] == _DISTRICT}
        # a province is covered when every one of its cities is (the municipalities)
        cities_of: dict[int, list[int]] = defaultdict(list)
        for i in range(n):
            if self.level[i] == _CITY:
                cities_of[self.prov[i]].append(i)
        self.covered_prov = {p for p, cs in cities_of.items() if all(c in self.covered_city for c in cs)}
        #: municipality/SAR province -> its city record
        self.own_city = {p: cs[0] for p, cs in cities_of.items() if len(cs) == 1 and self.name[cs[0]] == self.name[p]}

        # column lookups: normalised key -> ids, per level
        col: list[dict[str, list[int]]] = [defaultdict(list) for _ in range(3)]
        # address lookups: simplified alias -> {level: (ids, strength)}
        addr: dict[str, dict[int, tuple[list[int], int]]] = defaultdict(dict)
        for i in range(n):
            lvl, name = self.level[i], self.name[i]
            for alias in aliases[i]:
                key = self.col_key(alias)
                if key and i not in col[lvl][key]:
                    col[lvl][key].append(i)
                if alias.isascii():
                    continue
                akey = alias.translate(self.t2s)
                if lvl == _PROVINCE and len(alias) == 1:
                    strength = _WEAK
                elif (
                    alias == name
                    or alias.endswith(_FULL_SUFFIXES[lvl])
                    or (self.kind[i] == "autonomous_prefecture" and alias.endswith("州"))
                ):
                    strength = _FULL
                elif lvl == _CITY and (len(alias) == 1 or alias in _WEAK_CITY_WORDS):
                    strength = _WEAK
                else:
                    strength = _SHORT
                got = addr[akey].get(lvl)
                if got is None:
                    addr[akey][lvl] = ([i], strength)
                elif i not in got[0]:
                    addr[akey][lvl] = ([*got[0], i], min(got[1], strength))
        self.col = [{k: tuple(v) for k, v in d.items()} for d in col]
        #: alias -> (province group, city group, district group), None where the level has none
        self.addr: dict[str, tuple[_Group | None, ...]] = {
            k: tuple(_Group(lvl, tuple(d[lvl][0]), d[lvl][1]) if lvl in d else None for lvl in range(3))
            for k, d in addr.items()
        }
        # a character trie over the address aliases; "" marks the end of an alias
        self.trie: dict = {}
        for k, groups in self.addr.items():
            node = self.trie
            for ch in k:
                node = node.setdefault(ch, {})
            # the road check is only needed when some reading of the alias is a short name
            node[""] = (groups, any(g is not None and g.strength != _FULL for g in groups))

    # ------------------------------------------------------------------ normalisation
    def col_key(self, text: str) -> str:
        """Lookup key of a column value: NFKC, simplified, lower case, letters/digits/CJK only."""
        s = unicodedata.normalize("NFKC", text)
        if not s.isascii() and _LATIN_EXT.search(s):
            s = "".join(ch for ch in unicodedata.normalize("NFKD", s) if not unicodedata.combining(ch))
        return _NOT_WORD.sub("", s.translate(self.t2s).lower())

    def lookup(self, level: int, key: str, loose: bool = False) -> tuple[int, ...]:
        """Ids of ``level`` whose alias is ``key``; ``loose``: of ``key`` without a trailing
        type word (``Guangdong Province``, ``深圳区``)."""
        table = self.col[level]
        if not loose:
            return table.get(key, ())
        if key.isascii():
            for suffix in _LATIN_SUFFIXES:
                if key.endswith(suffix) and len(key) > len(suffix) + 1:
                    hit = table.get(key[: -len(suffix)])
                    if hit:
                        return hit
        else:
            for suffix in _CN_SUFFIXES:
                if key.endswith(suffix) and len(key) > len(suffix) + 1:
                    hit = table.get(key[: -len(suffix)])
                    if hit:
                        return hit
        return ()

    # ------------------------------------------------------------------ address prefix parsing
    def _matches(self, key: str, pos: int) -> tuple[list[tuple[int, tuple[_Group | None, ...]]], int]:
        """(end, groups by level) of every alias at ``pos`` that does not start a street name,
        and the length of the prefix of ``key`` that decides them (``len(key) + 1``: the end)."""
        node = self.trie.get(key[pos])
        reach = pos + 1
        if node is None:
            return [], reach
        n = len(key)
        out = []
        i = pos + 1
        while True:
            term = node.get("")
            if term is not None:
                groups, check = term
                street = False
                if check:  # a short name might be a street named after a place: 中山路, 南京西路
                    j = i
                    c = key[i] if i < n else ""
                    if c and c in _DIRECTION:
                        j = i + 1
                        c = key[j] if j < n else ""
                    if j + 1 > reach:
                        reach = j + 1
                    if c:
                        if c in _ROAD_AFTER:
                            street = True
                        elif c in _ROAD_AFTER2_FIRST:
                            reach = max(reach, j + 2)
                            street = key.startswith(_ROAD_AFTER2, j)
                if not street:
                    out.append((i, groups))
                if len(node) == 1:  # no longer alias goes on from here
                    break
            if i >= n:
                reach = n + 1
                break
            if i + 1 > reach:
                reach = i + 1
            node = node.get(key[i])
            if node is None:
                break
            i += 1
        return out, reach

    def parse_prefix(self, key: str, start: int = 0) -> tuple[int, _State | None, int]:
        """Best region parse at the start of ``key`` (simplified, NFKC): (end, state, reach).

        ``reach`` is the length of the prefix of ``key`` the result depends on: every string
        with the same first ``reach`` characters parses the same (when ``reach <= len(key)``).

        Tries every province x city x district combination of alias matches (each level
        optional, in that order) and keeps the longest; ties go to the parse without
        inconsistencies, then to one with a written province.
        """
        n = len(key)
        prov_of, city_of = self.prov, self.city
        covered_city, covered_prov = self.covered_city, self.covered_prov
        matches = self._matches
        seps = _SEPARATORS
        memo: dict[int, list[tuple[int, tuple[_Group | None, ...]]]] = {}
        reach = start

        def at(pos: int) -> list[tuple[int, tuple[_Group | None, ...]]]:
            nonlocal reach
            while pos < n and key[pos] in seps:
                pos += 1
            got = memo.get(pos)
            if got is None:
                if pos < n:
                    got, r = matches(key, pos)
                else:
                    got, r = [], pos + 1
                memo[pos] = got
                if r > reach:
                    reach = r
            return got

        head = at(start)
        if not head:
            return start, None, reach
        # the score orders parses: longer, then fewer inconsistencies, then a written province,
        # then a district of the reference rather than one matched by name only
        best = -1
        best_parts: tuple = ()
        # provinces: (end, ids, weak: needs a city or district after it)
        provinces: list[tuple[int, tuple[int, ...] | None, bool]] = [(start, None, False)]
        for end, groups in head:
            pg = groups[0]
            if pg is not None:
                provinces.append((end, pg.ids, pg.strength == _WEAK))
        for p_end, P, p_weak in provinces:
            has_prov = 2 if P is not None else 0
            if P is not None and not p_weak:
                score = p_end * 16 + 8 + has_prov + 1
                if score > best:
                    best, best_parts = score, (p_end, P, None, None, False, False, False)
            # cities: (end, ids, pending, bad)
            after_p = head if P is None else at(p_end)
            cities: list[tuple[int, tuple[int, ...] | None, bool, bool]] = [(p_end, None, p_weak, False)]
            for end, groups in after_p:
                cg = groups[1]
                if cg is None:
                    continue
                gi = cg.ids
                if P is None:
                    cities.append((end, gi, cg.strength == _WEAK, False))
                    continue
                ids: tuple[int, ...]
                if len(gi) == 1:
                    ids = gi if prov_of[gi[0]] in P else ()
                else:
                    ids = tuple(i for i in gi if prov_of[i] in P)
                if ids:
                    cities.append((end, ids, False, False))
                elif cg.strength != _WEAK and not p_weak:
                    cities.append((end, gi, False, True))
            for c_end, C, pending, bad_city in cities:
                if C is not None:
                    if not pending:
                        score = c_end * 16 + (0 if bad_city else 8) + has_prov + 1
                        if score > best:
                            best, best_parts = score, (c_end, P, C, None, False, bad_city, False)
                    scope, of, covered = C, city_of, covered_city
                    after_c = at(c_end)
                elif P is not None:
                    scope, of, covered = P, prov_of, covered_prov
                    after_c = after_p
                else:
                    scope, of, covered = None, prov_of, covered_prov
                    after_c = head
                floor = best >> 4
                for end, groups in after_c:
                    dg = groups[2]
                    if dg is None or end < floor:
                        continue
                    gi = dg.ids
                    name_only = bad = False
                    if scope is None:
                        if dg.strength != _FULL:
                            continue
                        ids = gi
                    else:
                        if len(gi) == 1:
                            ids = gi if of[gi[0]] in scope else ()
                        else:
                            ids = tuple(i for i in gi if of[i] in scope)
                        if not ids:
                            if dg.strength != _FULL or pending:
                                continue
                            ids = gi
                            if any(c in covered for c in scope):
                                bad = True
                            else:
                                name_only = True
                    score = end * 16 + (0 if (bad_city or bad) else 8) + has_prov + (0 if name_only else 1)
                    if score > best:
                        best, best_parts = score, (end, P, C, ids, name_only, bad_city, bad)
        if best < 0:
            return start, None, reach
        end, P, C, D, name_only, bad_city, bad_dist = best_parts
        return end, _State(P, C, D, name_only, bad_city, bad_dist), reach

    # ------------------------------------------------------------------ resolution
    def resolve(self, st: _State) -> tuple[int | None, int | None, str | None, str | None]:
        """(province id, city id, district name, issue) of a parse or column state.

        Fills the missing levels: the city and province of an unambiguous district, the
        province of a city, the city record of a municipality.
        """
        name, prov_of, city_of = self.name, self.prov, self.city
        P, C, D = st.prov, st.city, st.dist
        issue = None
        dist_name = None
        if D:
            names = {name[i] for i in D}
            dist_name = names.pop() if len(names) == 1 else None
            if not st.dist_name_only and not st.bad_dist:
                known = C is not None or P is not None or name[D[0]] not in _RECURRING_DISTRICTS
                if len(D) == 1 and known:
                    if C is None:
                        C = (city_of[D[0]],)
                    if P is None:
                        P = (prov_of[D[0]],)
                elif C is None or len(C) != 1:
                    issue = "ambiguous_district"
        if C and len(C) > 1 and P is not None and not st.bad_city:
            C = tuple(c for c in C if prov_of[c] in P) or C
        if C and len(C) > 1:
            issue = "ambiguous_city"
            provs = {prov_of[c] for c in C}
            if P is None and len(provs) == 1:
                P = (provs.pop(),)
            C = None
        if C and P is None:
            P = (prov_of[C[0]],)
        if P and C is None and len(P) == 1 and P[0] in self.own_city:
            C = (self.own_city[P[0]],)
        if st.bad_city:
            issue = "city_not_in_province"
        elif st.bad_dist and issue is None:
            issue = "district_not_in_city"
        p = P[0] if P and len(P) == 1 else None
        c = C[0] if C and len(C) == 1 else None
        return p, c, dist_name, issue

    def names_of(self, p: int | None, c: int | None) -> tuple[str | None, str | None]:
        return (None if p is None else self.name[p]), (None if c is None else self.name[c])


@cache
def _ref() -> _Ref:
    return _Ref()


# ============================================================================ helpers
def _text_values(values: Iterable[object]) -> list[str | None]:
    out: list[str | None] = []
    for v in values:
        if v is None or v is pd.NA or (isinstance(v, float) and v != v):
            out.append(None)
        else:
            out.append(v if isinstance(v, str) else str(v))
    return out


def _clean_line(text: str) -> str:
    """NFKC, ASCII punctuation, one space between words, no spaces next to Chinese characters."""
    s = unicodedata.normalize("NFKC", text)
    if _PUNCT_RE.search(s):
        s = s.translate(_PUNCT)
    s = " ".join(s.split())
    if " " in s:
        s = _SPACE_NEXT_TO_CJK.sub("", s)
    return s


def _passthrough(text: str) -> str | None:
    """A value kept as written (for divisions the reference does not list)."""
    s = _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).lower())
    return s or None


# ============================================================================ addresses
_Head = tuple[int, str | None, str | None, str | None, str | None, bool]


class _HeadCache:
    """Parse results by the prefix of the address they depend on (see ``_Ref.parse_prefix``).

    Addresses that share their region part and the character or two after it parse alike, so
    most addresses of a batch are answered with a few dict probes: one per prefix length seen
    among the cached addresses that start with the same two characters.
    """

    def __init__(self) -> None:
        # (start, first two characters) -> (prefix lengths, most used first; length -> prefix -> result)
        self.buckets: dict[tuple[int, str], tuple[list[int], dict[int, dict[str, _Head]]]] = {}

    def get(self, ref: _Ref, key: str, start: int) -> _Head:
        n = len(key)
        if start >= n or (key[start] not in ref.trie and key[start] not in _SEPARATORS):
            return start, None, None, None, "no_region", False  # no region can start here
        # a cacheable parse always reads at least two characters (see _Ref._matches)
        bucket = self.buckets.get((start, key[start : start + 2]))
        if bucket is not None:
            lengths, tables = bucket
            for k, length in enumerate(lengths):
                if length <= n:
                    got = tables[length].get(key[:length])
                    if got is not None:
                        if k:  # move frequent lengths to the front
                            lengths[k - 1], lengths[k] = length, lengths[k - 1]
                        return got
        end, st, reach = ref.parse_prefix(key, start)
        got = _resolve_head(ref, end, st, start)
        if start + 2 <= reach <= n:
            if bucket is None:
                bucket = self.buckets[(start, key[start : start + 2])] = ([], {})
            lengths, tables = bucket
            table = tables.get(reach)
            if table is None:
                table = tables[reach] = {}
                lengths.append(reach)
            table[key[:reach]] = got
        return got


def _resolve_head(ref: _Ref, end: int, st: _State | None, start: int) -> _Head:
    """(end, province, city, district, issue, district may follow loosely) of a parse."""
    if st is None:
        return start, None, None, None, "no_region", False
    p, c, district, issue = ref.resolve(st)
    province, city = ref.names_of(p, c)
    loose = district is None and st.dist is None and c is not None and c not in ref.covered_city
    return end, province, city, district, issue, loose


def _parse_one(raw: str, heads: _HeadCache) -> tuple[str | None, str | None, str | None, str | None, str | None]:
    ref = _ref()
    line = _clean_line(raw)
    if not line:
        return None, None, None, None, None
    key = line.translate(ref.t2s) if ref.trad_re.search(line) else line
    # a leading postcode and the country name are skipped (and dropped when a region follows)
    m = _POSTCODE.match(key)
    start = m.end() if m else 0
    for prefix in _COUNTRY_PREFIXES:
        if key.startswith(prefix, start):
            start += len(prefix)
            break
    if start < len(key) and key[start].isascii() and key[start].isalpha():
        latin = _latin_region(ref, key, start)
        if latin is not None:  # "Guangdong Shenzhen 南山区…": the same line with the Chinese names
            key = line = latin
            start = 0
    end, province, city, district, issue, loose = heads.get(ref, key, start)
    if issue == "no_region":
        return None, None, None, line, issue
    if loose:
        pos = end
        while pos < len(key) and key[pos] in _SEPARATORS:
            pos += 1
        m = _LOOSE_DISTRICT.match(line, pos)
        if m and not _NOT_A_DISTRICT.search(m.group()):
            district = m.group()
            end = m.end()
    street = line[end:].lstrip(_STREET_LSTRIP) or None
    if street is not None and district is None and city is not None:
        # a development zone written where the district goes (深圳高新区…): the city is the region,
        # the street is what follows the zone (as on the records that name the district)
        m = _DEV_ZONE.match(street)
        if m and m.end() < len(street):
            street = street[m.end() :].lstrip(_STREET_LSTRIP) or None
    if issue is None and street is None:
        issue = "no_street"
    return province, city, district, street, issue


#: development zones written instead of a district (the longer names first)
_DEV_ZONE = re.compile(
    r"(?:国家级)?(?:高新技术产业开发区|高新技术开发区|经济技术开发区|经济开发区|高新区|工业园区|开发区|经开区|高新园区)"
)
_LATIN_WORDS = re.compile(r"[A-Za-z][A-Za-z']*")


def _latin_region(ref: _Ref, key: str, start: int) -> str | None:
    """A line that starts with its province and/or city in English or pinyin (``Guangdong
    Shenzhen 南山区…``, ``Shanghai闵行区…``, ``zhejiang hangzhou shi …``), rewritten with the
    standard Chinese names in their place; None when the Latin words name no region."""
    words: list[tuple[str, int]] = []  # (word, end position)
    pos = start
    while len(words) < 6:
        m = _LATIN_WORDS.match(key, pos)
        if not m:
            break
        words.append((m.group(), m.end()))
        pos = m.end()
        while pos < len(key) and key[pos] in " ,-":
            pos += 1

    def find(level: int, i: int, within: int | None) -> tuple[int | None, int]:
        """The region of ``level`` the words from ``i`` name (longest first), and the words used."""
        for n in range(min(3, len(words) - i), 0, -1):
            text = ref.col_key("".join(w for w, _ in words[i : i + n]))
            ids = ref.lookup(level, text) or ref.lookup(level, text, loose=True)
            if within is not None:
                ids = tuple(x for x in ids if ref.prov[x] == within)
            if len(ids) == 1:
                return ids[0], n
        return None, 0

    prov, used = find(_PROVINCE, 0, None)
    city, used_city = find(_CITY, used, prov)
    if prov is None and city is None:
        return None
    # a province or city type word after the names ("Guangdong Province", "Hangzhou Shi")
    n = used + used_city
    if n < len(words) and words[n][0].lower() in ("province", "sheng", "city", "shi"):
        n += 1
    end = words[n - 1][1]
    names = (ref.name[prov] if prov is not None else "") + (ref.name[city] if city is not None else "")
    rest = key[end:].lstrip(" ,-")
    if rest[:1] in ("省", "市") and names.endswith(rest[:1]):
        rest = rest[1:]
    return names + rest


def parse_addresses(raw: pd.Series) -> pd.DataFrame:
    """Split one-line addresses into standard province/city/district and the street.

    Returns ``province_std``, ``city_std``, ``district_std``, ``street``, ``address_issue``
    (object columns, None when absent) on the index of ``raw``. See the module docstring.
    """
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    heads = _HeadCache()
    results = [_parse_one(v, heads) if v is not None else (None, None, None, None, None) for v in _text_values(uniques)]
    return _frame(raw.index, codes, results, ("province_std", "city_std", "district_std", "street", "address_issue"))


def _frame(index: pd.Index, codes: np.ndarray, results: list[tuple], columns: tuple[str, ...]) -> pd.DataFrame:
    """Columns of per-distinct-value results taken back to the rows (code -1: missing input)."""
    out = {}
    for j, c in enumerate(columns):
        col = np.empty(len(results) + 1, dtype=object)
        col[:-1] = [r[j] for r in results]
        col[-1] = None
        out[c] = pd.Series(col[codes], index=index, dtype=object)
    return pd.DataFrame(out)


# ============================================================================ columns
_EMPTY = _State(None, None, None, False, False, False)


def _whole(ref: _Ref, key: str) -> _State | None:
    """A column value that is a whole region string (``广东深圳``, ``上海市浦东新区``)."""
    end, st, _reach = ref.parse_prefix(key)
    return st if st is not None and end == len(key) else None


def _interpret(ref: _Ref, column: int, key: str) -> _State | None:
    """What one column value says, trying its own level first, then the others."""
    order = {
        _PROVINCE: (_PROVINCE, _CITY),
        _CITY: (_CITY, _DISTRICT, _PROVINCE),
        _DISTRICT: (_DISTRICT,),
    }[column]
    for loose in (False, True):  # every exact reading before a loose one (海南州 is not 海南)
        for lvl in order:
            ids = ref.lookup(lvl, key, loose)
            if ids:
                if lvl == _PROVINCE:
                    return _EMPTY._replace(prov=ids)
                if lvl == _CITY:
                    return _EMPTY._replace(city=ids)
                return _EMPTY._replace(dist=ids)
    return _whole(ref, key)


_Reading = tuple[str, "_State | None"]  # (lookup key, what the value says)


def _standardize_one(
    province: str | None,
    city: str | None,
    district: str | None,
    memo: dict[tuple[int, str], _Reading] | None = None,
) -> tuple[str | None, str | None, str | None, str | None]:
    ref = _ref()
    issues: set[str] = set()
    P: tuple[int, ...] | None = None
    C: tuple[int, ...] | None = None
    D: tuple[int, ...] | None = None
    # each column's reading; a value's own level wins over what another column implies
    keys = ["", "", ""]
    found: list[_State | None] = [None, None, None]
    for col, value in enumerate((province, city, district)):
        if not value:
            continue
        reading = memo.get((col, value)) if memo is not None else None
        if reading is None:
            key = ref.col_key(value)
            reading = (key, _interpret(ref, col, key) if key else None)
            if memo is not None:
                memo[(col, value)] = reading
        keys[col], found[col] = reading
        if reading[1] is None and (reading[0] or value.strip()):
            # not a known region, or nothing readable as one (punctuation, other scripts): flagged
            issues.add(("unknown_province", "unknown_city", "unknown_district")[col])
    for st in found:
        if st is None:
            continue
        P = P if P is not None or st.prov is None else st.prov
        C = C if C is not None or st.city is None else st.city
        D = D if D is not None or st.dist is None else st.dist
    bad_city = bad_dist = name_only = False
    if P is not None and C is not None:
        inside = tuple(c for c in C if ref.prov[c] in P)
        if inside:
            C = inside
        else:
            bad_city = True
    if D is not None:
        scope, of, covered = (C, ref.city, ref.covered_city) if C is not None else (P, ref.prov, ref.covered_prov)
        if scope is not None:
            inside = tuple(d for d in D if of[d] in scope)
            if inside:
                D = inside
            elif any(s in covered for s in scope):
                bad_dist = True
            else:
                name_only = True
    st = _State(P, C, D, name_only, bad_city, bad_dist)
    p, c, dist_std, issue = ref.resolve(st)
    prov_std, city_std = ref.names_of(p, c)
    if issue:
        issues.add(issue)
    if keys[2] and found[2] is None:
        # a district the reference cannot check: kept as written unless its city is fully listed
        if c is not None and c in ref.covered_city:
            dist_std = None
        else:
            dist_std = _passthrough(district or "")
            if dist_std is not None:  # nothing left to keep: stays flagged unknown
                issues.discard("unknown_district")
    if not issues:
        return prov_std, city_std, dist_std, None
    return prov_std, city_std, dist_std, min(issues, key=REGION_ISSUES.index)


def standardize_regions(province: pd.Series, city: pd.Series, district: pd.Series) -> pd.DataFrame:
    """Standard province, city and district names for three raw columns (same index).

    Returns ``province_std``, ``city_std``, ``district_std`` and ``region_issue`` (object
    columns, None when absent) on the index of ``province``. See the module docstring.
    """
    if not (len(province) == len(city) == len(district)):
        raise ValueError(
            f"standardize_regions: the three columns differ in length ({len(province)}, {len(city)}, {len(district)})"
        )
    cols = [_text_values(s.to_numpy(dtype=object)) for s in (province, city, district)]
    triples = list(zip(*cols, strict=True))
    codes, uniques = pd.factorize(pd.Series(triples, dtype=object) if triples else pd.Series([], dtype=object))
    memo: dict[tuple[int, str], _Reading] = {}  # column values repeat across the distinct rows
    results = [
        _standardize_one(p, c, d, memo) if (p or c or d) else (None, None, None, None)
        for p, c, d in (uniques if len(uniques) else [])
    ]
    return _frame(province.index, codes, results, ("province_std", "city_std", "district_std", "region_issue"))


@lru_cache(maxsize=65_536)
def region_of_city(name: str) -> tuple[str, str] | None:
    """``(province, city)`` standard names of one city-like value, or None.

    ``深圳``, ``深圳市``, ``Shenzhen``, ``沪`` (a municipality), ``浦东`` (a district: its city) and
    ``广东深圳`` all work; a province that is not a municipality, an unknown or an ambiguous value
    (``Taizhou``: 台州 or 泰州) give None.
    """
    if not isinstance(name, str) or not name.strip():
        return None
    province, city, _district, issue = _standardize_one(None, name, None)
    if city is None or province is None or issue is not None:
        return None
    return province, city
