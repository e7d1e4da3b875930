"""The records linkage reads: the unified person records with the event feeds' evidence.

Shared by the link step (:mod:`customer_mdm.linkage.step`), training
(:mod:`customer_mdm.linkage.training`) and the hub's matcher; a module of its own so that the link
step and training do not import each other.
"""

from __future__ import annotations

import pandas as pd

from customer_mdm import plan
from customer_mdm.linkage.model import INPUT_COLUMNS
from customer_mdm.warehouse import Warehouse


def link_columns() -> list[str]:
    """The int_customer_records columns the model reads (hashed to detect changed records)."""
    return [c for c in INPUT_COLUMNS if c not in ("record_key", "source")]


RECORDS_SQL = "intermediate.int_customer_records"
#: the evidence of the event feeds per record (:func:`prepare_evidence`), a temporary table
EVIDENCE_TABLE = "_link_evidence"
#: the records joined to their evidence: ``r`` the record, ``e`` its evidence (if any)
RECORDS_FROM = (
    f"{RECORDS_SQL} as r left join {EVIDENCE_TABLE} as e on e.source = r.source and e.source_id = r.source_id"
)
#: linkage columns that are not columns of int_customer_records
DERIVED = {
    "phone_other": "e.phone_other",
    "phone_dead": "coalesce(e.phone_dead, false)",
    "email_dead": "coalesce(e.email_dead, false)",
    "household_nameless": "coalesce(e.household_nameless, false)",
    "record_year": "cast(extract(year from r.record_updated_at_utc) as integer)",
}


def column_sql(col: str) -> str:
    return DERIVED.get(col, f"r.{col}")


def content_hash_sql() -> str:
    """SQL: a hash of the linkage fields of a record and its evidence (detects changed records)."""
    return "md5(" + " || chr(31) || ".join(f"coalesce(cast({column_sql(c)} as text), '')" for c in link_columns()) + ")"


