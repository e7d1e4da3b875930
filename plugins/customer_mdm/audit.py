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
(:func:`customer_mdm.pseudonyms.pseudonym`, the installation's erasure salt). ``mdm audit --record
crm:C000123`` finds a record's rows by computing its pseudonym. Codes (gender, tier, customer
type, consent status, province, city, district) are stored as they are.

**Append-only, against every role but its owner.** Nothing in the package updates or deletes
these rows. On PostgreSQL a separate ``NOLOGIN`` role, :data:`AUDIT_OWNER`, owns the ``audit``
schema, the table, its triggers (which reject every UPDATE, DELETE and TRUNCATE) and
:data:`APPEND_FUNCTION`, a ``SECURITY DEFINER`` function that is the only way in: the pipeline and
the steward role may execute it and read the table, nothing else, so neither can alter, drop or
disable the trigger, nor write a row by hand. The function validates every row (a known action,
an actor kind that goes with it, a steward may write steward decisions only) and records
``principal``, the authenticated login (``session_user``) of whoever called it; for steward rows
the ``actor`` is that login too, whatever the caller passes. Installing it needs a role that can
create roles (``mdm roles apply --admin-dsn``, or a pipeline connected as a superuser); a warehouse
whose audit log the pipeline still owns is moved to the owner role then.

One exception, erasure: :func:`forget_golden_ids` replaces an erased person's golden ids by their
salted pseudonym (``golden_id`` and every mention in ``old_value`` / ``new_value`` / ``reason``).
On PostgreSQL that goes through :data:`FORGET_FUNCTION`, a second ``SECURITY DEFINER`` function of
the owner that only the pipeline may execute; the trigger lets its UPDATE through only inside the
transaction that function marks (``mdm.forget_golden_ids``), and only when who, when and what stay
as they were. ``mdm audit --golden-id G...`` still finds the rows of an erased id by its pseudonym.

On DuckDB (embedded, single user, no roles) ``principal`` and a steward's ``actor`` are the
operating-system user running the command, and the append-only guarantee is the code's.
``mdm review decide --by NAME`` is only a display note (kept in ``reason``), never the actor.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from customer_mdm.config import Settings
from customer_mdm.errors import MdmError
from customer_mdm.pseudonyms import pseudonym
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
    "principal": "text",  # the authenticated login that wrote the row (PostgreSQL session_user, OS user)
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

#: the NOLOGIN role that owns the audit schema, table, triggers and writer function (PostgreSQL)
AUDIT_OWNER = "mdm_audit_owner"
#: the only way to write audit rows on PostgreSQL (SECURITY DEFINER, owned by AUDIT_OWNER)
APPEND_FUNCTION = "audit.append_changes"
#: erasure's one exception (SECURITY DEFINER, owned by AUDIT_OWNER, pipeline only)
FORGET_FUNCTION = "audit.forget_golden_ids"
#: actor kinds and the actions each may write
ACTOR_ACTIONS = {
    "run": ("new", "merge", "split", "retire", "survivorship_change"),
    "erasure": ("erasure",),
    "steward": ("steward_decision", "steward_correction"),
}
_PIPELINE_ROLE, _STEWARD_ROLE = "mdm_pipeline", "mdm_steward"

_PG_GUARD = """
create or replace function audit.reject_change() returns trigger language plpgsql as $$
begin
    -- erasure (audit.forget_golden_ids): golden ids become pseudonyms, nothing else changes
    if tg_op = 'UPDATE' and coalesce(current_setting('mdm.forget_golden_ids', true), '') = 'on'
       and new.changed_at is not distinct from old.changed_at and new.actor is not distinct from old.actor
       and new.actor_kind is not distinct from old.actor_kind and new.action is not distinct from old.action
       and new.field is not distinct from old.field and new.run_id is not distinct from old.run_id
       and new.principal is not distinct from old.principal
       and (new.golden_id is not distinct from old.golden_id or new.golden_id ~ '^[0-9a-f]{64}$') then
        return new;
    end if;
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


def _member(role: str) -> str:
    """SQL: whether the session's login is (a member of) ``role``; false when the role does not exist."""
    return (
        f"(exists (select 1 from pg_roles where rolname = '{role}') and pg_has_role(session_user, '{role}', 'MEMBER'))"
    )


