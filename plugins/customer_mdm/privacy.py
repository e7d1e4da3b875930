"""Right to erasure (PIPL art. 47, GDPR art. 17): erase a person everywhere, keep a tombstone.

The ``erasure`` feed delivers requests (``staging.stg_erasure__requests``: request_id,
identifier_type mobile / email / crm_id / member_id / card_no, identifier_value, requested_at).
:func:`erase_pending` (the daily DAG's ``erasure`` task, right after ``link``, before ``dbt_golden``)
handles every request not handled yet:

1. **Resolve** the identifier to source records (E.164 mobile, lower-cased e-mail, or the source
   record id), then through ``mdm.xref`` to the person: every golden id those records belong to
   and every source record of those golden ids (records not linked yet count too).
2. **Tombstone** (``ops.erasure_tombstones``): the request's identifier and every identifier of
   every erased record (source record keys, E.164 mobile numbers, e-mails), each stored only as
   a salted SHA-256 (:func:`pseudonym`; the salt is the warehouse's, docs/security.md). A request that matches nobody is
   tombstoned too, with status ``not_found``.
3. **Delete** the person's rows from every layer in one transaction: ``raw.*`` (by the lineage of
   their staging rows and by record id), ``staging.*``, ``intermediate.*`` (records, self-service
   changes, contact events of their phones and e-mails, golden candidates), ``std.*`` values no
   other record uses, ``mdm.*`` (link state, pairs, xref, review queue, steward decisions, golden
   registry and id history), ``golden_build.*`` and ``marts.*`` (dim_customer, customer_xref,
   fct_orders, marketing_audience), ``governance.*`` and ``ops.quarantine`` rows that quote them;
   and the request row itself from ``raw.erasure`` / ``stg_erasure__requests`` (it holds the
   identifier in clear). Counts per table go to ``ops.erasure_requests`` (status ``erased`` or
   ``not_found``), to the run summary and to ``audit.golden_changes`` (action ``erasure``).
4. **Keep them out.** :func:`apply_tombstones` deletes, the same way, every record whose hashed
   identifiers match a tombstone. The erasure task runs it on each run's new rows, so an old
   export that still contains the person is dropped (and counted) before the golden build; a
   restore (``customer_mdm.backup.restore``) calls it on everything (``since=None``), which also
   matches the record ids the restored ``mdm.*`` / ``marts.*`` tables name and golden rows whose
   phone or e-mail is tombstoned. A record-id request is tombstoned as the matcher keys records
   (``crm:C7777777``), so a request that matched nobody blocks the record when it arrives.
5. **Scrub** what belongs to nobody in particular but quotes the person (:data:`FREE_TEXT`: run
   details, reasons, steward notes; the files under ``MDM_HOME``: quarantine copies, reports,
   Data Docs, logs): their values are replaced by ``[erased]``. Erased raw rows are counted in
   ``ops.manifest.rows_erased`` (the raw gate's row counts hold on a full rebuild), and a
   handled request delivered again loses its row.

:func:`apply_retention` (``MDM_RETENTION_YEARS``, off by default) erases the same way people no
source has seen for years. ``mdm privacy check`` (:mod:`customer_mdm.privacy_search`) lists every
table and file still naming someone. See docs/privacy.md.

Phones are tombstoned only when they are mobile numbers: a landline (a household's, a
company's) would otherwise keep other people out. Identifiers are matched after the same
standardisation the records get (E.164, lower-cased e-mail).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from customer_mdm import plan
from customer_mdm.audit import append, ensure_audit_table, forget_golden_ids, to_json
from customer_mdm.config import Settings
from customer_mdm.errors import MdmError
from customer_mdm.privacy_search import (
    literals,
    needles,
    normalise,
    pattern,
    scrub_files,
    scrub_text,
    sql_matches,
    sql_matches_expr,
)
from customer_mdm.pseudonyms import erasure_salt, hasher
from customer_mdm.pseudonyms import pseudonym as pseudonym  # re-exported: callers know it here
from customer_mdm.pseudonyms import salt_file as salt_file
from customer_mdm.schema import ensure_table
from customer_mdm.warehouse import Warehouse, connect

log = logging.getLogger(__name__)

TOMBSTONES = "ops.erasure_tombstones"
TOMBSTONE_COLUMNS: dict[str, str] = {
    "request_id": "text",
    "erased_at": "timestamp",
    "identifier_type": "text",  # the request's type (mobile, email, crm_id, ...) or phone/email/record
    "identifier_kind": "text",  # request | phone | email | record
    "identifier_sha256": "text",  # pseudonym(kind, normalised value)
    "run_id": "text",
}
REQUESTS = "ops.erasure_requests"
REQUEST_COLUMNS: dict[str, str] = {
    "request_id": "text",
    "status": "text",  # erased | not_found | invalid
    "identifier_type": "text",
    "requested_at": "timestamp",
    "processed_at": "timestamp",
    "persons": "bigint",
    "records": "bigint",
    "rows_deleted": "text",  # JSON: table -> rows
    "run_id": "text",
}

#: identifier_type of a request -> (pseudonym kind, record source for ids)
IDENTIFIER_TYPES: dict[str, tuple[str, str | None]] = {
    "mobile": ("phone", None),
    "email": ("email", None),
    "crm_id": ("record", "crm"),
    "member_id": ("record", "ecommerce"),
    "card_no": ("record", "store_pos"),
}


def _raw_id_columns() -> dict[str, tuple[str, str]]:
    """Raw table -> (source, id column) of the person ids its rows carry (customer_mdm.plan)."""
    return {f.raw_table: f.person_id for f in plan.FEEDS if f.person_id is not None}


def _staging_raw() -> dict[str, str]:
    """Staging model -> the raw table it reads (lineage: _batch_id, _row_number), for every feed an
    erasure deletes from (customer_mdm.plan: not the erasure requests themselves)."""
    return {f.staging_table: f.raw_table for f in plan.FEEDS if f.staging_model and f.erasable}


#: the raw table of the self-service changes: its rows name a record by (source_system, source_id)
_SELF_SERVICE_RAW = "raw.self_service"
#: schemas searched for the person's rows (besides raw, handled through lineage)
_SCHEMAS = ("staging", "intermediate", "mdm", "golden_build", "marts", "governance")


# ----------------------------------------------------------------------------- tables
def ensure_privacy_tables(wh: Warehouse) -> None:
    ensure_table(wh, TOMBSTONES, TOMBSTONE_COLUMNS)
    ensure_table(wh, REQUESTS, REQUEST_COLUMNS)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Person:
    """What one request (or tombstone match) resolves to."""

    records: set[str] = field(default_factory=set)  # source:source_id
    golden_ids: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)  # E.164 mobiles
    all_phones: set[str] = field(default_factory=set)  # every E.164 (contact events, std)
    emails: set[str] = field(default_factory=set)
    #: rows (by golden id) of golden tables whose phone or e-mail is tombstoned (restored rows)
    golden_rows: dict[str, set[str]] = field(default_factory=dict)


def _in(values: Iterable[str]) -> tuple[str, list[str]]:
    vals = sorted(set(values))
    return ", ".join("?" for _ in vals) or "null", vals


def _temp(wh: Warehouse, name: str, columns: dict[str, str], frame: pd.DataFrame) -> str:
    wh.execute(f"drop table if exists {name}")
    body = ", ".join(f"{c} {t}" for c, t in columns.items())
    wh.execute(f"create temporary table {name} ({body})")
    if not frame.empty:
        wh.insert_df(name, frame[list(columns)])
    return name


def _split(record_id: str) -> tuple[str, str]:
    source, _, source_id = record_id.partition(":")
    return source, source_id


# ----------------------------------------------------------------------------- resolving
def _resolve(wh: Warehouse, requests: list[tuple[int, str, str, str | None]]) -> dict[int, Person]:
    """Each request ``(seq, kind, value, source)`` resolved to its person, all requests at once
    (joins, not one query per request): the source records carrying the identifier (E.164
    mobile, e-mail as standardised or as delivered, or the record id), then through mdm.xref
    every golden id of those records, every record of those ids and the ids merged into them,
    and the phones and e-mails of all those records and their self-service changes."""
    persons = {seq: Person() for seq, *_ in requests}
    for seq, kind, value, _source in requests:
        if kind == "phone":
            persons[seq].phones.add(value)
            persons[seq].all_phones.add(value)
        elif kind == "email":
            persons[seq].emails.add(value)
    if not requests:
        return persons
    q = _temp(
        wh,
        "_erase_req",
        {"seq": "bigint", "kind": "text", "value": "text", "source": "text"},
        pd.DataFrame(requests, columns=["seq", "kind", "value", "source"]),
    )
    recs, changes, xref = "intermediate.int_customer_records", "intermediate.int_self_service_changes", "mdm.xref"
    found: list[tuple[Any, ...]] = []
    if wh.table_exists(recs):
        rid = "r.source || ':' || r.source_id"
        found += wh.query(
            f"select q.seq, {rid} from {q} as q join {recs} as r on r.phone_e164 = q.value where q.kind = 'phone'"
        )
        found += wh.query(
            f"select q.seq, {rid} from {q} as q join {recs} as r on r.email = q.value where q.kind = 'email'"
        )
        # the delivered value too (an e-mail the standardiser corrected)
        found += wh.query(
            f"select q.seq, {rid} from {q} as q join {recs} as r on lower(trim(r.email_raw)) = q.value "
            "where q.kind = 'email'"
        )
    for table in (recs, xref):  # a record id: known to the records or (linked, not rebuilt yet) to the xref
        if wh.table_exists(table):
            found += wh.query(
                f"select distinct q.seq, q.source || ':' || q.value from {q} as q join {table} as r "
                "on r.source = q.source and r.source_id = q.value where q.kind = 'record'"
            )
    if wh.table_exists(changes):
        found += wh.query(
            f"select q.seq, c.source_system || ':' || c.source_record_id from {q} as q join {changes} as c "
            "on c.new_value = q.value and c.field = (case when q.kind = 'phone' then 'mobile' else 'email' end) "
            "where q.kind in ('phone', 'email')"
        )
    for seq, record_id in found:
        persons[int(seq)].records.add(str(record_id))

    def tagged(name: str, attr: str) -> str:
        rows = [(seq, *_split(r), r) for seq, p in persons.items() for r in sorted(getattr(p, attr))]
        frame = pd.DataFrame(rows, columns=["seq", "source", "source_id", "record_id"])
        cols = {"seq": "bigint", "source": "text", "source_id": "text", "record_id": "text"}
        return _temp(wh, name, cols, frame)

    if wh.table_exists(xref):
        f = tagged("_erase_found", "records")
        for seq, gid in wh.query(
            f"select distinct f.seq, x.golden_id from {f} as f join {xref} as x on x.record_id = f.record_id"
        ):
            persons[int(seq)].golden_ids.add(str(gid))
        frame = pd.DataFrame(
            [(seq, g) for seq, p in persons.items() for g in sorted(p.golden_ids)], columns=["seq", "golden_id"]
        )
        g = _temp(wh, "_erase_found_golden", {"seq": "bigint", "golden_id": "text"}, frame)
        for seq, record_id in wh.query(
            f"select g.seq, x.record_id from {g} as g join {xref} as x on x.golden_id = g.golden_id"
        ):
            persons[int(seq)].records.add(str(record_id))
        if wh.table_exists("mdm.golden_registry"):  # ids merged into the person's: the same person, older id
            for seq, gid in wh.query(
                f"select g.seq, r.golden_id from {g} as g join mdm.golden_registry as r on r.merged_into = g.golden_id"
            ):
                persons[int(seq)].golden_ids.add(str(gid))
    f = tagged("_erase_found", "records")
    if wh.table_exists(recs):
        for seq, phone, kind, email in wh.query(
            f"select f.seq, r.phone_e164, r.phone_kind, r.email from {f} as f join {recs} as r "
            "on r.source = f.source and r.source_id = f.source_id"
        ):
            p = persons[int(seq)]
            if phone:
                p.all_phones.add(str(phone))
                if kind == "mobile":
                    p.phones.add(str(phone))
            if email:
                p.emails.add(str(email))
    if wh.table_exists(changes):
        for seq, fld, value in wh.query(
            f"select f.seq, c.field, c.new_value from {f} as f join {changes} as c "
            "on c.source_system = f.source and c.source_record_id = f.source_id "
            "where c.field in ('mobile', 'email') and c.new_value is not null"
        ):
            p = persons[int(seq)]
            if fld == "mobile":
                p.phones.add(str(value))
                p.all_phones.add(str(value))
            else:
                p.emails.add(str(value))
    for t in ("_erase_req", "_erase_found", "_erase_found_golden"):
        wh.execute(f"drop table if exists {t}")
    return persons


# ----------------------------------------------------------------------------- deleting
def _row_id(wh: Warehouse) -> str:
    """The physical row identifier: stable inside the erasing transaction."""
    return "ctid" if wh.target == "postgres" else "rowid"


class _Deleter:
    """Deletes rows matched by joins with tagged temp tables (column ``seq``: which person of the
    batch); each deleted row is counted once, for the first person (lowest ``seq``) matching it."""

    HIT = "_erase_hit"

    def __init__(self, wh: Warehouse) -> None:
        self.wh = wh
        self.rid = _row_id(wh)
        self.counts: dict[int, dict[str, int]] = {}

    def delete(self, table: str, joins: list[str], keep: Iterable[str] = ()) -> str | None:
        """``joins``: ``join <temp> as k on <condition with t.>`` clauses (optionally followed by
        ``where``), one per way a row can belong to a person. ``keep``: columns of the deleted
        rows to remember in the hit table (returned, valid until the next call)."""
        if not joins:
            return None
        keep = list(keep)
        raw = table.startswith("raw.")  # each deleted raw row is counted in its file's manifest entry
        if raw and "_batch_id" not in keep:
            keep.append("_batch_id")
        cols = "".join(f", t.{c}" for c in keep)
        union = " union all ".join(f"select t.{self.rid} as r, k.seq{cols} from {table} as t {j}" for j in joins)
        aggs = "".join(f", min({c}) as {c}" for c in keep)
        self.wh.execute(f"drop table if exists {self.HIT}")
        self.wh.execute(
            f"create temporary table {self.HIT} as select r, min(seq) as seq{aggs} from ({union}) as m group by r"
        )
        hits = self.wh.query(f"select seq, count(*) from {self.HIT} group by seq")
        if hits:
            self.wh.execute(f"delete from {table} where {self.rid} in (select r from {self.HIT})")
            if raw:
                _count_erased_rows(self.wh, self.HIT)
            for seq, n in hits:
                per = self.counts.setdefault(int(seq), {})
                per[table] = per.get(table, 0) + int(n)
        return self.HIT

    def drop(self) -> None:
        self.wh.execute(f"drop table if exists {self.HIT}")


def _count_erased_rows(wh: Warehouse, hit: str) -> None:
    """Add the raw rows just deleted (``hit``: their ``_batch_id``) to ``ops.manifest.rows_erased``
    of their file: the raw gate's row count check then still holds on a full rebuild."""
    if not wh.table_exists("ops.manifest"):
        return
    from customer_mdm.schema import OPS_TABLES

    ensure_table(wh, "ops.manifest", OPS_TABLES["ops.manifest"])  # rows_erased on an older warehouse
    wh.execute(
        "update ops.manifest set rows_erased = coalesce(rows_erased, 0) + h.n "
        f"from (select _batch_id, count(*) as n from {hit} group by _batch_id) as h "
        "where ops.manifest.batch_id = h._batch_id and ops.manifest.status = 'ingested'"
    )


