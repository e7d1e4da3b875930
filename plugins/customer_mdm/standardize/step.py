"""The Python half of standardisation: incremental lookup tables over distinct raw values.

Phones (phonenumbers), names (OpenCC traditional->simplified, pypinyin), birth dates and
regions/addresses need Python. Rather than a per-row loop or a UDF that each warehouse would
need its own way, this step collects the DISTINCT raw values of the staging views that the
lookup tables in the ``std`` schema do not hold yet, standardises them vectorised in pandas and
appends the results. The dbt intermediate models then join ``std.*`` like any other source, on
DuckDB and on PostgreSQL alike.

Distinct values are far fewer than rows (names, regions and dates repeat), and each run only
standardises values it has never seen, so a daily delta costs little. Every lookup row carries
``std_version``, a digest of the standardisation code and reference data: when either changes,
the lookups are recomputed in full on the next run.

Where it runs: the ``standardize`` task of ``mdm_daily``, between ``dbt_staging`` and
``dbt_build`` (``mdm dbt`` can run the layers by hand).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from customer_mdm import plan
from customer_mdm.config import Settings
from customer_mdm.plan import Feed, StdInput
from customer_mdm.warehouse import Warehouse, connect

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_PKG = Path(__file__).resolve().parent.parent


@cache
def std_version() -> str:
    """Digest of the standardisation code and reference data."""
    digest = hashlib.sha256()
    files = sorted((_PKG / "standardize").glob("*.py")) + sorted((_PKG / "reference").glob("*"))
    for path in files:
        if path.is_file() and path.name != "step.py":
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Lookup:
    table: str
    columns: dict[str, str]  # output columns and their SQL types (the key columns come first)
    keys: tuple[str, ...]  # raw input columns, in the order the function takes them
    source_sql: str  # select of the distinct raw inputs, columns named like ``keys``
    compute: Callable[..., pd.DataFrame]


def _phones(raw: pd.Series) -> pd.DataFrame:
    from customer_mdm.standardize.phones import standardize_phones

    return standardize_phones(raw)


def _names(raw: pd.Series) -> pd.DataFrame:
    from customer_mdm.standardize.names import standardize_names

    return standardize_names(raw)


def _dates(raw: pd.Series) -> pd.DataFrame:
    from customer_mdm.standardize.dates import standardize_birth_dates

    return standardize_birth_dates(raw)


def _regions(province: pd.Series, city: pd.Series, district: pd.Series) -> pd.DataFrame:
    from customer_mdm.standardize.regions import standardize_regions

    return standardize_regions(province, city, district)


def _addresses(raw: pd.Series) -> pd.DataFrame:
    from customer_mdm.standardize.regions import parse_addresses

    return parse_addresses(raw)


def _select(feed: Feed, item: StdInput, keys: tuple[str, ...]) -> str:
    cols = ", ".join(f"{c or 'cast(null as text)'} as {k}" for c, k in zip(item.columns, keys, strict=True))
    where = f" where {item.where}" if item.where else ""
    return f"select {cols} from {feed.staging_table}{where}"


def _source_sql(name: str) -> str:
    """The distinct raw inputs of a lookup: a union of the raw values the plan's feeds give it
    (:func:`customer_mdm.plan.std_inputs`), columns named like the lookup's keys."""
    keys = plan.STD_LOOKUPS[name]
    return "\nunion\n".join(_select(feed, item, keys) for feed, item in plan.std_inputs(name))


def lookups() -> list[Lookup]:
    """The lookup tables, each reading the raw values the plan declares for it."""
    return [
        Lookup(
            table="std.phone_lookup",
            columns={"phone_e164": "text", "phone_kind": "text", "phone_valid": "boolean", "phone_issue": "text"},
            keys=plan.STD_LOOKUPS["phone"],
            source_sql=_source_sql("phone"),
            compute=_phones,
        ),
        Lookup(
            table="std.name_lookup",
            columns={
                "name_std": "text",
                "name_script": "text",
                "name_pinyin": "text",
                "name_pinyin_fuzzy": "text",
                "name_sorted_key": "text",
                "is_pinyin_handle": "boolean",
                "name_issue": "text",
            },
            keys=plan.STD_LOOKUPS["name"],
            source_sql=_source_sql("name"),
            compute=_names,
        ),
        Lookup(
            table="std.birth_date_lookup",
            columns={
                "birth_date": "date",
                "birth_year": "bigint",
                "birth_month": "bigint",
                "birth_day": "bigint",
                "birth_precision": "text",
                "birth_issue": "text",
            },
            keys=plan.STD_LOOKUPS["birth_date"],
            source_sql=_source_sql("birth_date"),
            compute=_dates,
        ),
        Lookup(
            table="std.region_lookup",
            columns={"province_std": "text", "city_std": "text", "district_std": "text", "region_issue": "text"},
            keys=plan.STD_LOOKUPS["region"],
            source_sql=_source_sql("region"),
            compute=_regions,
        ),
        Lookup(
            table="std.address_lookup",
            columns={
                "province_std": "text",
                "city_std": "text",
                "district_std": "text",
                "street": "text",
                "address_issue": "text",
            },
            keys=plan.STD_LOOKUPS["address"],
            source_sql=_source_sql("address"),
            compute=_addresses,
        ),
    ]


