"""Match-on-entry: is the person typed into a form already a golden customer? (``POST /v1/match``)

The answer is the one the daily linkage would give if the typed record arrived in the next
batch, computed while the customer waits:

1. **The input is prepared like a source record** (:func:`prepare_input`): the pipeline's own
   standardisers (names: OpenCC + pypinyin, phones, birth dates, regions and addresses), the
   e-mail rendering of the dbt macros (:mod:`customer_mdm.hub.standardise`), the company and
   gender rules of ``int_customer_records`` and then the derived match keys of
   :func:`customer_mdm.linkage.model.prepare_records`. ``tests/hub/test_matching.py`` checks
   that every record of a generated warehouse, typed in from its raw fields, gives exactly the
   linkage columns the pipeline gave it.
2. **Candidates** come from the blocking rules of the current trained model (read from the
   model artefact: same phone, same e-mail, same sorted name key + city, ...), looked up in an
   in-memory index over the published source records of every golden customer
   (``serving.match_records``). The index is built once per serving version (a new
   publication) and per model version; the records are prepared by ``prepare_records`` itself.
   A typed record without a city is also looked up by its name alone (:data:`EXTRA_KEYS`,
   rare names only); those pairs are scored by the model like the others.
3. **Scores** use the current model artefact (``$MDM_HOME/models/linkage/current.json``, checked
   at every call, so a retrained model is picked up without a restart): every comparison level's
   SQL condition is compiled to Python (:mod:`sqlglot`), levels are tried top-down as Splink
   does, each gets Splink's match weight ``log2(m / u)`` plus its term-frequency adjustment
   ``log2(u_level) - log2(tf)``. Term frequencies count *people* exactly as the link step does
   (``linkage.step._tf_lookups``: distinct golden ids holding the value, Good-Turing smoothed,
   the typed record counting as one more person), and the prior is rescaled to the number of
   records plus the typed one (``TrainedModel.settings_for``). A pair therefore gets the match
   weight Splink's ``predict_between`` gives it in the next incremental run (tested to 1e-6).
4. **Golden customers**: a candidate's score is the **best pair score** between the typed
   record and the golden customer's source records (the strongest link, as clustering uses).
   ``decision`` is ``match`` when the best candidate's probability is at least the link step's
   automatic-link threshold (``REVIEW_HIGH``), ``possible_match`` in the review band
   (``REVIEW_LOW`` <= p < ``REVIEW_HIGH``), else ``no_match``. Candidates below the link step's
   ``PAIR_THRESHOLD`` (pairs the pipeline does not even store) are not returned; those between
   it and ``REVIEW_LOW`` are returned with the decision ``no_match``.
5. **Steward decisions**: when the typed record matches a source record R at the automatic-link
   level, it would join R's person; a steward's latest ``no_match`` between R and another record
   S then forbids S's golden customer for it (clustering honours cannot-links the same way), so
   that candidate is dropped.
6. **Erasure**: erased persons are removed from the serving tables, and every candidate record is
   also checked against the erasure tombstones (salted SHA-256 of record id, mobile and e-mail,
   :func:`customer_mdm.privacy.pseudonym`), so an older snapshot cannot bring one back.

The matcher is immutable once built and thread-safe; :func:`get_matcher` caches it per serving
version on the API's :class:`customer_mdm.hub.serving.ServingReader`.

For the API route (``customer_mdm.hub.api``): call ``get_matcher(reader).match(body, limit)``;
:class:`MatchInputError` (no name, mobile or e-mail; a field that is not text) is a 422 whose
message names the field and never quotes a value; :class:`MatcherUnavailable` (nothing published
yet, no trained model) is a 503.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from customer_mdm.config import Settings
from customer_mdm.errors import MdmError

if TYPE_CHECKING:
    from customer_mdm.hub.serving import ServingReader
    from customer_mdm.linkage.model import TrainedModel

log = logging.getLogger(__name__)

__all__ = [
    "FIELDS",
    "MATCH_TABLES",
    "MatchInputError",
    "Matcher",
    "MatcherUnavailable",
    "get_matcher",
    "prepare_input",
]

#: the form fields ``POST /v1/match`` accepts (the contract)
FIELDS = ("name", "gender", "birth_date", "mobile", "email", "province", "city", "district", "address", "company")
#: at least one of these is required
REQUIRED_ANY = ("name", "mobile", "email")
#: the ``source`` a typed record gets (any value but ``store_pos``: a form is not a store's card)
INPUT_SOURCE = "hub_match"
INPUT_KEY = "hub_match:input"
MAX_FIELD_CHARS = 500
MAX_LIMIT = 50


class MatchInputError(MdmError):
    """The match request is not usable (422); the message names the field, never its value."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


class MatcherUnavailable(MdmError):
    """Nothing to match against yet (no publication, no trained model): 503."""


# ============================================================================ serving tables
def _tf_columns() -> tuple[str, ...]:
    from customer_mdm.linkage.model import TF_COLUMNS

    return TF_COLUMNS


def _records_sql() -> str:
    """``serving.match_records``: every linked source record with the columns the model reads,
    its golden id and, per term-frequency column, ``tfk_<col>``: how many people (golden ids;
    an unlinked record counts as itself) hold the record's value -- what the link step counts."""
    from customer_mdm.linkage.model import INPUT_COLUMNS
    from customer_mdm.linkage.records import RECORDS_FROM, column_sql
    from customer_mdm.linkage.step import _tf_expression

    key = "r.source || ':' || r.source_id"
    # the link step's columns: the record's own and the event feeds' evidence (EVIDENCE_TABLE,
    # built on the refresh's connection by serving.refresh)
    cols = [
        f"{column_sql(c)} as {c}"
        for c in dict.fromkeys([*INPUT_COLUMNS, "phone_valid", "email_valid"])
        if c != "record_key"
    ]
    tf = _tf_columns()
    values = ", ".join(f"{_tf_expression(c)} as tfv_{c}" for c in tf)
    counts = ",\n".join(
        f"k_{c} as (select tfv_{c} as v, count(distinct tf_entity) as k from base "
        f"where tfv_{c} is not null group by tfv_{c})"
        for c in tf
    )
    joins = " ".join(f"left join k_{c} on k_{c}.v = b.tfv_{c}" for c in tf)
    picked = ", ".join(f"b.{c.rsplit(' as ', 1)[1]}" for c in cols)
    ks = ", ".join(f"k_{c}.k as tfk_{c}" for c in tf)
    return (
        f"with base as (select {key} as record_key, x.golden_id, coalesce(x.golden_id, 'record:' || {key}) "
        f"as tf_entity, {', '.join(cols)}, {values} from {RECORDS_FROM} "
        "left join mdm.xref as x on x.source = r.source and x.source_id = r.source_id),\n"
        f"{counts}\n"
        f"select b.record_key, b.golden_id, {picked}, {ks} from base as b {joins} where b.golden_id is not null"
    )


