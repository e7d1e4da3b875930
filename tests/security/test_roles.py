"""Least privilege on a real PostgreSQL: log in as each role and prove what it can and cannot do.

One warehouse per module: an admin creates the roles with random passwords (`mdm roles apply
--admin-dsn`), then the daily pipeline runs *as mdm_pipeline* (production's shape: no superuser)
on a small generated landing zone. The last test runs the pipeline again in full with a changed
golden table, so that dbt and the publish step recreate the tables, and checks every grant held.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from customer_mdm.audit import AUDIT_OWNER
from customer_mdm.config import Settings
from customer_mdm.linkage.step import record_decision
from customer_mdm.pipeline import (
    dbt_build_step,
    dbt_governance_step,
    new_run_id,
    publish_step,
    run_inline,
    scorecard_step,
    start_run,
)
from customer_mdm.security import API_ROLE, BI_ROLE, PASSWORD_ENV, PIPELINE_ROLE, ROLES, STEWARD_ROLE, apply
from mdm_devtools.generate import generate_landing
from mdm_devtools.pgserver import LocalPostgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PEOPLE = 120


@dataclass
class Warehouse:
    admin_dsn: str
    dsn: dict[str, str]
    settings: dict[str, Settings]  # per role: the platform's settings with that role's DSN


@pytest.fixture(scope="module")
def wh(pg_server: LocalPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    name = f"t_security_{uuid.uuid4().hex[:10]}"
    admin_dsn = pg_server.create_database(name)
    passwords = {role: secrets.token_urlsafe(18) for role in ROLES}  # generated at runtime, never stored
    dsn = {role: pg_server.dsn(name, user=role, password=passwords[role]) for role in ROLES}
    base = tmp_path_factory.mktemp("security")
    landing = base / "landing"
    generate_landing(landing, PEOPLE, seed=7, days=2)
    settings = {
        role: Settings.from_env(env={}, home=base / "home", landing=landing, target="postgres", pg_dsn=dsn[role])
        for role in ROLES
    }
    try:
        summary = apply(
            settings[PIPELINE_ROLE], admin_dsn=admin_dsn, env={PASSWORD_ENV[r]: p for r, p in passwords.items()}
        )
        assert summary["warnings"] == [] and summary["connected_as"] == PIPELINE_ROLE
        run_inline(settings[PIPELINE_ROLE], governance=False)  # the daily pipeline, as mdm_pipeline
        yield Warehouse(admin_dsn, dsn, settings)
    finally:
        if pg_server.is_running():
            pg_server.drop_database(name)


def as_role(wh: Warehouse, role: str | None) -> psycopg.Connection[Any]:
    return psycopg.connect(wh.dsn[role] if role else wh.admin_dsn, autocommit=True)


def fetch(wh: Warehouse, role: str | None, sql: str) -> list[tuple[Any, ...]]:
    with as_role(wh, role) as con:
        return con.execute(sql).fetchall()  # type: ignore[arg-type]


def denied(wh: Warehouse, role: str, sql: str) -> bool:
    with as_role(wh, role) as con:
        try:
            con.execute(sql)  # type: ignore[arg-type]
        except psycopg.errors.InsufficientPrivilege:
            return True
    return False


PERSONAL_TABLES = [
    "marts.dim_customer",
    "marts.customer_xref",
    "marts.fct_orders",
    "mdm.xref",
    "mdm.review_queue",
    "mdm.steward_decisions",
    "intermediate.int_customer_records",
]
GOVERNANCE_TABLES = ["governance.consistency_report", "governance.customer_segments", "governance.scorecard_history"]
PIPELINE_ONLY_TABLES = [
    "raw.crm",
    "raw.ecommerce_members",
    "staging.stg_crm__customers",
    "std.phone_lookup",
    "ops.runs",
]
BI_VIEWS = ["bi.dim_customer", "bi.customer_xref", "bi.fct_orders"]
GOVERNANCE_VIEWS = ["bi.customer_segments", "bi.scorecard_latest"]


def test_each_role_logs_in_with_its_own_password_and_no_special_power(wh: Warehouse):
    for role in ROLES:
        assert fetch(wh, role, "select current_user") == [(role,)]
    attributes = fetch(
        wh,
        None,
        "select rolname, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolcanlogin from pg_roles "
        "where rolname in ('mdm_pipeline', 'mdm_steward', 'bi_reader', 'mdm_api') order by rolname",
    )
    assert attributes == [(r, False, False, False, False, True) for r in sorted(ROLES)]
    wrong = wh.dsn[BI_ROLE].replace(":" + wh.dsn[BI_ROLE].split(":")[2].split("@")[0] + "@", ":wrong@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong).close()


def test_the_pipeline_owns_what_it_built_and_can_write(wh: Warehouse):
    owners = fetch(
        wh,
        None,
        "select distinct pg_get_userbyid(c.relowner) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname in ('raw', 'ops', 'staging', 'intermediate', 'marts', 'golden_build', 'mdm', 'governance', "
        "'bi') and c.relkind in ('r', 'v', 'm')",
    )
    assert owners == [(PIPELINE_ROLE,)]
    with as_role(wh, PIPELINE_ROLE) as con, con.transaction(force_rollback=True):
        con.execute("insert into marts.dim_customer (golden_id) values ('G-test')")
        con.execute("delete from raw.crm")
        con.execute("create table governance.pipeline_probe (x int)")
        con.execute("drop table marts.customer_xref cascade")


def test_bi_reader_reads_only_masked_views(wh: Warehouse):
    for view in BI_VIEWS:
        fetch(wh, BI_ROLE, f"select * from {view} limit 1")
    truth = {
        g: (phone, email, birth, street)
        for g, phone, email, birth, street in fetch(
            wh, None, "select golden_id, phone, email, birth_date, street from marts.dim_customer"
        )
    }
    masked = fetch(
        wh, BI_ROLE, "select golden_id, phone_masked, email_masked, birth_decade, district from bi.dim_customer"
    )
    assert len(masked) == len(truth) >= PEOPLE * 0.8
    phones = emails = 0
    for golden_id, phone_masked, email_masked, decade, _ in masked:
        phone, email, birth, _street = truth[golden_id]
        if phone and len(phone) >= 11:
            assert phone_masked == phone[:6] + "****" + phone[-4:]
            assert re.fullmatch(r"\+86\d{3}\*{4}\d{4}", phone_masked)
            phones += 1
        if email and "@" in email[1:]:
            assert email_masked == email[0] + "***" + email[email.index("@") :]
            emails += 1
        assert decade == (birth.year // 10 * 10 if birth else None)
    assert phones > PEOPLE / 2 and emails > PEOPLE / 3
    columns = {
        c for (c,) in fetch(wh, BI_ROLE, "select column_name from information_schema.columns where table_schema = 'bi'")
    }
    assert not columns & {"phone", "email", "birth_date", "street", "name", "name_pinyin", "member_id"}

    for table in PERSONAL_TABLES + PIPELINE_ONLY_TABLES:
        assert denied(wh, BI_ROLE, f"select 1 from {table} limit 1"), table
    for statement in (
        "create table bi.mine (x int)",
        "create schema mine",
        "delete from bi.dim_customer",
        "drop view bi.dim_customer",
        "insert into mdm.steward_decisions (record_id_l) values ('x')",
    ):
        assert denied(wh, BI_ROLE, statement), statement


def test_steward_reads_personal_data_and_records_decisions_only(wh: Warehouse):
    for table in PERSONAL_TABLES + BI_VIEWS:
        fetch(wh, STEWARD_ROLE, f"select * from {table} limit 1")
    left, right = (r for (r,) in fetch(wh, None, "select record_id from mdm.link_state order by record_id limit 2"))
    before = fetch(wh, None, "select count(*) from mdm.steward_decisions")[0][0]
    record_decision(wh.settings[STEWARD_ROLE], left, right, "no_match", "steward-test", "not the same person")
    assert fetch(wh, None, "select count(*) from mdm.steward_decisions")[0][0] == before + 1
    # who decided is the authenticated login, not the free text (only a display note)
    assert fetch(wh, STEWARD_ROLE, "select decided_by, note from mdm.steward_decisions") == [
        (STEWARD_ROLE, "not the same person (noted as: steward-test)")
    ]
    assert fetch(
        wh, STEWARD_ROLE, "select distinct actor, principal from audit.golden_changes where action = 'steward_decision'"
    ) == [(STEWARD_ROLE, STEWARD_ROLE)]

    for table in PIPELINE_ONLY_TABLES:
        assert denied(wh, STEWARD_ROLE, f"select 1 from {table} limit 1"), table
    for statement in (
        "insert into marts.dim_customer (golden_id) values ('G-x')",
        "update marts.dim_customer set phone = null",
        "delete from marts.customer_xref",
        "truncate marts.dim_customer",
        "drop table marts.dim_customer",
        "alter table marts.dim_customer add column note text",
        "create table marts.mine (x int)",
        "update mdm.steward_decisions set decision = 'match'",
        "delete from mdm.steward_decisions",
        "insert into mdm.xref (record_id) values ('x')",
        "update mdm.review_queue set match_probability = 1",
        "create schema mine",
    ):
        assert denied(wh, STEWARD_ROLE, statement), statement


def test_api_reads_serving_and_writes_only_the_hub_store(wh: Warehouse):
    # the hub server (mdm serve) connects as mdm_api: the serving tables the publish step rebuilt,
    # and the hub store, nothing else
    from customer_mdm.hub.store import ensure_store, open_store

    assert fetch(wh, API_ROLE, "select count(*) from serving.golden_customer")[0][0] > 0
    assert fetch(wh, API_ROLE, "select count(*) from serving.source_records")[0][0] > 0
    ensure_store(wh.settings[API_ROLE])  # the server's start: the tables exist, nothing to create
    with open_store(wh.settings[API_ROLE]) as store:
        store.execute(
            "insert into hub.access_log (at, principal, action, route, status) values ('t', 'token:x', 'read', '/', 200)"
        )
        assert store.execute("update hub.access_log set status = 404 where principal = 'token:x'") == 1
        assert store.execute("delete from hub.access_log where principal = 'token:x'") == 1
    for table in PERSONAL_TABLES + PIPELINE_ONLY_TABLES + BI_VIEWS + GOVERNANCE_TABLES:
        assert denied(wh, API_ROLE, f"select 1 from {table} limit 1"), table
    for statement in (
        "insert into serving.golden_customer (golden_id) values ('G-x')",
        "delete from serving.customer_xref",
        "drop table serving.golden_customer",
        "create table serving.mine (x int)",
        "create table hub.mine (x int)",
        "drop table hub.access_log",
        "create schema mine",
    ):
        assert denied(wh, API_ROLE, statement), statement


def test_tables_created_later_are_covered_schema_wide(wh: Warehouse):
    # e.g. a new mdm table and a new marts table, created by the pipeline after the roles were
    # applied: default privileges grant them at creation, no re-apply needed (the audit schema is
    # not the pipeline's: test_the_audit_log_is_append_only_for_every_role_but_its_nologin_owner)
    with as_role(wh, PIPELINE_ROLE) as con:
        con.execute("create table mdm.golden_changes_probe (golden_id text, what text)")
        con.execute("insert into mdm.golden_changes_probe values ('G1', 'merge')")
        con.execute("create table marts.new_mart_probe as select 1 as x")
    assert fetch(wh, STEWARD_ROLE, "select what from mdm.golden_changes_probe") == [("merge",)]
    assert fetch(wh, STEWARD_ROLE, "select x from marts.new_mart_probe") == [(1,)]
    assert denied(wh, STEWARD_ROLE, "insert into mdm.golden_changes_probe values ('G2', 'forged')")
    assert denied(wh, BI_ROLE, "select * from mdm.golden_changes_probe")
    assert denied(wh, BI_ROLE, "select * from marts.new_mart_probe")


def test_reapply_without_passwords_keeps_logins_and_reassigns_foreign_tables(wh: Warehouse):
    with as_role(wh, None) as con:  # a table some admin created by hand in a platform schema
        con.execute("create table marts.admin_made (x int)")
    summary = apply(wh.settings[PIPELINE_ROLE], admin_dsn=wh.admin_dsn, reassign=True, env={})
    assert "table marts.admin_made" in summary["reassigned"]
    assert fetch(wh, None, "select tableowner from pg_tables where tablename = 'admin_made'") == [(PIPELINE_ROLE,)]
    assert fetch(wh, STEWARD_ROLE, "select count(*) from marts.admin_made") == [(0,)]
    for role in ROLES:  # no password variable: logins unchanged
        assert fetch(wh, role, "select 1") == [(1,)]


def test_grants_survive_a_second_run_that_recreates_the_tables(wh: Warehouse):
    settings = wh.settings[PIPELINE_ROLE]
    with as_role(wh, PIPELINE_ROLE) as con:  # a column the build does not have: publish must swap the table
        con.execute("alter table marts.dim_customer add column legacy_note text")
    recreated = ["marts.dim_customer", "intermediate.int_customer_records", "marts.fct_orders"]
    oid_sql = "select " + ", ".join(f"'{t}'::regclass::oid" for t in recreated)
    before = fetch(wh, None, oid_sql)[0]

    # what a full rebuild does to the tables, without relinking: dbt rebuilds the intermediate and
    # marts tables from scratch (fct_orders' rebuild drops bi.fct_orders with it), publish swaps
    # dim_customer (its views are recreated); then the governance DAG's steps
    run_id = start_run(settings, new_run_id())
    dbt_build_step(settings, run_id, full=True)
    publish = publish_step(settings, run_id)
    dbt_governance_step(settings, run_id)
    scorecard_step(settings, run_id)

    after = fetch(wh, None, oid_sql)[0]
    assert all(b != a for b, a in zip(before, after, strict=True)), "every table was recreated"
    assert publish["tables"]["dim_customer"]["method"] == "swap"
    assert publish["security"]["warnings"] == []
    for view in BI_VIEWS + GOVERNANCE_VIEWS:
        assert fetch(wh, BI_ROLE, f"select count(*) from {view}")[0][0] > 0, view
    assert fetch(wh, API_ROLE, "select count(*) from serving.golden_customer")[0][0] > 0  # rebuilt, granted
    for table in PERSONAL_TABLES + GOVERNANCE_TABLES + GOVERNANCE_VIEWS:
        fetch(wh, STEWARD_ROLE, f"select * from {table} limit 1")
    for table in PERSONAL_TABLES + PIPELINE_ONLY_TABLES + GOVERNANCE_TABLES:
        assert denied(wh, BI_ROLE, f"select 1 from {table} limit 1"), table
    assert denied(wh, STEWARD_ROLE, "delete from marts.dim_customer")
    assert denied(wh, STEWARD_ROLE, "delete from governance.customer_segments")
    segments = fetch(wh, BI_ROLE, "select count(*) from bi.customer_segments")[0][0]
    assert segments == fetch(wh, None, "select count(*) from marts.dim_customer")[0][0]


def test_no_role_without_grants_sees_platform_data(wh: Warehouse, tmp_path: Path):
    # a login role the platform does not manage (e.g. an analyst created by a DBA) sees nothing
    name = f"outsider_{uuid.uuid4().hex[:6]}"
    password = secrets.token_urlsafe(12)
    with as_role(wh, None) as con:
        con.execute(f"create role {name} login password '{password}'")  # type: ignore[arg-type]
    try:
        dsn = wh.dsn[BI_ROLE].replace(f"{BI_ROLE}:", f"{name}:", 1)
        dsn = re.sub(r":[^:@/]+@", f":{password}@", dsn, count=1)
        with psycopg.connect(dsn, autocommit=True) as con:
            for table in ["bi.dim_customer", *PERSONAL_TABLES]:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    con.execute(f"select 1 from {table} limit 1")  # type: ignore[arg-type]
    finally:
        with as_role(wh, None) as con:
            con.execute(f"drop role {name}")  # type: ignore[arg-type]


def test_the_audit_log_is_append_only_for_every_role_but_its_nologin_owner(wh: Warehouse):
    owners = fetch(
        wh,
        None,
        "select (select pg_get_userbyid(nspowner) from pg_namespace where nspname = 'audit'), "
        "(select tableowner from pg_tables where schemaname = 'audit' and tablename = 'golden_changes'), "
        "(select pg_get_userbyid(proowner) from pg_proc where proname = 'append_changes' and prosecdef), "
        "(select rolcanlogin from pg_roles where rolname = 'mdm_audit_owner')",
    )
    assert owners == [(AUDIT_OWNER, AUDIT_OWNER, AUDIT_OWNER, False)]
    rows = fetch(
        wh, None, "select count(*), count(distinct principal) from audit.golden_changes where actor_kind = 'run'"
    )
    assert rows[0][0] > 0 and fetch(
        wh, None, "select distinct principal from audit.golden_changes where actor_kind = 'run'"
    ) == [(PIPELINE_ROLE,)]
    for role in (PIPELINE_ROLE, STEWARD_ROLE):
        for statement in (
            "insert into audit.golden_changes (actor, actor_kind, action) values ('someone', 'steward', 'steward_decision')",
            "update audit.golden_changes set reason = 'x'",
            "delete from audit.golden_changes",
            "truncate audit.golden_changes",
            "drop trigger golden_changes_append_only on audit.golden_changes",
            "alter table audit.golden_changes disable trigger all",
            "drop table audit.golden_changes",
            "create table audit.forged (x int)",
            "create or replace function audit.append_changes(changes jsonb) returns integer language sql as 'select 0'",
            "set role mdm_audit_owner",
        ):
            assert denied(wh, role, statement), (role, statement)
    forged_run = '[{"actor": "r1", "actor_kind": "run", "action": "merge", "golden_id": "G-x"}]'
    bad_kind = '[{"actor": "r1", "actor_kind": "steward", "action": "merge"}]'
    spoofed = '[{"actor": "the-boss", "actor_kind": "steward", "action": "steward_decision", "golden_id": "G-y"}]'
    with as_role(wh, STEWARD_ROLE) as con:
        for payload in (forged_run, bad_kind):
            with pytest.raises(psycopg.errors.RaiseException):
                con.execute("select audit.append_changes(%s::jsonb)", [payload])
        con.execute("select audit.append_changes(%s::jsonb)", [spoofed])
    assert fetch(wh, None, "select actor, principal from audit.golden_changes where golden_id = 'G-y'") == [
        (STEWARD_ROLE, STEWARD_ROLE)
    ]
