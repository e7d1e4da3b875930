"""Tests of region standardisation (customer_mdm.standardize.regions) and its reference data.

Table-driven cases for every alias form, properties over the whole reference file, hypothesis
for robustness, and accuracy on a generated landing zone (see ``test_accuracy_*``).
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customer_mdm.reference import load_cn_regions, reference_text
from customer_mdm.standardize.regions import (
    ADDRESS_ISSUES,
    REGION_ISSUES,
    parse_addresses,
    region_of_city,
    standardize_regions,
)
from mdm_devtools import generate

REGIONS = load_cn_regions()
PROVINCE_ROWS = [r for r in REGIONS if r.level == "province"]
CITY_ROWS = [r for r in REGIONS if r.level == "city"]
DISTRICT_ROWS = [r for r in REGIONS if r.level == "district"]


def std(province: str | None = None, city: str | None = None, district: str | None = None) -> tuple:
    df = standardize_regions(pd.Series([province]), pd.Series([city]), pd.Series([district]))
    return tuple(df.iloc[0])


def addr(raw: str | None) -> tuple:
    return tuple(parse_addresses(pd.Series([raw], dtype=object)).iloc[0])


# ============================================================================ reference data
ALL_PROVINCES = (
    "北京市 天津市 河北省 山西省 内蒙古自治区 辽宁省 吉林省 黑龙江省 上海市 江苏省 浙江省 安徽省 福建省 江西省 "
    "山东省 河南省 湖北省 湖南省 广东省 广西壮族自治区 海南省 重庆市 四川省 贵州省 云南省 西藏自治区 陕西省 "
    "甘肃省 青海省 宁夏回族自治区 新疆维吾尔自治区 台湾省 香港特别行政区 澳门特别行政区"
).split()


def test_reference_has_all_34_provinces_in_gb_order() -> None:
    assert [r.name for r in PROVINCE_ROWS] == ALL_PROVINCES


def test_reference_has_all_333_prefecture_level_divisions() -> None:
    kinds = [r.kind for r in CITY_ROWS]
    assert kinds.count("prefecture_city") == 293
    assert kinds.count("prefecture") == 7  # 地区
    assert kinds.count("autonomous_prefecture") == 30
    assert kinds.count("league") == 3  # 盟
    assert kinds.count("municipality") == 4
    assert all(
        r.name.endswith(("市", "地区", "州", "盟")) for r in CITY_ROWS if r.kind != "county_level" and r.kind != "sar"
    )


def test_reference_names_are_unique_and_parents_exist() -> None:
    provinces = {r.name for r in PROVINCE_ROWS}
    cities = {(r.province, r.name) for r in CITY_ROWS}
    assert len(cities) == len(CITY_ROWS)
    assert len({r.name for r in CITY_ROWS}) == len(CITY_ROWS)  # city names are unique nationally
    assert all(r.province in provinces for r in CITY_ROWS)
    districts = {(r.city, r.name) for r in DISTRICT_ROWS}
    assert len(districts) == len(DISTRICT_ROWS)
    assert all((r.province, r.city) in cities for r in DISTRICT_ROWS)
    assert all(r.name.endswith(("区", "县", "市")) for r in DISTRICT_ROWS)


def test_reference_file_is_sorted_and_clean() -> None:
    text = reference_text("cn_regions.csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["level", "kind", "name", "province", "city", "aliases"]
    # blocks: a province, then per city its city row followed by its districts
    seen_provinces: list[str] = []
    last_city = None
    for r in rows:
        if r["level"] == "province":
            assert r["province"] not in seen_provinces
            seen_provinces.append(r["province"])
        else:
            assert r["province"] == seen_provinces[-1]
        if r["level"] == "city":
            last_city = r["name"]
        if r["level"] == "district":
            assert r["city"] == last_city
        aliases = r["aliases"].split("|") if r["aliases"] else []
        assert all(a and a == a.strip() and a != r["name"] for a in aliases), r
        assert len(set(aliases)) == len(aliases), r
    assert text.endswith("\n") and "\r" not in text


def test_reference_covers_every_region_of_the_generator() -> None:
    cities = {(r.province, r.name) for r in CITY_ROWS}
    districts = {(r.city, r.name) for r in DISTRICT_ROWS}
    for p_std, _short, _abbr, _en, _w, city_specs in generate._GEO_SPEC:
        for c_std, _en_c, _area, _cw, dists in city_specs:
            assert (p_std, c_std) in cities
            for d in dists.split():
                assert (c_std, d) in districts, (c_std, d)


# ============================================================================ provinces
# every alias form of every province: standard, short, abbreviation(s), pinyin/English, traditional
PROVINCE_ALIASES = {
    "北京市": "北京 京 Beijing BEIJING peking",
    "天津市": "天津 津 Tianjin",
    "河北省": "河北 冀 Hebei",
    "山西省": "山西 晋 Shanxi",
    "内蒙古自治区": "内蒙古 内蒙 蒙 Inner_Mongolia Nei_Mongol inner_mongolia 內蒙古",
    "辽宁省": "辽宁 辽 Liaoning 遼寧",
    "吉林省": "吉林 吉 Jilin",
    "黑龙江省": "黑龙江 黑 Heilongjiang 黑龍江省",
    "上海市": "上海 沪 Shanghai shanghai SHANGHAI ＳＨＡＮＧＨＡＩ 上海市 上_海",
    "江苏省": "江苏 苏 Jiangsu 江蘇",
    "浙江省": "浙江 浙 Zhejiang",
    "安徽省": "安徽 皖 Anhui",
    "福建省": "福建 闽 Fujian",
    "江西省": "江西 赣 Jiangxi",
    "山东省": "山东 鲁 Shandong 山東",
    "河南省": "河南 豫 Henan",
    "湖北省": "湖北 鄂 Hubei",
    "湖南省": "湖南 湘 Hunan",
    "广东省": "广东 粤 Guangdong 廣東 廣東省 广東 Guangdong_Province",
    "广西壮族自治区": "广西 桂 Guangxi 廣西 广西省",
    "海南省": "海南 琼 Hainan",
    "重庆市": "重庆 渝 Chongqing 重慶",
    "四川省": "四川 川 蜀 Sichuan",
    "贵州省": "贵州 贵 黔 Guizhou 貴州",
    "云南省": "云南 云 滇 Yunnan 雲南",
    "西藏自治区": "西藏 藏 Tibet Xizang",
    "陕西省": "陕西 陕 秦 Shaanxi 陝西",
    "甘肃省": "甘肃 甘 陇 Gansu 甘肅",
    "青海省": "青海 青 Qinghai",
    "宁夏回族自治区": "宁夏 宁 Ningxia 寧夏",
    "新疆维吾尔自治区": "新疆 新 Xinjiang",
    "台湾省": "台湾 台 Taiwan 臺灣 台灣",
    "香港特别行政区": "香港 港 Hong_Kong Hongkong",
    "澳门特别行政区": "澳门 澳 Macau Macao 澳門",
}
PROVINCE_CASES = [(a.replace("_", " "), p) for p, aliases in PROVINCE_ALIASES.items() for a in [p, *aliases.split()]]


def test_province_table_covers_all_provinces() -> None:
    assert set(PROVINCE_ALIASES) == set(ALL_PROVINCES)


@pytest.mark.parametrize(("raw", "expected"), PROVINCE_CASES)
def test_province_aliases(raw: str, expected: str) -> None:
    province, _city, _district, issue = std(province=raw)
    assert (province, issue) == (expected, None)


def test_every_province_alias_of_the_reference_maps_to_its_province() -> None:
    rows = [(a, r.name) for r in PROVINCE_ROWS for a in (r.name, *r.aliases)]
    out = standardize_regions(
        pd.Series([a for a, _ in rows]), pd.Series([None] * len(rows)), pd.Series([None] * len(rows))
    )
    assert out["province_std"].tolist() == [p for _, p in rows]
    assert out["region_issue"].isna().all()


@pytest.mark.parametrize("raw", ["上海", "上海市", "沪", "Shanghai", " shanghai ", "上海 市"])
def test_municipality_is_its_own_city(raw: str) -> None:
    assert std(province=raw) == ("上海市", "上海市", None, None)
    assert std(city=raw) == ("上海市", "上海市", None, None)
    assert region_of_city(raw) == ("上海市", "上海市")


def test_two_letter_codes_are_not_aliases() -> None:
    assert std(province="SH") == (None, None, None, "unknown_province")
    assert std(province="GD")[3] == "unknown_province"


# ============================================================================ cities and districts
def test_every_city_name_and_alias_of_the_reference() -> None:
    rows = [(a, r.province, r.name) for r in CITY_ROWS for a in (r.name, *r.aliases)]
    out = standardize_regions(
        pd.Series([None] * len(rows)), pd.Series([a for a, _, _ in rows]), pd.Series([None] * len(rows))
    )
    ambiguous = {"taizhou", "yichun", "yulin"}  # 台州/泰州, 伊春/宜春, 玉林/榆林
    for (alias, prov, city), got in zip(rows, out.itertuples(index=False), strict=True):
        if alias.lower() in ambiguous:
            assert (got.city_std, got.region_issue) == (None, "ambiguous_city")
        else:
            assert (got.province_std, got.city_std, got.region_issue) == (prov, city, None), alias


def test_every_district_of_the_reference_with_its_city() -> None:
    rows = [(a, r) for r in DISTRICT_ROWS for a in (r.name, *r.aliases)]
    n = len(rows)
    out = standardize_regions(
        pd.Series([r.province for _, r in rows]),
        pd.Series([r.city for _, r in rows]),
        pd.Series([a for a, _ in rows]),
    )
    expected = pd.DataFrame(
        {
            "province_std": [r.province for _, r in rows],
            "city_std": [r.city for _, r in rows],
            "district_std": [r.name for _, r in rows],
            "region_issue": [None] * n,
        },
        dtype=object,
    )
    pd.testing.assert_frame_equal(out, expected)


CITY_CASES = [
    # (province, city, district) -> (province_std, city_std, district_std, issue)
    ((None, "深圳", None), ("广东省", "深圳市", None, None)),
    ((None, "深圳市", None), ("广东省", "深圳市", None, None)),
    ((None, "Shenzhen", None), ("广东省", "深圳市", None, None)),
    ((None, "shen zhen", None), ("广东省", "深圳市", None, None)),
    ((None, "Shenzhen City", None), ("广东省", "深圳市", None, None)),
    ((None, "Xi'an", None), ("陕西省", "西安市", None, None)),
    ((None, "xian", None), ("陕西省", "西安市", None, None)),
    ((None, "廣州", None), ("广东省", "广州市", None, None)),
    ((None, "呼和浩特", None), ("内蒙古自治区", "呼和浩特市", None, None)),
    ((None, "延边州", None), ("吉林省", "延边朝鲜族自治州", None, None)),
    (("海南州", None, None), ("青海省", "海南藏族自治州", None, None)),  # not 海南省
    ((None, "深圳区", None), ("广东省", "深圳市", None, None)),  # a wrong type word is dropped
    ((None, "Suzhou", None), ("江苏省", "苏州市", None, None)),
    (("广东", "深圳", "南山区"), ("广东省", "深圳市", "南山区", None)),
    (("粤", "Shenzhen", "南山"), ("广东省", "深圳市", "南山区", None)),
    (("Guangdong", "深圳市", "南山區"), ("广东省", "深圳市", "南山区", None)),
    (("沪", None, "闵行"), ("上海市", "上海市", "闵行区", None)),
    (("Shanghai", "Shanghai", "Pudong"), ("上海市", "上海市", "浦东新区", None)),
    ((None, None, "浦东新区"), ("上海市", "上海市", "浦东新区", None)),
    ((None, None, "闵行区"), ("上海市", "上海市", "闵行区", None)),
    ((None, None, "昆山市"), ("江苏省", "苏州市", "昆山市", None)),
    ((None, "昆山", None), ("江苏省", "苏州市", "昆山市", None)),  # a county-level city in the city column
    (("上海", "浦东", None), ("上海市", "上海市", "浦东新区", None)),  # a district in the city column
    (("北京", None, "朝阳"), ("北京市", "北京市", "朝阳区", None)),
    (("吉林", "长春", "朝阳区"), ("吉林省", "长春市", "朝阳区", None)),  # 长春's districts are not listed
    (("上海", None, "闸北区"), ("上海市", "上海市", "静安区", None)),  # merged into 静安区 in 2015
    (("江苏", None, "鼓楼区"), ("江苏省", "南京市", "鼓楼区", None)),
    (("天津", None, "和平区"), ("天津市", "天津市", "和平区", None)),
    (("辽宁", "沈阳", "和平"), ("辽宁省", "沈阳市", "和平区", None)),
    (("浙江", "Taizhou", None), ("浙江省", "台州市", None, None)),
    (("江苏", "Taizhou", None), ("江苏省", "泰州市", None, None)),
    (("河北", "石家庄", "长安区"), ("河北省", "石家庄市", "长安区", None)),  # 石家庄's own 长安区
    (("河北", "石家庄", "桥西区"), ("河北省", "石家庄市", "桥西区", None)),  # kept as written
    (("广东省深圳市", None, None), ("广东省", "深圳市", None, None)),  # a whole region in one column
    ((None, "广东深圳", None), ("广东省", "深圳市", None, None)),
    # issues
    (("广东", "杭州", None), ("广东省", "杭州市", None, "city_not_in_province")),
    (("xx", "深圳", None), ("广东省", "深圳市", None, "unknown_province")),
    (("广东", "Gotham", None), ("广东省", None, None, "unknown_city")),
    ((None, "Taizhou", None), (None, None, None, "ambiguous_city")),
    (("广东", "深圳", "西湖区"), ("广东省", "深圳市", "西湖区", "district_not_in_city")),
    (("上海", None, "梦幻区"), ("上海市", "上海市", None, "unknown_district")),
    ((None, None, "鼓楼区"), (None, None, "鼓楼区", "ambiguous_district")),
    ((None, None, "朝阳区"), (None, None, "朝阳区", "ambiguous_district")),  # 北京 or 长春
    ((None, None, None), (None, None, None, None)),
    (("", " ", ""), (None, None, None, None)),
]


@pytest.mark.parametrize(("raw", "expected"), CITY_CASES, ids=["|".join(str(x) for x in c[0]) for c in CITY_CASES])
def test_standardize_regions_cases(raw: tuple, expected: tuple) -> None:
    assert std(*raw) == expected


def test_standardize_regions_frame_shape() -> None:
    index = pd.Index([7, 3, 3, 9], name="rid")
    out = standardize_regions(
        pd.Series(["广东", "沪", "沪", None], index=index),
        pd.Series(["深圳", None, None, float("nan")], index=index),
        pd.Series([pd.NA, "闵行区", "闵行区", None], index=index, dtype=object),
    )
    assert list(out.columns) == ["province_std", "city_std", "district_std", "region_issue"]
    assert out.index.equals(index)
    assert all(out[c].dtype == object for c in out)
    assert out.iloc[3].isna().all() and out.iloc[3]["region_issue"] is None
    assert out.iloc[1].tolist() == ["上海市", "上海市", "闵行区", None]
    assert set(out["region_issue"].dropna()) <= set(REGION_ISSUES)


def test_standardize_regions_accepts_string_dtype_and_empty() -> None:
    s = pd.Series(["广东", None], dtype="str")
    out = standardize_regions(s, pd.Series(["深圳", None], dtype="str"), pd.Series([None, None], dtype="str"))
    assert out.iloc[0].tolist() == ["广东省", "深圳市", None, None]
    empty = standardize_regions(pd.Series([], dtype=object), pd.Series([], dtype=object), pd.Series([], dtype=object))
    assert len(empty) == 0 and list(empty.columns) == ["province_std", "city_std", "district_std", "region_issue"]
    with pytest.raises(ValueError, match="differ in length"):
        standardize_regions(pd.Series(["a"]), pd.Series([], dtype=object), pd.Series([], dtype=object))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("深圳", ("广东省", "深圳市")),
        ("深圳市", ("广东省", "深圳市")),
        ("Shenzhen", ("广东省", "深圳市")),
        ("SHENZHEN", ("广东省", "深圳市")),
        ("北京", ("北京市", "北京市")),
        ("京", ("北京市", "北京市")),
        ("Chongqing", ("重庆市", "重庆市")),
        ("浦东", ("上海市", "上海市")),
        ("广东深圳", ("广东省", "深圳市")),
        ("中山", ("广东省", "中山市")),
        ("吉林", ("吉林省", "吉林市")),
        ("Harbin", ("黑龙江省", "哈尔滨市")),
        ("香港", ("香港特别行政区", "香港特别行政区")),
        ("广东", None),  # a province, not a city
        ("Taizhou", None),  # ambiguous
        ("Gotham", None),
        ("", None),
        ("   ", None),
    ],
)
def test_region_of_city(raw: str, expected: tuple | None) -> None:
    assert region_of_city(raw) == expected


# ============================================================================ addresses
ADDRESS_CASES = [
    ("沪闵行区莘庄镇莘庄路1号", ("上海市", "上海市", "闵行区", "莘庄镇莘庄路1号", None)),
    ("广东深圳南山区科技园", ("广东省", "深圳市", "南山区", "科技园", None)),
    ("上海市上海市浦东新区世纪大道100号", ("上海市", "上海市", "浦东新区", "世纪大道100号", None)),
    ("上海上海市闵行区 人民路1号", ("上海市", "上海市", "闵行区", "人民路1号", None)),
    ("上海市浦东新区", ("上海市", "上海市", "浦东新区", None, "no_street")),
    ("北京朝阳区建国路1号", ("北京市", "北京市", "朝阳区", "建国路1号", None)),
    ("京朝阳区建国路1号", ("北京市", "北京市", "朝阳区", "建国路1号", None)),
    ("深圳市南山区科技园", ("广东省", "深圳市", "南山区", "科技园", None)),
    ("深圳南山区科技园", ("广东省", "深圳市", "南山区", "科技园", None)),
    ("粤深圳 南山区 科技园", ("广东省", "深圳市", "南山区", "科技园", None)),
    ("广东省 深圳市 南山区 科技园 A座 1001", ("广东省", "深圳市", "南山区", "科技园A座1001", None)),
    ("广东省广州市天河区体育西路", ("广东省", "广州市", "天河区", "体育西路", None)),
    ("中国广东省广州市天河区体育西路", ("广东省", "广州市", "天河区", "体育西路", None)),
    ("川成都 青羊区 春晓路453号", ("四川省", "成都市", "青羊区", "春晓路453号", None)),
    ("河南省郑州市二七延安路736弄40号", ("河南省", "郑州市", "二七区", "延安路736弄40号", None)),
    ("青岛市北区辽宁路1号", ("山东省", "青岛市", "市北区", "辽宁路1号", None)),
    ("济南市中区经四路", ("山东省", "济南市", "市中区", "经四路", None)),
    ("天津市河北区中山路", ("天津市", "天津市", "河北区", "中山路", None)),
    ("吉林省吉林市船营区", ("吉林省", "吉林市", "船营区", None, "no_street")),
    ("吉林长春朝阳区人民大街", ("吉林省", "长春市", "朝阳区", "人民大街", None)),
    ("河北省石家庄市桥西区友谊大街", ("河北省", "石家庄市", "桥西区", "友谊大街", None)),
    ("河北省石家庄市高新技术开发区湘江道", ("河北省", "石家庄市", None, "湘江道", None)),
    ("廣東省深圳市福田區深南大道", ("广东省", "深圳市", "福田区", "深南大道", None)),
    ("ＳＨ上海市静安区南京西路１号", (None, None, None, "SH上海市静安区南京西路1号", "no_region")),
    ("上海市静安区南京西路１号", ("上海市", "上海市", "静安区", "南京西路1号", None)),
    ("闵行区人民路1号", ("上海市", "上海市", "闵行区", "人民路1号", None)),  # CRM: district + street
    ("朝阳区人民路1号", (None, None, "朝阳区", "人民路1号", "ambiguous_district")),
    ("广东杭州西湖区文三路", ("广东省", "杭州市", "西湖区", "文三路", "city_not_in_province")),
    # CRM street addresses without a region, including street names that begin with a place name
    ("人民路12号 阳光花园3栋2单元", (None, None, None, "人民路12号阳光花园3栋2单元", "no_region")),
    ("中山路100号", (None, None, None, "中山路100号", "no_region")),
    ("南京西路1号", (None, None, None, "南京西路1号", "no_region")),
    ("北京东路1号", (None, None, None, "北京东路1号", "no_region")),
    ("延安路736弄40号3106室", (None, None, None, "延安路736弄40号3106室", "no_region")),
    ("丽水路12号", (None, None, None, "丽水路12号", "no_region")),
    ("滨江大道1号", (None, None, None, "滨江大道1号", "no_region")),
    ("和平路5号", (None, None, None, "和平路5号", "no_region")),
    ("新华路5号", (None, None, None, "新华路5号", "no_region")),
    ("东方明珠花园1栋", (None, None, None, "东方明珠花园1栋", "no_region")),
    ("长江路１２号　金色家园", (None, None, None, "长江路12号金色家园", "no_region")),
    ("Room 1001, Tower A", (None, None, None, "Room 1001, Tower A", "no_region")),
    ("“人民路”12号。", (None, None, None, '"人民路"12号.', "no_region")),
    ("", (None, None, None, None, None)),
    ("  \t ", (None, None, None, None, None)),
    (None, (None, None, None, None, None)),
]


@pytest.mark.parametrize(("raw", "expected"), ADDRESS_CASES, ids=[str(c[0]) for c in ADDRESS_CASES])
def test_parse_addresses_cases(raw: str | None, expected: tuple) -> None:
    assert addr(raw) == expected


def test_parse_addresses_frame_shape() -> None:
    index = pd.Index(["a", "b", "c", "d"])
    raw = pd.Series(["沪闵行区莘庄镇", None, "沪闵行区莘庄镇", 12345], index=index, dtype=object)
    out = parse_addresses(raw)
    assert list(out.columns) == ["province_std", "city_std", "district_std", "street", "address_issue"]
    assert out.index.equals(index)
    assert all(out[c].dtype == object for c in out)
    assert out.loc["a"].tolist() == out.loc["c"].tolist() == ["上海市", "上海市", "闵行区", "莘庄镇", None]
    assert out.loc["b"].isna().all()
    assert out.loc["d"].tolist() == [None, None, None, "12345", "no_region"]
    assert len(parse_addresses(pd.Series([], dtype=object))) == 0
    assert set(out["address_issue"].dropna()) <= set(ADDRESS_ISSUES)


# ============================================================================ robustness
_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from("广东深圳南山区上海市沪闵行浦东新区北京朝阳路街号 ,.-　（）廣東"),
    ),
    max_size=40,
)
_VALUE = st.one_of(st.none(), _TEXT, st.sampled_from(["上海", "沪", "Shanghai", "深圳", "南山区", "鼓楼区", "Taizhou"]))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_VALUE, _VALUE, _VALUE), max_size=8), st.integers(-5, 5))
def test_standardize_regions_never_raises_and_keeps_the_index(rows: list[tuple], shift: int) -> None:
    index = pd.RangeIndex(len(rows)) * 3 + shift
    cols = [pd.Series([r[i] for r in rows], index=index, dtype=object) for i in range(3)]
    out = standardize_regions(*cols)
    assert out.index.equals(index)
    assert set(out["region_issue"].dropna()) <= set(REGION_ISSUES)
    for col in ("province_std", "city_std"):
        assert out[col].dropna().map(lambda v: isinstance(v, str) and v != "").all()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), _TEXT), max_size=10))
def test_parse_addresses_never_raises_and_keeps_the_index(values: list) -> None:
    index = pd.Index([f"r{i}" for i in range(len(values))])
    out = parse_addresses(pd.Series(values, index=index, dtype=object))
    assert out.index.equals(index)
    assert set(out["address_issue"].dropna()) <= set(ADDRESS_ISSUES)
    for raw, street in zip(values, out["street"], strict=True):
        if street is not None:
            assert street == street.strip() and "  " not in street
        if raw is None:
            assert street is None


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(DISTRICT_ROWS),
    st.integers(0, 3),
    st.sampled_from(["", " ", ","]),
    st.text("路号栋室0123456789", max_size=8),
)
def test_addresses_built_from_the_reference_parse_back(row, style: int, sep: str, street: str) -> None:
    prov = next(r for r in PROVINCE_ROWS if r.name == row.province)
    city = next(r for r in CITY_ROWS if r.name == row.city)
    p = [prov.name, prov.aliases[0], "", prov.aliases[0]][style]
    c = "" if style == 3 and prov.kind == "municipality" else city.name  # 上海闵行区
    raw = f"{p}{c}{sep}{row.name}{sep}科技园{street}"
    assert addr(raw)[:4] == (row.province, row.city, row.name, f"科技园{street}")


_ALIAS_PIECES = sorted(
    {
        a
        for r in REGIONS
        for a in (r.name, *r.aliases)
        if not a.isascii() and r.province in ("上海市", "广东省", "江苏省", "河北省")
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.builds(
            lambda parts, sep, tail: sep.join(parts) + tail,
            st.lists(st.sampled_from(_ALIAS_PIECES), min_size=1, max_size=3),
            st.sampled_from(["", " ", ","]),
            st.text("路街大道东南中山区市号1 ", max_size=4),
        ),
        min_size=2,
        max_size=12,
    )
)
def test_batch_parse_equals_single_parses(values: list[str]) -> None:
    """Results are shared between addresses with the same region prefix: a batch must give
    exactly what each address gives on its own."""
    batch = parse_addresses(pd.Series(values, dtype=object))
    for i, v in enumerate(values):
        assert tuple(batch.iloc[i]) == addr(v), v


# ============================================================================ accuracy on generated data
@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("landing")
    generate.generate_landing(out, 2000, seed=1)
    return out


def _read_csvs(folder: Path) -> pd.DataFrame:
    frames = []
    for path in sorted(folder.glob("*.csv")):
        data = path.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("gb18030")  # the legacy CRM export
        frames.append(pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def truth(landing: Path) -> tuple[dict[tuple[str, str], str], pd.DataFrame]:
    ids = pd.read_csv(landing / "_truth" / "truth.csv", dtype=str, keep_default_na=False)
    people = pd.read_csv(landing / "_truth" / "people.csv", dtype=str, keep_default_na=False).set_index("person_id")
    return {(s, i): p for s, i, p in ids.itertuples(index=False)}, people


def _variants() -> tuple[dict[str, set[str]], dict[str, set[str]], dict[tuple[str, str], set[str]]]:
    """Every spelling the generator can write for a canonical province / city / district.

    Taken from the generator's own geography table (``_GEO_SPEC``, ``_short_district``), so the
    check below does not depend on the code under test to decide which records qualify.
    """
    provinces, cities, districts = {}, {}, {}
    for p_std, p_short, p_abbr, p_en, _w, city_specs in generate._GEO_SPEC:
        provinces[p_std] = {p_std, p_short, p_abbr, p_en}
        for c_std, c_en, _area, _cw, dists in city_specs:
            cities[c_std] = {c_std, c_std.removesuffix("市"), c_en}
            for d in dists.split():
                districts[(c_std, d)] = {d, generate._short_district(d)}
    return provinces, cities, districts


def _share(ok: pd.Series, mask: pd.Series) -> float:
    assert mask.sum() > 100  # enough qualifying records for the rate to mean something
    return float(ok[mask].mean())


def test_accuracy_crm_region_columns(landing: Path, truth) -> None:
    """People move and older records keep the old region, so only records whose raw value is a
    spelling of the person's *current* canonical region qualify; they must standardise to it
    (>= 99 %). Empty province/city values qualify through the other columns (inference)."""
    person, people = truth
    crm = _read_csvs(landing / "crm")
    t = people.loc[[person[("crm", i)] for i in crm["crm_id"]]].set_index(crm.index)
    out = standardize_regions(crm["province"], crm["city"], crm["district"])
    pv, cv, dv = _variants()
    p_ok = pd.Series([v in pv[c] for v, c in zip(crm["province"], t["province"], strict=True)], index=crm.index)
    c_ok = pd.Series([v in cv[c] for v, c in zip(crm["city"], t["city"], strict=True)], index=crm.index)
    d_ok = pd.Series(
        [v in dv[(c, d)] for v, c, d in zip(crm["district"], t["city"], t["district"], strict=True)], index=crm.index
    )
    assert _share(out["province_std"].eq(t["province"]), p_ok) >= 0.99
    assert _share(out["city_std"].eq(t["city"]) & out["province_std"].eq(t["province"]), c_ok) >= 0.99
    assert _share(out["district_std"].eq(t["district"]), d_ok) >= 0.99
    # inference: province or city left empty, the other columns current
    inferred = (crm["province"].eq("") & c_ok) | (crm["city"].eq("") & d_ok & (p_ok | crm["province"].eq("")))
    ok = out["province_std"].eq(t["province"]) & out["city_std"].eq(t["city"])
    # a bare district that recurs across China (鼓楼区, 江北区 ...) cannot name its city
    assert _share(ok | out["region_issue"].eq("ambiguous_district"), inferred) >= 0.99
    assert _share(ok, inferred) >= 0.97
    # and nothing the generator writes is unknown
    assert not out["region_issue"].isin(["unknown_province", "unknown_city", "unknown_district"]).any()


def test_accuracy_ecommerce_shipping_address(landing: Path, truth) -> None:
    """A shipping address is current when it ends with the person's current street address
    (a move changes the street address too); those must split into the canonical province,
    city, district and exactly that street."""
    person, people = truth
    rows = [
        json.loads(line)
        for path in sorted((landing / "ecommerce").glob("members_*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    em = pd.DataFrame(rows)
    t = people.loc[[person[("ecommerce", i)] for i in em["member_id"]]].set_index(em.index)
    out = parse_addresses(em["shipping_address"])
    current = pd.Series(
        [a.replace(" ", "").endswith(s) for a, s in zip(em["shipping_address"], t["address"], strict=True)],
        index=em.index,
    )
    # a development zone written instead of the district (深圳高新区…) names no district
    zone = em["shipping_address"].str.contains("高新|开发区|工业园区")
    ok = (
        out["province_std"].eq(t["province"])
        & out["city_std"].eq(t["city"])
        & (out["district_std"].eq(t["district"]) | (zone & out["district_std"].isna()))
        & out["street"].eq(t["address"])
    )
    assert _share(ok, current) >= 0.99
    assert out["address_issue"].isna().mean() >= 0.99  # every shipping address starts with a region
    # the English/pinyin, development-zone and city-less forms are among them
    assert em["shipping_address"].str.match(r"[A-Za-z]").any() and zone.any()


@pytest.mark.parametrize(
    ("source", "id_col", "city_col"), [("callcenter", "ticket_id", "city"), ("store_pos", "card_no", "store_city")]
)
def test_accuracy_city_columns(landing: Path, truth, source: str, id_col: str, city_col: str) -> None:
    """Callcenter ``city`` and store ``store_city`` (a store may be in another city than the
    customer's home): values that spell the person's current city must resolve to it, and every
    non-empty value must resolve to some city."""
    person, people = truth
    df = _read_csvs(landing / source)
    t = people.loc[[person[(source, i)] for i in df[id_col]]].set_index(df.index)
    _pv, cv, _dv = _variants()
    qualifies = pd.Series([v in cv[c] for v, c in zip(df[city_col], t["city"], strict=True)], index=df.index)
    got = df[city_col].map(region_of_city)
    ok = pd.Series([g == (p, c) for g, p, c in zip(got, t["province"], t["city"], strict=True)], index=df.index)
    assert _share(ok, qualifies) >= 0.99
    nonempty = df[city_col].ne("")
    assert got[nonempty].notna().mean() >= 0.99
    # the vectorised path agrees with the helper
    out = standardize_regions(
        pd.Series(None, index=df.index, dtype=object), df[city_col], pd.Series(None, index=df.index, dtype=object)
    )
    vec = pd.Series(list(zip(out["province_std"], out["city_std"], strict=True)), index=df.index)
    assert (vec[nonempty] == got[nonempty]).all()


def test_crm_street_addresses_keep_their_street(landing: Path, truth) -> None:
    """The CRM ``address`` column is a street address, sometimes after a district or city and
    district, with full-width characters or extra spaces: for current records the cleaned street
    equals the canonical street address, and a plain street gets no region."""
    person, people = truth
    crm = _read_csvs(landing / "crm")
    t = people.loc[[person[("crm", i)] for i in crm["crm_id"]]].set_index(crm.index)
    out = parse_addresses(crm["address"])
    squeezed = crm["address"].map(lambda a: "".join(unicodedata.normalize("NFKC", a).split()))
    current = pd.Series([a.endswith(s) for a, s in zip(squeezed, t["address"], strict=True)], index=crm.index)
    assert _share(out["street"].eq(t["address"]), current & crm["address"].ne("")) >= 0.99
    plain = squeezed.eq(t["address"]) & crm["address"].ne("")
    assert _share(out["province_std"].isna() & out["address_issue"].eq("no_region"), plain) >= 0.99