def prepare_evidence(wh: Warehouse) -> int:
    """(Re)build the temporary table of what the event feeds say about each record's contacts:

    - ``phone_other``: another number of the same source record: the mobile a self-service
      change gave it, or the number an earlier export of the record showed (a former number
      is still the person's: an old call-centre ticket carries it);
    - ``phone_dead`` / ``email_dead``: the record's number was reported ``unreachable`` / its
      address ``bounced``: a mismatch against a dead contact contradicts nothing;
    - ``household_nameless``: the record has no name and its valid phone is shown by records of
      two or more different real names -- or no named record shows its phone and its street is
      that of two or more names (a household's shop account): which of them it belongs to the
      data cannot tell, so clustering leaves it on its own.

    Only records with some evidence get a row. Returns that count."""
    wh.execute(f"drop table if exists {EVIDENCE_TABLE}")
    parts = []
    if wh.table_exists("intermediate.int_self_service_changes"):
        parts.append(
            "select source_system as source, source_record_id as source_id, new_value as phone "
            "from intermediate.int_self_service_changes where field = 'mobile' and new_value is not null"
        )
    for f in plan.FEEDS:  # the person feeds whose records are re-exported with other numbers
        person = f.person
        phone = person.columns.get("phone_raw") if person is not None and person.former_phones else None
        if person is not None and phone and wh.table_exists(f.staging_table):
            parts.append(
                f"select '{person.source}' as source, s.source_id, p.phone_e164 as phone "
                f"from (select source_id, is_latest, {phone} as phone_raw from {f.staging_table}) as s "
                "join std.phone_lookup as p on p.raw = s.phone_raw "
                "where not s.is_latest and p.phone_valid and p.phone_kind = 'mobile'"
            )
    other = " union all ".join(parts) if parts else "select null as source, null as source_id, null as phone"
    dead = {"phone": "unreachable", "email": "bounced"}
    has_events = wh.table_exists("intermediate.int_contact_events")
    dead_sql = {
        ch: (
            f"select distinct contact_value as v from intermediate.int_contact_events "
            f"where channel = '{ch}' and event = '{ev}' and contact_value is not null"
            if has_events
            else "select cast(null as text) as v where false"
        )
        for ch, ev in dead.items()
    }
    phone = "case when r.phone_valid then r.phone_e164 end"
    street = "r.street || '|' || coalesce(r.city, '')"
    real_name = "r.name_script in ('han', 'latin', 'mixed') and coalesce(r.name_issue, '') <> 'honorific'"
    wh.execute(
        f"""
        create temporary table {EVIDENCE_TABLE} as
        with other as (select distinct source, source_id, phone from ({other}) as o),
        dead_phone as ({dead_sql["phone"]}),
        dead_email as ({dead_sql["email"]}),
        named as (
            select 'p' as kind, {phone} as v, r.name_sorted_key as name from {RECORDS_SQL} as r
            where {real_name} and {phone} is not null
            union all
            select 's', {street}, r.name_sorted_key from {RECORDS_SQL} as r where {real_name} and r.street is not null
        ),
        names_of as (select kind, v, count(distinct name) as names from named group by kind, v),
        -- the phone decides when named records show it (one name: that person's number; several: a
        -- household's), else the street (several names: a household's flat)
        nameless as (
            select r.source, r.source_id from {RECORDS_SQL} as r
            left join names_of as p on p.kind = 'p' and p.v = {phone}
            left join names_of as s on s.kind = 's' and s.v = {street}
            where r.name_pinyin is null and (p.names >= 2 or (p.names is null and s.names >= 2))
        ),
        per_record as (
            select r.source, r.source_id,
                -- the smallest other number: one per record, deterministic
                min(case when o.phone <> coalesce(r.phone_e164, '') then o.phone end) as phone_other,
                max(case when dp.v is not null then 1 else 0 end) = 1 as phone_dead,
                max(case when de.v is not null then 1 else 0 end) = 1 as email_dead,
                max(case when n.source is not null then 1 else 0 end) = 1 as household_nameless
            from {RECORDS_SQL} as r
            left join other as o on o.source = r.source and o.source_id = r.source_id
            left join dead_phone as dp on dp.v = r.phone_e164
            left join dead_email as de on de.v = r.email
            left join nameless as n on n.source = r.source and n.source_id = r.source_id
            where o.phone is not null or dp.v is not null or de.v is not null or n.source is not null
            group by r.source, r.source_id
        )
        select * from per_record where phone_other is not null or phone_dead or email_dead or household_nameless
        """
    )
    wh._link_evidence_ready = True  # type: ignore[attr-defined]  # this connection has it now
    return int(wh.scalar(f"select count(*) from {EVIDENCE_TABLE}"))


def record_select(where: str = "", content_hash: bool = True) -> str:
    cols = ", ".join(
        [
            "r.source",
            "r.source_id",
            "r.record_created_at_utc",
            "r._ingested_at",
            *(f"{column_sql(c)} as {c}" for c in link_columns()),
        ]
    )
    digest = f", {content_hash_sql()} as content_hash" if content_hash else ""
    return f"select r.source || ':' || r.source_id as record_key, {cols}{digest} from {RECORDS_FROM} {where}"


def read_records(wh: Warehouse, keys_table: str | None = None, content_hash: bool = True) -> pd.DataFrame:
    """The unified records with a stable linkage key and (``content_hash``) a hash of the fields
    linkage reads (all of them, or those whose key is in the one-column table ``keys_table``),
    with the evidence of :func:`prepare_evidence` (built first when this connection has none)."""
    if not getattr(wh, "_link_evidence_ready", False):
        prepare_evidence(wh)
    where = f"where r.source || ':' || r.source_id in (select record_key from {keys_table})" if keys_table else ""
    records = wh.query_df(record_select(where, content_hash) + " order by record_key")
    return records.reset_index(drop=True)