def _tables(wh: Warehouse, schemas: Iterable[str]) -> list[tuple[str, set[str]]]:
    marks, vals = _in(schemas)
    rows = wh.query(
        "select t.table_schema, t.table_name from information_schema.tables as t "
        f"where t.table_schema in ({marks}) and t.table_type = 'BASE TABLE' order by 1, 2",
        vals,
    )
    return [(f"{s}.{n}", set(wh.columns_of(f"{s}.{n}"))) for s, n in rows]


_RAW_VALUE_COLUMNS = (
    "phone_raw",
    "name_raw",
    "nickname_raw",
    "birth_date_raw",
    "address_raw",
    "new_value_raw",
    "contact_value_raw",
)


def _erase_rows(
    wh: Warehouse, persons: list[Person], extra_raw_values: list[Iterable[str]] | None = None
) -> list[dict[str, int]]:
    """Delete every row of the persons (inside the caller's transaction); rows per table and
    person (a row two persons share counts for the first).

    Derived tables first (their rows' lineage ``_batch_id``/``_row_number`` names the raw rows
    they came from: batch ids are unique per file version), then staging (by key or lineage),
    then raw (by lineage and by record id), then the std lookup values nothing uses any more,
    then quarantined rows quoting the persons. One statement per table for the whole batch."""
    extra = extra_raw_values or [() for _ in persons]
    records = pd.DataFrame(
        [(i, r, *_split(r)) for i, p in enumerate(persons) for r in sorted(p.records)],
        columns=["seq", "record_id", "source", "source_id"],
    )
    values = pd.DataFrame(
        [(i, "phone", v) for i, p in enumerate(persons) for v in sorted(p.all_phones)]
        + [(i, "email", v) for i, p in enumerate(persons) for v in sorted(p.emails)],
        columns=["seq", "channel", "value"],
    )
    golden = pd.DataFrame(
        [(i, g) for i, p in enumerate(persons) for g in sorted(p.golden_ids)], columns=["seq", "golden_id"]
    )
    rk = _temp(
        wh, "_erase_records", {"seq": "bigint", "record_id": "text", "source": "text", "source_id": "text"}, records
    )
    cv = _temp(wh, "_erase_values", {"seq": "bigint", "channel": "text", "value": "text"}, values)
    gi = _temp(wh, "_erase_golden", {"seq": "bigint", "golden_id": "text"}, golden)
    lineage = _temp(
        wh, "_erase_lineage", {"seq": "bigint", "_batch_id": "text", "_row_number": "bigint"}, pd.DataFrame()
    )
    raw_values = _temp(
        wh,
        "_erase_raw_values",
        {"seq": "bigint", "value": "text"},
        pd.DataFrame([(i, v) for i, vals in enumerate(extra) for v in sorted(set(vals))], columns=["seq", "value"]),
    )
    deleter = _Deleter(wh)
    by_golden = [
        (col, f"join {gi} as k on t.{col} = k.golden_id")
        for col in ("golden_id", "merged_into", "other_golden_id", "golden_id_l", "golden_id_r")
    ]
    by_record = [
        (col, f"join {rk} as k on t.{col} = k.record_id") for col in ("record_id", "record_id_l", "record_id_r")
    ]
    joins_by_cols: list[tuple[set[str], str]] = [
        *(({c}, j) for c, j in by_golden),
        *(({c}, j) for c, j in by_record),
        ({"source", "source_id"}, f"join {rk} as k on t.source = k.source and t.source_id = k.source_id"),
        (
            {"source_system", "source_record_id"},
            f"join {rk} as k on t.source_system = k.source and t.source_record_id = k.source_id",
        ),
        ({"member_id"}, f"join {rk} as k on k.source = 'ecommerce' and cast(t.member_id as text) = k.source_id"),
        ({"channel", "contact_value"}, f"join {cv} as k on t.channel = k.channel and t.contact_value = k.value"),
    ]
    by_lineage = f"join {lineage} as k on t._batch_id = k._batch_id and t._row_number = k._row_number"
    skip = {TOMBSTONES, REQUESTS, *(f.staging_table for f in plan.FEEDS if f.staging_model and not f.erasable)}
    tables = [(t, cols) for t, cols in _tables(wh, _SCHEMAS) if t not in skip]
    if wh.table_exists(RETENTION_FLAGS):  # a flagged golden id erased meanwhile
        tables.append((RETENTION_FLAGS, set(wh.columns_of(RETENTION_FLAGS))))
    derived = [(t, c) for t, c in tables if not t.startswith("staging.")]
    staging = [(t, c) for t, c in tables if t.startswith("staging.")]
    for table, cols in [*derived, *staging]:
        joins = [j for need, j in joins_by_cols if need <= cols]
        has_lineage = {"_batch_id", "_row_number"} <= cols
        if table.startswith("staging.") and has_lineage:
            joins.append(by_lineage)
        raw_cols = [c for c in _RAW_VALUE_COLUMNS if c in cols]
        hit = deleter.delete(table, joins, keep=[*(["_batch_id", "_row_number"] if has_lineage else []), *raw_cols])
        if hit is None:
            continue
        if has_lineage:
            wh.execute(
                f"insert into {lineage} (seq, _batch_id, _row_number) select seq, _batch_id, _row_number from {hit}"
            )
        for col in raw_cols:
            wh.execute(f"insert into {raw_values} (seq, value) select seq, {col} from {hit} where {col} is not null")
    staging_raw, raw_ids = _staging_raw(), _raw_id_columns()
    for raw_table in sorted({*staging_raw.values(), *raw_ids, _SELF_SERVICE_RAW}):
        if not wh.table_exists(raw_table):
            continue
        joins = [by_lineage] if raw_table in staging_raw.values() else []
        if raw_table in raw_ids:
            source, column = raw_ids[raw_table]
            joins.append(f"join {rk} as k on k.source = '{source}' and trim(t.{column}) = k.source_id")
        if raw_table == _SELF_SERVICE_RAW:
            joins.append(f"join {rk} as k on trim(t.source_system) = k.source and trim(t.source_id) = k.source_id")
        deleter.delete(raw_table, joins)
    _erase_std(wh, deleter, raw_values)
    # quarantined rows quoting the persons' ids, phones or e-mails (normalised: a formatted phone,
    # an upper-case e-mail match too)
    if wh.table_exists("ops.quarantine"):
        regexes = [(i, rx) for i, p in enumerate(persons) if (rx := person_pattern(p))]
        if regexes:
            nd = _temp(
                wh,
                "_erase_needles",
                {"seq": "bigint", "regex": "text"},
                pd.DataFrame(regexes, columns=["seq", "regex"]),
            )
            match = sql_matches_expr(wh, "t.raw_record", "k.regex")
            deleter.delete("ops.quarantine", [f"join {nd} as k on t.raw_record is not null and {match}"])
            wh.execute(f"drop table if exists {nd}")
    deleter.drop()
    for t in (rk, cv, gi, lineage, raw_values):
        wh.execute(f"drop table if exists {t}")
    return [deleter.counts.get(i, {}) for i in range(len(persons))]


