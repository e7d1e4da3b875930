"""The data-quality scorecard: six dimensions, per source and overall, measured on every run.

:func:`compute_scorecard` measures the warehouse as it is and returns long-format rows
(``run_id, measured_at, scope, dimension, metric, value, numerator, denominator``; ``scope`` is
a source name or ``'overall'``; ``value = numerator / denominator``, between 0 and 1).
:func:`record_scorecard` appends them to ``governance.scorecard_history`` (created if missing),
which BI tools query; ``governance.scorecard_latest`` is a view of the newest run.

Dimensions and metrics (``METRICS`` lists them all; the headline of each dimension is starred):

completeness  share of a source's records carrying each of its key fields (the contract's
              identity and contact columns that source delivers), per field and *key_fields
              (every key cell pooled)
validity      among delivered values: phone a valid number, email syntactically valid (after
              domain-typo correction), region resolved to a standard province, birth date
              parsed without issue; *all_checked (pooled)
accuracy      *contacts_verified: of the record contacts (standardised phone, email) whose last
              contact event is verified, bounced or unreachable, the verified share;
              contacts_failed: share of all record contacts whose last event is bounced or
              unreachable (lower is better); matches_verified_contact: share of the records of
              persons with a verified golden phone or email whose own value is that verified one
consistency   persons with two or more records carrying the field whose records all agree:
              full birth date, gender, Han-script name without issue (as the consistency_report
              model); *all_fields pooled. Per source: the persons that source has a value for
uniqueness    *duplicate_rate_before_linkage = 1 - golden ids / records (per source: the
              source's own duplicates); duplicate_rate_after_linkage = duplicate golden_ids in
              dim_customer (overall only, should be 0). Lower is better
timeliness    share of golden fields within their freshness policy (the governance model
              governance_field_freshness; seed ref_freshness_policy), per field class and
              *all_fields; per source: by the source of the field's value; sources_fresh: share
              of source tables within their dbt freshness thresholds at the latest check
              (``ops.source_freshness``, written by the daily run's source_freshness step)

Everything is computed in the warehouse with portable SQL (DuckDB and PostgreSQL), so it scales
with the warehouse, not with this process.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from customer_mdm.config import Settings
from customer_mdm.freshness import TABLE as SOURCE_FRESHNESS_TABLE
from customer_mdm.warehouse import Warehouse, _check_ident, connect

log = logging.getLogger(__name__)

HISTORY_SCHEMA = "governance"
HISTORY_TABLE = f"{HISTORY_SCHEMA}.scorecard_history"
LATEST_VIEW = f"{HISTORY_SCHEMA}.scorecard_latest"
OVERALL = "overall"
COLUMNS = ["run_id", "measured_at", "scope", "dimension", "metric", "value", "numerator", "denominator"]


@dataclass(frozen=True)
class Metric:
    dimension: str
    name: str
    label: str
    higher_is_better: bool = True
    headline: bool = False


METRICS: tuple[Metric, ...] = (
    Metric("completeness", "key_fields", "key fields filled", headline=True),
    *(
        Metric("completeness", f, f"{f.replace('_', ' ')} filled")
        for f in (
            "name",
            "gender",
            "birth_date",
            "phone",
            "email",
            "region",
            "address",
            "customer_type",
            "tier",
            "consent_marketing",
        )
    ),
    Metric("validity", "all_checked", "valid values", headline=True),
    Metric("validity", "phone", "valid phone numbers"),
    Metric("validity", "email", "valid emails"),
    Metric("validity", "region", "regions resolved"),
    Metric("validity", "birth_date", "birth dates without issue"),
    Metric("accuracy", "contacts_verified", "verified among contacts with an outcome", headline=True),
    Metric("accuracy", "contacts_failed", "contacts bounced or unreachable", higher_is_better=False),
    Metric("accuracy", "matches_verified_contact", "records matching the verified contact"),
    Metric("consistency", "all_fields", "persons whose records agree", headline=True),
    Metric("consistency", "birth_date", "agree on birth date"),
    Metric("consistency", "gender", "agree on gender"),
    Metric("consistency", "name", "agree on name"),
    Metric(
        "uniqueness",
        "duplicate_rate_before_linkage",
        "duplicate records before linkage",
        higher_is_better=False,
        headline=True,
    ),
    Metric("uniqueness", "duplicate_rate_after_linkage", "duplicate golden ids", higher_is_better=False),
    Metric("timeliness", "all_fields", "golden fields within policy", headline=True),
    Metric("timeliness", "identity_contact", "identity and contact within policy"),
    Metric("timeliness", "preferences", "preferences within policy"),
    Metric("timeliness", "consent", "consent within policy"),
    Metric("timeliness", "sources_fresh", "source tables fresh (dbt source freshness)"),
)
DIMENSIONS: tuple[str, ...] = tuple(dict.fromkeys(m.dimension for m in METRICS))
HEADLINES: dict[str, str] = {m.dimension: m.name for m in METRICS if m.headline}
_BY_KEY = {(m.dimension, m.name): m for m in METRICS}


def metric_info(dimension: str, metric: str) -> Metric:
    """The metric's description (label, direction); unknown metrics count as higher-is-better."""
    return _BY_KEY.get((dimension, metric), Metric(dimension, metric, metric.replace("_", " ")))


