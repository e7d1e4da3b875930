"""The audit log records the authenticated principal, never the free text a caller passes, and
rejects rows whose action does not go with the actor kind; on both warehouses. (What each
PostgreSQL role may do to the log: tests/security/test_roles.py.)"""

from __future__ import annotations

from datetime import datetime

import pytest

from customer_mdm.audit import (
    AUDIT_OWNER,
    append,
    ensure_audit_table,
    os_principal,
    pg_installed,
    record_steward_decision,
)
from customer_mdm.config import Settings
from customer_mdm.warehouse import connect


def test_a_steward_row_records_the_login_not_the_by_text(settings: Settings):
    with connect(settings) as wh:
        ensure_audit_table(wh)
        record_steward_decision(
            settings, wh, "crm:C1", "crm:C2", "no_match", "the-boss", "different people", datetime(2026, 12, 1)
        )
        rows = wh.query("select actor, principal, reason from audit.golden_changes where action = 'steward_decision'")
        login = wh.scalar("select session_user") if settings.target == "postgres" else os_principal()
    # the note itself stays out of the append-only log (free text may quote a person)
    assert rows == [(login, login, "steward decision: no_match (note in mdm.steward_decisions) (noted as: the-boss)")]


def test_rows_whose_action_does_not_go_with_the_actor_kind_are_refused(settings: Settings):
    with connect(settings) as wh:
        ensure_audit_table(wh)
        with pytest.raises(ValueError, match="invalid audit row"):
            append(wh, [{"actor": "x", "actor_kind": "steward", "action": "merge", "golden_id": "G1"}])
        with pytest.raises(ValueError, match="unknown audit action"):
            append(wh, [{"actor": "x", "actor_kind": "run", "action": "rewrite_history"}])
        assert append(wh, [{"actor": "run-1", "actor_kind": "run", "action": "new", "golden_id": "G1"}]) == 1
        assert wh.scalar("select count(*) from audit.golden_changes") == 1
        principal = wh.scalar("select principal from audit.golden_changes")
    assert principal and principal != "run-1"


@pytest.mark.postgres
def test_an_audit_log_the_pipeline_owned_is_handed_to_the_owner_role(pg_dsn: str, tmp_path):
    settings = Settings.from_env(env={}, home=tmp_path / "home", landing=tmp_path, target="postgres", pg_dsn=pg_dsn)
    with connect(settings) as wh:  # the layout before: a plain table, owned by whoever built it
        wh.execute("create schema audit")
        wh.execute("create table audit.golden_changes (changed_at timestamp, actor text, actor_kind text, action text)")
        wh.execute("insert into audit.golden_changes (actor, actor_kind, action) values ('old-run', 'run', 'new')")
        assert not pg_installed(wh)
        ensure_audit_table(wh)
        assert pg_installed(wh)
        assert wh.scalar("select tableowner from pg_tables where schemaname = 'audit'") == AUDIT_OWNER
        assert wh.scalar("select count(*) from audit.golden_changes") == 1  # nothing lost