_PG_APPEND = f"""
create or replace function {APPEND_FUNCTION}(changes jsonb) returns integer
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    r jsonb;
    n integer := 0;
    kind text;
    act text;
    who text := session_user;
    is_super boolean := (select rolsuper from pg_roles where rolname = session_user);
    is_pipeline boolean := {_member(_PIPELINE_ROLE)};
    is_steward boolean := {_member(_STEWARD_ROLE)};
begin
    if jsonb_typeof(changes) <> 'array' then
        raise exception 'audit rows must be a JSON array';
    end if;
    for r in select value from jsonb_array_elements(changes) loop
        kind := r->>'actor_kind';
        act := r->>'action';
        if kind is null or act is null or not (
            (kind = 'run' and act in ('new', 'merge', 'split', 'retire', 'survivorship_change'))
            or (kind = 'erasure' and act = 'erasure')
            or (kind = 'steward' and act in ('steward_decision', 'steward_correction'))) then
            raise exception 'invalid audit row: action % with actor kind %', act, kind;
        end if;
        if kind <> 'steward' and not (is_super or is_pipeline) then
            raise exception 'only the pipeline writes % audit rows (login %)', kind, who;
        end if;
        if kind = 'steward' and not (is_super or is_pipeline or is_steward) then
            raise exception 'login % is not a steward', who;
        end if;
        insert into audit.golden_changes (changed_at, actor, actor_kind, action, golden_id, field,
                                          old_value, new_value, reason, run_id, principal)
        values (coalesce((r->>'changed_at')::timestamp, (now() at time zone 'utc')),
                -- a steward row names the login that wrote it; only the pipeline relays the
                -- console's signed-in user (an authenticated session of the hub) as the actor
                case when kind = 'steward'
                          and not ((is_super or is_pipeline) and coalesce(r->>'actor' like 'user:%', false))
                     then who else r->>'actor' end,
                kind, act, r->>'golden_id', r->>'field', r->>'old_value', r->>'new_value',
                r->>'reason', r->>'run_id', who);
        n := n + 1;
    end loop;
    return n;
end
$$;
"""


