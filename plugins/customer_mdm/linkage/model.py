"""The Splink model: settings built in code, training, and the versioned model artefact.

Input: ``intermediate.int_customer_records`` as a pandas DataFrame. :func:`prepare_records`
keeps the columns linkage needs, turns unusable values into NULL (an invalid phone or email),
so that NULL means "no evidence" everywhere, and derives a few match keys (one DuckDB query).

Comparisons (one Splink comparison each; levels are tried top-down, the first that holds wins;
TF = term-frequency adjusted, see :func:`add_term_frequencies`):

========  ==========================================================================================
name      exact ``name_std`` (TF) > same pinyin, i.e. homophones 王伟/王玮 (TF) > same sorted pinyin
          tokens (Zhang Wei / Wei Zhang / 张伟, TF) > same fuzzy pinyin (陈静/程静, TF) > an honorific
          or diminutive handle whose surname fits (王先生, xiaowang88 vs 王伟) > fuzzy pinyin one
          letter apart > the name is inside the other's email (yi.wang@qq.com vs 王怡) > surname-only
          with another surname > a pinyin handle that differs > else: two real names that differ
          (m fixed at 0.5 %: EM cannot tell a household from one person and would learn that
          different names are common among matches). TF: 王伟 agreeing is weak, 欧阳梓涵 strong.
phone     same mobile (TF: a parent's mobile on a child's records is weak evidence) > same landline
          or service number (TF: household landlines) > one edit apart (a typo; fixed prior) > a
          mobile vs a landline (people have both: ~no evidence) > two numbers of one kind differ
email     exact (TF: family mailboxes) > one edit apart (fixed prior) > else
birth     same full date > same month-day when one side knows only month-day (store cards) >
          day and month swapped > else (a different date: strong evidence against)
gender    same > else
address   same street (TF) > similar street in the same city > same district of the same city >
          same city (TF: 上海 agrees often, 珠海 rarely) > same province > a store card's city
          differs (the store is where one shops, not lives) > else. One comparison, because street,
          district and city are not independent.
company   same company key (TF) > one key ends with the other (沈阳安信供应链管理 / 安信供应链管理) > else
========  ==========================================================================================

Blocking rules (:func:`blocking_rules`): phone; email; sorted name key + city; fuzzy pinyin +
city; sorted name key + birth month-day; street + city. All are equi-joins on selective keys: on
the generator's data 1.1 candidate pairs per record at 22k records, 2.2 at 217k, and about 6
projected at 1.1M records (:func:`count_comparisons` measures them with
``splink.blocking_analysis``). The common names (王伟: 0.3 % of people) are what grows faster
than linearly, through the name + city rules.

Training (:func:`train`): the prior (probability that two random records match) from
deterministic rules with an assumed recall, u by random sampling with a fixed seed, m by
expectation maximisation on two blocking rules (same phone; same pinyin + city) without term
frequencies. Then every non-null level gets a usable m (a floor, higher for the "differs" level
of fields that change: employer, phone) and u (half a sample when never seen). The prior scales
with the dataset (about ``k / (N - 1)`` with ``k`` matching pairs per record), so the artefact
stores ``k`` and prediction rescales it to the number of records it scores. Probabilities are
rounded to 12 significant digits: the same input always gives a byte-identical model, whatever
its row order (the content hash shows it).

Artefact (:func:`save` / :func:`load_current`): ``<dir>/linkage_model_v<N>.json`` is a plain
Splink model (``Linker(df, path)`` loads it), ``linkage_model_v<N>.meta.json`` its metadata,
``linkage_model_v<N>_match_weights.html`` / ``_m_u_parameters.html`` its charts and
``current.json`` the pointer to the version in use: version, file, trained_at, training record
count, content hash (sha256 of the canonical model JSON) and the prior's scale.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from customer_mdm.errors import MdmError
from customer_mdm.linkage.drift import profile_of_records
from customer_mdm.linkage.engines import restore_sql

if TYPE_CHECKING:
    import duckdb
    from splink import Linker, SettingsCreator
    from splink.internals.blocking_rule_creator import BlockingRuleCreator

    from customer_mdm.linkage.engines import Engine

log = logging.getLogger(__name__)

__all__ = [
    "BLOCKING_KEYS",
    "LINKAGE_COLUMNS",
    "LinkageError",
    "TrainedModel",
    "blocking_rules",
    "build_settings",
    "count_comparisons",
    "load_current",
    "make_linker",
    "prepare_records",
    "save",
    "train",
    "write_charts",
]

MODEL_ID = "customer_mdm_person"
CURRENT_FILE = "current.json"
_MODEL_FILE = re.compile(r"^linkage_model_v(\d+)\.json$")

#: Columns of int_customer_records the model reads (record_key is the unique id).
INPUT_COLUMNS: tuple[str, ...] = (
    "record_key",
    "source",
    "name_raw",
    "name_std",
    "name_script",
    "name_pinyin",
    "name_pinyin_fuzzy",
    "name_sorted_key",
    "name_issue",
    "gender",
    "birth_date",
    "birth_year",
    "birth_month",
    "birth_day",
    "birth_precision",
    "phone_e164",
    "phone_kind",
    "phone_valid",
    "email",
    "email_valid",
    "province",
    "city",
    "district",
    "street",
    "company_key",
    # evidence from the event feeds, added by the link step (customer_mdm.linkage.evidence)
    "phone_other",
    "phone_dead",
    "email_dead",
    "household_nameless",
    "record_year",
)
_REQUIRED = ("record_key", "name_pinyin", "phone_e164", "email", "birth_month", "birth_day")
_TEXT = (
    "source",
    "name_std",
    "name_script",
    "name_pinyin",
    "name_pinyin_fuzzy",
    "name_sorted_key",
    "name_issue",
    "gender",
    "birth_precision",
    "phone_e164",
    "phone_kind",
    "email",
    "province",
    "city",
    "district",
    "street",
    "company_key",
    "phone_other",
)
#: Columns the Splink model sees: the standardised ones plus a few derived in prepare_records.
LINKAGE_COLUMNS: tuple[str, ...] = (
    *(c for c in INPUT_COLUMNS if c not in ("name_raw", "phone_valid", "email_valid")),
    "name_surname_only",
    "name_compact",
    "name_compact_rev",
    "email_alpha",
    "email_is_name",
)

# training defaults
U_MAX_PAIRS = 3e6
U_SEED = 20261120
PRIOR_RECALL = 0.75
#: m of a level that training never observed (or estimated lower) is raised to this ...
M_FLOOR = 1e-3
#: ... or to this for the disagreement levels of fields that change or get mistyped: a person
#: changes employer, a gender is mis-keyed; training data may be too small to show it
M_FLOOR_DIFFERS = {"company": 0.05, "gender": 0.005, "birth": 0.01, "email": 0.01, "phone": 0.05, "address": 0.01}
#: share of a person's record pairs whose two real names differ beyond the levels above
NAME_DIFFERS_M = 0.005
#: m (share of matching pairs) of the levels the event feeds' evidence opens; fixed because they
#: are rare enough for EM on a small delivery to estimate 0 (values EM found at 22k records)
EVIDENCE_M = {"phone_other": 0.014, "phone_dead": 0.02, "years_apart": 0.04, "email_dead": 0.002}
#: m and u of a shared mailbox that is just the pinyin of the name (see the email comparison)
NAME_EMAIL_M = 0.5
NAME_EMAIL_U = 0.02
_SIG_DIGITS = 12
_MIN_COMPACT = 5  # shortest compact pinyin name looked for inside an email address


class LinkageError(MdmError):
    """The linkage model cannot be trained, saved or loaded; the message says what to do."""


# ============================================================================ input
def _duck(con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    import duckdb

    return con if con is not None else duckdb.connect()


def _col(records: pd.DataFrame, name: str, sql_type: str = "varchar") -> str:
    if name in records.columns:
        return f'cast(r."{name}" as {sql_type})'
    return f"cast(null as {sql_type})"


def is_prepared(records: pd.DataFrame) -> bool:
    """``records`` is already the output of :func:`prepare_records` (it has the derived keys)."""
    return "name_surname_only" in records.columns and set(LINKAGE_COLUMNS) <= set(records.columns)


def prepare_records(records: pd.DataFrame, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """The linkage columns of ``int_customer_records``, with unusable values turned into NULL.

    - an invalid phone or email (``phone_valid`` / ``email_valid`` false) carries no evidence;
    - empty strings are NULL; birth parts are integers and ``birth_date`` ISO text;
      ``birth_year`` is NULL for month-day-only birthdays;
    - ``gender`` is taken from an honorific when the source has none (王先生 -> M, 李女士 -> F);
    - derived match keys: ``name_surname_only`` (the surname an honorific 王先生 or a diminutive
      handle ``xiaowang88`` gives), ``name_compact`` / ``name_compact_rev`` (the real name's
      pinyin without spaces, in both name orders: ``wangyi`` / ``yiwang``) and ``email_alpha``
      (the letters of the email's local part), so that ``yi.wang@qq.com`` counts for 王怡;
    - rows are sorted by ``record_key`` so that everything downstream is order independent.

    One DuckDB query (vectorised). Already prepared input is returned as it is.
    """
    if is_prepared(records):
        return records
    missing = [c for c in _REQUIRED if c not in records.columns]
    if missing:
        raise LinkageError(
            f"records lack the column(s) {missing}: pass intermediate.int_customer_records "
            "(select * from it), built by `mdm dbt` / the daily run"
        )
    if records["record_key"].isna().any() or records["record_key"].duplicated().any():
        raise LinkageError("record_key must be unique and not null (int_customer_records guarantees it)")
    text = {c: f"nullif(trim({_col(records, c)}), '')" for c in _TEXT}
    if "phone_valid" in records.columns:
        ok = f"coalesce({_col(records, 'phone_valid', 'boolean')}, false)"
        text["phone_e164"] = f"case when {ok} then {text['phone_e164']} end"
        text["phone_kind"] = f"case when {ok} then {text['phone_kind']} end"
    if "email_valid" in records.columns:
        text["email"] = f"case when coalesce({_col(records, 'email_valid', 'boolean')}, false) then {text['email']} end"
    # another number of the same source record (a former one, or the one a self-service change
    # gave), when it is not the number the record shows
    other = text["phone_other"]
    text["phone_other"] = f"case when {other} <> coalesce({text['phone_e164']}, '') then {other} end"
    birth = {
        c: f"try_cast({_col(records, c)} as bigint)" for c in ("birth_year", "birth_month", "birth_day", "record_year")
    }
    flags = {
        c: f"coalesce(try_cast({_col(records, c)} as boolean), false)"
        for c in ("phone_dead", "email_dead", "household_nameless")
    }
    base = ",\n".join(
        ["cast(r.record_key as varchar) as record_key"]
        + [f"{expr} as {c}" for c, expr in text.items()]
        + [f"{expr} as {c}" for c, expr in birth.items()]
        + [f"{expr} as {c}" for c, expr in flags.items()]
        + [
            f"try_cast({_col(records, 'birth_date')} as date) as birth_date_d",
            f"{_col(records, 'name_raw')} as name_raw",
        ]
    )
    sql = f"""
    with base as (
        select {base} from records as r
    ),
    names as (
        select *,
            case
                when name_issue = 'honorific' then name_pinyin
                when name_script = 'pinyin_handle' and regexp_full_match(name_pinyin, 'xiao [a-z]+')
                    then substr(name_pinyin, 6)
            end as name_surname_only,
            birth_month is not null and birth_day is not null as has_md,
            coalesce(birth_precision = 'month_day', false) as is_md
        from base
    ),
    keys as (
        select *,
            name_pinyin is not null and name_surname_only is null
                and coalesce(name_script in ('han', 'latin', 'mixed'), false) as real_name
        from names
    )
    select
        record_key, source, name_std, name_script, name_pinyin, name_pinyin_fuzzy, name_sorted_key, name_issue,
        coalesce(gender, case
            when name_issue = 'honorific' and regexp_matches(coalesce(name_raw, ''), '先生|(?i)^mr\\b') then 'M'
            when name_issue = 'honorific' and regexp_matches(coalesce(name_raw, ''), '女士|小姐|(?i)^(ms|mrs|miss)\\b')
                then 'F'
        end) as gender,
        case when has_md and not is_md and birth_date_d is not null then strftime(birth_date_d, '%Y-%m-%d') end
            as birth_date,
        case when has_md and not is_md then birth_year end as birth_year,
        case when has_md then birth_month end as birth_month,
        case when has_md then birth_day end as birth_day,
        case when has_md and is_md then 'month_day' when has_md and birth_date_d is not null then 'full' end
            as birth_precision,
        phone_e164, phone_kind, email, province, city, district, street, company_key,
        phone_other,
        phone_dead and phone_e164 is not null as phone_dead,
        email_dead and email is not null as email_dead,
        household_nameless,
        record_year,
        name_surname_only,
        case when real_name and length(replace(name_pinyin, ' ', '')) >= {_MIN_COMPACT}
            then replace(name_pinyin, ' ', '') end as name_compact,
        case when real_name and length(replace(name_pinyin, ' ', '')) >= {_MIN_COMPACT} then
            replace(substr(name_pinyin, strpos(name_pinyin, ' ') + 1), ' ', '')
            || case when strpos(name_pinyin, ' ') > 0 then split_part(name_pinyin, ' ', 1) else '' end
        end as name_compact_rev,
        nullif(regexp_replace(lower(split_part(email, '@', 1)), '[^a-z]', '', 'g'), '') as email_alpha,
        -- the mailbox is just the pinyin of the name (zhangwei@, wei.zhang@): people of one name share
        -- such addresses or look as if they did
        coalesce(
            name_pinyin is not null and regexp_full_match(lower(split_part(email, '@', 1)), '[a-z._-]+')
            and regexp_replace(lower(split_part(email, '@', 1)), '[._-]', '', 'g') in (
                replace(name_pinyin, ' ', ''),
                replace(substr(name_pinyin, strpos(name_pinyin, ' ') + 1), ' ', '')
                || case when strpos(name_pinyin, ' ') > 0 then split_part(name_pinyin, ' ', 1) else '' end
            ),
            false
        ) as email_is_name
    from keys
    order by record_key
    """
    import pyarrow as pa

    from customer_mdm.linkage.engines import to_arrow

    c = _duck(con)
    c.register("records", to_arrow(records))  # an Arrow scan: DuckDB's pandas scan converts slowly
    try:
        table = c.sql(sql).arrow().read_all()
    finally:
        c.unregister("records")
    out = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    out.loc[out["email_alpha"].str.len() < _MIN_COMPACT, "email_alpha"] = None
    return out[list(LINKAGE_COLUMNS)]


# ============================================================================ settings
def blocking_rules() -> list[BlockingRuleCreator | dict[str, Any]]:
    """Rules that generate the candidate pairs, most productive first.

    Every rule is an equi-join on a selective key, so the pairs grow about linearly with N:
    a phone or email is shared by a household at most; the very common names (王伟: ~0.3 % of
    people) are cut by a second key (birth year, city, district, birth month-day).
    """
    from splink import block_on

    cross: list[dict[str, Any]] = [{"blocking_rule": f"l.{a} = r.{b}"} for a, b in CROSS_BLOCKING_KEYS]
    return [*(block_on(*key) for key in BLOCKING_KEYS), *cross]


#: the columns of each blocking rule (:func:`blocking_rules`); the incremental link step finds
#: the existing records a new record can be compared with from these (equi-joins in SQL)
BLOCKING_KEYS: tuple[tuple[str, ...], ...] = (
    ("phone_e164",),
    ("email",),
    ("name_sorted_key", "city"),
    ("name_pinyin_fuzzy", "city"),
    ("name_sorted_key", "birth_month", "birth_day"),
    ("street", "city"),
)
#: rules that join one column to another (both directions): a number shown on one record is
#: another number (former, or a self-service change) of the other record
CROSS_BLOCKING_KEYS: tuple[tuple[str, str], ...] = (("phone_e164", "phone_other"), ("phone_other", "phone_e164"))


def _null(*cols: str) -> str:
    return " OR ".join(f'"{c}_l" IS NULL OR "{c}_r" IS NULL' for c in cols)


def _either(template: str) -> str:
    """``template`` with {a}/{b} as l/r and as r/l, OR-ed (a symmetric condition)."""
    return f"(({template.format(a='l', b='r')}) OR ({template.format(a='r', b='l')}))"


#: the real name of one side appears in the other side's email address (yi.wang@qq.com for 王怡)
_NAME_IN_EMAIL = _either(
    'contains("email_alpha_{b}", "name_compact_{a}") OR contains("email_alpha_{b}", "name_compact_rev_{a}")'
)
#: an honorific (王先生) or a diminutive handle (xiaowang88) gives the surname only; it fits the
#: other side's name when that starts (Chinese order) or ends (Latin order) with it
_SURNAME_FITS = _either(
    "starts_with(\"name_pinyin_{b}\" || ' ', \"name_surname_only_{a}\" || ' ') "
    "OR ends_with(' ' || \"name_pinyin_{b}\", ' ' || \"name_surname_only_{a}\")"
)
_SURNAME_ONLY = _either('"name_surname_only_{a}" IS NOT NULL')
_HANDLE = _either("\"name_script_{a}\" = 'pinyin_handle'")


def _comparisons() -> list[Any]:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    def level(sql: str, label: str, tf: str | None = None, null: bool = False) -> Any:
        lv = cll.CustomLevel(sql, label_for_charts=label)
        if tf:
            # the level's own u is the base of its TF adjustment (the condition is not a plain
            # "col_l = col_r", or it is one of several exact levels on different columns)
            lv.configure(tf_adjustment_column=tf, tf_adjustment_weight=1.0, disable_tf_exact_match_detection=True)
        if null:
            lv.configure(is_null_level=True)
        return lv

    def fixed_m(lv: Any, m: float) -> Any:
        # rare levels: EM on small data can drive m to 0 (Splink rejects it); u is still sampled
        return lv.configure(m_probability=m, fix_m_probability=True)

    def differs(name: str) -> Any:
        # the values differ: m fixed at the floor EM estimates fell to anyway on the generated data
        # (the finer levels above leave few matches here, and EM on a small delivery reaches 0)
        return cll.ElseLevel().configure(m_probability=M_FLOOR_DIFFERS[name], fix_m_probability=True)

    def fixed(lv: Any, m: float, u: float) -> Any:
        # levels the generated training data never shows (typos): a prior, not estimated
        return lv.configure(m_probability=m, u_probability=u, fix_m_probability=True, fix_u_probability=True)

    name = cl.CustomComparison(
        output_column_name="name",
        comparison_description="Name: characters, pinyin (homophones), token order, fuzzy pinyin, "
        "surname-only forms, name inside the email",
        comparison_levels=[
            level(f"({_null('name_pinyin')}) AND NOT coalesce({_NAME_IN_EMAIL}, false)", "Name missing", null=True),
            level('"name_std_l" = "name_std_r"', "Exact name", tf="name_std"),
            level('"name_pinyin_l" = "name_pinyin_r"', "Same pinyin (homophone)", tf="name_pinyin"),
            level('"name_sorted_key_l" = "name_sorted_key_r"', "Same pinyin tokens, any order", tf="name_sorted_key"),
            level('"name_pinyin_fuzzy_l" = "name_pinyin_fuzzy_r"', "Same fuzzy pinyin", tf="name_pinyin_fuzzy"),
            level(_SURNAME_FITS, "Surname only (王先生, xiaowang) fits the name"),
            level(
                "\"name_script_l\" <> 'pinyin_handle' AND \"name_script_r\" <> 'pinyin_handle' "
                'AND levenshtein("name_pinyin_fuzzy_l", "name_pinyin_fuzzy_r") <= 1',
                "Fuzzy pinyin one letter apart",
            ),
            level(_NAME_IN_EMAIL, "Name appears in the other's email"),
            level(_SURNAME_ONLY, "Surname only (王先生, xiaowang), another surname"),
            level(_HANDLE, "Pinyin handle differs from the name"),
            # fixed: EM cannot tell a household (same phone, address, family mailbox) from one
            # person and would learn that two different real names are common among matches
            cll.ElseLevel().configure(m_probability=NAME_DIFFERS_M, fix_m_probability=True),
        ],
    )
    phone = cl.CustomComparison(
        output_column_name="phone",
        comparison_description="Phone (E.164): mobile vs landline, term-frequency adjusted",
        comparison_levels=[
            cll.NullLevel("phone_e164"),
            level('"phone_e164_l" = "phone_e164_r" AND "phone_kind_l" = \'mobile\'', "Same mobile", tf="phone_e164"),
            level('"phone_e164_l" = "phone_e164_r"', "Same landline / other number", tf="phone_e164"),
            fixed(
                level(
                    '(left("phone_e164_l", 7) = left("phone_e164_r", 7) '
                    'OR right("phone_e164_l", 4) = right("phone_e164_r", 4)) '
                    'AND levenshtein("phone_e164_l", "phone_e164_r") <= 1',
                    "Phone one edit apart",
                ),
                m=0.003,
                u=1e-5,
            ),
            fixed_m(
                level(
                    '"phone_e164_l" = "phone_other_r" OR "phone_other_l" = "phone_e164_r" '
                    'OR "phone_other_l" = "phone_other_r"',
                    "A number the other's record had or got (earlier export, self-service change)",
                ),
                EVIDENCE_M["phone_other"],
            ),
            fixed_m(
                level(
                    '"phone_dead_l" OR "phone_dead_r"',
                    "Differ, one number unreachable (a dead number contradicts nothing)",
                ),
                EVIDENCE_M["phone_dead"],
            ),
            fixed_m(
                level('abs("record_year_l" - "record_year_r") >= 2', "Differ, the records two or more years apart"),
                EVIDENCE_M["years_apart"],
            ),
            level('"phone_kind_l" <> "phone_kind_r"', "Differ, a mobile and a landline"),
            differs("phone"),
        ],
    )
    email = cl.CustomComparison(
        output_column_name="email",
        comparison_description="Email (lower-cased, domain typo corrected)",
        comparison_levels=[
            cll.NullLevel("email"),
            # fixed: given that the names agree (the name comparison counts that), how often two
            # different people of one name show the same bare-pinyin mailbox (zhangwei@163.com)
            fixed(
                level(
                    '"email_l" = "email_r" AND ("email_is_name_l" OR "email_is_name_r")',
                    "Same email, just the pinyin of the name",
                ),
                m=NAME_EMAIL_M,
                u=NAME_EMAIL_U,
            ),
            level('"email_l" = "email_r"', "Same email", tf="email"),
            fixed(
                level(
                    '(left("email_l", 4) = left("email_r", 4) OR right("email_l", 6) = right("email_r", 6)) '
                    'AND levenshtein("email_l", "email_r") <= 1',
                    "Email one edit apart",
                ),
                m=0.003,
                u=1e-5,
            ),
            fixed_m(level('"email_dead_l" OR "email_dead_r"', "Differ, one address bounced"), EVIDENCE_M["email_dead"]),
            differs("email"),
        ],
    )
    birth = cl.CustomComparison(
        output_column_name="birth",
        comparison_description="Birth date, with month-day-only birthdays and day/month swaps",
        comparison_levels=[
            level(_null("birth_month", "birth_day"), "Birth date missing", null=True),
            level('"birth_date_l" = "birth_date_r"', "Same full birth date"),
            level(
                "(\"birth_precision_l\" = 'month_day' OR \"birth_precision_r\" = 'month_day') "
                'AND "birth_month_l" = "birth_month_r" AND "birth_day_l" = "birth_day_r"',
                "Same month-day (one side month-day only)",
            ),
            level(
                '("birth_year_l" = "birth_year_r" OR "birth_precision_l" = \'month_day\' '
                "OR \"birth_precision_r\" = 'month_day') "
                'AND "birth_month_l" = "birth_day_r" AND "birth_day_l" = "birth_month_r"',
                "Day and month swapped",
            ),
            differs("birth"),
        ],
    )
    gender = cl.CustomComparison(
        output_column_name="gender",
        comparison_levels=[cll.NullLevel("gender"), cll.ExactMatchLevel("gender"), cll.ElseLevel()],
    )
    address = cl.CustomComparison(
        output_column_name="address",
        comparison_description="Address: street, district, city, province (one comparison: they are not "
        "independent); a store card's city is where the person shops",
        comparison_levels=[
            level(f"({_null('street')}) AND ({_null('city')}) AND ({_null('province')})", "Address missing", null=True),
            level('"street_l" = "street_r"', "Same street address", tf="street"),
            level(
                'jaro_winkler_similarity("street_l", "street_r") >= 0.9 AND "city_l" = "city_r"',
                "Similar street, same city",
            ),
            level(
                '"district_l" = "district_r" AND ("city_l" = "city_r" OR "city_l" IS NULL OR "city_r" IS NULL)',
                "Same district",
            ),
            level('"city_l" = "city_r"', "Same city", tf="city"),
            level('"province_l" = "province_r"', "Same province"),
            level("\"source_l\" = 'store_pos' OR \"source_r\" = 'store_pos'", "Differs, one side a store's city"),
            cll.ElseLevel(),
        ],
    )
    company = cl.CustomComparison(
        output_column_name="company",
        comparison_levels=[
            cll.NullLevel("company_key"),
            level('"company_key_l" = "company_key_r"', "Same company", tf="company_key"),
            level(
                'length("company_key_l") >= 4 AND length("company_key_r") >= 4 AND '
                '(ends_with("company_key_l", "company_key_r") OR ends_with("company_key_r", "company_key_l"))',
                "Company key ends with the other (city prefix)",
            ),
            differs("company"),
        ],
    )
    return [name, phone, email, birth, gender, address, company]


def build_settings() -> SettingsCreator:
    """The model's settings: dedupe over the unified records, keyed by ``record_key``."""
    from splink import SettingsCreator

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_key",
        comparisons=_comparisons(),
        blocking_rules_to_generate_predictions=blocking_rules(),
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
        em_convergence=0.0001,
        max_iterations=25,
        linker_uid=MODEL_ID,
    )