def _erase_std(wh: Warehouse, deleter: _Deleter, raw_values: str) -> None:
    """Delete the std lookup rows of the persons' delivered values that no remaining staging row
    uses (a value another record still carries stays: it is that record's too). Anti-joins (a
    left join to the values in use, kept where none), not ``not in``: PostgreSQL plans
    ``not in (subquery)`` as a nested loop over the lookup. Lookups keyed by several columns
    (``std.region_lookup``) lose every key combination no staging row uses any more."""
    from customer_mdm.standardize.step import lookups

    if not wh.scalar(f"select count(*) from {raw_values}"):
        return
    for lookup in lookups():
        if not wh.table_exists(lookup.table):
            continue
        if not all(wh.table_exists(t) for t in set(re.findall(r"staging\.\w+", lookup.source_sql))):
            continue  # a staging table the lookup reads is missing (not built yet)
        if lookup.keys == ("raw",):
            join = (
                f"join {raw_values} as k on t.raw = k.value "
                f"left join (select distinct raw from ({lookup.source_sql}) as s) as u on u.raw = t.raw "
                "where u.raw is null"
            )
        else:
            keys = list(lookup.keys)
            used = ", ".join(f"coalesce({c}, chr(1)) as {c}" for c in keys)
            on = " and ".join(f"u.{c} = coalesce(t.{c}, chr(1))" for c in keys)
            join = (
                f"cross join (select min(seq) as seq from {raw_values}) as k "
                f"left join (select distinct {used} from ({lookup.source_sql}) as s) as u on {on} "
                f"where u.{keys[0]} is null"
            )
        deleter.delete(lookup.table, [join])