def _stats_sql() -> str:
    """``serving.match_tf_stats``: per term-frequency column the people holding any value and
    the values held by exactly one / two people (the Good-Turing term), and the record count.
    Counts only: no personal value."""
    from customer_mdm.linkage.records import RECORDS_SQL
    from customer_mdm.linkage.step import _tf_expression

    key = "r.source || ':' || r.source_id"
    parts = []
    for c in _tf_columns():
        parts.append(
            f"select '{c}' as column_name, "
            f"(select count(distinct e) from p_{c}) as total, "
            f"(select count(*) from (select v from p_{c} group by v having count(*) = 1) as s) as n1, "
            f"(select count(*) from (select v from p_{c} group by v having count(*) = 2) as s) as n2"
        )
    ctes = ",\n".join(
        f"p_{c} as (select distinct tfv_{c} as v, tf_entity as e from base where tfv_{c} is not null)"
        for c in _tf_columns()
    )
    values = ", ".join(f"{_tf_expression(c)} as tfv_{c}" for c in _tf_columns())
    return (
        f"with base as (select coalesce(x.golden_id, 'record:' || {key}) as tf_entity, {values} "
        f"from {RECORDS_SQL} as r left join mdm.xref as x on x.source = r.source and x.source_id = r.source_id),\n"
        f"{ctes}\n"
        f"select s.*, (select count(*) from {RECORDS_SQL}) as n_records from ({' union all '.join(parts)}) as s"
    )


#: the latest steward decision per record pair, ``no_match`` only, with both golden ids (so that
#: the serving layer's erasure scrub finds the rows by ``golden_id`` / ``other_golden_id``)
_DECISIONS_SQL = """
select d.record_id_l, d.record_id_r, xl.golden_id, xr.golden_id as other_golden_id
from (
    select record_id_l, record_id_r, decision,
        row_number() over (partition by record_id_l, record_id_r order by decided_at desc) as rn
    from mdm.steward_decisions
) as d
left join mdm.xref as xl on xl.record_id = d.record_id_l
left join mdm.xref as xr on xr.record_id = d.record_id_r
where d.rn = 1 and d.decision = 'no_match'
"""

#: hashed identifiers only (no personal value in clear); absent before the first erasure step ran
_TOMBSTONES_SQL = "select distinct identifier_kind, identifier_type, identifier_sha256 from ops.erasure_tombstones"


def _match_tables() -> dict[str, str]:
    return {
        "match_records": _records_sql(),
        "match_tf_stats": _stats_sql(),
        "match_decisions": _DECISIONS_SQL.strip(),
        "match_tombstones": _TOMBSTONES_SQL,
    }


#: serving tables the matcher reads (name -> select over the warehouse), merged into
#: ``customer_mdm.hub.serving.serving_tables``. ``match_tombstones`` may be missing before the
#: first erasure step (optional table).
MATCH_TABLES: dict[str, str] = _match_tables()


# ============================================================================ input preparation
@lru_cache(maxsize=4)
def _seed(path: str) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _gender_codes(settings: Settings) -> dict[str, str]:
    return _gender_table(str(settings.dbt_project_dir / "seeds" / "ref_code_values.csv"))


@lru_cache(maxsize=4)
def _gender_table(path: str) -> dict[str, str]:
    codes = _seed(path)
    g = codes[codes["domain"] == "gender"]
    return dict(zip(g["raw_value"], g["code"], strict=True))


def _company_key(raw: str | None) -> str | None:
    """The dbt macros company_clean -> company_std -> company_key for one value."""
    if raw is None:
        return None
    clean = raw.replace("（", "(").replace("）", ")").replace(" ", "").replace("\u3000", "")
    if not clean:
        return None
    std = re.sub(r"[(][^)]*[)]", "", clean).replace("有限责任公司", "有限公司")
    if not std:
        return None
    key = re.sub(
        r"(股份有限公司|有限公司|股份公司|集团有限公司|集团公司|集团|公司|co[.,]*ltd[.]?|ltd[.]?|inc[.]?|limited)\Z",
        "",
        std.lower(),
    )
    return key or None


