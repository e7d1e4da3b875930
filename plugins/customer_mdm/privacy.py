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
   a salted SHA-256 (:func:`pseudonym`; the salt is ``MDM_ERASURE_SALT`` or a random salt
   generated once in ``$MDM_HOME/secrets/erasure_salt``). A request that matches nobody is
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
   export that still contains the person is dropped (and counted) before the golden build; a restore from
   a backup taken before an erasure must call it on everything (``apply_tombstones(settings)``).

Phones are tombstoned only when they are mobile numbers: a landline (a household's, a
company's) would otherwise keep other people out. Identifiers are matched after the same
standardisation the records get (E.164, lower-cased e-mail).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from customer_mdm.config import Settings
from customer_mdm.errors import MdmError
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

#: the source a raw feed's record id belongs to (records that carry a person)
_RAW_ID_COLUMNS: dict[str, tuple[str, str]] = {
    "raw.crm": ("crm", "crm_id"),
    "raw.ecommerce_members": ("ecommerce", "member_id"),
    "raw.ecommerce_orders": ("ecommerce", "member_id"),
    "raw.callcenter": ("callcenter", "ticket_id"),
    "raw.store_pos": ("store_pos", "card_no"),
}
#: staging model -> raw table it reads (lineage: _batch_id, _row_number)
_STAGING_RAW: dict[str, str] = {
    "staging.stg_crm__customers": "raw.crm",
    "staging.stg_ecommerce__members": "raw.ecommerce_members",
    "staging.stg_ecommerce__orders": "raw.ecommerce_orders",
    "staging.stg_callcenter__tickets": "raw.callcenter",
    "staging.stg_store_pos__cards": "raw.store_pos",
    "staging.stg_self_service__changes": "raw.self_service",
    "staging.stg_contact_events__events": "raw.contact_events",
}
#: schemas searched for the person's rows (besides raw, handled through lineage)
_SCHEMAS = ("staging", "intermediate", "mdm", "golden_build", "marts", "governance")


# ----------------------------------------------------------------------------- pseudonyms
def salt_file(settings: Settings) -> Path:
    return settings.home / "secrets" / "erasure_salt"


def erasure_salt(settings: Settings) -> bytes:
    """The installation's salt: ``MDM_ERASURE_SALT``, else ``$MDM_HOME/secrets/erasure_salt``
    (generated once, mode 0600). Losing it makes existing tombstones unmatchable: back it up."""
    env = os.environ.get("MDM_ERASURE_SALT")
    if env:
        return env.encode("utf-8")
    path = salt_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # never overwrite a salt another process wrote first
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8").strip().encode("utf-8")


def _hasher(settings: Settings) -> Any:
    salt = erasure_salt(settings)

    def digest(kind: str, value: str) -> str:
        return hashlib.sha256(salt + b"\x1f" + kind.encode() + b"\x1f" + value.encode("utf-8")).hexdigest()

    return digest


def pseudonym(settings: Settings, kind: str, value: str) -> str:
    """Salted SHA-256 of a normalised identifier (``kind``: phone = E.164, email = lower-cased,
    record = ``source:source_id``; audit fields use their field name)."""
    return str(_hasher(settings)(kind, normalise(kind, value)))


def normalise(kind: str, value: str) -> str:
    value = str(value).strip()
    if kind == "email":
        return value.lower()
    if kind == "phone" and not re.fullmatch(r"\+[0-9]{6,15}", value):
        from customer_mdm.standardize.phones import standardize_phones

        e164 = standardize_phones(pd.Series([value]))["phone_e164"].iloc[0]
        return str(e164) if isinstance(e164, str) else value
    return value


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


# ----------------------------------------------------------------------------- resolving
def _records_for(wh: Warehouse, kind: str, value: str, source: str | None) -> set[str]:
    """Source records (``source:source_id``) carrying an identifier."""
    found: set[str] = set()
    recs = "intermediate.int_customer_records"
    changes = "intermediate.int_self_service_changes"
    if kind == "record":
        found |= {f"{source}:{value}"} if _exists_record(wh, f"{source}:{value}") else set()
    elif wh.table_exists(recs):
        col = "phone_e164" if kind == "phone" else "email"
        found |= {r[0] for r in wh.query(f"select source || ':' || source_id from {recs} where {col} = ?", [value])}
        if kind == "email":  # the delivered value too (an e-mail the standardiser corrected)
            found |= {
                r[0]
                for r in wh.query(
                    f"select source || ':' || source_id from {recs} where lower(trim(email_raw)) = ?", [value]
                )
            }
    if kind in ("phone", "email") and wh.table_exists(changes):
        fld = "mobile" if kind == "phone" else "email"
        found |= {
            r[0]
            for r in wh.query(
                f"select source_system || ':' || source_record_id from {changes} where field = ? and new_value = ?",
                [fld, value],
            )
        }
    return found


def _exists_record(wh: Warehouse, record_id: str) -> bool:
    source, _, sid = record_id.partition(":")
    for table, where in (
        ("intermediate.int_customer_records", "source = ? and source_id = ?"),
        ("mdm.xref", "source = ? and source_id = ?"),
    ):
        if wh.table_exists(table) and wh.scalar(f"select count(*) from {table} where {where}", [source, sid]):
            return True
    return False


def _expand(wh: Warehouse, person: Person) -> Person:
    """From records to the whole person: golden ids via mdm.xref, all their records, and the
    phones and e-mails those records and their self-service changes carry."""
    if not person.records:
        return person
    if wh.table_exists("mdm.xref"):
        marks, vals = _in(person.records)
        person.golden_ids |= {
            str(r[0]) for r in wh.query(f"select distinct golden_id from mdm.xref where record_id in ({marks})", vals)
        }
    if person.golden_ids:
        marks, vals = _in(person.golden_ids)
        person.records |= {
            str(r[0]) for r in wh.query(f"select record_id from mdm.xref where golden_id in ({marks})", vals)
        }
        # ids merged into the person's ids: the same person under an older id
        if wh.table_exists("mdm.golden_registry"):
            person.golden_ids |= {
                str(r[0])
                for r in wh.query(f"select golden_id from mdm.golden_registry where merged_into in ({marks})", vals)
            }
    marks, vals = _in(person.records)
    recs = "intermediate.int_customer_records"
    if wh.table_exists(recs):
        for phone, kind, email in wh.query(
            f"select phone_e164, phone_kind, email from {recs} where source || ':' || source_id in ({marks})", vals
        ):
            if phone:
                person.all_phones.add(str(phone))
                if kind == "mobile":
                    person.phones.add(str(phone))
            if email:
                person.emails.add(str(email))
    changes = "intermediate.int_self_service_changes"
    if wh.table_exists(changes):
        for fld, value in wh.query(
            f"select field, new_value from {changes} where field in ('mobile', 'email') "
            f"and source_system || ':' || source_record_id in ({marks}) and new_value is not null",
            vals,
        ):
            if fld == "mobile":
                person.phones.add(str(value))
                person.all_phones.add(str(value))
            else:
                person.emails.add(str(value))
    return person


# ----------------------------------------------------------------------------- deleting
def _delete(wh: Warehouse, table: str, where: str, params: list[Any] | None = None) -> int:
    before = int(wh.scalar(f"select count(*) from {table}"))
    wh.execute(f"delete from {table} where {where}", params)
    return before - int(wh.scalar(f"select count(*) from {table}"))


def _tables(wh: Warehouse, schemas: Iterable[str]) -> list[tuple[str, set[str]]]:
    marks, vals = _in(schemas)
    rows = wh.query(
        "select t.table_schema, t.table_name from information_schema.tables as t "
        f"where t.table_schema in ({marks}) and t.table_type = 'BASE TABLE' order by 1, 2",
        vals,
    )
    return [(f"{s}.{n}", set(wh.columns_of(f"{s}.{n}"))) for s, n in rows]


def _erase_rows(wh: Warehouse, person: Person, extra_raw_values: Iterable[str] = ()) -> dict[str, int]:
    """Delete every row of the person (inside the caller's transaction); rows per table.

    Derived tables first (their rows' lineage ``_batch_id``/``_row_number`` names the raw rows
    they came from: batch ids are unique per file version), then staging (by key or lineage),
    then raw (by lineage and by record id), then the std lookup values nothing uses any more."""
    records = pd.DataFrame(
        [(r, *r.split(":", 1)) for r in sorted(person.records)], columns=["record_id", "source", "source_id"]
    )
    values = pd.DataFrame(
        [("phone", v) for v in sorted(person.all_phones)] + [("email", v) for v in sorted(person.emails)],
        columns=["channel", "value"],
    )
    golden = pd.DataFrame({"golden_id": sorted(person.golden_ids)})
    rk = _temp(wh, "_erase_records", {"record_id": "text", "source": "text", "source_id": "text"}, records)
    cv = _temp(wh, "_erase_values", {"channel": "text", "value": "text"}, values)
    gi = _temp(wh, "_erase_golden", {"golden_id": "text"}, golden)
    lineage = _temp(wh, "_erase_lineage", {"_batch_id": "text", "_row_number": "bigint"}, pd.DataFrame())
    raw_values = _temp(
        wh, "_erase_raw_values", {"value": "text"}, pd.DataFrame({"value": sorted(set(extra_raw_values))})
    )
    counts: dict[str, int] = {}

    def add(table: str, n: int) -> None:
        if n:
            counts[table] = counts.get(table, 0) + n

    rec_match = f"select record_id from {rk}"
    lineage_key = "_batch_id || '#' || cast(_row_number as text)"
    by_lineage = f"{lineage_key} in (select {lineage_key} from {lineage})"
    conditions_by_cols: list[tuple[set[str], str]] = [
        ({"golden_id"}, f"golden_id in (select golden_id from {gi})"),
        ({"merged_into"}, f"merged_into in (select golden_id from {gi})"),
        ({"other_golden_id"}, f"other_golden_id in (select golden_id from {gi})"),
        ({"golden_id_l"}, f"golden_id_l in (select golden_id from {gi})"),
        ({"golden_id_r"}, f"golden_id_r in (select golden_id from {gi})"),
        ({"record_id"}, f"record_id in ({rec_match})"),
        ({"record_id_l"}, f"record_id_l in ({rec_match})"),
        ({"record_id_r"}, f"record_id_r in ({rec_match})"),
        ({"source", "source_id"}, f"source || ':' || source_id in ({rec_match})"),
        ({"source_system", "source_record_id"}, f"source_system || ':' || source_record_id in ({rec_match})"),
        ({"member_id"}, f"'ecommerce:' || member_id in ({rec_match})"),
        (
            {"channel", "contact_value"},
            f"channel || '|' || contact_value in (select channel || '|' || value from {cv})",
        ),
    ]
    raw_columns = (
        "phone_raw",
        "name_raw",
        "nickname_raw",
        "birth_date_raw",
        "address_raw",
        "new_value_raw",
        "contact_value_raw",
    )
    skip = {TOMBSTONES, REQUESTS, "staging.stg_erasure__requests"}
    tables = [(t, cols) for t, cols in _tables(wh, _SCHEMAS) if t not in skip]
    derived = [(t, c) for t, c in tables if not t.startswith("staging.")]
    staging = [(t, c) for t, c in tables if t.startswith("staging.")]
    for table, cols in [*derived, *staging]:
        conds = [c for need, c in conditions_by_cols if need <= cols]
        has_lineage = {"_batch_id", "_row_number"} <= cols
        if table.startswith("staging.") and has_lineage:
            conds.append(by_lineage)
        if not conds:
            continue
        where = " or ".join(f"({c})" for c in conds)
        if has_lineage:
            wh.execute(
                f"insert into {lineage} (_batch_id, _row_number) "
                f"select _batch_id, _row_number from {table} where {where}"
            )
        for col in (c for c in raw_columns if c in cols):
            wh.execute(
                f"insert into {raw_values} (value) select {col} from {table} where ({where}) and {col} is not null"
            )
        add(table, _delete(wh, table, where))
    for raw_table in sorted(set(_STAGING_RAW.values())):
        if wh.table_exists(raw_table):
            add(raw_table, _delete(wh, raw_table, by_lineage))
    for raw_table, (source, column) in _RAW_ID_COLUMNS.items():
        if wh.table_exists(raw_table):
            add(raw_table, _delete(wh, raw_table, f"'{source}:' || trim({column}) in ({rec_match})"))
    if wh.table_exists("raw.self_service"):
        add(
            "raw.self_service",
            _delete(wh, "raw.self_service", f"trim(source_system) || ':' || trim(source_id) in ({rec_match})"),
        )
    for table, n in _erase_std(wh, raw_values).items():
        add(table, n)
    # quarantined rows quoting the person's ids, phones or e-mails
    if wh.table_exists("ops.quarantine"):
        needles = {r.split(":", 1)[1] for r in person.records} | person.emails
        needles |= {p[3:] if p.startswith("+86") else p for p in person.all_phones}
        needles = {n for n in needles if len(n) >= 5}
        if needles:
            marks = " or ".join("raw_record like ?" for _ in needles)
            add("ops.quarantine", _delete(wh, "ops.quarantine", marks, [f"%{n}%" for n in sorted(needles)]))
    for t in (rk, cv, gi, lineage, raw_values):
        wh.execute(f"drop table if exists {t}")
    return counts


def _erase_std(wh: Warehouse, raw_values: str) -> dict[str, int]:
    """Delete the std lookup rows of the person's delivered values that no remaining staging row
    uses (a value another record still carries stays: it is that record's too)."""
    from customer_mdm.standardize.step import LOOKUPS

    counts: dict[str, int] = {}
    for lookup in LOOKUPS:
        if lookup.keys != ("raw",) or not wh.table_exists(lookup.table):
            continue
        if not all(wh.table_exists(t) for t in set(re.findall(r"staging\.\w+", lookup.source_sql))):
            continue  # a staging table the lookup reads is missing (not built yet)
        used = f"select raw from ({lookup.source_sql}) as used where raw is not null"
        n = _delete(wh, lookup.table, f"raw in (select value from {raw_values}) and raw not in ({used})")
        if n:
            counts[lookup.table] = n
    return counts


# ----------------------------------------------------------------------------- tombstones
def _tombstone_rows(
    settings: Settings, request_id: str, identifier_type: str, kind: str, value: str | None, person: Person, run_id: str
) -> list[dict[str, Any]]:
    digest = _hasher(settings)
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


def _matching_records(settings: Settings, wh: Warehouse, since: datetime | None) -> tuple[Person, dict[str, int]]:
    """Records (and orders, changes, contact events) whose identifiers hash to a tombstone."""
    person, matched = Person(), dict[str, int]()
    if not wh.table_exists(TOMBSTONES):
        return person, matched
    stones = _tombstoned(wh)
    if not any(stones.values()):
        return person, matched
    digest = _hasher(settings)
    window = " where _ingested_at >= ?" if since is not None else ""
    params = [since] if since is not None else []
    recs = "intermediate.int_customer_records"
    if wh.table_exists(recs):
        frame = wh.query_df(f"select source, source_id, phone_e164, phone_kind, email from {recs}{window}", params)
        hit = pd.Series(False, index=frame.index)
        if len(frame):
            keys = (frame["source"].astype(str) + ":" + frame["source_id"].astype(str)).tolist()
            hit |= pd.Series([digest("record", k) in stones["record"] for k in keys], index=frame.index)
            hit |= pd.Series(
                [
                    isinstance(p, str) and k == "mobile" and digest("phone", p) in stones["phone"]
                    for p, k in zip(frame["phone_e164"], frame["phone_kind"], strict=True)
                ],
                index=frame.index,
            )
            hit |= pd.Series(
                [isinstance(e, str) and digest("email", e) in stones["email"] for e in frame["email"]],
                index=frame.index,
            )
            person.records |= {k for k, h in zip(keys, hit, strict=True) if h}
            matched["records"] = int(hit.sum())
    # raw rows not staged yet (a restored backup's, a run that stopped before dbt): by record id
    for raw_table, (source, column) in _RAW_ID_COLUMNS.items():
        if not wh.table_exists(raw_table):
            continue
        ids = [str(r[0]) for r in wh.query(f"select distinct trim({column}) from {raw_table}{window}", params)]
        hit_ids = {f"{source}:{i}" for i in ids if digest("record", f"{source}:{i}") in stones["record"]}
        if hit_ids:
            person.records |= hit_ids
            matched[raw_table] = len(hit_ids)
    changes = "intermediate.int_self_service_changes"
    if wh.table_exists(changes):
        frame = wh.query_df(f"select source_system, source_record_id, field, new_value from {changes}{window}", params)
        for s, sid, fld, value in frame.itertuples(index=False):
            key = f"{s}:{sid}"
            bad = digest("record", key) in stones["record"] or (
                isinstance(value, str)
                and (
                    (fld == "mobile" and digest("phone", value) in stones["phone"])
                    or (fld == "email" and digest("email", value) in stones["email"])
                )
            )
            if bad:
                person.records.add(key)
                matched["self_service_changes"] = matched.get("self_service_changes", 0) + 1
    orders = "staging.stg_ecommerce__orders"
    if wh.table_exists(orders):
        frame = wh.query_df(f"select distinct member_id from {orders}{window}", params)
        for (mid,) in frame.itertuples(index=False):
            if digest("record", f"ecommerce:{mid}") in stones["record"]:
                person.records.add(f"ecommerce:{mid}")
                matched["orders_members"] = matched.get("orders_members", 0) + 1
    events = "intermediate.int_contact_events"
    if wh.table_exists(events):
        frame = wh.query_df(f"select distinct channel, contact_value from {events}{window}", params)
        for channel, value in frame.itertuples(index=False):
            if isinstance(value, str) and (
                (channel == "phone" and digest("phone", value) in stones["phone"])
                or (channel == "email" and digest("email", value) in stones["email"])
            ):
                (person.all_phones if channel == "phone" else person.emails).add(value)
                matched["contact_values"] = matched.get("contact_values", 0) + 1
    return person, matched


def apply_tombstones(settings: Settings, run_id: str | None = None, since: datetime | None = None) -> dict[str, Any]:
    """Delete every row whose identifiers match a tombstone (``since``: only records ingested
    since then; None: everything). Call it after restoring a backup taken before an erasure, and
    before the restored tables are published or linked again. Returns what it matched and deleted."""
    with connect(settings) as wh:
        ensure_privacy_tables(wh)
        with wh.transaction():
            person, matched = _matching_records(settings, wh, since)
            if not person.records and not person.all_phones and not person.emails:
                return {"matched": matched, "rows_deleted": {}}
            # the matched records only: their golden ids lose them (rebuilt by dbt_golden); a
            # golden id left without records is removed with them
            golden = set()
            if wh.table_exists("mdm.xref") and person.records:
                marks, vals = _in(person.records)
                golden = {
                    str(r[0])
                    for r in wh.query(f"select distinct golden_id from mdm.xref where record_id in ({marks})", vals)
                }
            person = _emptied(wh, person, golden)
            counts = _erase_rows(wh, person)
            _mark_dirty(wh, golden, run_id, "tombstone")
    log.info("tombstones matched %s; deleted %s", matched, counts)
    return {"matched": matched, "rows_deleted": counts}


def _emptied(wh: Warehouse, person: Person, golden: set[str]) -> Person:
    """Keep in ``person.golden_ids`` only the golden ids all of whose records are being erased."""
    for gid in golden:
        members = {str(r[0]) for r in wh.query("select record_id from mdm.xref where golden_id = ?", [gid])}
        if members <= person.records:
            person.golden_ids.add(gid)
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
        f"where is_latest and request_id not in (select request_id from {REQUESTS} where request_id is not null) "
        "order by requested_at_utc, request_id"
    )