# ----------------------------------------------------------------------------- free text, files
#: free-text columns of rows that are not a person's own but may quote one (a rejected file's
#: reason, a run's details, a steward's note): the person's values are replaced by ``[erased]``
FREE_TEXT: dict[str, tuple[str, ...]] = {
    "ops.manifest": ("reason",),
    "ops.quarantine": ("reason", "raw_record"),
    "ops.run_steps": ("details",),
    "ops.runs": ("summary",),
    "ops.publications": ("details",),
    "mdm.steward_decisions": ("note",),
    "mdm.golden_id_history": ("detail",),
}


def person_pattern(person: Person) -> str | None:
    """The pattern (:mod:`customer_mdm.privacy_search`) of a person's phones, e-mails and source
    record ids (ids shorter than 5 characters are left out: they would match other text)."""
    ids = person_identifiers(person)
    return pattern(needles(ids)) if ids else None


def person_identifiers(person: Person) -> list[tuple[str, str]]:
    """The identifiers :func:`person_pattern` looks for (as ``mdm privacy check`` takes them)."""
    ids = [("mobile", p) for p in sorted(person.all_phones)] + [("email", e) for e in sorted(person.emails)]
    ids += [("crm_id", sid) for _, sid in sorted(map(_split, person.records)) if len(sid) >= 5]
    return ids


def _scrub(settings: Settings, wh: Warehouse, persons: list[Person]) -> dict[str, int]:
    """Replace the persons' values in free text (:data:`FREE_TEXT`) and in the files under
    MDM_HOME (quarantine copies, reports, dbt and GX artefacts, logs): what row deletes cannot
    reach. Returns place -> rows or lines changed (a file deleted: -1)."""
    alternatives = [a for p in persons if (rx := person_pattern(p)) for a in [rx]]
    if not alternatives:
        return {}
    regex = pattern(alternatives)
    compiled = re.compile(regex)
    changed = _rewrite_free_text(wh, regex, lambda text: scrub_text(text, compiled))
    # the files: a substring test of the values first (the pattern has no literal prefix: run
    # over every file under MDM_HOME it took minutes at 100k people)
    plain = literals([i for p in persons for i in person_identifiers(p)])
    changed.update({f"file:{k}": v for k, v in scrub_files(settings, regex, plain).items()})
    return changed


#: a phone number or an e-mail address in free text
_CONTACT_TOKEN = re.compile(
    r"[+0-9\uff0b\uff10-\uff19][0-9\uff10-\uff19 ().\-]{5,}[0-9\uff10-\uff19]"
    r"|[^\s\"',;:<>|{}\[\]=()]+@[^\s\"',;:<>|{}\[\]=()]+"
)