def _text(payload: Mapping[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MatchInputError(name, f"{name} must be text")
    if len(value) > MAX_FIELD_CHARS:
        raise MatchInputError(name, f"{name} is longer than {MAX_FIELD_CHARS} characters")
    return value if value.strip() else None


def _first(frame: pd.DataFrame) -> dict[str, Any]:
    row = frame.iloc[0].to_dict()
    return {
        k: (None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v) for k, v in row.items()
    }


# Per value: the scalar fast path of customer_mdm.hub.standardise (microseconds), else the
# pipeline's DataFrame standardiser on a one-value Series (milliseconds; other scripts, unusual
# characters). Both give the same columns: tests/hub/test_fast_path.py.
@lru_cache(maxsize=20000)
def _std_name(raw: str) -> tuple[tuple[str, Any], ...]:
    from customer_mdm.hub.standardise import fast_name

    fast = fast_name(raw)
    if fast is not None:
        return fast
    from customer_mdm.standardize.names import standardize_names

    return tuple(_first(standardize_names(pd.Series([raw], dtype=object))).items())


@lru_cache(maxsize=20000)
def _std_phone(raw: str) -> tuple[tuple[str, Any], ...]:
    from customer_mdm.hub.standardise import fast_phone

    fast = fast_phone(raw)
    if fast is not None:
        return fast
    from customer_mdm.standardize.phones import standardize_phones

    return tuple(_first(standardize_phones(pd.Series([raw], dtype=object))).items())


@lru_cache(maxsize=20000)
def _std_birth(raw: str) -> tuple[tuple[str, Any], ...]:
    from customer_mdm.hub.standardise import fast_birth_date

    fast = fast_birth_date(raw)
    if fast is not None:
        return fast
    from customer_mdm.standardize.dates import standardize_birth_dates

    return tuple(_first(standardize_birth_dates(pd.Series([raw], dtype=object))).items())


def _std_region(province: str | None, city: str | None, district: str | None) -> tuple[tuple[str, Any], ...]:
    from customer_mdm.hub.standardise import fast_region

    return fast_region(province, city, district)


def _std_address(raw: str) -> tuple[tuple[str, Any], ...]:
    from customer_mdm.hub.standardise import fast_address

    return fast_address(raw)


def _records_row(
    payload: Mapping[str, Any],
    settings: Settings,
    dead: Callable[[str | None, str | None], tuple[bool, bool]] | None = None,
) -> dict[str, Any]:
    """The typed fields as an ``int_customer_records`` row (the linkage's input columns) with
    the link step's evidence columns."""
    from customer_mdm.hub.standardise import standard_email

    raw = {f: _text(payload, f) for f in FIELDS}
    row: dict[str, Any] = {"record_key": INPUT_KEY, "source": INPUT_SOURCE, "name_raw": raw["name"]}
    name = dict(_std_name(raw["name"])) if raw["name"] is not None else {}
    for c in ("name_std", "name_script", "name_pinyin", "name_pinyin_fuzzy", "name_sorted_key", "name_issue"):
        row[c] = name.get(c)
    gender = raw["gender"]
    row["gender"] = _gender_codes(settings).get(gender.lower()) if gender is not None else None
    birth = dict(_std_birth(raw["birth_date"])) if raw["birth_date"] is not None else {}
    for c in ("birth_date", "birth_year", "birth_month", "birth_day", "birth_precision"):
        row[c] = birth.get(c)
    phone = dict(_std_phone(raw["mobile"])) if raw["mobile"] is not None else {}
    row["phone_e164"], row["phone_kind"] = phone.get("phone_e164"), phone.get("phone_kind")
    row["phone_valid"] = bool(phone.get("phone_valid") or False)
    row["email"] = standard_email(raw["email"], settings) if raw["email"] is not None else None
    row["email_valid"] = row["email"] is not None
    region: dict[str, Any] = {}
    if any(raw[f] is not None for f in ("province", "city", "district")):
        region = dict(_std_region(raw["province"], raw["city"], raw["district"]))
    address = dict(_std_address(raw["address"])) if raw["address"] is not None else {}
    for c in ("province", "city", "district"):
        row[c] = region.get(f"{c}_std") or address.get(f"{c}_std")
    row["street"] = address.get("street") or raw["address"]
    row["company_key"] = _company_key(raw["company"])
    # the evidence the link step would find for a record typed in now: no former number, this
    # year, and the contact feeds' verdict on the number and address (``dead``: the matcher's
    # index knows which published numbers / addresses were reported unreachable / bounced)
    row["phone_other"] = None
    row["record_year"] = datetime.now(UTC).year
    phone_ok = row["phone_e164"] if row["phone_valid"] else None
    row["phone_dead"], row["email_dead"] = dead(phone_ok, row["email"]) if dead is not None else (False, False)
    row["household_nameless"] = False
    return row


_MR = re.compile(r"先生|(?i:^mr\b)", re.ASCII)
_MS = re.compile(r"女士|小姐|(?i:^(ms|mrs|miss)\b)", re.ASCII)
_MIN_COMPACT = 5


def _strip(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, str):
        v = v.strip(" ")
        return v or None
    return v


def linkage_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`customer_mdm.linkage.model.prepare_records` for ONE record, in Python (that function
    is one DuckDB query: ~60 ms even for one row, too slow while a customer waits). The test
    suite checks that both agree on every record of a generated warehouse."""
    from customer_mdm.linkage.model import LINKAGE_COLUMNS

    r = {k: _strip(v) for k, v in row.items()}
    out: dict[str, Any] = {c: r.get(c) for c in LINKAGE_COLUMNS}
    out["record_key"] = str(row["record_key"])
    if not _strip(row.get("phone_valid")):
        out["phone_e164"] = out["phone_kind"] = None
    if "email_valid" in row and not _strip(row.get("email_valid")):
        out["email"] = None
    month, day = r.get("birth_month"), r.get("birth_day")
    has_md = month is not None and day is not None
    is_md = r.get("birth_precision") == "month_day"
    bd = r.get("birth_date")
    bd_text = str(bd)[:10] if bd is not None else None
    out["birth_date"] = bd_text if has_md and not is_md and bd_text is not None else None
    out["birth_year"] = int(r["birth_year"]) if has_md and not is_md and r.get("birth_year") is not None else None
    out["birth_month"] = int(month) if month is not None and day is not None else None
    out["birth_day"] = int(day) if month is not None and day is not None else None
    out["birth_precision"] = "month_day" if has_md and is_md else ("full" if has_md and bd_text is not None else None)
    pinyin, issue, script = out["name_pinyin"], out["name_issue"], out["name_script"]
    surname = None
    if issue == "honorific":
        surname = pinyin
    elif script == "pinyin_handle" and pinyin is not None and re.fullmatch(r"xiao [a-z]+", pinyin):
        surname = pinyin[5:]
    out["name_surname_only"] = surname
    if out["gender"] is None and issue == "honorific":
        raw = row.get("name_raw") or ""
        out["gender"] = "M" if _MR.search(raw) else ("F" if _MS.search(raw) else None)
    real = pinyin is not None and surname is None and script in ("han", "latin", "mixed")
    compact = rev = None
    if real and len(pinyin.replace(" ", "")) >= _MIN_COMPACT:
        compact = pinyin.replace(" ", "")
        head, sep, tail = pinyin.partition(" ")
        rev = tail.replace(" ", "") + head if sep else pinyin.replace(" ", "")
    out["name_compact"], out["name_compact_rev"] = compact, rev
    alpha = None
    if out["email"] is not None:
        alpha = re.sub(r"[^a-z]", "", out["email"].split("@", 1)[0].lower()) or None
        if alpha is not None and len(alpha) < _MIN_COMPACT:
            alpha = None
    out["email_alpha"] = alpha
    # the event feeds' evidence (customer_mdm.linkage.step.prepare_evidence)
    other = r.get("phone_other")
    out["phone_other"] = other if other is not None and other != (out["phone_e164"] or "") else None
    out["phone_dead"] = _flag(r.get("phone_dead")) and out["phone_e164"] is not None
    out["email_dead"] = _flag(r.get("email_dead")) and out["email"] is not None
    out["household_nameless"] = _flag(r.get("household_nameless"))
    year = r.get("record_year")
    out["record_year"] = int(year) if year is not None else None
    is_name = False
    if pinyin is not None and out["email"] is not None:
        local = out["email"].split("@", 1)[0].lower()
        if re.fullmatch(r"[a-z._-]+", local):
            bare = re.sub(r"[._-]", "", local)
            head, sep, tail = pinyin.partition(" ")
            whole = pinyin.replace(" ", "")
            is_name = bare in (whole, tail.replace(" ", "") + head if sep else whole)
    out["email_is_name"] = is_name
    return out


def _flag(value: Any) -> bool:
    """``coalesce(try_cast(value as boolean), false)`` for the evidence flags."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "t", "1", "yes", "y")
    return False


def prepare_input(
    payload: Mapping[str, Any],
    settings: Settings,
    dead: Callable[[str | None, str | None], tuple[bool, bool]] | None = None,
) -> dict[str, Any]:
    """The typed fields standardised and prepared exactly as the pipeline prepares a source record
    for linkage (``int_customer_records`` + ``prepare_records``). Raises :class:`MatchInputError`."""
    unknown = sorted(set(payload) - set(FIELDS) - {"limit"})
    if unknown:
        raise MatchInputError(unknown[0], f"unknown field {unknown[0]!r}; accepted: {', '.join(FIELDS)}")
    if all(_text(payload, f) is None for f in REQUIRED_ANY):
        raise MatchInputError("name", "at least one of name, mobile or email is required")
    return linkage_row(_records_row(payload, settings, dead))


def standardised_view(prepared: Mapping[str, Any], company: str | None) -> dict[str, Any]:
    """The ``standardised`` part of the answer: the typed fields as the platform reads them."""
    out = {
        "name": prepared.get("name_std") or prepared.get("name_pinyin"),
        "name_pinyin": prepared.get("name_pinyin"),
        "gender": prepared.get("gender"),
        "birth_date": prepared.get("birth_date")
        or (
            f"--{prepared['birth_month']:02d}-{prepared['birth_day']:02d}"
            if prepared.get("birth_month") is not None and prepared.get("birth_day") is not None
            else None
        ),
        "mobile": prepared.get("phone_e164"),
        "phone_kind": prepared.get("phone_kind"),
        "email": prepared.get("email"),
        "province": prepared.get("province"),
        "city": prepared.get("city"),
        "district": prepared.get("district"),
        "address": prepared.get("street"),
        "company": company,
    }
    return {k: v for k, v in out.items() if v is not None}


# ============================================================================ SQL conditions -> Python
_NULL = None


def _and(a: bool | None, b: Callable[[], bool | None]) -> bool | None:
    if a is False:
        return False
    vb = b()
    if vb is False:
        return False
    if a is None or vb is None:
        return None
    return True


def _or(a: bool | None, b: Callable[[], bool | None]) -> bool | None:
    if a is True:
        return True
    vb = b()
    if vb is True:
        return True
    if a is None or vb is None:
        return None
    return False


def _trimmed(a: str, b: str) -> tuple[bytes, bytes]:
    """The UTF-8 bytes of ``a`` and ``b`` without their common prefix and suffix (the edit distance
    is the same), the longer first."""
    x, y = a.encode(), b.encode()
    n = min(len(x), len(y))
    i = 0
    while i < n and x[i] == y[i]:
        i += 1
    j = 0
    while j < n - i and x[len(x) - 1 - j] == y[len(y) - 1 - j]:
        j += 1
    x, y = x[i : len(x) - j], y[i : len(y) - j]
    return (x, y) if len(x) >= len(y) else (y, x)


def levenshtein(a: str, b: str) -> int:
    """DuckDB's ``levenshtein`` (over UTF-8 bytes, as DuckDB computes it)."""
    x, y = _trimmed(a, b)
    prev = list(range(len(y) + 1))
    for i, cx in enumerate(x, 1):
        cur = [i]
        for j, cy in enumerate(y, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (cx != cy)))
        prev = cur
    return prev[-1]


def levenshtein_within(a: str, b: str, k: int) -> bool:
    """``levenshtein(a, b) <= k`` (DuckDB's distance over UTF-8 bytes), computed only on the band of
    the distance matrix within ``k`` of the diagonal and stopped as soon as no path can stay within
    ``k``: a level condition such as ``levenshtein(street_l, street_r) <= 2`` on two long
    addresses costs O(length * k) instead of O(length^2)."""
    if k < 0:
        return False
    x, y = _trimmed(a, b)
    if len(x) - len(y) > k:
        return False
    if not y:
        return len(x) <= k
    big = k + 1
    m = len(y)
    prev = [j if j <= k else big for j in range(m + 1)]
    for i in range(1, len(x) + 1):
        lo, hi = max(1, i - k), min(m, i + k)
        cur = [big] * (m + 1)
        cur[0] = i if i <= k else big
        cx = x[i - 1]
        best = cur[0] if lo == 1 else big
        for j in range(lo, hi + 1):
            v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (cx != y[j - 1]), big)
            cur[j] = v
            if v < best:
                best = v
        if best > k:
            return False
        prev = cur
    return prev[m] <= k


