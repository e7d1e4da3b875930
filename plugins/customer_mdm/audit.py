"""The golden-record audit log: ``audit.golden_changes``, append-only.

One row per change to a golden customer: who (``actor``: the pipeline run id, a steward's name or
an erasure request id; ``actor_kind`` run | steward | erasure), when (``changed_at``, UTC), what
(``action``: new, merge, split, retire, survivorship_change, steward_decision, erasure; the
``golden_id``; the ``field``; ``old_value`` / ``new_value`` as JSON text) and why (``reason``).

Written by

* the ``link`` step: merges, splits, new and retired ids, derived from this run's
  ``mdm.golden_id_history`` events (:func:`record_link_events`);
* the publication (:func:`record_survivorship_changes`, inside the publishing transaction): every
  golden field whose surviving value changed between the published ``marts.dim_customer`` and the
  new one, with the winning source before and after;
* ``mdm review decide`` (:func:`record_steward_decision`);
* the erasure step (:mod:`customer_mdm.privacy`): one row per erased golden id or request.

**No personal data in clear.** The log outlives erasures (it must show that a person was erased),
so it never stores a personal value or a source record key: names, phones, e-mails, birth dates,
streets, companies and record keys (``crm:C000123``) are stored as salted SHA-256 pseudonyms
(:func:`customer_mdm.privacy.pseudonym`, the installation's erasure salt). ``mdm audit --record
crm:C000123`` finds a record's rows by computing its pseudonym. Codes (gender, tier, customer
type, consent status, province, city, district) are stored as they are.

**Append-only.** Nothing in the package updates or deletes these rows; on PostgreSQL a trigger
rejects every UPDATE, DELETE and TRUNCATE (:func:`ensure_audit_table`). On DuckDB (embedded,
single user) the guarantee is the code's.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from customer_mdm.config import Settings
from customer_mdm.schema import ensure_table
from customer_mdm.warehouse import Warehouse

AUDIT_TABLE = "audit.golden_changes"
AUDIT_COLUMNS: dict[str, str] = {
    "changed_at": "timestamp",
    "actor": "text",  # run id | steward name | erasure request id
    "actor_kind": "text",  # run | steward | erasure
    "action": "text",  # new | merge | split | retire | survivorship_change | steward_decision | erasure
    "golden_id": "text",
    "field": "text",
    "old_value": "text",  # JSON
    "new_value": "text",  # JSON
    "reason": "text",
    "run_id": "text",
}
ACTIONS = (
    "new",
    "merge",
    "split",
    "retire",
    "survivorship_change",
    "steward_decision",
    "steward_correction",
    "erasure",
)

#: golden fields compared at publication: column -> its source-record column; personal ones pseudonymised
SURVIVORSHIP_FIELDS: dict[str, str] = {
    "name": "name_source_record",
    "gender": "gender_source_record",
    "birth_date": "birth_date_source_record",
    "phone": "phone_source_record",
    "email": "email_source_record",
    "street": "address_source_record",
    "province": "address_source_record",
    "city": "address_source_record",
    "district": "address_source_record",
    "company": "company_source_record",
    "customer_type": "customer_type_source_record",
    "tier": "tier_source_record",
    "consent_marketing": "consent_marketing_source_record",
}
PERSONAL_FIELDS = frozenset({"name", "birth_date", "phone", "email", "street", "company"})

_HISTORY_ACTIONS = {"create": "new", "merge": "merge", "split": "split", "retire": "retire"}

_PG_GUARD = """
create or replace function audit.reject_change() returns trigger language plpgsql as $$
begin
    raise exception 'audit.golden_changes is append-only: % is not allowed', tg_op;
end
$$;
drop trigger if exists golden_changes_append_only on audit.golden_changes;
create trigger golden_changes_append_only before update or delete on audit.golden_changes
    for each row execute function audit.reject_change();
drop trigger if exists golden_changes_no_truncate on audit.golden_changes;
create trigger golden_changes_no_truncate before truncate on audit.golden_changes
    for each statement execute function audit.reject_change();
"""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def ensure_audit_table(wh: Warehouse) -> None:
    """Create ``audit.golden_changes``; on PostgreSQL also the append-only trigger."""
    ensure_table(wh, AUDIT_TABLE, AUDIT_COLUMNS)
    if wh.target == "postgres":
        exists = wh.scalar(
            "select count(*) from pg_trigger where tgname = 'golden_changes_append_only' "
            "and tgrelid = cast('audit.golden_changes' as regclass)"
        )
        if not exists:
            wh.execute(_PG_GUARD)


def append(wh: Warehouse, rows: list[dict[str, Any]] | pd.DataFrame) -> int:
    """Append audit rows (missing columns are null); returns how many."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    if frame.empty:
        return 0
    unknown = set(frame["action"]) - set(ACTIONS)
    if unknown:
        raise ValueError(f"unknown audit action(s): {sorted(unknown)}")
    for col in AUDIT_COLUMNS:
        if col not in frame.columns:
            frame[col] = None
    frame = frame[list(AUDIT_COLUMNS)].astype(object).where(frame[list(AUDIT_COLUMNS)].notna(), None)
    frame["changed_at"] = pd.to_datetime(frame["changed_at"])
    return wh.insert_df(AUDIT_TABLE, frame)


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