# ----------------------------------------------------------------------------- configuration
#: presence test of each key field in int_customer_records (the delivered value)
_PRESENT = {
    "name": "name_raw",
    "gender": "gender_raw",
    "birth_date": "birth_date_raw",
    "phone": "phone_raw",
    "email": "email_raw",
    "region": "coalesce(province_raw, city_raw, district_raw)",
    "address": "address_raw",
    "customer_type": "customer_type_raw",
    "tier": "tier_raw",
    "consent_marketing": "consent_marketing_raw",
}
#: the key fields each reference source delivers (contract columns; optional ones such as the
#: company or the call centre's callback email are not key). Other sources: name, phone, email.
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "crm": (
        "name",
        "gender",
        "birth_date",
        "phone",
        "email",
        "region",
        "address",
        "customer_type",
        "tier",
        "consent_marketing",
    ),
    "ecommerce": ("name", "phone", "email", "address"),
    "callcenter": ("name", "phone", "region"),
    "store_pos": ("name", "phone", "birth_date", "region"),
}
_DEFAULT_KEY_FIELDS = ("name", "phone", "email")

#: validity: (delivered, valid) conditions per checked field
_VALIDITY = {
    "phone": ("phone_raw is not null", "phone_valid"),
    "email": ("email_raw is not null", "email_valid"),
    "region": (
        "coalesce(province_raw, city_raw, district_raw, address_raw) is not null",
        "province is not null and region_issue is null",
    ),
    "birth_date": ("birth_date_raw is not null", "birth_precision is not null and birth_issue is null"),
}


@dataclass(frozen=True)
class _Schemas:
    golden: str
    intermediate: str
    governance: str

    @property
    def records(self) -> str:
        return f"{self.intermediate}.int_customer_records"

    @property
    def events(self) -> str:
        return f"{self.intermediate}.int_contact_events"

    @property
    def xref(self) -> str:
        return f"{self.golden}.customer_xref"

    @property
    def customers(self) -> str:
        return f"{self.golden}.dim_customer"

    @property
    def freshness(self) -> str:
        return f"{self.governance}.governance_field_freshness"


# One measurement: (scope, dimension, metric, numerator, denominator)
_Row = tuple[str, str, str, int, int]


def _int(value: Any) -> int:
    return 0 if value is None or (isinstance(value, float) and pd.isna(value)) else int(value)


def _pooled(rows: Iterable[_Row], dimension: str, metric: str, scope: str = OVERALL) -> list[_Row]:
    """Add up numerators and denominators: the pooled value of an additive metric."""
    num = den = 0
    for _scope, _dim, _metric, n, d in rows:
        num, den = num + n, den + d
    return [(scope, dimension, metric, num, den)]