def _scrub_tombstoned_text(settings: Settings, wh: Warehouse, stones: dict[str, set[str]]) -> dict[str, int]:
    """Replace the phones and e-mails in free text (:data:`FREE_TEXT`) whose pseudonym is a
    tombstone: after a restore, the rows put back may quote an erased person whose values are
    known only as hashes (a steward's note naming a phone)."""
    if not stones.get("phone") and not stones.get("email"):
        return {}
    digest = hasher(settings)
    candidates = "[0-9]{7}|@"  # on the normalised text: separators between digits are gone
    seen: dict[str, bool] = {}

    def hashed(token: str) -> bool:
        if token not in seen:  # run ids and timestamps repeat in every step's details
            kind = "email" if "@" in token else "phone"
            seen[token] = digest(kind, normalise(kind, token)) in stones.get(kind, set())
        return seen[token]

    return _rewrite_free_text(
        wh,
        candidates,
        lambda text: _CONTACT_TOKEN.sub(lambda m: "[erased]" if hashed(m.group(0)) else m.group(0), text),
    )


def _rewrite_free_text(wh: Warehouse, regex: str, rewrite: Callable[[str], str]) -> dict[str, int]:
    """Rewrite every value of the free-text columns (:data:`FREE_TEXT`) that ``regex`` matches
    (on the normalised text, :func:`customer_mdm.privacy_search.sql_matches`) with ``rewrite``;
    returns the rows changed per ``table.column``."""
    rid = _row_id(wh)
    key = "cast(? as tid)" if wh.target == "postgres" else "?"
    changed: dict[str, int] = {}
    for table, columns in FREE_TEXT.items():
        if not wh.table_exists(table):
            continue
        have = set(wh.columns_of(table))
        for column in (c for c in columns if c in have):
            rows = wh.query(
                f"select {rid}, {column} from {table} where {column} is not null and {sql_matches(wh, column, regex)}"
            )
            n = 0
            for row_id, value in rows:
                text = str(value)
                new = rewrite(text)
                if new != text:
                    wh.execute(
                        f"update {table} set {column} = ? where {rid} = {key}",
                        [new, str(row_id) if wh.target == "postgres" else row_id],
                    )
                    n += 1
            if n:
                changed[f"{table}.{column}"] = n
    return changed


# ----------------------------------------------------------------------------- tombstones
def _tombstone_rows(
    settings: Settings, request_id: str, identifier_type: str, kind: str, value: str | None, person: Person, run_id: str
) -> list[dict[str, Any]]:
    digest = hasher(settings)
    now = _now()
    rows = []
    if value is not None:
        rows.append(("request", identifier_type, digest(kind, value)))
    rows += [("record", "record", digest("record", r)) for r in sorted(person.records)]
    rows += [("phone", "phone", digest("phone", p)) for p in sorted(person.phones)]
    rows += [("email", "email", digest("email", e)) for e in sorted(person.emails)]
    seen: set[str] = set()
    out = []
    for k, t, h in rows:  # one row per hash: the request's own identifier is not repeated as a phone
        if h in seen:
            continue
        seen.add(h)
        out.append(
            {
                "request_id": request_id,
                "erased_at": now,
                "identifier_type": t,
                "identifier_kind": k,
                "identifier_sha256": h,
                "run_id": run_id,
            }
        )
    return out


def _tombstoned(wh: Warehouse) -> dict[str, set[str]]:
    rows = wh.query(f"select distinct identifier_kind, identifier_type, identifier_sha256 from {TOMBSTONES}")
    out: dict[str, set[str]] = {"record": set(), "phone": set(), "email": set()}
    for kind, itype, digest in rows:
        k = str(kind)
        if k == "request":  # a request's identifier: what kind it is follows from its type
            k = IDENTIFIER_TYPES.get(str(itype), ("record", None))[0]
        out.setdefault(k, set()).add(str(digest))
    return out


def _digest_sql(wh: Warehouse, kind: str, value: str) -> str:
    """SQL for :func:`pseudonym`'s digest of ``value`` (an SQL expression) as ``kind``; the salt is
    read from the temporary table ``_erase_salt`` (never a literal in the SQL text)."""
    text = f"(select salt from _erase_salt) || chr(31) || '{kind}' || chr(31) || {value}"
    if wh.target == "postgres":
        return f"encode(sha256(convert_to({text}, 'UTF8')), 'hex')"
    return f"sha256({text})"


def _matching_records(settings: Settings, wh: Warehouse, since: datetime | None) -> tuple[Person, dict[str, int]]:
    """Records (and orders, changes, contact events) whose identifiers hash to a tombstone; the
    hashing runs in the warehouse (sha256 of the salted value), joined with the tombstones."""
    person, matched = Person(), dict[str, int]()
    if not wh.table_exists(TOMBSTONES):
        return person, matched
    stones = _tombstoned(wh)
    if not any(stones.values()):
        return person, matched
    rows = [(k, d) for k, digests in stones.items() for d in sorted(digests)]
    st = _temp(wh, "_erase_stones", {"kind": "text", "digest": "text"}, pd.DataFrame(rows, columns=["kind", "digest"]))
    _temp(wh, "_erase_salt", {"salt": "text"}, pd.DataFrame({"salt": [erasure_salt(settings).decode("utf-8")]}))

    def stoned(kind: str, value: str) -> str:
        return f"{_digest_sql(wh, kind, value)} in (select digest from {st} where kind = '{kind}')"

    window = " where _ingested_at >= ?" if since is not None else ""
    params = [since] if since is not None else []

    def records(label: str, table: str, keyed_rows: str, condition: str, always: bool = False) -> None:
        """The record keys (column ``key`` of ``keyed_rows``, a select from ``table`` in the
        window) whose rows match ``condition``: into ``person``, counted as ``label``."""
        if not wh.table_exists(table):
            return
        found = wh.query(f"select key from ({keyed_rows} from {table}{window}) as r where {condition}", params)
        person.records |= {str(k) for (k,) in found}
        if found or always:
            matched[label] = len(found)

    records(
        "records",
        "intermediate.int_customer_records",
        "select source || ':' || source_id as key, phone_e164, phone_kind, email",
        f"{stoned('record', 'key')} "
        f"or (phone_kind = 'mobile' and phone_e164 is not null and {stoned('phone', 'phone_e164')}) "
        f"or (email is not null and {stoned('email', 'email')})",
        always=True,
    )
    # raw rows not staged yet (a restored backup's, a run that stopped before dbt): by record id
    for raw_table, (source, column) in _raw_id_columns().items():
        records(raw_table, raw_table, f"select distinct '{source}:' || trim({column}) as key", stoned("record", "key"))
    records(
        "self_service_changes",
        "intermediate.int_self_service_changes",
        "select source_system || ':' || source_record_id as key, field, new_value",
        f"{stoned('record', 'key')} "
        f"or (field = 'mobile' and new_value is not null and {stoned('phone', 'new_value')}) "
        f"or (field = 'email' and new_value is not null and {stoned('email', 'new_value')})",
    )
    records(
        "orders_members",
        "staging.stg_ecommerce__orders",
        "select distinct 'ecommerce:' || member_id as key",
        stoned("record", "key"),
    )
    events = "intermediate.int_contact_events"
    if wh.table_exists(events):
        found = wh.query(
            f"select channel, contact_value from (select distinct channel, contact_value from {events}{window}) as e "
            f"where contact_value is not null and ((channel = 'phone' and {stoned('phone', 'contact_value')}) "
            f"or (channel = 'email' and {stoned('email', 'contact_value')}))",
            params,
        )
        for channel, value in found:
            (person.all_phones if channel == "phone" else person.emails).add(str(value))
        if found:
            matched["contact_values"] = len(found)
    if since is None:  # everything: the layers a restore fills too (mdm.*, marts.*, golden_build.*)
        _match_restored(wh, person, matched, stoned)
    for t in (st, "_erase_salt"):
        wh.execute(f"drop table if exists {t}")
    return person, matched