_JW_CON = threading.local()


def jaro_winkler_similarity(a: str, b: str) -> float:
    """DuckDB's own ``jaro_winkler_similarity`` (an in-process DuckDB call, so the value is exactly
    the one Splink's SQL computed; only reached for the rare level that needs it)."""
    con = getattr(_JW_CON, "con", None)
    if con is None:
        import duckdb

        con = _JW_CON.con = duckdb.connect()
    row = con.execute("select jaro_winkler_similarity(?, ?)", [a, b]).fetchone()
    return float(row[0]) if row else 0.0


Row = Mapping[str, Any]
Expr = Callable[[Row, Row], Any]


def _compile(node: Any) -> Expr:
    """A Python closure ``f(left, r)`` for a Splink level's SQL condition (DuckDB dialect), with SQL's
    three-valued logic (None is NULL). Columns are ``"<col>_l"`` / ``"<col>_r"``."""
    from sqlglot import exp

    if isinstance(node, exp.Paren):
        return _compile(node.this)
    if isinstance(node, exp.Column):
        name = node.name
        if name.endswith("_l"):
            col = name[:-2]
            return lambda left, r: left.get(col)
        if name.endswith("_r"):
            col = name[:-2]
            return lambda left, r: r.get(col)
        raise ValueError(f"column {name} is neither _l nor _r")
    if isinstance(node, exp.Literal):
        value: Any = node.this if node.is_string else (float(node.this) if "." in node.this else int(node.this))
        return lambda left, r: value
    if isinstance(node, exp.Boolean):
        b = bool(node.this)
        return lambda left, r: b
    if isinstance(node, exp.Null):
        return lambda left, r: None
    if isinstance(node, exp.And):
        fa, fb = _compile(node.this), _compile(node.expression)
        return lambda left, r: _and(fa(left, r), lambda: fb(left, r))
    if isinstance(node, exp.Or):
        fa, fb = _compile(node.this), _compile(node.expression)
        return lambda left, r: _or(fa(left, r), lambda: fb(left, r))
    if isinstance(node, exp.Not):
        f = _compile(node.this)

        def not_(left: Row, r: Row) -> Any:
            v = f(left, r)
            return None if v is None else not v

        return not_
    if isinstance(node, exp.Is):
        f = _compile(node.this)
        if not isinstance(node.expression, exp.Null):
            raise ValueError("IS only with NULL")
        return lambda left, r: f(left, r) is None
    if (
        isinstance(node, (exp.LTE, exp.LT))
        and isinstance(node.this, exp.Levenshtein)
        and isinstance(node.expression, exp.Literal)
        and not node.expression.is_string
        and node.this.expression is not None
    ):  # levenshtein(a, b) <= k: the banded distance (the same truth value, much less work)
        limit = float(node.expression.this)
        bound = math.ceil(limit) - 1 if isinstance(node, exp.LT) else math.floor(limit)
        fx, fy = _compile(node.this.this), _compile(node.this.expression)

        def within(left: Row, r: Row) -> Any:
            a = fx(left, r)
            if a is None:
                return None
            b = fy(left, r)
            return None if b is None else levenshtein_within(a, b, bound)

        return within
    binary = {
        exp.EQ: lambda a, b: a == b,
        exp.NEQ: lambda a, b: a != b,
        exp.GTE: lambda a, b: a >= b,
        exp.LTE: lambda a, b: a <= b,
        exp.GT: lambda a, b: a > b,
        exp.LT: lambda a, b: a < b,
        exp.DPipe: lambda a, b: f"{a}{b}",
        exp.Sub: lambda a, b: a - b,
        exp.Add: lambda a, b: a + b,
        exp.Contains: lambda a, b: b in a,
        exp.StartsWith: lambda a, b: a.startswith(b),
        exp.EndsWith: lambda a, b: a.endswith(b),
        exp.Levenshtein: levenshtein,
        exp.JarowinklerSimilarity: jaro_winkler_similarity,
        exp.Left: lambda a, n: a[: max(int(n), 0)],
        exp.Right: lambda a, n: a[len(a) - int(n) :] if int(n) > 0 else "",
    }
    for kind, op in binary.items():
        if isinstance(node, kind):
            fa, fb = _compile(node.this), _compile(node.expression)

            def apply(left: Row, r: Row, fa: Expr = fa, fb: Expr = fb, op: Callable[..., Any] = op) -> Any:
                a = fa(left, r)
                if a is None:
                    return None
                b = fb(left, r)
                return None if b is None else op(a, b)

            return apply
    if isinstance(node, exp.Abs):
        f = _compile(node.this)
        return lambda left, r: None if (v := f(left, r)) is None else abs(v)
    if isinstance(node, exp.Length):
        f = _compile(node.this)
        return lambda left, r: None if (v := f(left, r)) is None else len(v)
    if isinstance(node, exp.Coalesce):
        parts = [_compile(node.this), *(_compile(e) for e in node.expressions)]

        def coalesce(left: Row, r: Row) -> Any:
            for p in parts:
                v = p(left, r)
                if v is not None:
                    return v
            return None

        return coalesce
    raise ValueError(f"SQL construct {type(node).__name__} is not supported by the match-on-entry scorer")