def _training_rules() -> list[BlockingRuleCreator]:
    """EM blocking rules: together they leave every comparison free in at least one session."""
    from splink import block_on

    return [block_on("phone_e164"), block_on("name_pinyin", "city")]


def _prior_rules() -> list[str | BlockingRuleCreator]:
    """Deterministic rules for the prior: pairs that are (almost) surely the same person."""
    return [
        "l.name_pinyin = r.name_pinyin AND l.phone_e164 = r.phone_e164 AND l.phone_kind = 'mobile'",
        "l.name_pinyin = r.name_pinyin AND l.email = r.email",
        "l.name_pinyin = r.name_pinyin AND l.birth_date = r.birth_date",
    ]


# ============================================================================ the model
@dataclass
class TrainedModel:
    """A trained model: the Splink settings dict (m/u included) and its metadata."""

    settings: dict[str, Any]
    trained_at: str
    training_records: int
    #: expected matching pairs per record, ``lambda * (N - 1)``: rescales the prior to another N
    matches_per_record: float
    version: int | None = None
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: the training linker (charts, inspection); not persisted
    linker: Linker | None = field(default=None, repr=False, compare=False)

    @property
    def content_hash(self) -> str:
        return content_hash(self.settings)

    def meta(self) -> dict[str, Any]:
        import splink

        return {
            "model_id": MODEL_ID,
            "version": self.version,
            "file": self.path.name if self.path else None,
            "trained_at": self.trained_at,
            "training_records": self.training_records,
            "content_hash": self.content_hash,
            "matches_per_record": self.matches_per_record,
            "probability_two_random_records_match": self.settings["probability_two_random_records_match"],
            "splink_version": splink.__version__,
            **self.extra,
        }

    def settings_for(self, n_records: int) -> dict[str, Any]:
        """The settings with the prior rescaled to a dataset of ``n_records`` records."""
        s = json.loads(json.dumps(self.settings))
        if n_records > 1 and self.matches_per_record > 0:
            s["probability_two_random_records_match"] = min(0.5, self.matches_per_record / (n_records - 1))
        return s


