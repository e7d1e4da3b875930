"""Person names: display form, script, pinyin match keys and ecommerce pinyin handles.

``standardize_names(raw)`` takes the distinct raw values of a name column (also nicknames) and
returns, on the same index:

==================  ==============================================================================
name_std            display name: NFKC (full-width -> half-width), whitespace between Han
                    characters removed (incl. U+3000), traditional -> simplified (OpenCC ``t2s``);
                    Latin names trimmed, whitespace collapsed, title-cased; a pinyin handle is
                    kept as typed (trimmed). None for empty, placeholder or overlong values.
name_script         ``han`` | ``latin`` | ``pinyin_handle`` | ``mixed`` (Han with Latin, or any
                    other script) | None (empty / no letters)
name_pinyin         toneless pinyin syllables joined by a space (``wang wei`` for 王伟 and 王玮);
                    Latin names: the lower-cased tokens, split into pinyin syllables when every
                    token is pinyin (``Zhang Zihan`` -> ``zhang zi han``, like 张子涵); handles:
                    the segmented syllables (``wangwei88`` -> ``wang wei``)
name_pinyin_fuzzy   name_pinyin with the call-centre confusions merged: zh/z ch/c sh/s, n->l,
                    f->h, hu-/w- (黄/王) initials, eng/en ing/in ang/an finals (陈静 and 程静
                    share ``cen jin``)
name_sorted_key     the name_pinyin tokens sorted (``Zhang Wei``, ``Wei Zhang`` and 张伟 share it)
is_pinyin_handle    bool: a nickname made only of pinyin (``wangwei88``, ``zhang.wei``,
                    ``ZhangWei_1990``, ``liu-yang``): 2-4 syllables after dropping digits and
                    punctuation
name_issue          None | ``honorific`` (王先生 -> 王, Mr. Chen -> Chen) | ``placeholder`` (未知,
                    test) | ``too_long`` | ``too_short`` (one Han character) | ``no_letters`` |
                    ``other_script`` | ``not_a_name`` (digits or symbols in a name that is not a
                    pinyin handle, e.g. ``emily52``, ``jd_26885806``)
==================  ==============================================================================

Everything string-shaped is a pandas string op (pyarrow/RE2). Per-value Python is limited to
what has no vectorised form, each cached: pinyin per distinct character (pypinyin
``lazy_pinyin``, ``Style.NORMAL``; pypinyin 0.55 has no surname mode, so the heteronym
surnames -- 曾 zeng, 单 shan, 解 xie, 仇 qiu, ... -- are an embedded override of the first
character), syllable segmentation per distinct Latin token, and one batched OpenCC call over the
distinct Han-bearing names.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

import numpy as np
import opencc
import pandas as pd
from pypinyin import Style, lazy_pinyin
from pypinyin.contrib.tone_convert import to_normal
from pypinyin.pinyin_dict import pinyin_dict

__all__ = ["NAME_COLUMNS", "segment_pinyin", "standardize_names"]

NAME_COLUMNS = (
    "name_std",
    "name_script",
    "name_pinyin",
    "name_pinyin_fuzzy",
    "name_sorted_key",
    "is_pinyin_handle",
    "name_issue",
)

_STR = pd.StringDtype("pyarrow", na_value=np.nan)  # RE2 regexes: \p{Han}, \p{Latin}, \p{L}
_HAN = r"\p{Han}"
_MAX_CHARS = 100  # beyond this a value is not a name at all: no display form, no keys
_MAX_HAN = 6  # Han names without a middle dot (minority names: 阿依古丽·买买提)
_MAX_DOTTED = 30
_MAX_LATIN = 50

# Honorifics typed after a surname by call-centre agents and store staff.
_HAN_CHAR = "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"  # literal ranges: re and RE2
_HAN_HONORIFIC = "^(" + _HAN_CHAR + "{1,2})(?:先生|女士|小姐|太太|夫人|老师|师傅|阿姨|同学)$"
_LATIN_HONORIFIC = r"^(?i:mr|mrs|ms|miss|mx|dr|madam|sir)\.? +(.+)$"  # whitespace is folded to " " first
_PLACEHOLDERS = frozenset(
    "未知 不详 无 无名 匿名 测试 客户 顾客 用户 会员 先生 女士 小姐 某某 空 test testing unknown null none nil na "
    "n/a nan xxx xx x anonymous guest customer user".split()
)

# Surnames whose reading differs from the character's most common reading.
_SURNAME_1 = {
    "曾": "zeng", "单": "shan", "解": "xie", "仇": "qiu", "朴": "piao", "查": "zha", "区": "ou", "盖": "ge",
    "乐": "yue", "覃": "qin", "缪": "miao", "翟": "zhai", "祭": "zhai", "种": "chong", "召": "shao",
    "繁": "po", "员": "yun", "秘": "bi", "能": "nai", "宓": "fu", "句": "gou", "阚": "kan", "隗": "wei",
    "佴": "nai", "折": "she", "卜": "bu", "薄": "bo", "黑": "he", "重": "chong", "藏": "zang", "都": "du",
    "长": "chang", "么": "yao",
}  # fmt: skip
_SURNAME_2 = {"尉迟": "yu chi", "万俟": "mo qi", "长孙": "zhang sun", "单于": "chan yu", "澹台": "tan tai"}

# Pinyin syllables a handle may be segmented into: pypinyin's readings, minus interjections
# (hm, ng, ...), bare vowels (a, o, e: "leo" is not le+o) and rare readings that mostly create
# false segmentations of English names.
_NOT_IN_HANDLES = frozenset(
    "a o e ê m n ng hm hng ei yo lo me den din len kei tei cei zhei shei nou nia nun rua dia biang fiao bong "
    "wong".split()
)
# English given names that happen to segment into pinyin ("linda" = lin + da).
_ENGLISH_NAMES = frozenset(
    "anna nina tina lina linda angela sean hana dana lena gina tian jenna diana luna mina rina nana mimi "
    "bobo lulu kiki dora nora cora ada ana bella tanya sonia dian yana dan ken ben jan jun jin".split()
)


@cache
def _syllables() -> frozenset[str]:
    out = set()
    for readings in pinyin_dict.values():
        for reading in readings.split(","):
            out.add(to_normal(reading))
    return frozenset(s for s in out if s.isascii() and s.isalpha() and s not in _NOT_IN_HANDLES)


@lru_cache(maxsize=200_000)
def segment_pinyin(token: str) -> tuple[str, ...] | None:
    """Split a lower-case letter run into pinyin syllables: fewest syllables, longer ones first.

    ``zhangwei`` -> ``("zhang", "wei")``, ``xian`` -> ``("xian",)``, ``emily`` -> None.
    """
    n = len(token)
    if n == 0 or n > 36:
        return None
    syl = _syllables()
    best: list[tuple[str, ...] | None] = [None] * (n + 1)
    best[0] = ()
    for i in range(n):
        head = best[i]
        if head is None:
            continue
        for j in range(min(n, i + 6), i, -1):
            piece = token[i:j]
            if piece in syl:
                cand = (*head, piece)
                cur = best[j]
                if cur is None or _seg_key(cand) < _seg_key(cur):
                    best[j] = cand
    return best[n]


def _seg_key(seg: tuple[str, ...]) -> tuple[int, tuple[int, ...]]:
    return len(seg), tuple(-len(s) for s in seg)


@cache
def _char_pinyin(ch: str) -> str:
    py = lazy_pinyin(ch, style=Style.NORMAL, errors="ignore")
    syl = py[0] if py else ""
    syl = syl.replace("ê", "e")
    return syl if syl.isascii() and syl.isalpha() else ""


@cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def _to_simplified(values: pd.Series) -> pd.Series:
    """OpenCC t2s over distinct values in one batched call (newline-joined)."""
    uniq = values.dropna().unique()
    if len(uniq) == 0:
        return values
    uniq = [u for u in uniq.tolist() if "\n" not in u]
    converted = _t2s().convert("\n".join(uniq)).split("\n")
    if len(converted) != len(uniq):  # never expected; stay correct anyway
        converted = [_t2s().convert(u) for u in uniq]
    mapping = dict(zip(uniq, converted, strict=True))
    return values.map(lambda v: mapping.get(v, v) if isinstance(v, str) else v).astype(_STR)


def _han_pinyin(names: pd.Series) -> pd.Series:
    """Pinyin of Han(-bearing) names: per-character table + surname override, lower a-z tokens."""
    chars = set("".join(names.dropna().unique().tolist()))
    table = {ord(c): f" {_char_pinyin(c)} " for c in chars if "\u2e80" <= c}
    table[ord("·")] = " "
    py = names.str.translate(table)
    head2 = names.str.slice(0, 2).map(_SURNAME_2)
    head1 = names.str.slice(0, 1).map(_SURNAME_1)
    rest2 = names.str.slice(2).str.translate(table)
    rest1 = names.str.slice(1).str.translate(table)
    over2 = head2.notna()
    over1 = head1.notna() & ~over2
    py = py.where(~over2, head2.astype(_STR) + " " + rest2)
    py = py.where(~over1, head1.astype(_STR) + " " + rest1)
    return _tidy_tokens(py)


def _tidy_tokens(py: pd.Series) -> pd.Series:
    out = py.str.lower().str.replace(r"[^a-z]+", " ", regex=True).str.strip()
    return out.where(out != "")


def _latin_pinyin(letters: pd.Series) -> tuple[pd.Series, pd.Series]:
    """For Latin names/handles (lower-case letter runs separated by spaces): returns
    (pinyin, is_handle_shaped): the runs split into syllables when every run is pinyin, else the runs
    themselves; is_handle_shaped when that gives 2-4 syllables."""
    uniq = letters.dropna().unique().tolist()
    py: dict[str, str] = {}
    n_syl: dict[str, int] = {}
    for value in uniq:
        runs = value.split()
        segs = [None if r in _ENGLISH_NAMES else segment_pinyin(r) for r in runs]
        if runs and all(s is not None for s in segs):
            sylls = [x for s in segs if s for x in s]
            py[value] = " ".join(sylls)
            n_syl[value] = len(sylls)
        else:
            py[value] = value
            n_syl[value] = 0
    pin = letters.map(py).astype(_STR)
    count = letters.map(n_syl).fillna(0).astype(int)
    return pin, (count >= 2) & (count <= 4)


def _fuzzy(py: pd.Series) -> pd.Series:
    """Merge the confusions of call-centre typing: zh/z ch/c sh/s, n->l, f->h, hu-/w- (黄/王,
    胡/吴), -ng -> -n."""
    out = py.str.replace(r"\b([zcs])h", r"\1", regex=True)
    out = out.str.replace(r"\bn([aeiouv])", r"l\1", regex=True)
    out = out.str.replace(r"\bf", "h", regex=True)
    out = out.str.replace(r"\bhu([ao])", r"w\1", regex=True)
    out = out.str.replace(r"\bhu\b", "wu", regex=True)
    return out.str.replace(r"([aei])ng\b", r"\1n", regex=True)


def _sorted_key(py: pd.Series) -> pd.Series:
    uniq = py.dropna().unique().tolist()
    mapping = {v: " ".join(sorted(v.split())) for v in uniq}
    return py.map(mapping).astype(_STR)


def _as_text(raw: pd.Series) -> pd.Series:
    return raw.astype(_STR)


def standardize_names(raw: pd.Series) -> pd.DataFrame:
    """Standardise distinct raw name values; see the module docstring for the columns."""
    s = _as_text(raw).reset_index(drop=True).str.normalize("NFKC")  # positional inside; raw.index outside
    s = s.str.replace(r"[\x{00B7}\x{2022}\x{2027}\x{30FB}\x{2219}\x{22C5}\x{FF65}]", "·", regex=True)
    # RE2 (pyarrow) syntax throughout: \s, \d or \uXXXX would make pandas fall back to Python's re
    s = s.str.replace(r"\p{Cf}+", "", regex=True)  # zero-width spaces, BOM, direction marks
    s = s.str.replace(r"[\p{Cc}\p{Z}]+", " ", regex=True).str.strip()
    n = len(s)
    present = (s.notna() & (s != "")).to_numpy(dtype=bool)
    length = s.str.len().fillna(0).to_numpy()
    huge = length > _MAX_CHARS
    s = s.where(~huge)  # no work on megabyte "names"

    has_han = s.str.contains(_HAN).fillna(False).to_numpy(dtype=bool)
    has_latin = s.str.contains(r"\p{Latin}").fillna(False).to_numpy(dtype=bool)
    has_other = s.str.contains(r"[^\P{L}\p{Han}\p{Latin}]").fillna(False).to_numpy(dtype=bool)
    has_letter = has_han | has_latin | has_other
    odd_chars = s.str.contains(r"[^\p{L}\p{M} ·'.\-]").fillna(False).to_numpy(dtype=bool)

    is_han = has_han & ~has_latin & ~has_other
    is_latin = has_latin & ~has_han & ~has_other
    is_mixed = has_letter & ~is_han & ~is_latin

    # ---- display form
    std = s.copy()
    han_bearing = pd.Series(has_han, index=s.index)
    han_part = s.where(han_bearing)
    for _ in range(3):  # "王 伟 明": each pass joins every other gap
        han_part = han_part.str.replace(r"(\p{Han}) (\p{Han})", r"\1\2", regex=True)
    han_part = han_part.str.replace(r" ?· ?", "·", regex=True)
    han_part = _to_simplified(han_part)
    std = std.where(~han_bearing, han_part)

    # str.extract runs Python's re value by value: only on the few candidates RE2 finds
    latin_s = pd.Series(is_latin, index=s.index)
    honor_han = _extract(std, pd.Series(is_han, index=s.index), _HAN_HONORIFIC)
    honor_latin = _extract(std, latin_s, _LATIN_HONORIFIC)
    honorific = (honor_han.notna() | honor_latin.notna()).to_numpy(dtype=bool)
    std = std.where(honor_han.isna(), honor_han).where(honor_latin.isna(), honor_latin)

    # ---- pinyin handles and Latin names
    letters = std.where(latin_s).str.lower().str.replace(r"[^a-z]+", " ", regex=True).str.strip()
    letters = letters.where(letters != "")
    latin_py, handle_shaped = _latin_pinyin(letters)
    spaced = std.str.contains(" ").fillna(False).to_numpy(dtype=bool)
    digits_or_marks = std.str.contains(r"[0-9_]").fillna(False).to_numpy(dtype=bool)
    handle = is_latin & ~honorific & handle_shaped.to_numpy(dtype=bool) & (~spaced | digits_or_marks)
    handle_s = pd.Series(handle, index=s.index)
    latin_name = latin_s & ~handle_s
    std = std.where(~latin_name, std.str.title())

    # ---- pinyin
    pinyin = pd.Series(np.nan, index=s.index, dtype=_STR)
    han_or_mixed = pd.Series(is_han | is_mixed, index=s.index)
    if han_or_mixed.any():
        pinyin = pinyin.where(~han_or_mixed, _han_pinyin(std.where(han_or_mixed)))
    pinyin = pinyin.where(~latin_s, latin_py)

    # ---- issues: one per value; later rules overwrite earlier ones (the most severe is last)
    lower = std.str.lower()
    placeholder = (lower.isin(_PLACEHOLDERS) | s.str.lower().isin(_PLACEHOLDERS)).to_numpy(dtype=bool)
    n_han = std.str.count(_HAN).fillna(0).to_numpy()
    dotted = std.str.contains("·").fillna(False).to_numpy(dtype=bool)
    std_len = std.str.len().fillna(0).to_numpy()
    too_long = huge | (is_han & ~dotted & (n_han > _MAX_HAN)) | (std_len > np.where(is_latin, _MAX_LATIN, _MAX_DOTTED))
    too_short = is_han & ~honorific & (n_han == 1)
    issue = np.full(n, None, dtype=object)
    for mask, reason in (
        (too_short, "too_short"),
        ((is_han | is_latin | is_mixed) & odd_chars & ~handle, "not_a_name"),
        (is_mixed & has_other, "other_script"),
        (honorific, "honorific"),
        (placeholder, "placeholder"),
        (too_long, "too_long"),
        (present & ~has_letter & ~huge, "no_letters"),
    ):
        issue[mask] = reason

    no_keys = pd.Series(~has_letter | placeholder | too_long, index=s.index)
    pinyin = pinyin.where(~no_keys)
    std = std.where(~pd.Series(~has_letter | placeholder | huge, index=s.index))

    script = np.full(n, None, dtype=object)
    script[is_han] = "han"
    script[is_latin] = "latin"
    script[handle] = "pinyin_handle"
    script[is_mixed] = "mixed"
    script[~present] = None

    fuzzy = _fuzzy(pinyin)
    sorted_key = _sorted_key(pinyin)
    return pd.DataFrame(
        {
            "name_std": _obj(std, raw.index),
            "name_script": pd.Series(script, index=raw.index, dtype=object),
            "name_pinyin": _obj(pinyin, raw.index),
            "name_pinyin_fuzzy": _obj(fuzzy, raw.index),
            "name_sorted_key": _obj(sorted_key, raw.index),
            "is_pinyin_handle": pd.Series(handle, index=raw.index, dtype=bool),
            "name_issue": pd.Series(issue, index=raw.index, dtype=object),
        },
        index=raw.index,
    )


def _extract(values: pd.Series, scope: pd.Series, pattern: str) -> pd.Series:
    """First group of ``pattern`` where it matches within ``scope``, else missing."""
    test = re.sub(r"\((?!\?)", "(?:", pattern)  # same pattern without capture groups
    candidates = scope & values.str.contains(test).fillna(False).astype(bool)
    out = pd.Series(np.nan, index=values.index, dtype=_STR)
    if candidates.any():
        out[candidates] = values[candidates].str.extract(pattern, expand=False)
    return out


def _obj(s: pd.Series, index: pd.Index) -> pd.Series:
    """Object column with None for missing (what the warehouse loaders expect), on ``index``."""
    values = s.to_numpy(dtype=object, na_value=None)
    return pd.Series(values, index=index, dtype=object)