def compile_condition(sql: str) -> Expr | None:
    """``None`` for Splink's ``ELSE`` level (always true)."""
    import sqlglot

    if sql.strip().upper() == "ELSE":
        return None
    return _compile(sqlglot.parse_one(sql, read="duckdb"))


# ============================================================================ the model
#: a blocking rule: (column of the typed record, column of the published record) per equality
BlockingKey = tuple[tuple[str, str], ...]

#: candidate lookups of the hub beyond the model's blocking rules, for a typed record WITHOUT a
#: city: the name alone (as written, and its pinyin for a homophone). The model's rules pair a
#: name only with a city or a birthday; a call often carries a name, no city and a number the
#: platform has never seen, and the daily linkage would meet such a record through the person's
#: later records, the hub has only this one. The pairs found are scored with the model like any
#: other (the weight Splink gives the pair: :func:`extra_blocking_rules` are the same lookups as
#: Splink rules, for the test). A name held by more than ``EXTRA_KEY_MAX_RECORDS`` records is
#: not looked up (its pairs score low anyway; this bounds the work per request).
EXTRA_KEYS: tuple[tuple[str, ...], ...] = (("name_std",), ("name_pinyin",))
EXTRA_KEY_MAX_RECORDS = 64


def extra_blocking_rules() -> list[str]:
    """The hub's extra lookups as Splink blocking rules (the typed record on the left side)."""
    return [" AND ".join([*(f"l.{c} = r.{c}" for c in cols), "l.city IS NULL"]) for cols in EXTRA_KEYS]


@dataclass(frozen=True)
class Level:
    label: str
    is_null: bool
    condition: Expr | None  # None: ELSE
    match_weight: float
    tf_column: str | None
    tf_weight: float
    tf_min_u: float
    log2_u_exact: float


@dataclass(frozen=True)
class Comparison:
    name: str
    levels: tuple[Level, ...]


@dataclass(frozen=True)
class ScoringModel:
    """The current trained model compiled for scoring one record against a few."""

    version: int | None
    content_hash: str
    comparisons: tuple[Comparison, ...]
    blocking_keys: tuple[BlockingKey, ...]
    matches_per_record: float
    base_prior: float

    def prior_weight(self, n_records: int) -> float:
        """Splink's prior match weight for a dataset of ``n_records`` (TrainedModel.settings_for)."""
        from splink.internals.misc import prob_to_match_weight

        p = self.base_prior
        if n_records > 1 and self.matches_per_record > 0:
            p = min(0.5, self.matches_per_record / (n_records - 1))
        return float(prob_to_match_weight(p))


def _blocking_keys(settings: dict[str, Any]) -> tuple[BlockingKey, ...]:
    """Each blocking rule of the artefact (``l."a" = r."a" AND ...``, also across columns:
    ``l.phone_e164 = r.phone_other``) as its (typed column, record column) pairs, in both
    orientations (the typed record may be either side of a pair)."""
    import sqlglot
    from sqlglot import exp

    keys: list[BlockingKey] = []
    for rule in settings.get("blocking_rules_to_generate_predictions", []):
        sql = rule["blocking_rule"] if isinstance(rule, dict) else str(rule)
        tree = sqlglot.parse_one(sql, read="duckdb")
        pairs: list[tuple[str, str]] = []
        for eq in tree.find_all(exp.EQ):
            a, b = eq.this, eq.expression
            if not (isinstance(a, exp.Column) and isinstance(b, exp.Column)):
                raise MatcherUnavailable("a blocking rule of the model is not an equi-join of columns")
            if a.table == "r" and b.table == "l":
                a, b = b, a
            pairs.append((a.name, b.name))
        if any(isinstance(n, exp.Or) for n in tree.walk()):
            raise MatcherUnavailable("a blocking rule of the model uses OR: not supported by match-on-entry")
        key = tuple(dict.fromkeys(pairs))
        for k in (key, tuple((rc, lc) for lc, rc in key)):
            if k not in keys:
                keys.append(k)
    return tuple(keys)


def compile_model(model: TrainedModel) -> ScoringModel:
    """Levels, match weights and TF parameters from Splink's own settings objects."""
    from customer_mdm.linkage.model import LINKAGE_COLUMNS, make_linker, prepare_records

    empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in LINKAGE_COLUMNS})
    linker = make_linker(prepare_records(empty), model.settings)
    comparisons = []
    for cc in linker._settings_obj.comparisons:
        levels = []
        for cl in cc.comparison_levels:
            tf_col = None
            log2_u = 0.0
            if (
                cl._has_tf_adjustments
                and cl._tf_adjustment_weight != 0
                and not cl._is_else_level
                and not cl.is_null_level
            ):
                tf_col = cl._tf_adjustment_input_column.input_name.strip('"')
                log2_u = math.log2(cl._u_probability_corresponding_to_exact_match(cc.comparison_levels))
            levels.append(
                Level(
                    label=cl.label_for_charts,
                    is_null=bool(cl.is_null_level),
                    condition=compile_condition(cl.sql_condition),
                    match_weight=float(cl._match_weight),
                    tf_column=tf_col,
                    tf_weight=float(cl._tf_adjustment_weight or 0.0),
                    tf_min_u=float(cl._tf_minimum_u_value or 0.0),
                    log2_u_exact=log2_u,
                )
            )
        comparisons.append(Comparison(cc.output_column_name, tuple(levels)))
    try:
        linker._db_api._con.close()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - only releasing an in-memory database
        pass
    return ScoringModel(
        version=model.version,
        content_hash=model.content_hash,
        comparisons=tuple(comparisons),
        blocking_keys=_blocking_keys(model.settings),
        matches_per_record=model.matches_per_record,
        base_prior=float(model.settings["probability_two_random_records_match"]),
    )