#: columns naming a source record (``source:source_id``) in the linkage state and golden tables
_RECORD_COLUMNS = ("record_id", "record_id_l", "record_id_r")
#: the layers a snapshot restores (besides raw and intermediate, which the records match)
_RESTORED_SCHEMAS = ("mdm", "marts", "golden_build", "governance")


def _match_restored(wh: Warehouse, person: Person, matched: dict[str, int], stoned: Any) -> None:
    """Tombstone matches in what a restore writes back: every record id the linkage state and
    the golden tables name (xref, link state, pairs, review queue, steward decisions, the
    ``*_source_record`` columns of dim_customer), and golden rows whose phone or e-mail is
    tombstoned (``person.golden_rows``: deleted by golden id from those tables only)."""
    tables = _tables(wh, _RESTORED_SCHEMAS)
    keys = [
        f"select {c} as key from {t}"
        for t, cols in tables
        for c in sorted(cols)
        if c in _RECORD_COLUMNS or c.endswith("source_record")
    ]
    if keys:
        found = wh.query(
            f"select key from (select distinct key from ({' union '.join(keys)}) as u where key is not null) as r "
            f"where {stoned('record', 'key')}"
        )
        new = {str(k) for (k,) in found} - person.records
        person.records |= new
        if new:
            matched["restored_records"] = len(new)
    for table, cols in tables:
        if "golden_id" not in cols or not {"phone", "email"} & cols:
            continue
        conditions = []
        if "phone" in cols:
            conditions.append(f"(phone is not null and {stoned('phone', 'phone')})")
        if "email" in cols:
            conditions.append(f"(email is not null and {stoned('email', 'lower(email)')})")
        ids = {str(g) for (g,) in wh.query(f"select distinct golden_id from {table} where {' or '.join(conditions)}")}
        if ids:
            person.golden_rows[table] = ids
            matched[f"{table} contacts"] = len(ids)


def apply_tombstones(
    settings: Settings, run_id: str | None = None, since: datetime | None = None, wh: Warehouse | None = None
) -> dict[str, Any]:
    """Delete every row whose identifiers match a tombstone (``since``: only records ingested
    since then; None: everything). Call it after restoring a backup taken before an erasure, and
    before the restored tables are published or linked again. Returns what it matched and deleted.
    ``wh``: an open warehouse connection to use (else one is opened)."""
    if wh is None:
        with connect(settings) as own:
            return apply_tombstones(settings, run_id, since, own)
    ensure_privacy_tables(wh)
    with wh.transaction():
        person, matched = _matching_records(settings, wh, since)
        # everything (a restore): restored free text naming an erased person's phone or e-mail
        quoted = _scrub_tombstoned_text(settings, wh, _tombstoned(wh)) if since is None else {}
        if not person.records and not person.all_phones and not person.emails and not person.golden_rows:
            return {"matched": matched, "rows_deleted": {}, "scrubbed": quoted}
        # the matched records only: their golden ids lose them (rebuilt by dbt_golden); a
        # golden id left without records is removed with them
        golden: set[str] = set()
        xrefs = [t for t in _XREFS if wh.table_exists(t)]
        if xrefs and person.records:
            marks, vals = _in(person.records)
            for xref in xrefs:
                golden |= {
                    str(r[0])
                    for r in wh.query(f"select distinct golden_id from {xref} where record_id in ({marks})", vals)
                }
        person = _emptied(wh, person, golden, xrefs)
        counts = _erase_rows(wh, [person])[0]
        for table, ids in sorted(person.golden_rows.items()):
            if wh.table_exists(table):
                marks, vals = _in(ids)
                before = int(wh.scalar(f"select count(*) from {table}"))
                wh.execute(f"delete from {table} where golden_id in ({marks})", vals)
                gone = before - int(wh.scalar(f"select count(*) from {table}"))
                if gone:
                    counts[table] = counts.get(table, 0) + gone
                golden |= ids
        _mark_dirty(wh, golden, run_id, "tombstone")
        scrubbed = {**quoted, **_scrub(settings, wh, [person])}
    log.info("tombstones matched %s; deleted %s; scrubbed %s", matched, counts, scrubbed)
    return {"matched": matched, "rows_deleted": counts, "scrubbed": scrubbed}


#: the cross-references: the linkage state's and the published one (a restore writes both)
_XREFS = ("mdm.xref", "marts.customer_xref")


def _emptied(wh: Warehouse, person: Person, golden: set[str], xrefs: list[str]) -> Person:
    """Keep in ``person.golden_ids`` only the golden ids all of whose records are being erased."""
    if not golden:
        return person
    marks, vals = _in(golden)
    members: dict[str, set[str]] = {g: set() for g in golden}
    for xref in xrefs:
        for gid, record_id in wh.query(f"select golden_id, record_id from {xref} where golden_id in ({marks})", vals):
            members[str(gid)].add(str(record_id))
    person.golden_ids |= {g for g, m in members.items() if m <= person.records}
    return person


def _mark_dirty(wh: Warehouse, golden: set[str], run_id: str | None, reason: str) -> None:
    if golden and wh.table_exists("mdm.golden_dirty"):
        wh.insert_df(
            "mdm.golden_dirty",
            pd.DataFrame({"golden_id": sorted(golden), "run_id": run_id, "reason": reason}),
        )


# ----------------------------------------------------------------------------- requests
def _pending(wh: Warehouse) -> pd.DataFrame:
    table = "staging.stg_erasure__requests"
    if not wh.table_exists(table):
        return pd.DataFrame(columns=["request_id", "identifier_type", "identifier_value_raw", "requested_at_utc"])
    return wh.query_df(
        f"select request_id, identifier_type, identifier_value_raw, requested_at_utc from {table} "
        f"as s where is_latest and not exists (select 1 from {REQUESTS} as d where d.request_id = s.request_id) "
        "order by requested_at_utc, request_id"
    )