# ----------------------------------------------------------------------------- writers
def record_link_events(wh: Warehouse, run_id: str) -> int:
    """Audit rows for this run's ``mdm.golden_id_history`` events not audited yet (a retried link
    step does not audit twice): create -> new, merge, split, retire."""
    ensure_audit_table(wh)
    if not wh.table_exists("mdm.golden_id_history"):
        return 0
    history = wh.query_df(
        "select h.changed_at, h.event, h.golden_id, h.other_golden_id, h.records, h.detail "
        "from mdm.golden_id_history as h where h.run_id = ? and not exists ("
        "  select 1 from audit.golden_changes as a where a.run_id = h.run_id and a.actor_kind = 'run' "
        "  and a.golden_id = h.golden_id and a.changed_at = h.changed_at and a.field = 'golden_id')",
        [run_id],
    )
    history = history[history["event"].isin(list(_HISTORY_ACTIONS))]
    if history.empty:
        return 0
    rows = []
    for h in history.itertuples(index=False):
        action = _HISTORY_ACTIONS[str(h.event)]
        other = None if pd.isna(h.other_golden_id) else str(h.other_golden_id)
        records = None if pd.isna(h.records) else int(h.records)
        if action == "merge":  # golden_id was merged into other
            old, new = {"golden_id": h.golden_id}, {"golden_id": other, "records": records}
        elif action == "split":  # records of golden_id split off into other (or vice versa)
            old, new = {"golden_id": h.golden_id}, {"golden_id": other, "records": records}
        elif action == "new":
            old, new = None, {"golden_id": h.golden_id, "records": records}
        else:
            old, new = {"golden_id": h.golden_id}, None
        rows.append(
            {
                "changed_at": h.changed_at,
                "actor": run_id,
                "actor_kind": "run",
                "action": action,
                "golden_id": h.golden_id,
                "field": "golden_id",
                "old_value": None if old is None else to_json(old),
                "new_value": None if new is None else to_json(new),
                "reason": None if pd.isna(h.detail) else str(h.detail),
                "run_id": run_id,
            }
        )
    return append(wh, rows)


def _source_of(record: Any) -> str | None:
    return None if record is None or pd.isna(record) else str(record).split(":", 1)[0]


def _label(record: Any, statement_source: Any) -> str:
    if statement_source is not None and not pd.isna(statement_source):
        return str(statement_source)
    return _source_of(record) or "none"


def _value(settings: Settings, field: str, value: Any, record: Any, statement_source: Any = None) -> str | None:
    """JSON of one side of a change: the value (pseudonymised when personal), the system of the
    source record it came from and the record's pseudonym; for consent, the statement's source."""
    from customer_mdm.privacy import pseudonym

    if (value is None or pd.isna(value)) and (record is None or pd.isna(record)):
        return None
    body: dict[str, Any] = {"record_source": _source_of(record)}
    if statement_source is not None and not pd.isna(statement_source):
        body["statement_source"] = str(statement_source)
    if record is not None and not pd.isna(record):
        body["record"] = pseudonym(settings, "record", str(record))
    if value is None or pd.isna(value):
        body["value"] = None
    elif field in PERSONAL_FIELDS:
        body["value_sha256"] = pseudonym(settings, field, str(value))
    else:
        body["value"] = str(value)
    return to_json(body)