# ----------------------------------------------------------------------------- dimensions
def _completeness(wh: Warehouse, s: _Schemas) -> list[_Row]:
    sums = ", ".join(
        f"sum(case when {expr} is not null then 1 else 0 end) as {field}" for field, expr in _PRESENT.items()
    )
    df = wh.query_df(f"select source, count(*) as records, {sums} from {s.records} group by source order by source")
    rows: list[_Row] = []
    per_field: dict[str, list[_Row]] = defaultdict(list)
    for rec in df.to_dict("records"):
        source, records = str(rec["source"]), _int(rec["records"])
        fields = KEY_FIELDS.get(source, _DEFAULT_KEY_FIELDS)
        filled = 0
        for field in fields:
            row = (source, "completeness", field, _int(rec[field]), records)
            rows.append(row)
            per_field[field].append(row)
            filled += _int(rec[field])
        rows.append((source, "completeness", "key_fields", filled, records * len(fields)))
    for field, field_rows in per_field.items():
        rows += _pooled(field_rows, "completeness", field)
    rows += _pooled([r for r in rows if r[2] == "key_fields"], "completeness", "key_fields")
    return rows


def _validity(wh: Warehouse, s: _Schemas) -> list[_Row]:
    parts = []
    for field, (delivered, valid) in _VALIDITY.items():
        parts.append(f"sum(case when {delivered} then 1 else 0 end) as {field}_d")
        parts.append(f"sum(case when ({delivered}) and ({valid}) then 1 else 0 end) as {field}_n")
    df = wh.query_df(f"select source, {', '.join(parts)} from {s.records} group by source order by source")
    rows: list[_Row] = []
    for rec in df.to_dict("records"):
        source = str(rec["source"])
        field_rows = [(source, "validity", f, _int(rec[f"{f}_n"]), _int(rec[f"{f}_d"])) for f in _VALIDITY]
        rows += field_rows
        rows += _pooled(field_rows, "validity", "all_checked", source)
    for field in _VALIDITY:
        rows += _pooled([r for r in rows if r[2] == field], "validity", field)
    rows += _pooled([r for r in rows if r[2] == "all_checked"], "validity", "all_checked")
    return rows


def _latest_events_sql(s: _Schemas) -> str:
    return f"""
        select channel, contact_value, event
        from (
            select
                channel,
                contact_value,
                event,
                row_number() over (partition by channel, contact_value order by occurred_at_utc desc, event) as recency
            from {s.events}
            where contact_value is not null
        ) as ranked
        where recency = 1
    """


def _record_contacts_sql(s: _Schemas) -> str:
    return f"""
        select r.source, x.golden_id, 'phone' as channel, r.phone_e164 as contact_value
        from {s.records} as r
        left join {s.xref} as x on x.source = r.source and x.source_id = r.source_id
        where r.phone_e164 is not null
        union all
        select r.source, x.golden_id, 'email', r.email
        from {s.records} as r
        left join {s.xref} as x on x.source = r.source and x.source_id = r.source_id
        where r.email is not null
    """