def _record_columns(model: ScoringModel) -> list[tuple[str, ...]]:
    """The published records' columns of each blocking rule (what the index is sorted by)."""
    return list(dict.fromkeys(tuple(right for _, right in key) for key in model.blocking_keys))


class _ModelWatch:
    """The current model of ``$MDM_HOME/models/linkage``, reloaded when ``current.json`` changes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._model: ScoringModel | None = None

    def current(self) -> ScoringModel:
        from customer_mdm.linkage.model import CURRENT_FILE, LinkageError, load_current

        try:
            st = (self.directory / CURRENT_FILE).stat()
            stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        except FileNotFoundError:
            raise MatcherUnavailable("no trained linkage model yet: run the pipeline (or mdm train) first") from None
        if stamp == self._stamp and self._model is not None:
            return self._model
        with self._lock:
            if stamp != self._stamp or self._model is None:
                try:
                    trained = load_current(self.directory)
                except LinkageError as exc:
                    if self._model is not None:  # a model being written: keep the one in use
                        return self._model
                    raise MatcherUnavailable("the trained linkage model cannot be read; retrain it") from exc
                if self._model is None or self._model.content_hash != trained.content_hash:
                    self._model = compile_model(trained)
                    log.info("match-on-entry: linkage model v%s loaded", trained.version)
                self._stamp = stamp
            return self._model


# ============================================================================ the index
_TF_MIN_TOTAL = 1


def _tf_value(k: int, stats: tuple[int, int, int], input_k: int | None) -> float:
    """The link step's term frequency of a value held by ``k`` people, with the typed record
    counted as one more person holding ``input_k``'s value (None: the typed record has none)."""
    total, n1, n2 = stats
    if input_k is not None:
        total += 1
        n1 += (input_k == 0) - (input_k == 1)
        n2 += (input_k == 1) - (input_k == 2)
    g = min(1.0, max(0.05, 2.0 * n2 / n1)) if n1 > 0 else 1.0
    return (max(k - 2, 0) + g) / max(total, _TF_MIN_TOTAL)


@dataclass
class _Index:
    """Prepared source records of every golden customer, column by column: per column the sorted
    distinct values and an int32 code per record; per blocking rule the records' composite codes,
    sorted, with their positions (8 + 8 bytes per record and rule). Built vectorised, looked up
    with binary searches: no per-record Python object survives the build."""

    n_records: int
    columns: dict[str, tuple[np.ndarray, np.ndarray]]  # col -> (codes int32, sorted uniques object)
    record_keys: np.ndarray
    golden_ids: np.ndarray
    tfk: dict[str, np.ndarray]  # tf col -> people holding the record's value (0: none)
    stats: dict[str, tuple[int, int, int]]
    blocks: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def value(self, col: str, i: int) -> Any:
        codes, uniques = self.columns[col]
        c = codes[i]
        return None if c < 0 else uniques[c]

    def row(self, i: int) -> _LazyRow:
        """Record ``i`` as a read-only mapping; a column is decoded when a condition reads it."""
        return _LazyRow(self, i)

    def code(self, col: str, value: Any) -> int:
        """The code of ``value`` in ``col`` (-1: no record holds it)."""
        uniques = self.columns[col][1]
        try:
            k = int(np.searchsorted(uniques, value))
        except TypeError:  # a value of another type than the column's
            return -1
        return k if k < len(uniques) and uniques[k] == value else -1

    def _radix(self, key: tuple[str, ...]) -> list[int]:
        sizes = [len(self.columns[c][1]) for c in key]
        if math.prod(max(n, 1) for n in sizes) >= 2**62:
            raise MatcherUnavailable("a blocking rule's key space is too large for the match index")
        return sizes

    def build_blocks(self, keys: Sequence[tuple[str, ...]]) -> None:
        for key in keys:
            if key in self.blocks:
                continue
            sizes = self._radix(key)
            composite = np.zeros(len(self.record_keys), dtype=np.int64)
            ok = np.ones(len(self.record_keys), dtype=bool)
            for c, n in zip(key, sizes, strict=True):
                codes = self.columns[c][0].astype(np.int64)
                ok &= codes >= 0
                composite = composite * max(n, 1) + np.maximum(codes, 0)
            pos = np.flatnonzero(ok).astype(np.int64)
            composite = composite[pos]
            order = np.argsort(composite, kind="stable")
            self.blocks[key] = (composite[order], pos[order])

    def lookup(self, key: tuple[str, ...], values: tuple[Any, ...], limit: int | None = None) -> list[int]:
        """Positions of the records holding ``values`` in ``key``'s columns (none when more than
        ``limit`` records hold them)."""
        composite = 0
        for c, n, v in zip(key, self._radix(key), values, strict=True):
            code = self.code(c, v)
            if code < 0:
                return []
            composite = composite * max(n, 1) + code
        keys, pos = self.blocks[key]
        lo, hi = np.searchsorted(keys, composite, "left"), np.searchsorted(keys, composite, "right")
        if limit is not None and hi - lo > limit:
            return []
        return [int(p) for p in pos[lo:hi]]


class _LazyRow(Mapping[str, Any]):
    """One record of the index (see :meth:`_Index.row`)."""

    __slots__ = ("_i", "_index")

    def __init__(self, index: _Index, i: int) -> None:
        self._index = index
        self._i = i

    def __getitem__(self, col: str) -> Any:
        return self._index.value(col, self._i)

    def get(self, col: str, default: Any = None) -> Any:
        if col not in self._index.columns:
            return default
        return self._index.value(col, self._i)

    def __iter__(self) -> Iterator[str]:
        return iter(self._index.columns)

    def __len__(self) -> int:
        return len(self._index.columns)