_PG_FORGET = f"""
create or replace function {FORGET_FUNCTION}(pairs jsonb) returns integer
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    r jsonb;
    gid text;
    alias text;
    n integer := 0;
    k integer;
begin
    if not ((select rolsuper from pg_roles where rolname = session_user) or {_member(_PIPELINE_ROLE)}) then
        raise exception 'only the pipeline forgets golden ids (login %)', session_user;
    end if;
    if jsonb_typeof(pairs) <> 'array' then
        raise exception 'pairs must be a JSON array';
    end if;
    perform set_config('mdm.forget_golden_ids', 'on', true);
    for r in select value from jsonb_array_elements(pairs) loop
        gid := r->>0;
        alias := r->>1;
        if gid is null or gid = '' or alias !~ '^[0-9a-f]{{64}}$' then
            raise exception 'invalid golden id pseudonym pair';
        end if;
        update audit.golden_changes set
            golden_id = case when golden_id = gid then alias else golden_id end,
            old_value = replace(old_value, gid, alias), new_value = replace(new_value, gid, alias),
            reason = replace(reason, gid, alias)
        where golden_id = gid or strpos(old_value, gid) > 0 or strpos(new_value, gid) > 0 or strpos(reason, gid) > 0;
        get diagnostics k = row_count;
        n := n + k;
    end loop;
    perform set_config('mdm.forget_golden_ids', 'off', true);
    return n;
end
$$;
"""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def os_principal() -> str:
    """The operating-system user running this process (DuckDB's authenticated principal)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container with a bare uid)
        import os

        return f"uid:{os.getuid()}"


def pg_installed(wh: Warehouse) -> bool:
    """Whether the audit log is in place: table, append function, triggers, all owned by AUDIT_OWNER."""
    row = wh.query(
        "select pg_get_userbyid(c.relowner), "
        "  (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
        "    where n.nspname = 'audit' and p.proname = 'append_changes' and p.prosecdef "
        "    and p.prosrc like '%steward_correction%' "
        "    and pg_get_userbyid(p.proowner) = ?), "
        "  (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
        "    where n.nspname = 'audit' and p.proname = 'forget_golden_ids' and p.prosecdef "
        "    and pg_get_userbyid(p.proowner) = ?), "
        "  (select count(*) from pg_trigger t where t.tgrelid = c.oid and not t.tgisinternal and t.tgenabled <> 'D'), "
        "  (select count(*) from pg_attribute a where a.attrelid = c.oid and a.attname = 'principal') "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = 'audit' and c.relname = 'golden_changes'",
        [AUDIT_OWNER, AUDIT_OWNER],
    )
    return (
        bool(row)
        and row[0][0] == AUDIT_OWNER
        and row[0][1] == 1
        and row[0][2] == 1
        and row[0][3] >= 2
        and row[0][4] == 1
    )


def install_pg(wh: Warehouse) -> None:
    """Create (or take over) the audit log on PostgreSQL as described in the module docstring.
    Needs a superuser or CREATEROLE role; idempotent."""
    can = wh.scalar("select rolsuper or rolcreaterole from pg_roles where rolname = current_user")
    if not can:
        raise MdmError(
            "the audit log (audit.golden_changes) is not installed with its owner role: run "
            "`mdm roles apply --admin-dsn ...` (or set MDM_PG_ADMIN_DSN) once as a superuser or CREATEROLE role"
        )
    with wh.transaction():
        wh.execute(  # roles are cluster-wide: another database's install may create it meanwhile
            f"do $$ begin create role {AUDIT_OWNER} nologin; exception when duplicate_object then null; end $$"
        )
        me = str(wh.scalar("select current_user"))
        if not wh.scalar("select rolsuper from pg_roles where rolname = current_user"):
            wh.execute(f'grant {AUDIT_OWNER} to "{me}"')  # a CREATEROLE admin acts for the owner
        wh.execute(f"create schema if not exists audit authorization {AUDIT_OWNER}")
        wh.execute(f"alter schema audit owner to {AUDIT_OWNER}")
        ensure_table(wh, AUDIT_TABLE, AUDIT_COLUMNS)
        wh.execute(f"alter table {AUDIT_TABLE} owner to {AUDIT_OWNER}")
        wh.execute(_PG_GUARD)
        wh.execute(_PG_APPEND)
        wh.execute(_PG_FORGET)
        wh.execute(f"alter function audit.reject_change() owner to {AUDIT_OWNER}")
        wh.execute(f"alter function {APPEND_FUNCTION}(jsonb) owner to {AUDIT_OWNER}")
        wh.execute(f"alter function {FORGET_FUNCTION}(jsonb) owner to {AUDIT_OWNER}")
        wh.execute(f"revoke all on function {APPEND_FUNCTION}(jsonb) from public")
        wh.execute(f"revoke all on function {FORGET_FUNCTION}(jsonb) from public")
        wh.execute(f"revoke all on {AUDIT_TABLE} from public")
        for role in (_PIPELINE_ROLE, _STEWARD_ROLE):
            if wh.scalar("select count(*) from pg_roles where rolname = ?", [role]):
                wh.execute(f"revoke all on {AUDIT_TABLE} from {role}")
                wh.execute(f"revoke create on schema audit from {role}")
                wh.execute(f"grant usage on schema audit to {role}")
                wh.execute(f"grant select on {AUDIT_TABLE} to {role}")
                wh.execute(f"grant execute on function {APPEND_FUNCTION}(jsonb) to {role}")
        if wh.scalar("select count(*) from pg_roles where rolname = ?", [_PIPELINE_ROLE]):
            wh.execute(f"grant execute on function {FORGET_FUNCTION}(jsonb) to {_PIPELINE_ROLE}")


def ensure_audit_table(wh: Warehouse) -> None:
    """Create ``audit.golden_changes``; on PostgreSQL the owner role, triggers and writer function
    (:func:`install_pg`) unless they are in place."""
    if wh.target == "postgres":
        if not pg_installed(wh):
            install_pg(wh)
        return
    ensure_table(wh, AUDIT_TABLE, AUDIT_COLUMNS)


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
    bad = [
        (a, k) for a, k in zip(frame["action"], frame["actor_kind"], strict=True) if a not in ACTOR_ACTIONS.get(k, ())
    ]
    if bad:
        raise ValueError(f"invalid audit row(s): action with actor kind {sorted(set(map(str, bad)))}")
    if wh.target == "postgres":  # through the owner's function: it records session_user
        body = frame.drop(columns=["principal"]).assign(
            changed_at=frame["changed_at"].map(lambda t: None if pd.isna(t) else t.isoformat())
        )
        payload = json.dumps(body.to_dict("records"), ensure_ascii=False, default=str)
        return int(wh.scalar(f"select {APPEND_FUNCTION}(cast(? as jsonb))", [payload]))
    frame["principal"] = os_principal()
    # a steward row names who wrote it; a console user (``user:NAME``, signed in to the hub) is kept
    relayed = frame["actor"].map(lambda a: isinstance(a, str) and a.startswith("user:"))
    steward = (frame["actor_kind"] == "steward") & ~relayed
    frame.loc[steward, "actor"] = frame.loc[steward, "principal"]
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


def _steward_reason(decision: str, noted_by: str | None, note: str | None) -> str:
    """The reason of a steward row: the decision, and ``--by`` as a display note only (not the actor).
    Never the note itself: free text may quote a person, and this log is append-only (erasure
    cannot scrub it); the note stays in mdm.steward_decisions (scrubbed there)."""
    reason = f"steward decision: {decision}" + (" (note in mdm.steward_decisions)" if note else "")
    return f"{reason} (noted as: {noted_by})" if noted_by else reason


def record_steward_decision(
    settings: Settings,
    wh: Warehouse,
    left: str,
    right: str,
    decision: str,
    decided_by: str | None,
    note: str | None,
    decided_at: datetime,
    actor: str | None = None,
) -> int:
    """One audit row per golden id the two records belong to (one row when they share it).
    ``actor``: the console's signed-in user (``user:NAME``) when the pipeline applies a console
    decision; otherwise the authenticated principal is recorded."""
    if wh.target != "postgres" or not pg_installed(wh):  # a steward's role may append, not run DDL
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
                "actor": actor,  # None: the authenticated principal, set by append()
                "actor_kind": "steward",
                "action": "steward_decision",
                "golden_id": gid,
                "field": "match",
                "old_value": None,
                "new_value": to_json(body),
                "reason": _steward_reason(decision, decided_by, note),
                "run_id": None,
            }
            for gid in golden_ids
        ],
    )


def forget_golden_ids(settings: Settings, wh: Warehouse, ids: Iterable[str]) -> int:
    """Replace the golden ids ``ids`` of erased persons by their salted pseudonyms
    (:func:`customer_mdm.pseudonyms.pseudonym`, kind ``golden_id``) in every audit row: the
    ``golden_id`` column and every mention in ``old_value``, ``new_value`` and ``reason``. Golden
    ids outlive the person in downstream systems; after this the audit log no longer links them
    to the erasure (nor to the person's history). Returns the rows changed. Runs inside the
    caller's transaction (the erasure's) when there is one."""
    wanted = sorted({str(i) for i in ids if i is not None and str(i)})
    if not wanted or not wh.table_exists(AUDIT_TABLE):
        return 0
    pairs = [(gid, pseudonym(settings, "golden_id", gid)) for gid in wanted]
    if wh.target == "postgres":  # the owner's function: the pipeline cannot UPDATE the log itself
        ensure_audit_table(wh)
        return int(wh.scalar(f"select {FORGET_FUNCTION}(cast(? as jsonb))", [json.dumps(pairs)]) or 0)
    where = "golden_id = ? or strpos(old_value, ?) > 0 or strpos(new_value, ?) > 0 or strpos(reason, ?) > 0"
    changed = 0
    for gid, alias in pairs:
        changed += int(wh.scalar(f"select count(*) from {AUDIT_TABLE} where {where}", [gid] * 4) or 0)
        wh.execute(
            f"update {AUDIT_TABLE} set golden_id = case when golden_id = ? then ? else golden_id end, "
            "old_value = replace(old_value, ?, ?), new_value = replace(new_value, ?, ?), "
            f"reason = replace(reason, ?, ?) where {where}",
            [gid, alias, gid, alias, gid, alias, gid, alias, gid, gid, gid, gid],
        )
    return changed


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
    if not wh.table_exists(AUDIT_TABLE):
        return pd.DataFrame(columns=list(AUDIT_COLUMNS))
    where: list[str] = []
    params: list[Any] = []
    if golden_id:  # an erased id is found by its pseudonym (forget_golden_ids)
        where.append("golden_id in (?, ?)")
        params += [golden_id, pseudonym(settings, "golden_id", golden_id)]
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
    present = set(wh.columns_of(AUDIT_TABLE))  # a log written before a column was added
    sql = f"select {', '.join(c for c in AUDIT_COLUMNS if c in present)} from {AUDIT_TABLE}"
    if where:
        sql += " where " + " and ".join(where)
    sql += " order by changed_at desc, golden_id, field"
    if limit:
        sql += f" limit {int(limit)}"
    return wh.query_df(sql, params)