def _accuracy(wh: Warehouse, s: _Schemas) -> list[_Row]:
    df = wh.query_df(
        f"""
        with
        latest as ({_latest_events_sql(s)}),
        contacts as ({_record_contacts_sql(s)})
        select
            c.source,
            count(*) as contacts,
            sum(case when l.event in ('verified', 'bounced', 'unreachable') then 1 else 0 end) as with_outcome,
            sum(case when l.event = 'verified' then 1 else 0 end) as verified,
            sum(case when l.event in ('bounced', 'unreachable') then 1 else 0 end) as failed
        from contacts as c
        left join latest as l on l.channel = c.channel and l.contact_value = c.contact_value
        group by c.source
        order by c.source
        """
    )
    matches = wh.query_df(
        f"""
        with
        contacts as ({_record_contacts_sql(s)}),
        verified as (
            select golden_id, 'phone' as channel, phone as contact_value
            from {s.customers} where phone_status = 'verified'
            union all
            select golden_id, 'email', email from {s.customers} where email_status = 'verified'
        )
        select
            c.source,
            count(*) as compared,
            sum(case when c.contact_value = v.contact_value then 1 else 0 end) as matching
        from contacts as c
        inner join verified as v on v.golden_id = c.golden_id and v.channel = c.channel
        group by c.source
        order by c.source
        """
    )
    rows: list[_Row] = []
    for rec in df.to_dict("records"):
        source = str(rec["source"])
        rows.append((source, "accuracy", "contacts_verified", _int(rec["verified"]), _int(rec["with_outcome"])))
        rows.append((source, "accuracy", "contacts_failed", _int(rec["failed"]), _int(rec["contacts"])))
    for rec in matches.to_dict("records"):
        rows.append(
            (str(rec["source"]), "accuracy", "matches_verified_contact", _int(rec["matching"]), _int(rec["compared"]))
        )
    for metric in ("contacts_verified", "contacts_failed", "matches_verified_contact"):
        rows += _pooled([r for r in rows if r[2] == metric], "accuracy", metric)
    return rows


def _field_values_sql(s: _Schemas) -> str:
    # the same compared values as the consistency_report model
    return f"""
        select x.golden_id, 'birth_date' as field, cast(r.birth_date as varchar(10)) as value, r.source
        from {s.records} as r
        inner join {s.xref} as x on x.source = r.source and x.source_id = r.source_id
        where r.birth_precision = 'full' and r.birth_date is not null
        union all
        select x.golden_id, 'gender', r.gender, r.source
        from {s.records} as r
        inner join {s.xref} as x on x.source = r.source and x.source_id = r.source_id
        where r.gender is not null
        union all
        select x.golden_id, 'name', r.name_std, r.source
        from {s.records} as r
        inner join {s.xref} as x on x.source = r.source and x.source_id = r.source_id
        where r.name_std is not null and r.name_script = 'han' and r.name_issue is null
    """


def _consistency(wh: Warehouse, s: _Schemas) -> list[_Row]:
    cte = f"""
        with
        field_values as ({_field_values_sql(s)}),
        persons as (
            select golden_id, field, case when count(distinct value) = 1 then 1 else 0 end as agrees
            from field_values
            group by golden_id, field
            having count(*) >= 2
        )
    """
    overall = wh.query_df(
        f"{cte} select field, sum(agrees) as agree, count(*) as persons from persons group by field order by field"
    )
    per_source = wh.query_df(
        f"""{cte},
        person_sources as (select distinct golden_id, field, source from field_values)
        select ps.source, p.field, sum(p.agrees) as agree, count(*) as persons
        from persons as p
        inner join person_sources as ps on ps.golden_id = p.golden_id and ps.field = p.field
        group by ps.source, p.field
        order by ps.source, p.field
        """
    )
    rows: list[_Row] = []
    for rec in per_source.to_dict("records"):
        rows.append((str(rec["source"]), "consistency", str(rec["field"]), _int(rec["agree"]), _int(rec["persons"])))
    for source in sorted({r[0] for r in rows}):
        rows += _pooled([r for r in rows if r[0] == source], "consistency", "all_fields", source)
    overall_rows: list[_Row] = [
        (OVERALL, "consistency", str(rec["field"]), _int(rec["agree"]), _int(rec["persons"]))
        for rec in overall.to_dict("records")
    ]
    return rows + overall_rows + _pooled(overall_rows, "consistency", "all_fields")


