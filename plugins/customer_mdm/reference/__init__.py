"""Reference data shipped with the package, and its loaders.

``cn_regions.csv``
    Chinese administrative divisions after GB/T 2260 (state of 2024), one row per division:

    ========  ==================================================================================
    level     ``province`` | ``city`` | ``district``
    kind      province: ``province``, ``autonomous_region``, ``municipality``, ``sar``;
              city: ``prefecture_city``, ``prefecture`` (地区), ``autonomous_prefecture``,
              ``league`` (盟), ``county_level`` (province-administered county-level unit such as
              济源市, 仙桃市, 石河子市, Hainan's counties), ``municipality``, ``sar``;
              district: ``district``, ``county``, ``county_city``, ``autonomous_county``
    name      the standard name (``广东省``, ``深圳市``, ``南山区``)
    province  standard name of the province (its own name on a province row)
    city      standard name of the city (its own name on a city row, empty on a province row)
    aliases   ``|``-separated other spellings: short name (``广东``, ``深圳``, ``南山``), one-character
              abbreviation of a province (``粤``), pinyin/English (``Guangdong``, ``Inner Mongolia``),
              traditional characters (``廣東``), former names of merged or renamed districts
              (``闸北区`` -> 静安区) and common informal forms (``广西省``)
    ========  ==================================================================================

    All 34 provincial-level divisions and all 333 prefecture-level divisions are listed, plus the
    32 province-administered county-level units. The municipalities (北京, 上海, 天津, 重庆) and the
    two SARs have a city row under themselves (province = city = ``上海市``). Districts and counties
    are listed for the four municipalities and for the 25 other cities the demo generator uses
    (all of their districts, counties and county-level cities). Rows are in GB/T 2260 order:
    by province, then city, then level, then the order of the standard listing.

``cn_t2s_chars.csv``
    ``traditional,simplified`` character pairs for every character that occurs in a region name
    (derived with OpenCC), so that ``廣東`` or a mixed ``广東`` matches ``广东``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["RegionRow", "load_cn_regions", "load_cn_t2s_chars", "reference_text"]

LEVELS = ("province", "city", "district")


@dataclass(frozen=True)
class RegionRow:
    """One row of ``cn_regions.csv``."""

    level: str
    kind: str
    name: str
    province: str
    city: str
    aliases: tuple[str, ...]


def reference_text(name: str) -> str:
    """The text of a reference file of this package (UTF-8)."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


@cache
def load_cn_regions() -> tuple[RegionRow, ...]:
    """All rows of ``cn_regions.csv``, in file order (cached)."""
    rows = []
    for rec in csv.DictReader(reference_text("cn_regions.csv").splitlines()):
        if rec["level"] not in LEVELS:
            raise ValueError(f"cn_regions.csv: unknown level {rec['level']!r} for {rec['name']!r}")
        aliases = tuple(a for a in rec["aliases"].split("|") if a)
        rows.append(RegionRow(rec["level"], rec["kind"], rec["name"], rec["province"], rec["city"], aliases))
    return tuple(rows)


@cache
def load_cn_t2s_chars() -> dict[str, str]:
    """Traditional -> simplified character map for the characters of region names (cached)."""
    return {
        rec["traditional"]: rec["simplified"] for rec in csv.DictReader(reference_text("cn_t2s_chars.csv").splitlines())
    }
