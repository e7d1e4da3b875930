"""The console's tables in the hub store (customer_mdm.hub.store): users, sessions, steward
actions pending the next run, worklist assignments. Times are the store's ISO text (UTC).

``console_users``     name, role, scrypt hash and salt, failed sign-ins in a row, locked until
``console_sessions``  server-side sessions: only the sha256 of the cookie's random id, the user,
                      the session's CSRF token, expiry
``console_actions``   every steward action from the console: decisions on pairs, corrections,
                      splits, merges, worklist changes. ``status`` is ``pending`` until the next
                      run applies it (``applied`` with the run id, or ``rejected`` with why);
                      ``logged`` for actions with nothing to apply (worklist). The console's
                      action log (actor ``user:<name>``)
``console_worklist``  assignment, status and note of a worklist item (golden id + field)

Personal data: a correction's value and the golden ids of actions and worklist rows; the
tables are registered with their person columns so that the hub store's erasure covers them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from customer_mdm.config import Settings
from customer_mdm.hub.store import SCHEMA, Store, ensure_store, now, open_store, register_table

__all__ = ["Store", "add_action", "connect_store", "mark_action", "now", "pending_actions", "rows"]

register_table(
    "console_users",
    {
        "name": "text primary key",
        "role": "text not null",
        "password_hash": "text not null",
        "salt": "text not null",
        "language": "text",
        "failed_logins": "bigint not null default 0",
        "locked_until": "text",
        "created_at": "text not null",
        "disabled": "bigint not null default 0",
    },
)
register_table(
    "console_sessions",
    {
        "session_hash": "text primary key",
        "user_name": "text not null",
        "csrf_token": "text not null",  # pragma: allowlist secret (a column type)
        "created_at": "text not null",
        "expires_at": "text not null",
    },
)
ACTION_COLUMNS = {
    "action_id": "text primary key",
    "kind": "text not null",  # decision | correction | split | merge | worklist
    "actor": "text not null",  # user:<name>
    "created_at": "text not null",
    "golden_id": "text",
    "other_golden_id": "text",
    "record_id_l": "text",
    "record_id_r": "text",
    "field": "text",
    "value": "text",
    "detail": "text",  # JSON
    "note": "text",
    "status": "text not null",  # pending | applied | rejected | logged
    "applied_at": "text",
    "run_id": "text",
    "outcome": "text",
}
register_table("console_actions", ACTION_COLUMNS, person_columns=("golden_id", "other_golden_id"))
register_table(
    "console_worklist",
    {
        "item_key": "text primary key",  # golden_id + '|' + field
        "golden_id": "text not null",
        "field": "text not null",
        "assignee": "text",
        "status": "text not null",  # open | in_progress | done | wont_fix | closed
        "note": "text",
        "updated_by": "text",
        "updated_at": "text not null",
        "closed_run_id": "text",
    },
    person_columns=("golden_id",),
)


def t(table: str) -> str:
    return f"{SCHEMA}.{table}"


def connect_store(settings: Settings) -> Store:
    ensure_store(settings)
    return open_store(settings)


def rows(store: Store, sql: str, params: Sequence[Any] = (), columns: Sequence[str] = ()) -> list[dict[str, Any]]:
    """``sql``'s rows as dicts keyed by ``columns`` (the select list, in order)."""
    return [dict(zip(columns, r, strict=True)) for r in store.query(sql, list(params))]


def add_action(store: Store, kind: str, actor: str, status: str = "pending", **fields: Any) -> str:
    """Record a console action (pending the next run, or ``logged`` when nothing is left to apply)."""
    action_id = uuid.uuid4().hex
    detail = fields.pop("detail", None)
    row = {
        "action_id": action_id,
        "kind": kind,
        "actor": actor,
        "created_at": now(),
        "status": status,
        "detail": json.dumps(detail, ensure_ascii=False, default=str) if detail is not None else None,
        **fields,
    }
    cols = list(row)
    store.execute(
        f"insert into {t('console_actions')} ({', '.join(cols)}) values ({', '.join('?' * len(cols))})",
        [row[c] for c in cols],
    )
    return action_id


def actions(store: Store, where: str = "", params: Sequence[Any] = (), limit: int = 200) -> list[dict[str, Any]]:
    cols = list(ACTION_COLUMNS)
    found = rows(
        store,
        f"select {', '.join(cols)} from {t('console_actions')} {where} "
        f"order by created_at desc, action_id limit {int(limit)}",
        params,
        cols,
    )
    for r in found:
        r["detail"] = json.loads(r["detail"]) if r.get("detail") else {}
    return found


def pending_actions(store: Store, kinds: Sequence[str] | None = None) -> list[dict[str, Any]]:
    where, params = "where status = 'pending'", []
    if kinds:
        where += f" and kind in ({', '.join('?' * len(kinds))})"
        params = list(kinds)
    return sorted(actions(store, where, params, limit=100000), key=lambda r: (r["created_at"], r["action_id"]))


def mark_action(store: Store, action_id: str, status: str, run_id: str | None, outcome: str | None) -> None:
    store.execute(
        f"update {t('console_actions')} set status = ?, applied_at = ?, run_id = ?, outcome = ? where action_id = ?",
        [status, now(), run_id, outcome, action_id],
    )