def _uniqueness(wh: Warehouse, s: _Schemas) -> list[_Row]:
    linked = f"""
        select r.source, x.golden_id
        from {s.records} as r
        inner join {s.xref} as x on x.source = r.source and x.source_id = r.source_id
    """
    per_source = wh.query_df(
        f"select source, count(*) as records, count(distinct golden_id) as golden_ids from ({linked}) as l "
        "group by source order by source"
    )
    overall = wh.query(f"select count(*), count(distinct golden_id) from ({linked}) as l")
    after = wh.query(f"select count(*), count(distinct golden_id) from {s.customers}")
    rows: list[_Row] = []
    for rec in per_source.to_dict("records"):
        records, golden = _int(rec["records"]), _int(rec["golden_ids"])
        rows.append((str(rec["source"]), "uniqueness", "duplicate_rate_before_linkage", records - golden, records))
    records, golden = (_int(v) for v in overall[0])
    rows.append((OVERALL, "uniqueness", "duplicate_rate_before_linkage", records - golden, records))
    customers, distinct = (_int(v) for v in after[0])
    rows.append((OVERALL, "uniqueness", "duplicate_rate_after_linkage", customers - distinct, customers))
    return rows


def _timeliness(wh: Warehouse, s: _Schemas) -> list[_Row]:
    if not wh.table_exists(s.freshness):
        log.warning("no %s: the governance dbt models have not been built, timeliness is not measured", s.freshness)
        return []
    df = wh.query_df(
        f"""
        select
            coalesce(source, '') as source,
            field_class,
            sum(case when within_policy then 1 else 0 end) as timely,
            count(*) as fields
        from {s.freshness}
        group by coalesce(source, ''), field_class
        order by 1, 2
        """
    )
    rows: list[_Row] = []
    for rec in df.to_dict("records"):
        rows.append(
            (str(rec["source"]), "timeliness", str(rec["field_class"]), _int(rec["timely"]), _int(rec["fields"]))
        )
    out: list[_Row] = []
    for source in sorted({r[0] for r in rows if r[0]}):
        mine = [r for r in rows if r[0] == source]
        out += mine + _pooled(mine, "timeliness", "all_fields", source)
    for field_class in sorted({r[2] for r in rows}):
        out += _pooled([r for r in rows if r[2] == field_class], "timeliness", field_class)
    return out + _pooled(rows, "timeliness", "all_fields")


def _source_freshness(wh: Warehouse, s: _Schemas) -> list[_Row]:
    """sources_fresh: source tables passing ``dbt source freshness`` at its latest check, per source
    (the sources that are scopes of the scorecard) and overall."""
    if not wh.table_exists(SOURCE_FRESHNESS_TABLE):
        return []
    df = wh.query_df(
        f"""
        select source_name, sum(case when status = 'pass' then 1 else 0 end) as fresh, count(*) as checked
        from {SOURCE_FRESHNESS_TABLE}
        where checked_at = (select max(checked_at) from {SOURCE_FRESHNESS_TABLE})
        group by source_name
        order by source_name
        """
    )
    scopes: set[str] = set()
    if wh.table_exists(s.records):
        scopes = {str(v) for v in wh.query_df(f"select distinct source from {s.records}")["source"]}
    rows = [
        (str(rec["source_name"]), "timeliness", "sources_fresh", _int(rec["fresh"]), _int(rec["checked"]))
        for rec in df.to_dict("records")
    ]
    return [r for r in rows if r[0] in scopes] + _pooled(rows, "timeliness", "sources_fresh")


_DIMENSION_FUNCS = (
    _completeness,
    _validity,
    _accuracy,
    _consistency,
    _uniqueness,
    _timeliness,
    _source_freshness,
)


