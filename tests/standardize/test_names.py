"""customer_mdm.standardize.names: display form, script, pinyin keys, pinyin handles, issues;
robustness; and agreement with the canonical names on generated landing data."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customer_mdm.standardize.names import NAME_COLUMNS, segment_pinyin, standardize_names
from mdm_devtools.generate import generate_landing
from tests.standardize.casetable import CaseTable, raw_values

CASES = CaseTable(standardize_names)

table = CASES.table


def one(value: object) -> dict[str, object]:
    return CASES.row(value).to_dict()


def std_of(*values: str) -> pd.DataFrame:
    return standardize_names(pd.Series(values, dtype=object)).set_axis(list(values))


# ----------------------------------------------------------------------------- display form
@pytest.mark.parametrize(
    ("raw", "std"),
    table(
        [
            ("王伟", "王伟"),
            ("王 伟", "王伟"),
            ("王\u3000伟", "王伟"),  # full-width space
            ("王  建 华", "王建华"),
            (" 李芳", "李芳"),
            ("李芳 ", "李芳"),
            ("陳靜", "陈静"),  # traditional -> simplified
            ("劉軍東", "刘军东"),
            ("張 麗", "张丽"),
            ("欧阳子轩", "欧阳子轩"),
            ("阿依古丽 · 买买提", "阿依古丽·买买提"),
            ("Zhang Wei", "Zhang Wei"),
            ("ZHANG Wei", "Zhang Wei"),
            ("zhang  wei", "Zhang Wei"),
            ("ＥＭＩＬＹ　ＣＨＥＮ", "Emily Chen"),  # full-width letters and space
            ("Emily Chen ", "Emily Chen"),
            ("Tony王", "Tony王"),
        ]
    ),
)
def test_display_form(raw: str, std: str) -> None:
    assert one(raw)["name_std"] == std


@pytest.mark.parametrize(
    ("raw", "script"),
    table(
        [
            ("王伟", "han"),
            ("陳靜", "han"),
            ("Zhang Wei", "latin"),
            ("Emily Chen", "latin"),
            ("wangwei88", "pinyin_handle"),
            ("Tony王", "mixed"),
            ("Иван", "mixed"),
            ("", None),
            (None, None),
            ("12345", None),
        ]
    ),
)
def test_script(raw: object, script: str | None) -> None:
    assert one(raw)["name_script"] == script


# ----------------------------------------------------------------------------- pinyin keys
@pytest.mark.parametrize(
    ("raw", "pinyin"),
    table(
        [
            ("王伟", "wang wei"),
            ("王玮", "wang wei"),  # homophones collide on purpose
            ("陈静", "chen jing"),
            ("程静", "cheng jing"),
            ("張偉", "zhang wei"),
            ("吕艳", "lv yan"),
            ("曾梅怡", "zeng mei yi"),  # surname reading, not ceng
            ("单雄信", "shan xiong xin"),
            ("尉迟恭", "yu chi gong"),
            ("欧阳子轩", "ou yang zi xuan"),
            ("Zhang Wei", "zhang wei"),
            ("Wei Zhang", "wei zhang"),
            ("Zhang Zihan", "zhang zi han"),  # pinyin tokens split into syllables, like 张子涵
            ("Emily Chen", "emily chen"),  # not pinyin: the lower-cased tokens
            ("Leo Zhang", "leo zhang"),
            ("wangwei88", "wang wei"),
            ("zhang.wei", "zhang wei"),
            ("ZhangWei_1990", "zhang wei"),
            ("liu-yang", "liu yang"),
            ("Tony 王伟", "tony wang wei"),
        ]
    ),
)
def test_pinyin(raw: str, pinyin: str) -> None:
    assert one(raw)["name_pinyin"] == pinyin


def test_fuzzy_key_merges_call_centre_confusions() -> None:
    out = std_of("陈静", "程静", "王伟", "黄伟", "张三", "章山", "刘宁", "刘玲", "方芳", "黄芳", "李娜", "李拉")
    fz = out["name_pinyin_fuzzy"]
    assert fz["陈静"] == fz["程静"] == "cen jin"
    assert fz["王伟"] == fz["黄伟"]
    assert fz["张三"] == fz["章山"]  # zh/z, an/ang, sh/s
    assert fz["刘宁"] == fz["刘玲"]  # n/l, ing/in
    assert fz["方芳"] == fz["黄芳"] or fz["方芳"].startswith("han")  # f -> h
    assert fz["李娜"] == fz["李拉"]
    assert fz["王伟"] != fz["李娜"]


def test_sorted_key_ignores_order() -> None:
    out = std_of("Zhang Wei", "Wei Zhang", "张伟", "ZHANG WEI", "zhangwei88", "張偉")
    assert out["name_sorted_key"].nunique() == 1
    assert out["name_sorted_key"].iloc[0] == "wei zhang"


# ----------------------------------------------------------------------------- handles
@pytest.mark.parametrize(
    ("raw", "is_handle", "pinyin"),
    table(
        [
            ("wangwei88", True, "wang wei"),
            ("zhang.wei", True, "zhang wei"),
            ("ZhangWei_1990", True, "zhang wei"),
            ("liu-yang", True, "liu yang"),
            ("liuxiaojing48", True, "liu xiao jing"),
            ("xiaochen56", True, "xiao chen"),
            ("xi'an", True, "xi an"),
            ("changan", True, "chang an"),  # longer syllables first
            ("emily52", False, "emily"),
            ("linda71", False, "linda"),  # an English name that happens to segment
            ("jd_26885806", False, "jd"),
            ("tb03452415", False, "tb"),
            ("lj_2007", False, "lj"),
            ("Zhang Wei", False, "zhang wei"),  # a written name, not a handle
            ("wang", False, "wang"),  # one syllable
            ("zhangweimingjunhua", False, "zhang wei ming jun hua"),  # five syllables: too many for a handle
            ("阳光男孩", False, "yang guang nan hai"),
        ]
    ),
)
def test_pinyin_handles(raw: str, is_handle: bool, pinyin: str) -> None:
    got = one(raw)
    assert got["is_pinyin_handle"] is is_handle or bool(got["is_pinyin_handle"]) == is_handle
    assert got["name_pinyin"] == pinyin
    if is_handle:
        assert got["name_script"] == "pinyin_handle"
        assert got["name_std"] == raw  # a handle is kept as typed


def test_segmentation() -> None:
    assert segment_pinyin("zhangwei") == ("zhang", "wei")
    assert segment_pinyin("xian") == ("xian",)
    assert segment_pinyin("shuangqiang") == ("shuang", "qiang")
    assert segment_pinyin("emily") is None
    assert segment_pinyin("") is None
    assert segment_pinyin("a" * 500) is None


# ----------------------------------------------------------------------------- issues
@pytest.mark.parametrize(
    ("raw", "std", "issue"),
    table(
        [
            ("王先生", "王", "honorific"),
            ("李女士", "李", "honorific"),
            ("陳小姐", "陈", "honorific"),
            ("欧阳先生", "欧阳", "honorific"),
            ("Mr. Chen", "Chen", "honorific"),
            ("ms li", "Li", "honorific"),
            ("未知", None, "placeholder"),
            ("test", None, "placeholder"),
            ("北京嘉禾文化传媒有限公司", "北京嘉禾文化传媒有限公司", "too_long"),
            ("王", "王", "too_short"),
            ("12345", None, "no_letters"),
            ("---", None, "no_letters"),
            ("emily52", "Emily52", "not_a_name"),
            ("王伟★", "王伟★", "not_a_name"),
            ("Иван", "Иван", "other_script"),
            ("王伟", "王伟", None),
        ]
    ),
)
def test_issues(raw: str, std: str | None, issue: str | None) -> None:
    got = one(raw)
    assert (got["name_std"], got["name_issue"]) == (std, issue)


def test_honorific_keeps_surname_keys() -> None:
    got = one("曾先生")
    assert (got["name_std"], got["name_pinyin"], got["name_sorted_key"]) == ("曾", "zeng", "zeng")


def test_no_keys_for_non_names() -> None:
    for raw in ("未知", "北京嘉禾文化传媒有限公司", "12345", "x" * 5000):
        got = one(raw)
        assert got["name_pinyin"] is None and got["name_pinyin_fuzzy"] is None and got["name_sorted_key"] is None


def test_frame_shape_index_and_dtypes() -> None:
    raw = pd.Series(["王伟", None, "wangwei88", ""], index=["a", "b", "c", "d"], dtype=object)
    out = standardize_names(raw)
    assert list(out.columns) == list(NAME_COLUMNS)
    assert out.index.equals(raw.index)
    assert out["is_pinyin_handle"].dtype == bool
    assert out.loc["b"].isna().drop("is_pinyin_handle").all()
    assert out.loc["b", "name_std"] is None  # None, not NaN, for the warehouse loaders
    assert standardize_names(raw.astype("str")).equals(out)
    assert standardize_names(pd.Series([], dtype=object)).empty


def test_batch_independent_and_any_index() -> None:
    CASES.assert_batch_independent()


# ----------------------------------------------------------------------------- robustness
_NASTY = [
    "'; DROP TABLE customers; --",
    "Robert'); DELETE FROM std.name_lookup;--",
    "<script>alert(1)</script>",
    "\x00\x01\x02王\x7f伟",
    "\u202e王伟",
    "王\u200b伟",
    "\ud7ff\ue000",
    "𠀀𠀁",  # CJK extension B
    "ㄅㄆㄇ",
    "😀😀",
    "\n\n\n",
    "王" * 300,
]
_values = raw_values(
    st.text(alphabet="王伟陳靜张 　abcZ.-_0123456789·ＡＢ先生", max_size=20),
    nasty=_NASTY,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(values=st.lists(_values, max_size=20), offset=st.integers(-5, 5))
def test_never_raises_and_invariants(values: list[object], offset: int) -> None:
    raw = pd.Series(values, index=[offset + 3 * i for i in range(len(values))], dtype=object)
    out = standardize_names(raw)
    assert out.index.equals(raw.index)
    assert list(out.columns) == list(NAME_COLUMNS)
    for row in out.itertuples(index=False):
        assert row.name_script in {None, "han", "latin", "pinyin_handle", "mixed"}
        if row.name_pinyin is not None:
            assert re.fullmatch(r"[a-z]+( [a-z]+)*", row.name_pinyin), row.name_pinyin
            assert re.fullmatch(r"[a-z]+( [a-z]+)*", row.name_pinyin_fuzzy)
            assert sorted(row.name_sorted_key.split()) == row.name_sorted_key.split()
            assert sorted(row.name_pinyin.split()) == row.name_sorted_key.split()
        else:
            assert row.name_pinyin_fuzzy is None and row.name_sorted_key is None
        if row.is_pinyin_handle:
            assert row.name_script == "pinyin_handle" and 2 <= len(row.name_pinyin.split()) <= 4
        if row.name_std is not None:
            assert isinstance(row.name_std, str) and row.name_std == row.name_std.strip()
            assert len(row.name_std) <= 100


# ----------------------------------------------------------------------------- generated data
def _read_csv(path: Path) -> pd.DataFrame:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030")
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("landing")
    generate_landing(out, 2000, seed=1)
    return out


def test_generated_names_match_canonical(landing: Path) -> None:
    """Cleaning reproduces the canonical name for the non-homophone variants (spaces, full-width,
    traditional); the sorted key also absorbs pinyin spellings, the fuzzy key homophones."""
    frames = []
    for folder, id_col, name_col in (
        ("crm", "crm_id", "name"),
        ("callcenter", "ticket_id", "caller_name"),
        ("store_pos", "card_no", "name"),
    ):
        for path in sorted((landing / folder).glob("*.csv")):
            df = _read_csv(path)
            frames.append(pd.DataFrame({"source": folder, "source_id": df[id_col], "name": df[name_col]}))
    records = pd.concat(frames, ignore_index=True)
    truth = pd.read_csv(landing / "_truth" / "truth.csv", dtype=str)
    people = pd.read_csv(landing / "_truth" / "people.csv", dtype=str, keep_default_na=False)
    records = records.merge(truth, on=["source", "source_id"]).merge(
        people[["person_id", "name"]].rename(columns={"name": "canon"}), on="person_id"
    )
    records = records[records["name"] != ""]
    raw = pd.Series(records["name"].unique())
    got = standardize_names(raw).set_axis(raw)
    canon = pd.Series(people["name"].unique())
    want = standardize_names(canon).set_axis(canon)

    def key(col: str, values: pd.Series, table: pd.DataFrame) -> pd.Series:
        return values.map(table[col])

    honorific = key("name_issue", records["name"], got) == "honorific"
    written_han = records["name"].str.contains(r"[\u4e00-\u9fff]") & ~honorific
    same_std = key("name_std", records["name"], got) == records["canon"]
    same_sorted = key("name_sorted_key", records["name"], got) == key("name_sorted_key", records["canon"], want)
    same_fuzzy = key("name_pinyin_fuzzy", records["name"], got) == key("name_pinyin_fuzzy", records["canon"], want)
    assert same_std.mean() > 0.9
    assert same_sorted[~honorific].mean() > 0.97  # the rest: homophones the agent typed (成/陈, 邹/周)
    assert (same_sorted | same_fuzzy)[~honorific].mean() > 0.98
    assert same_sorted[written_han].mean() > 0.97

    members = []
    for path in sorted((landing / "ecommerce").glob("members_*.jsonl")):
        members += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    nick = pd.Series(sorted({m["nickname"] for m in members if m.get("nickname")}))
    handles = standardize_names(nick)
    assert handles["is_pinyin_handle"].mean() > 0.5
    assert not handles.loc[nick.str.fullmatch(r"(?:tb|jd_)\d+").to_numpy(), "is_pinyin_handle"].any()
    assert np.array_equal(
        handles["is_pinyin_handle"].to_numpy(), (handles["name_script"] == "pinyin_handle").to_numpy()
    )