def erase_pending(settings: Settings, run_id: str, since: datetime | None = None) -> dict[str, Any]:
    """Handle every erasure request not handled yet, then apply the tombstones to the records
    ingested ``since`` (this run's). Each request is one transaction. Returns the step details:
    per request its status and rows deleted per table, and the tombstone matches."""
    from customer_mdm.audit import append, ensure_audit_table, to_json

    requests: list[dict[str, Any]] = []
    with connect(settings) as wh:
        ensure_privacy_tables(wh)
        ensure_audit_table(wh)
        pending = _pending(wh)
        for req in pending.itertuples(index=False):
            request_id = str(req.request_id)
            itype = str(req.identifier_type or "").lower()
            raw_value = None if pd.isna(req.identifier_value_raw) else str(req.identifier_value_raw)
            requested_at = None if pd.isna(req.requested_at_utc) else req.requested_at_utc
            now = _now()
            if itype not in IDENTIFIER_TYPES or not raw_value:
                status, kind, value, person = "invalid", "request", None, Person()
                reason = f"unknown identifier_type {itype!r}" if itype not in IDENTIFIER_TYPES else "empty identifier"
            else:
                kind, source = IDENTIFIER_TYPES[itype]
                value = normalise(kind, raw_value)
                person = Person(records=_records_for(wh, kind, value, source))
                if kind == "phone":
                    person.phones.add(value)
                    person.all_phones.add(value)
                elif kind == "email":
                    person.emails.add(value)
                person = _expand(wh, person)
                status = "erased" if person.records else "not_found"
                reason = f"erasure request ({itype})" + ("" if person.records else ": no record matches")
            with wh.transaction():
                counts: dict[str, int] = {}
                # the request itself quotes the identifier in clear
                for table in ("raw.erasure", "staging.stg_erasure__requests"):
                    if wh.table_exists(table):
                        n = _delete(wh, table, "trim(request_id) = ?", [request_id])
                        if n:
                            counts[table] = n
                for table, n in _erase_rows(wh, person, [raw_value] if raw_value else []).items():
                    counts[table] = counts.get(table, 0) + n
                stones = _tombstone_rows(settings, request_id, itype, kind, value, person, run_id)
                if stones:
                    wh.insert_df(TOMBSTONES, pd.DataFrame(stones))
                _mark_dirty(wh, person.golden_ids, run_id, "erasure")
                wh.insert_df(
                    REQUESTS,
                    pd.DataFrame(
                        [
                            {
                                "request_id": request_id,
                                "status": status,
                                "identifier_type": itype,
                                "requested_at": requested_at,
                                "processed_at": now,
                                "persons": len({g for g in person.golden_ids}),
                                "records": len(person.records),
                                "rows_deleted": json.dumps(counts, sort_keys=True),
                                "run_id": run_id,
                            }
                        ]
                    ),
                )
                body = {
                    "request_id": request_id,
                    "status": status,
                    "records": len(person.records),
                    "rows_deleted": counts,
                }
                append(
                    wh,
                    [
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
                    ],
                )
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
    matched = apply_tombstones(settings, run_id, since=since)
    return {
        "requests": requests,
        "erased": sum(1 for r in requests if r["status"] == "erased"),
        "not_found": sum(1 for r in requests if r["status"] == "not_found"),
        "invalid": sum(1 for r in requests if r["status"] == "invalid"),
        "tombstone_matches": matched["matched"],
        "tombstone_rows_deleted": matched["rows_deleted"],
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