def record_survivorship_changes(
    settings: Settings,
    wh: Warehouse,
    run_id: str,
    published: str,
    build: str,
    changed_at: datetime | None = None,
    *,
    only: str | None = None,
) -> int:
    """Audit every golden field whose surviving value or source record differs between the
    published table and the build about to replace it (golden ids in both; new and removed ids
    are audited by the link and erasure steps). Call inside the publishing transaction.
    ``only``: a table of the golden ids to compare (an incremental publication's changed ids)."""
    ensure_audit_table(wh)
    if not wh.table_exists(published) or not wh.table_exists(build):
        return 0
    both = set(wh.columns_of(published)) & set(wh.columns_of(build))
    fields = {f: src for f, src in SURVIVORSHIP_FIELDS.items() if f in both}
    if not fields:
        return 0
    select, differs = ["n.golden_id"], []
    for f, src in fields.items():
        select += [f"cast(o.{f} as text) as old__{f}", f"cast(n.{f} as text) as new__{f}"]
        cond = f"cast(o.{f} as text) is distinct from cast(n.{f} as text)"
        if src in both:
            select += [f"o.{src} as oldsrc__{f}", f"n.{src} as newsrc__{f}"]
            cond = f"({cond} or o.{src} is distinct from n.{src})"
        differs.append(cond)
    if "consent_marketing" in fields and "consent_marketing_source" in both:
        select += ["o.consent_marketing_source as oldstmt", "n.consent_marketing_source as newstmt"]
    # the listed ids are picked from both sides first: the comparison then reads only their rows
    scope = f" where golden_id in (select golden_id from {only})" if only else ""
    diff = wh.query_df(
        f"select {', '.join(select)} from (select * from {published}{scope}) as o "
        f"inner join (select * from {build}{scope}) as n on n.golden_id = o.golden_id "
        f"where {' or '.join(differs)}"
    )
    if diff.empty:
        return 0
    when = changed_at or _now()
    rows = []
    for rec in diff.to_dict("records"):
        for f in fields:
            old_v, new_v = rec[f"old__{f}"], rec[f"new__{f}"]
            old_s, new_s = rec.get(f"oldsrc__{f}"), rec.get(f"newsrc__{f}")
            same_value = (pd.isna(old_v) and pd.isna(new_v)) or old_v == new_v
            same_source = (pd.isna(old_s) and pd.isna(new_s)) or old_s == new_s
            if same_value and same_source:
                continue
            what = "value" if not same_value else "source record"
            consent = f == "consent_marketing"
            rows.append(
                {
                    "changed_at": when,
                    "actor": run_id,
                    "actor_kind": "run",
                    "action": "survivorship_change",
                    "golden_id": rec["golden_id"],
                    "field": f,
                    "old_value": _value(settings, f, old_v, old_s, rec.get("oldstmt") if consent else None),
                    "new_value": _value(settings, f, new_v, new_s, rec.get("newstmt") if consent else None),
                    "reason": f"survivorship ({what} changed): winner from "
                    f"{_label(old_s, rec.get('oldstmt') if consent else None)} -> "
                    f"{_label(new_s, rec.get('newstmt') if consent else None)}",
                    "run_id": run_id,
                }
            )
    return append(wh, rows)


def record_steward_decision(
    settings: Settings,
    wh: Warehouse,
    left: str,
    right: str,
    decision: str,
    decided_by: str,
    note: str | None,
    decided_at: datetime,
) -> int:
    """One audit row per golden id the two records belong to (one row when they share it)."""
    from customer_mdm.privacy import pseudonym

    if not wh.table_exists(AUDIT_TABLE):  # only when missing: a steward's role may insert, not run DDL
        ensure_audit_table(wh)
    ids: dict[str, str | None] = {left: None, right: None}
    if wh.table_exists("mdm.xref"):
        for rid, gid in wh.query("select record_id, golden_id from mdm.xref where record_id in (?, ?)", [left, right]):
            ids[str(rid)] = str(gid)
    body = {
        "decision": decision,
        "records": [pseudonym(settings, "record", left), pseudonym(settings, "record", right)],
        "golden_ids": [ids[left], ids[right]],
    }
    golden_ids: list[str | None] = [*sorted({g for g in ids.values() if g is not None})] or [None]
    return append(
        wh,
        [
            {
                "changed_at": decided_at,
                "actor": decided_by,
                "actor_kind": "steward",
                "action": "steward_decision",
                "golden_id": gid,
                "field": "match",
                "old_value": None,
                "new_value": to_json(body),
                "reason": note or f"steward decision: {decision}",
                "run_id": None,
            }
            for gid in golden_ids
        ],
    )


# ----------------------------------------------------------------------------- reading
def list_changes(
    settings: Settings,
    wh: Warehouse,
    golden_id: str | None = None,
    since: datetime | None = None,
    action: str | None = None,
    record: str | None = None,
    limit: int | None = 200,
) -> pd.DataFrame:
    """The audit rows, newest first, filtered by golden id, time, action or source record."""
    from customer_mdm.privacy import pseudonym

    if not wh.table_exists(AUDIT_TABLE):
        return pd.DataFrame(columns=list(AUDIT_COLUMNS))
    where: list[str] = []
    params: list[Any] = []
    if golden_id:
        where.append("golden_id = ?")
        params.append(golden_id)
    if since is not None:
        where.append("changed_at >= ?")
        params.append(since)
    if action:
        where.append("action = ?")
        params.append(action)
    if record:
        where.append("(old_value like ? or new_value like ?)")
        token = f"%{pseudonym(settings, 'record', record)}%"
        params += [token, token]
    sql = f"select {', '.join(AUDIT_COLUMNS)} from {AUDIT_TABLE}"
    if where:
        sql += " where " + " and ".join(where)
    sql += " order by changed_at desc, golden_id, field"
    if limit:
        sql += f" limit {int(limit)}"
    return wh.query_df(sql, params)