#: SQL expression of the join key of a multi-column lookup; dbt's ``std_key`` macro builds the same.
KEY_SEPARATOR = "|"


def key_expression(columns: tuple[str, ...]) -> str:
    return " || '|' || ".join(f"coalesce({c}, '')" for c in columns)


def _ensure_lookup(wh: Warehouse, lookup: Lookup) -> None:
    wh.execute("create schema if not exists std")
    key_cols = ", ".join(f"{k} text" for k in lookup.keys)
    extra = "lookup_key text, " if len(lookup.keys) > 1 else ""
    body = ", ".join(f"{c} {t}" for c, t in lookup.columns.items())
    wh.execute(f"create table if not exists {lookup.table} ({key_cols}, {extra}{body}, std_version text)")


def _new_inputs(wh: Warehouse, lookup: Lookup, version: str) -> pd.DataFrame:
    keys = lookup.keys
    not_all_null = " or ".join(f"s.{k} is not null" for k in keys)
    if len(keys) == 1:
        join = f"l.{keys[0]} = s.{keys[0]}"
    else:
        join = f"l.lookup_key = {key_expression(tuple('s.' + k for k in keys))}"
    sql = (
        f"select distinct {', '.join('s.' + k for k in keys)} from ({lookup.source_sql}) as s "
        f"left join {lookup.table} as l on {join} and l.std_version = ? "
        f"where l.std_version is null and ({not_all_null})"
    )
    return wh.query_df(sql, [version])


def build_lookup(wh: Warehouse, lookup: Lookup, version: str | None = None) -> dict[str, Any]:
    """Standardise the raw values ``lookup`` has not seen yet; returns counts and timing."""
    import pandas as pd

    version = version or std_version()
    started = time.perf_counter()
    _ensure_lookup(wh, lookup)
    stale = wh.scalar(f"select count(*) from {lookup.table} where std_version <> ?", [version])
    if stale:
        log.info("%s: standardisation changed, recomputing %d values", lookup.table, stale)
        wh.execute(f"delete from {lookup.table} where std_version <> ?", [version])
    inputs = _new_inputs(wh, lookup, version)
    if not inputs.empty:
        result = lookup.compute(*(inputs[k].astype(object) for k in lookup.keys))
        missing = set(lookup.columns) - set(result.columns)
        if missing:
            raise RuntimeError(f"{lookup.table}: standardiser returned no {sorted(missing)}")
        out = pd.concat([inputs.reset_index(drop=True), result.reset_index(drop=True)[list(lookup.columns)]], axis=1)
        if len(lookup.keys) > 1:
            out.insert(len(lookup.keys), "lookup_key", _py_key(inputs, lookup.keys))
        out["std_version"] = version
        with wh.transaction():
            wh.insert_df(lookup.table, out)
    total = wh.scalar(f"select count(*) from {lookup.table}")
    seconds = time.perf_counter() - started
    log.info("%s: %d new values standardised (%d in total) in %.1fs", lookup.table, len(inputs), total, seconds)
    return {"new_values": len(inputs), "values": int(total), "seconds": round(seconds, 3)}


def _py_key(frame: pd.DataFrame, keys: tuple[str, ...]) -> pd.Series:
    parts = [frame[k].astype(object).where(frame[k].notna(), "").astype(str) for k in keys]
    key = parts[0]
    for part in parts[1:]:
        key = key + KEY_SEPARATOR + part
    return key


def standardize(settings: Settings) -> dict[str, Any]:
    """Bring every lookup table up to date (the ``standardize`` step of the daily run)."""
    version = std_version()
    with connect(settings) as wh:
        return {lookup.table: build_lookup(wh, lookup, version) for lookup in lookups()}