def canonical_json(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_hash(settings: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(settings).encode()).hexdigest()


def _round_probs(obj: Any) -> Any:
    """Round every probability to _SIG_DIGITS significant digits (parallel float sums jitter)."""
    if isinstance(obj, dict):
        return {
            k: (
                float(f"{v:.{_SIG_DIGITS}g}") if isinstance(v, float) and k.endswith("probability") else _round_probs(v)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_round_probs(v) for v in obj]
    return obj


def _regularise(settings: dict[str, Any], u_floor: float) -> dict[str, Any]:
    """Give every non-null level a usable m and u.

    A level training never saw among matches (gender disagreeing on generated data, say) would
    otherwise get m = 1e-6 and veto any pair that shows it once in real data; m is raised to
    ``M_FLOOR``. A level never seen among the random pairs gets u = half a sample.
    """
    for comparison in settings["comparisons"]:
        levels = comparison["comparison_levels"]
        for lv in levels:
            if lv.get("is_null_level"):
                continue
            floor = M_FLOOR
            if lv is levels[-1]:  # the "else" level: the values disagree
                floor = M_FLOOR_DIFFERS.get(comparison.get("output_column_name", ""), M_FLOOR)
            m, u = lv.get("m_probability"), lv.get("u_probability")
            if not lv.get("fix_m_probability") and (not isinstance(m, float | int) or m < floor):
                lv["m_probability"] = floor
            if not lv.get("fix_u_probability") and (not isinstance(u, float | int) or u <= 0):
                lv["u_probability"] = u_floor
    return settings


#: columns with term-frequency adjustments (a ``tf_<col>`` column is computed for each)
TF_COLUMNS = (
    "name_std",
    "name_pinyin",
    "name_sorted_key",
    "name_pinyin_fuzzy",
    "phone_e164",
    "email",
    "street",
    "city",
    "company_key",
)


def add_term_frequencies(prepared: pd.DataFrame, entities: np.ndarray) -> pd.DataFrame:
    """Add ``tf_<col>`` for every TF column: how likely *another person* has the value.

    Splink's own term frequencies count records, and that understates the evidence of rare
    values badly: a name held by one person with two records gets frequency 2/N, although
    nobody else has it (on generated data 96 % of the pairs sharing such a name are one person;
    the record-based u made them look like 1 in 5). Here values are counted per *entity* --
    ``entities``: the cluster ids of a first pass -- and the two entities of the pair being
    scored are left out (they are the data the question is
    about): ``u = (max(k - 2, 0) + g) / E`` for a value held by ``k`` of ``E`` entities, where
    ``g = 2 n2 / n1`` is the Good-Turing estimate of how often a value seen once is seen again
    (``n1``, ``n2``: values held by exactly one / two entities).
    """
    import pyarrow as pa

    ent = np.asarray(entities)
    frame = prepared[list(TF_COLUMNS)].copy()
    frame["_e"] = ent
    frame["_i"] = np.arange(len(frame))
    ctes, joins, cols = [], [], []
    for n, col in enumerate(TF_COLUMNS):
        ctes.append(
            f"""k{n} as (select "{col}" as v, count(distinct _e) as k from src where "{col}" is not null group by 1),
            s{n} as (
                select (select count(distinct _e) from src where "{col}" is not null) as total,
                    count(*) filter (where k = 1) as n1, count(*) filter (where k = 2) as n2 from k{n}
            ),
            t{n} as (
                select v, (greatest(k - 2, 0) + case when n1 > 0 then least(1.0, greatest(0.05, 2.0 * n2 / n1))
                    else 1.0 end) / greatest(total, 1) as tf
                from k{n}, s{n}
            )"""
        )
        joins.append(f'left join t{n} on src."{col}" = t{n}.v')
        cols.append(f"t{n}.tf as tf_{col}")
    sql = f"with {', '.join(ctes)} select src._i, {', '.join(cols)} from src {' '.join(joins)} order by src._i"
    con = _duck()
    con.register("src", frame)
    table = con.sql(sql).arrow().read_all()
    tf = table.to_pandas(types_mapper={pa.float64(): None}.get)
    out = prepared.copy()
    for col in TF_COLUMNS:
        out[f"tf_{col}"] = tf[f"tf_{col}"].to_numpy(dtype=float)
    return out


def make_linker(
    prepared: pd.DataFrame,
    settings: SettingsCreator | dict[str, Any],
    con: duckdb.DuckDBPyConnection | None = None,
    table_name: str | None = None,
    engine: Engine | None = None,
) -> Linker:
    """A Linker over ``prepared`` records (see :func:`prepare_records`) on the ``engine`` (default
    DuckDB, on ``con`` or a new in-memory connection; see :mod:`customer_mdm.linkage.engines`).
    A settings dict is in DuckDB SQL and translated to the engine's dialect."""
    from splink import Linker

    from customer_mdm.linkage.engines import DUCKDB

    engine = engine or DUCKDB
    if isinstance(settings, dict):
        settings = engine.model_settings(settings)
    lookups: dict[str, pd.DataFrame] = {}
    if engine.name != "duckdb":
        # Splink joins its own term-frequency tables even when the input has tf_ columns (DuckDB
        # keeps the input's, Spark rejects the duplicate name): give them as lookups instead
        for col in TF_COLUMNS:
            if f"tf_{col}" in prepared.columns:
                lookup = prepared[[col, f"tf_{col}"]].dropna(subset=[col]).drop_duplicates(col)
                lookups[col] = lookup.reset_index(drop=True)
        prepared = prepared.drop(columns=[f"tf_{col}" for col in lookups])
    db_api = engine.db_api(con)
    sdf = engine.register(db_api, prepared, table_name=table_name)
    linker = Linker(sdf, settings, log_level=None)
    for col, lookup in lookups.items():
        linker.table_management.register_term_frequency_lookup(engine.register(db_api, lookup), col)
    return linker


def train(
    records: pd.DataFrame,
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    u_max_pairs: float = U_MAX_PAIRS,
    seed: int = U_SEED,
    prior_recall: float = PRIOR_RECALL,
    engine: Engine | None = None,
) -> TrainedModel:
    """Train the model on the unified records (int_customer_records); deterministic for a given input.

    u: random sampling of ``u_max_pairs`` pairs with ``seed``; m: EM on same-phone pairs and on
    same-pinyin + city pairs; prior: deterministic rules assumed to find ``prior_recall`` of
    the matches. On another ``engine`` than DuckDB the saved model is still in DuckDB SQL.
    """
    prepared = prepare_records(records)
    n = len(prepared)
    if n < 10:
        raise LinkageError(f"need at least 10 records to train the linkage model, got {n}")
    from customer_mdm.linkage.engines import DUCKDB

    engine = engine or DUCKDB
    t0 = time.perf_counter()
    on_duckdb = engine.name == "duckdb"
    base = build_settings().create_settings_dict("duckdb")  # SQL written for DuckDB
    linker = make_linker(prepared, build_settings() if on_duckdb else base, con, engine=engine)
    training = linker.training
    training.estimate_probability_two_random_records_match(_prior_rules(), recall=prior_recall)
    training.estimate_u_using_random_sampling(max_pairs=u_max_pairs, seed=seed)
    for rule in _training_rules():
        training.estimate_parameters_using_expectation_maximisation(rule, estimate_without_term_frequencies=True)
    trained = linker.misc.save_model_to_json()
    if not on_duckdb:
        trained = restore_sql(trained, base)  # the artefact is DuckDB SQL, whatever engine trained it
    settings = _round_probs(_regularise(trained, u_floor=0.5 / u_max_pairs))
    settings["linker_uid"] = MODEL_ID
    if con is None:  # the training tables (sampled pairs, EM iterations) are not needed any more
        engine.release(linker._db_api)
    # the linker kept with the model serves its charts: the settings matter, not the records
    empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in LINKAGE_COLUMNS})
    linker = make_linker(prepare_records(empty), settings, con, engine=engine)
    lam = float(settings["probability_two_random_records_match"])
    model = TrainedModel(
        settings=settings,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training_records=n,
        matches_per_record=float(f"{lam * (n - 1):.{_SIG_DIGITS}g}"),
        linker=linker,
        # what the model was trained on: the link step retrains when the data moved away from it
        extra={"training_profile": profile_of_records(records)},
    )
    log.info(
        "linkage model trained on %d records in %.1f s (prior %.3g, %.2f matching pairs per record)",
        n,
        time.perf_counter() - t0,
        lam,
        model.matches_per_record,
    )
    return model