def erase_pending(settings: Settings, run_id: str, since: datetime | None = None) -> dict[str, Any]:
    """Handle every erasure request not handled yet, then apply the tombstones to the records
    ingested ``since`` (this run's). The requests are resolved together (joins) and erased in one
    transaction, one delete per table for all of them; each deleted row is counted for the first
    request (oldest) whose person it belongs to. Returns the step details: per request its status
    and rows deleted per table, and the tombstone matches."""
    with connect(settings) as wh:
        ensure_privacy_tables(wh)
        ensure_audit_table(wh)
        with wh.transaction():
            redelivered = _drop_redelivered(wh)
        pending = _pending(wh)
        entries: list[dict[str, Any]] = []
        valid: list[tuple[int, str, str, str | None]] = []
        for seq, req in enumerate(pending.itertuples(index=False)):
            itype = str(req.identifier_type or "").lower()
            raw_value = None if pd.isna(req.identifier_value_raw) else str(req.identifier_value_raw)
            entry = {
                "request_id": str(req.request_id),
                "itype": itype,
                "raw_value": raw_value,
                "requested_at": None if pd.isna(req.requested_at_utc) else req.requested_at_utc,
                "kind": "request",
                "value": None,
            }
            if itype not in IDENTIFIER_TYPES or not raw_value:
                entry["invalid"] = (
                    f"unknown identifier_type {itype!r}" if itype not in IDENTIFIER_TYPES else "empty identifier"
                )
            else:
                kind, source = IDENTIFIER_TYPES[itype]
                value = normalise(kind, raw_value)
                # a record id is tombstoned as the matcher keys it (``crm:C7777777``): a request
                # that arrives before its record still blocks the record when it arrives
                entry["kind"], entry["value"] = kind, f"{source}:{value}" if source else value
                valid.append((seq, kind, value, source))
            entries.append(entry)
        requests, scrubbed, persons = (
            _handle_requests(settings, wh, entries, valid, run_id) if entries else ([], {}, [])
        )
        retention = apply_retention(settings, run_id, wh=wh)
        matched = apply_tombstones(settings, run_id, since=since, wh=wh)
    from customer_mdm.hub.erasure import erase_persons  # the hub store and the serving snapshot files

    erase_persons(settings, persons + retention.pop("_persons", []), entries)
    for place, n in scrubbed.items():
        matched["scrubbed"][place] = matched["scrubbed"].get(place, 0) + n
    details = _erasure_details(requests, matched, redelivered)
    details["retention"] = retention
    return details


def _handle_requests(
    settings: Settings,
    wh: Warehouse,
    entries: list[dict[str, Any]],
    valid: list[tuple[int, str, str, str | None]],
    run_id: str,
) -> tuple[list[dict[str, Any]], dict[str, int], list[Person]]:
    """Resolve and erase the requests (``entries``: request_id, itype, raw_value, requested_at,
    kind, value and, for a request that cannot be handled, ``invalid``), in one transaction:
    rows deleted, tombstones, ``ops.erasure_requests`` and audit rows, free text and files
    scrubbed. Returns per request its outcome, the places scrubbed and the persons resolved."""

    requests: list[dict[str, Any]] = []
    resolved = _resolve(wh, valid)
    persons = [resolved.get(seq, Person()) for seq in range(len(entries))]
    now = _now()
    with wh.transaction():
        # the request itself quotes the identifier in clear
        ids = pd.DataFrame([(i, e["request_id"]) for i, e in enumerate(entries)], columns=["seq", "request_id"])
        rq = _temp(wh, "_erase_request_ids", {"seq": "bigint", "request_id": "text"}, ids)
        own = _Deleter(wh)
        for table in ("raw.erasure", "staging.stg_erasure__requests"):
            if wh.table_exists(table):
                own.delete(table, [f"join {rq} as k on trim(t.request_id) = k.request_id"])
        own.drop()
        wh.execute(f"drop table if exists {rq}")
        erased = _erase_rows(wh, persons, [[e["raw_value"]] if e["raw_value"] else [] for e in entries])
        stones: list[dict[str, Any]] = []
        request_rows: list[dict[str, Any]] = []
        audit_rows: list[dict[str, Any]] = []
        dirty: set[str] = set()
        for seq, (entry, person) in enumerate(zip(entries, persons, strict=True)):
            counts = dict(own.counts.get(seq, {}))
            for table, n in erased[seq].items():
                counts[table] = counts.get(table, 0) + n
            request_id, itype = entry["request_id"], entry["itype"]
            if "invalid" in entry:
                status, reason = "invalid", entry["invalid"]
            else:
                status = "erased" if person.records else "not_found"
                reason = f"erasure request ({itype})" + ("" if person.records else ": no record matches")
            stones += _tombstone_rows(settings, request_id, itype, entry["kind"], entry["value"], person, run_id)
            dirty |= person.golden_ids
            request_rows.append(
                {
                    "request_id": request_id,
                    "status": status,
                    "identifier_type": itype,
                    "requested_at": entry["requested_at"],
                    "processed_at": now,
                    "persons": len(person.golden_ids),
                    "records": len(person.records),
                    "rows_deleted": json.dumps(counts, sort_keys=True),
                    "run_id": run_id,
                }
            )
            body = {
                "request_id": request_id,
                "status": status,
                "records": len(person.records),
                "rows_deleted": counts,
            }
            audit_rows += [
                {
                    "changed_at": now,
                    "actor": request_id,
                    "actor_kind": "erasure",
                    "action": "erasure",
                    "golden_id": gid,
                    "field": "*",
                    "old_value": None,
                    "new_value": to_json(body),
                    "reason": reason,
                    "run_id": run_id,
                }
                for gid in _ids_or_none(person.golden_ids)
            ]
            requests.append(
                {
                    "request_id": request_id,
                    "status": status,
                    "persons": len(person.golden_ids),
                    "records": len(person.records),
                    "rows_deleted": counts,
                }
            )
            log.info("erasure request %s: %s (%d records)", request_id, status, len(person.records))
        if stones:
            wh.insert_df(TOMBSTONES, pd.DataFrame(stones))
        _mark_dirty(wh, dirty, run_id, "erasure")
        wh.insert_df(REQUESTS, pd.DataFrame(request_rows))
        append(wh, audit_rows)
        forget_golden_ids(settings, wh, dirty)  # the audit log keeps who/when/what, not the ids
        scrubbed = _scrub(settings, wh, persons)
    return requests, scrubbed, persons


# ----------------------------------------------------------------------------- retention
RETENTION_FLAGS = "ops.retention_flags"
RETENTION_COLUMNS: dict[str, str] = {
    "golden_id": "text",
    "last_seen_at": "timestamp",  # newest source update of the person's records
    "last_order_at": "timestamp",
    "flagged_at": "timestamp",
    "run_id": "text",
}