# ----------------------------------------------------------------------------- public API
def compute_scorecard(
    settings: Settings,
    run_id: str,
    golden_schema: str = "marts",
    *,
    intermediate_schema: str = "intermediate",
    governance_schema: str = HISTORY_SCHEMA,
    measured_at: datetime | None = None,
) -> pd.DataFrame:
    """Measure every dimension now, per source and overall (long format, see the module docstring).

    The golden tables (``dim_customer``, ``customer_xref``) are read from ``golden_schema``:
    ``marts`` once published, or e.g. ``golden_build`` to score a build before publication.
    Metrics without anything to measure (a zero denominator) are left out.
    """
    schemas = _Schemas(_check_ident(golden_schema), _check_ident(intermediate_schema), _check_ident(governance_schema))
    measured_at = measured_at or datetime.now(UTC).replace(tzinfo=None)
    rows: list[_Row] = []
    with connect(settings, read_only=True) as wh:
        for func in _DIMENSION_FUNCS:
            rows += func(wh, schemas)
    records = [
        {
            "run_id": run_id,
            "measured_at": measured_at,
            "scope": scope,
            "dimension": dimension,
            "metric": metric,
            "value": num / den,
            "numerator": num,
            "denominator": den,
        }
        for scope, dimension, metric, num, den in rows
        if den > 0
    ]
    df = pd.DataFrame.from_records(records, columns=COLUMNS)
    return df.astype({"numerator": "int64", "denominator": "int64", "value": "float64"})


def ensure_history_table(wh: Warehouse) -> None:
    """Create ``governance.scorecard_history`` and the ``scorecard_latest`` view if missing."""
    wh.execute(f"create schema if not exists {HISTORY_SCHEMA}")
    wh.execute(
        f"""
        create table if not exists {HISTORY_TABLE} (
            run_id text not null,
            measured_at timestamp not null,
            scope text not null,
            dimension text not null,
            metric text not null,
            value double precision,
            numerator bigint,
            denominator bigint
        )
        """
    )
    wh.execute(
        f"""
        create or replace view {LATEST_VIEW} as
        select h.*
        from {HISTORY_TABLE} as h
        where h.run_id = (
            select run_id from {HISTORY_TABLE} order by measured_at desc, run_id desc limit 1
        )
        """
    )


def record_scorecard(
    settings: Settings,
    run_id: str,
    golden_schema: str = "marts",
    **kwargs: Any,
) -> pd.DataFrame:
    """Compute the scorecard and append it to ``governance.scorecard_history``.

    Recording the same ``run_id`` again replaces that run's rows (a retried task does not
    duplicate them). Returns the rows written. ``kwargs`` go to :func:`compute_scorecard`.
    """
    df = compute_scorecard(settings, run_id, golden_schema, **kwargs)
    with connect(settings) as wh:
        ensure_history_table(wh)
        with wh.transaction():
            wh.execute(f"delete from {HISTORY_TABLE} where run_id = ?", [run_id])
            wh.insert_df(HISTORY_TABLE, df)
    log.info("scorecard of run %s: %d measurements recorded in %s", run_id, len(df), HISTORY_TABLE)
    return df


def read_history(settings: Settings, runs: int | None = None) -> pd.DataFrame:
    """The recorded scorecard rows, oldest run first (only the last ``runs`` runs if given)."""
    if settings.target == "duckdb" and not settings.warehouse_file.exists():
        return pd.DataFrame(columns=COLUMNS)
    with connect(settings, read_only=True) as wh:
        if not wh.table_exists(HISTORY_TABLE):
            return pd.DataFrame(columns=COLUMNS)
        df = wh.query_df(f"select {', '.join(COLUMNS)} from {HISTORY_TABLE} order by measured_at, run_id")
    if df.empty:
        return df
    df["measured_at"] = pd.to_datetime(df["measured_at"])
    df = df.astype({"value": "float64"})
    if runs is not None:
        order = df.groupby("run_id")["measured_at"].min().sort_values()
        df = df[df["run_id"].isin(order.index[-runs:])]
    return df.reset_index(drop=True)


def summarise(df: pd.DataFrame, dimensions: Sequence[str] = DIMENSIONS) -> pd.DataFrame:
    """The headline metric of each dimension per scope (a wide table: dimension x scope)."""
    head = df[[HEADLINES.get(d) == m for d, m in zip(df["dimension"], df["metric"], strict=True)]]
    table = head.pivot_table(index="dimension", columns="scope", values="value", aggfunc="last")
    return table.reindex([d for d in dimensions if d in table.index])