def _sorted_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """int32 codes (-1: NULL) into the distinct values sorted in Python's order."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    objs = np.empty(len(uniques), dtype=object)
    objs[:] = [
        bool(u) if isinstance(u, np.bool_) else int(u) if isinstance(u, np.integer) else u for u in uniques.tolist()
    ]
    order = np.argsort(objs, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    codes = np.where(codes >= 0, rank[np.maximum(codes, 0)] if len(rank) else -1, -1)
    return codes.astype(np.int32), objs[order]


def _fetch_frame(reader: ServingReader, sql: str) -> pd.DataFrame:
    """A serving query as a DataFrame: Arrow from a DuckDB snapshot, rows from PostgreSQL."""
    if reader.settings.target == "duckdb":
        import duckdb

        with reader.cursor() as cur:
            if cur is None:
                return pd.DataFrame()
            try:
                table = cur.sql(sql).to_arrow_table()
            except duckdb.CatalogException as exc:  # not built: nothing published yet
                raise MatcherUnavailable("nothing published for match-on-entry yet: run the pipeline") from exc
            return table.to_pandas()
    cols, rows = reader._run(sql, None)
    return pd.DataFrame.from_records(rows, columns=cols)


def _load_index(reader: ServingReader) -> _Index:
    from customer_mdm.linkage.model import LINKAGE_COLUMNS, prepare_records

    t0 = time.perf_counter()
    frame = _fetch_frame(reader, "select * from serving.match_records")
    stats_rows = reader.query("select column_name, total, n1, n2, n_records from serving.match_tf_stats")
    if frame.empty or not stats_rows:
        raise MatcherUnavailable("nothing published for match-on-entry yet: run the pipeline first")
    frame["record_key"] = frame["record_key"].astype(str)
    frame = frame.sort_values("record_key", kind="stable").reset_index(drop=True)  # code-point order
    prepared = prepare_records(frame.drop(columns=["golden_id"]))  # sorted by record_key too
    if not (prepared["record_key"].to_numpy(dtype=object) == frame["record_key"].to_numpy(dtype=object)).all():
        raise MatcherUnavailable("serving.match_records: record keys are not unique")
    columns = {c: _sorted_codes(prepared[c]) for c in LINKAGE_COLUMNS}
    tfk = {}
    for c in _tf_columns():
        tfk[c] = pd.to_numeric(frame[f"tfk_{c}"], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
    stats = {str(r[0]): (int(r[1] or 0), int(r[2] or 0), int(r[3] or 0)) for r in stats_rows}
    index = _Index(
        n_records=int(stats_rows[0][4] or 0),
        columns=columns,
        record_keys=prepared["record_key"].to_numpy(dtype=object),
        golden_ids=frame["golden_id"].astype(str).to_numpy(dtype=object),
        tfk=tfk,
        stats=stats,
    )
    log.info("match-on-entry index: %d records loaded in %.1f s", len(frame), time.perf_counter() - t0)
    return index


# ============================================================================ the matcher
@dataclass
class PairScore:
    position: int
    match_weight: float
    match_probability: float
    explanation: list[dict[str, Any]]


def _probability(mw: float) -> float:
    if mw >= 0:
        return 1.0 / (1.0 + 2.0 ** (-mw))
    return 2.0**mw / (1.0 + 2.0**mw)


class Matcher:
    """Match-on-entry over one serving version (see the module docstring). Thread-safe.

    Build with :func:`get_matcher` (cached per serving version on the reader) or
    ``Matcher(reader, settings)``."""

    def __init__(self, reader: ServingReader, settings: Settings | None = None) -> None:
        from customer_mdm.linkage.training import model_dir

        self.settings = settings or reader.settings
        self.models = _ModelWatch(model_dir(self.settings))
        self.index = _load_index(reader)
        self._blocks_lock = threading.Lock()
        self._prunings: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {}
        decisions = reader.query("select record_id_l, record_id_r from serving.match_decisions")
        self.cannot_link: dict[str, set[str]] = {}
        for left, right in decisions:
            self.cannot_link.setdefault(str(left), set()).add(str(right))
            self.cannot_link.setdefault(str(right), set()).add(str(left))
        has_tombstones = reader.query(  # absent before the first erasure step (an optional serving table)
            "select count(*) from information_schema.tables "
            "where table_schema = 'serving' and table_name = 'match_tombstones'"
        )[0][0]
        self.tombstones = (
            {str(r[0]) for r in reader.query("select identifier_sha256 from serving.match_tombstones")}
            if has_tombstones
            else set()
        )
        self.dead_phones = self._flagged("phone_dead", "phone_e164")
        self.dead_emails = self._flagged("email_dead", "email")
        self._digest: Callable[[str, str], str] | None = None
        if self.tombstones:
            from customer_mdm.privacy import erasure_salt

            salt = erasure_salt(self.settings)

            def digest(kind: str, value: str) -> str:
                return hashlib.sha256(salt + b"\x1f" + kind.encode() + b"\x1f" + value.encode("utf-8")).hexdigest()

            self._digest = digest

    def _flagged(self, flag: str, col: str) -> frozenset[str]:
        """Values of ``col`` on records whose evidence ``flag`` is set (the contact feeds say the
        number is unreachable / the address bounced: a verdict on the value, not the record)."""
        if flag not in self.index.columns:
            return frozenset()
        code = self.index.code(flag, True)
        if code < 0:
            return frozenset()
        values, uniques = self.index.columns[col]
        hit = values[self.index.columns[flag][0] == code]
        return frozenset(str(v) for v in uniques[np.unique(hit[hit >= 0])].tolist())

    def contact_evidence(self, phone: str | None, email: str | None) -> tuple[bool, bool]:
        """(phone_dead, email_dead) of a typed record with this valid number and address."""
        return phone is not None and phone in self.dead_phones, email is not None and email in self.dead_emails

    # ------------------------------------------------------------------ candidates
    def _model(self) -> ScoringModel:
        model = self.models.current()
        missing = [cols for cols in [*_record_columns(model), *EXTRA_KEYS] if cols not in self.index.blocks]
        if missing:
            with self._blocks_lock:
                self.index.build_blocks(missing)
        return model

    def _erased(self, i: int) -> bool:
        if self._digest is None:
            return False
        d = self._digest
        if d("record", str(self.index.record_keys[i])) in self.tombstones:
            return True
        phone = self.index.value("phone_e164", i)
        if phone is not None and self.index.value("phone_kind", i) == "mobile" and d("phone", phone) in self.tombstones:
            return True
        email = self.index.value("email", i)
        return email is not None and d("email", email) in self.tombstones

    def candidates(self, prepared: Mapping[str, Any], model: ScoringModel) -> list[int]:
        """Positions of the records a blocking rule pairs the typed record with (tombstoned ones out)."""
        found: set[int] = set()
        for key in model.blocking_keys:
            values = tuple(prepared.get(left) for left, _ in key)
            if any(v is None for v in values):
                continue
            found.update(self.index.lookup(tuple(right for _, right in key), values))
        for cols in EXTRA_KEYS if prepared.get("city") is None else ():  # the hub's own lookups
            values = tuple(prepared.get(c) for c in cols)
            if all(v is not None for v in values):
                found.update(self.index.lookup(cols, values, limit=EXTRA_KEY_MAX_RECORDS))
        return sorted(i for i in found if not self._erased(i))

    # ------------------------------------------------------------------ scoring
    def score_pair(self, prepared: Mapping[str, Any], i: int, model: ScoringModel, prior: float) -> PairScore:
        """The typed record (left) against record ``i`` (right), as Splink scores the pair."""
        scored = self._score(prepared, i, model, prior, -math.inf)
        assert scored is not None  # nothing is pruned under a floor of -inf
        return scored

    def _score(
        self, prepared: Mapping[str, Any], i: int, model: ScoringModel, prior: float, floor: float
    ) -> PairScore | None:
        """:meth:`score_pair`, or None as soon as the pair cannot reach ``floor`` any more: the
        comparisons run most decisive first, and after each one the weight so far plus the most
        the remaining comparisons can add (:meth:`_pruning`) is checked. The weight of a pair that
        is kept is summed in the model's order, exactly as :meth:`score_pair` always did."""
        order, rest = self._pruning(model)
        right = self.index.row(i)
        chosen: list[tuple[Level, float] | None] = [None] * len(model.comparisons)
        total = prior
        for j, c in enumerate(order):
            for level in model.comparisons[c].levels:
                if level.condition is not None and level.condition(prepared, right) is not True:
                    continue
                w = level.match_weight
                if level.tf_column is not None:
                    w += level.tf_weight * self._tf_adjustment(prepared, i, level)
                chosen[c] = (level, w)
                total += w
                break
            if total + rest[j + 1] < floor:
                return None
        total = prior
        explanation = []
        for comp, picked in zip(model.comparisons, chosen, strict=True):
            if picked is None:
                continue
            level, w = picked
            total += w
            explanation.append({"comparison": comp.name, "level": level.label, "match_weight": round(w, 6)})
        return PairScore(i, total, _probability(total), explanation)

    def _pruning(self, model: ScoringModel) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """The comparisons' scoring order (widest spread of level weights first) and, per position,
        the most the comparisons from there on can add (``rest[j]``; ``rest[-1] == 0``). A term-
        frequency level can add at most its weight plus ``tf_weight * (log2 u_exact - log2 u_min)``,
        ``u_min`` the smallest term frequency :func:`_tf_value` can give in this index (or the
        level's minimum u); a negative TF weight is not bounded (no pruning past it)."""
        cached = self._prunings.get(model.content_hash)
        if cached is not None:
            return cached

        def most(level: Level) -> float:
            if level.tf_column is None or level.tf_weight == 0:
                return level.match_weight
            if level.tf_weight < 0:
                return math.inf
            total = self.index.stats.get(level.tf_column, (0, 0, 0))[0] + 1
            u_min = max(level.tf_min_u, 0.05 / max(total, _TF_MIN_TOTAL))
            return level.match_weight + max(0.0, level.tf_weight * (level.log2_u_exact - math.log2(u_min)))

        highest = [max(most(lv) for lv in comp.levels) for comp in model.comparisons]
        lowest = [min(lv.match_weight for lv in comp.levels) for comp in model.comparisons]
        order = tuple(sorted(range(len(highest)), key=lambda c: (-(highest[c] - lowest[c]), c)))
        rest = [0.0] * (len(order) + 1)
        for j in range(len(order) - 1, -1, -1):
            rest[j] = rest[j + 1] + highest[order[j]]
        plan = (order, tuple(rest))
        self._prunings[model.content_hash] = plan
        return plan

    def _tf_adjustment(self, prepared: Mapping[str, Any], i: int, level: Level) -> float:
        col = level.tf_column
        assert col is not None
        stats = self.index.stats.get(col, (0, 0, 0))
        mine, theirs = prepared.get(col), self.index.value(col, i)
        k_theirs = int(self.index.tfk[col][i])
        input_k = None
        if mine is not None:
            input_k = k_theirs if mine == theirs else self._people_holding(col, mine)
        tf_l = _tf_value(input_k + 1, stats, input_k) if input_k is not None else None
        tf_r = None
        if theirs is not None:
            tf_r = _tf_value(k_theirs + (1 if mine == theirs else 0), stats, input_k)
        if tf_l is None and tf_r is None:
            return 0.0
        u = max(x for x in (tf_l, tf_r, level.tf_min_u) if x is not None)
        return level.log2_u_exact - math.log2(u)

    def _people_holding(self, col: str, value: Any) -> int:
        """People holding ``value`` in ``col`` (only for a TF level reached with different values)."""
        code = self.index.code(col, value)
        if code < 0:
            return 0
        pos = np.flatnonzero(self.index.columns[col][0] == code)
        return int(self.index.tfk[col][pos[0]]) if len(pos) else 0

    # ------------------------------------------------------------------ the answer
    def match(self, payload: Mapping[str, Any], limit: int = 5) -> dict[str, Any]:
        """The contract's response body for ``POST /v1/match``."""
        from customer_mdm.linkage.step import PAIR_THRESHOLD, REVIEW_HIGH, REVIEW_LOW

        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise MatchInputError("limit", f"limit must be an integer from 1 to {MAX_LIMIT}")
        prepared = prepare_input(payload, self.settings, self.contact_evidence)
        model = self._model()
        prior = model.prior_weight(self.index.n_records + 1)
        # a pair under the pair threshold is never answered (nor an anchor): stop scoring it early
        floor = math.log2(PAIR_THRESHOLD / (1 - PAIR_THRESHOLD)) - 1e-6
        best: dict[str, PairScore] = {}
        for i in self.candidates(prepared, model):
            pair = self._score(prepared, i, model, prior, floor)
            if pair is None:
                continue
            gid = str(self.index.golden_ids[i])
            if gid not in best or pair.match_weight > best[gid].match_weight:
                best[gid] = pair
        # a steward's no-match between a record the input links to and another person's record
        anchors = [p for p in best.values() if p.match_probability >= REVIEW_HIGH]
        banned: set[str] = set()
        for anchor in anchors:
            own = str(self.index.golden_ids[anchor.position])
            for other in self.cannot_link.get(str(self.index.record_keys[anchor.position]), ()):
                other_gid = self._golden_of(other)
                if other_gid is not None and other_gid != own:
                    banned.add(other_gid)
        ranked = sorted(
            ((g, p) for g, p in best.items() if g not in banned and p.match_probability >= PAIR_THRESHOLD),
            key=lambda gp: (-gp[1].match_weight, gp[0]),
        )[:limit]
        top = ranked[0][1].match_probability if ranked else 0.0
        decision = "match" if top >= REVIEW_HIGH else ("possible_match" if top >= REVIEW_LOW else "no_match")
        company = _text(payload, "company")
        return {
            "decision": decision,
            "candidates": [
                {
                    "golden_id": g,
                    "match_probability": round(p.match_probability, 6),
                    "match_weight": round(p.match_weight, 6),
                    "explanation": p.explanation,
                }
                for g, p in ranked
            ],
            "standardised": standardised_view(prepared, _company_key(company)),
        }

    def _golden_of(self, record_key: str) -> str | None:
        pos = np.searchsorted(self.index.record_keys, record_key)
        if pos < len(self.index.record_keys) and self.index.record_keys[pos] == record_key:
            return str(self.index.golden_ids[pos])
        return None


def get_matcher(reader: ServingReader) -> Matcher:
    """The matcher of the reader's current serving version (built on first use after a new
    publication; a new model version is picked up inside the matcher)."""
    return reader.cached("customer_mdm.hub.matching.Matcher", lambda r: Matcher(r))


def match_json(matcher: Matcher, payload: Mapping[str, Any], limit: int = 5) -> str:
    """The answer as JSON text (for the bench and the CLI)."""
    return json.dumps(matcher.match(payload, limit), ensure_ascii=False)