# ============================================================================ artefact
def _versions(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := _MODEL_FILE.match(p.name)))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save(model: TrainedModel, directory: str | Path, *, charts: bool = True) -> Path:
    """Write ``linkage_model_v<N>.json`` (N = last version + 1), its metadata and ``current.json``.

    Returns the model file. With ``charts`` the match-weights and m/u charts are written next to
    it (:func:`write_charts`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    version = (max(_versions(directory), default=0)) + 1
    path = directory / f"linkage_model_v{version}.json"
    model.version, model.path = version, path
    _write_atomic(path, json.dumps(model.settings, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    meta = json.dumps(model.meta(), indent=2, ensure_ascii=False) + "\n"
    _write_atomic(directory / f"linkage_model_v{version}.meta.json", meta)
    if charts:
        write_charts(model, directory)
    _write_atomic(directory / CURRENT_FILE, meta)
    log.info("linkage model v%d saved to %s (%s)", version, path, model.content_hash)
    return path


def load_current(directory: str | Path) -> TrainedModel:
    """The model ``current.json`` points to; its content hash is verified."""
    directory = Path(directory)
    pointer = directory / CURRENT_FILE
    if not pointer.is_file():
        raise LinkageError(
            f"no trained linkage model in {directory} ({CURRENT_FILE} is missing): "
            "train one first (customer_mdm.linkage.train + save)"
        )
    try:
        meta = json.loads(pointer.read_text(encoding="utf-8"))
        path = directory / meta["file"]
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise LinkageError(f"cannot read the linkage model {pointer}: {exc}; retrain and save the model") from exc
    model = TrainedModel(
        settings=settings,
        trained_at=meta["trained_at"],
        training_records=int(meta["training_records"]),
        matches_per_record=float(meta["matches_per_record"]),
        version=int(meta["version"]),
        path=path,
        extra={k: v for k, v in meta.items() if k not in _META_KEYS},
    )
    if model.content_hash != meta.get("content_hash"):
        raise LinkageError(
            f"{path.name} does not match the content hash in {CURRENT_FILE} "
            f"({model.content_hash} != {meta.get('content_hash')}): the file was changed; retrain and save"
        )
    return model


_META_KEYS = {
    "model_id",
    "version",
    "file",
    "trained_at",
    "training_records",
    "content_hash",
    "matches_per_record",
    "probability_two_random_records_match",
    "splink_version",
}


def write_charts(linker: Linker | TrainedModel, directory: str | Path) -> list[Path]:
    """Save the match-weights chart and the m/u parameters chart as self-contained HTML.

    Files: ``<model stem>_match_weights.html`` and ``<model stem>_m_u_parameters.html`` next to
    the model (stem ``linkage_model`` when the version is unknown).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = "linkage_model"
    if isinstance(linker, TrainedModel):
        if linker.path is not None:
            stem = linker.path.stem
        if linker.linker is not None:
            lk = linker.linker
        else:
            empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in LINKAGE_COLUMNS})
            lk = make_linker(prepare_records(empty), linker.settings)
    else:
        lk = linker
    out = []
    for name, chart in (
        ("match_weights", lk.visualisations.match_weights_chart()),
        ("m_u_parameters", lk.visualisations.m_u_parameters_chart()),
    ):
        path = directory / f"{stem}_{name}.html"
        chart.save(str(path), inline=True)
        out.append(path)
    return out


# ============================================================================ blocking analysis
def count_comparisons(
    records: pd.DataFrame,
    rules: list[Any] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    record_sample_proportion: float = 1.0,
) -> pd.DataFrame:
    """Comparisons each blocking rule generates (marginal and cumulative), via splink.blocking_analysis."""
    import duckdb
    from splink import DuckDBAPI
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    prepared = prepare_records(records)
    db_api = DuckDBAPI(connection=con if con is not None else duckdb.connect())
    sdf = db_api.register(prepared)
    result = count_comparisons_from_blocking_rules(
        sdf,
        blocking_rules=rules if rules is not None else blocking_rules(),
        link_type="dedupe_only",
        unique_id_column_name="record_key",
        record_sample_proportion=record_sample_proportion,
    )
    df = pd.DataFrame(result)
    n = len(prepared)
    df["comparisons_per_record"] = df["cumulative_comparison_count"] / max(n, 1)
    if n > 1:
        df["reduction_ratio"] = 1 - df["cumulative_comparison_count"] / (n * (n - 1) / 2)
    return df