def _expired(wh: Warehouse, cutoff: datetime) -> pd.DataFrame:
    """Golden ids no source has updated since ``cutoff`` and without an order since then."""
    if not all(wh.table_exists(t) for t in ("marts.dim_customer", "marts.customer_xref")):
        return pd.DataFrame(columns=["golden_id", "last_seen_at", "last_order_at"])
    orders = (
        "select x.golden_id, max(o.ordered_at_utc) as last_order_at from marts.customer_xref as x "
        "join marts.fct_orders as o on x.source = 'ecommerce' and cast(o.member_id as text) = x.source_id "
        "group by x.golden_id"
        if wh.table_exists("marts.fct_orders")
        else "select cast(null as text) as golden_id, cast(null as timestamp) as last_order_at"
    )
    return wh.query_df(
        f"select d.golden_id, d.last_updated_at_utc as last_seen_at, o.last_order_at "
        f"from marts.dim_customer as d left join ({orders}) as o on o.golden_id = d.golden_id "
        "where d.last_updated_at_utc < ? and (o.last_order_at is null or o.last_order_at < ?) order by 1",
        [cutoff, cutoff],
    )


def apply_retention(
    settings: Settings, run_id: str, now: datetime | None = None, wh: Warehouse | None = None
) -> dict[str, Any]:
    """The retention policy (PIPL art. 19: kept no longer than necessary), off unless
    ``MDM_RETENTION_YEARS`` is set: a golden id that no source has updated for that many years and
    that has no order since is flagged (``ops.retention_flags``); still expired
    ``MDM_RETENTION_GRACE_DAYS`` after its flag (default 30), it is erased like a request
    (request id ``retention-<golden id>``: tombstones, ``ops.erasure_requests``, audit rows). A
    flagged person seen again (a new update, an order) loses the flag."""
    years = settings.retention_years
    if years is None:
        return {"enabled": False}
    if wh is None:
        with connect(settings) as own:
            return apply_retention(settings, run_id, now, own)
    now = now or _now()
    cutoff = now - timedelta(days=365.25 * years)
    ensure_table(wh, RETENTION_FLAGS, RETENTION_COLUMNS)
    expired = _expired(wh, cutoff)
    with wh.transaction():
        ex = _temp(wh, "_retention_expired", {"golden_id": "text"}, expired[["golden_id"]])
        lifted = int(
            wh.scalar(
                f"select count(*) from {RETENTION_FLAGS} as f where not exists "
                f"(select 1 from {ex} as e where e.golden_id = f.golden_id)"
            )
        )
        wh.execute(
            f"delete from {RETENTION_FLAGS} where not exists "
            f"(select 1 from {ex} as e where e.golden_id = {RETENTION_FLAGS}.golden_id)"
        )
        flagged = {str(g) for (g,) in wh.query(f"select golden_id from {RETENTION_FLAGS}")}
        new = expired[~expired["golden_id"].isin(flagged)].assign(flagged_at=now, run_id=run_id)
        if not new.empty:
            wh.insert_df(RETENTION_FLAGS, new[list(RETENTION_COLUMNS)])
        wh.execute(f"drop table if exists {ex}")
    due_before = now - timedelta(days=settings.retention_grace_days)
    due = [
        str(g)
        for (g,) in wh.query(f"select golden_id from {RETENTION_FLAGS} where flagged_at <= ? order by 1", [due_before])
    ]
    erased: list[dict[str, Any]] = []
    persons: list[Person] = []
    if due:
        marks, vals = _in(due)
        first = dict(
            wh.query(f"select golden_id, min(record_id) from mdm.xref where golden_id in ({marks}) group by 1", vals)
        )
        entries: list[dict[str, Any]] = []
        valid: list[tuple[int, str, str, str | None]] = []
        for gid in due:
            record = first.get(gid)
            entry = {
                "request_id": f"retention-{gid}",
                "itype": "retention",
                "raw_value": None,
                "requested_at": now,
                "kind": "record",
                "value": str(record) if record else None,
            }
            if record:
                source, source_id = _split(str(record))
                valid.append((len(entries), "record", source_id, source))
            else:
                entry["invalid"] = "no record of the golden id in mdm.xref"
            entries.append(entry)
        erased, _, persons = _handle_requests(settings, wh, entries, valid, run_id)
        wh.execute(f"delete from {RETENTION_FLAGS} where golden_id in ({marks})", vals)
    log.info("retention: %d newly flagged, %d flags lifted, %d erased", len(new), lifted, len(erased))
    return {
        "enabled": True,
        "cutoff": cutoff.isoformat(sep=" "),
        "flagged": len(new),
        "flags_lifted": lifted,
        "erased": sum(1 for r in erased if r["status"] == "erased"),
        "requests": erased,
        "_persons": persons,  # for the hub's part (erase_pending pops it: never in the step details)
    }


def _drop_redelivered(wh: Warehouse) -> dict[str, int]:
    """Delete the rows of requests handled before that an erasure file delivers again (they quote
    the identifier in clear; the request is not handled twice) and the std lookup values only
    they used."""
    if not wh.table_exists(REQUESTS):
        return {}
    deleter = _Deleter(wh)
    raw_values = _temp(wh, "_erase_raw_values", {"seq": "bigint", "value": "text"}, pd.DataFrame())
    done = (
        f"join (select distinct request_id from {REQUESTS} where request_id is not null) as d "
        "on trim(t.request_id) = d.request_id cross join (select 0 as seq) as k"
    )
    for table, column in (
        ("staging.stg_erasure__requests", "identifier_value_raw"),
        ("raw.erasure", "identifier_value"),
    ):
        if wh.table_exists(table) and column in wh.columns_of(table):
            hit = deleter.delete(table, [done], keep=[column])
            if hit is not None:
                wh.execute(
                    f"insert into {raw_values} (seq, value) select seq, {column} from {hit} where {column} is not null"
                )
    _erase_std(wh, deleter, raw_values)
    deleter.drop()
    wh.execute(f"drop table if exists {raw_values}")
    return deleter.counts.get(0, {})


def _erasure_details(
    requests: list[dict[str, Any]], matched: dict[str, Any], redelivered: dict[str, int] | None = None
) -> dict[str, Any]:
    return {
        "requests": requests,
        "erased": sum(1 for r in requests if r["status"] == "erased"),
        "not_found": sum(1 for r in requests if r["status"] == "not_found"),
        "invalid": sum(1 for r in requests if r["status"] == "invalid"),
        "tombstone_matches": matched["matched"],
        "tombstone_rows_deleted": matched["rows_deleted"],
        "scrubbed": matched["scrubbed"],  # free text and files under MDM_HOME that quoted the persons
        "redelivered_rows_deleted": redelivered or {},
    }


def _ids_or_none(ids: set[str]) -> list[str | None]:
    """The ids, sorted; one None when there are none (one audit row without a golden id)."""
    return [*sorted(ids)] or [None]


def erasure_report(settings: Settings) -> pd.DataFrame:
    """Every handled request (``ops.erasure_requests``), newest first."""
    with connect(settings, read_only=True) as wh:
        if not wh.table_exists(REQUESTS):
            raise MdmError("no erasure handled yet (ops.erasure_requests does not exist)")
        return wh.query_df(f"select * from {REQUESTS} order by processed_at desc")
