"""The hub API contract against ``mdm serve`` as a real process, on DuckDB and on PostgreSQL.

One warehouse per target and module: a small generated landing zone through the daily pipeline
(governance included, for the freshness policy). The server runs with two workers (answers must
not depend on the process) and, on PostgreSQL, as the least-privilege role ``mdm_api``.
"""

from __future__ import annotations

import csv
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from hubtools import Server, error_of, mdm

from customer_mdm.config import Settings
from customer_mdm.hub import serving
from customer_mdm.hub.auth import create_token, token_hash
from customer_mdm.hub.store import erase, open_store
from customer_mdm.pipeline import run_inline
from customer_mdm.security import API_ROLE, PASSWORD_ENV, apply
from customer_mdm.warehouse import connect
from mdm_devtools.generate import generate_landing

PEOPLE = 120


@dataclass
class Hub:
    settings: Settings
    server: Server
    tokens: dict[str, str]
    run_id: str
    person: dict[str, Any]  # a golden customer with a phone and an e-mail
    api_dsn: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp(f"hub_{request.param}")
    landing = base / "landing"
    generate_landing(landing, PEOPLE, seed=23, days=2)
    env: dict[str, str] = {"MDM_HUB_RATE_LIMIT": "1000"}
    api_dsn = None
    if request.param == "postgres":
        pg = request.getfixturevalue("pg_server")
        name = f"t_hub_{uuid.uuid4().hex[:10]}"
        dsn = pg.create_database(name)
        settings = Settings.from_env(env={}, home=base / "home", landing=landing, target="postgres", pg_dsn=dsn)
        password = secrets.token_urlsafe(18)
        apply(settings, env={PASSWORD_ENV[API_ROLE]: password})  # creates mdm_api (login) and its grants
        api_dsn = pg.dsn(name, user=API_ROLE, password=password)
        env["MDM_HUB_PG_DSN"] = api_dsn
    else:
        settings = Settings.from_env(env={}, home=base / "home", landing=landing)
    summary = run_inline(settings, governance=True)
    assert summary["status"] == "success", summary["status"]
    tokens = {
        "all": create_token(settings, "all-scopes", ["match", "read", "self_service", "privacy", "steward"]),
        "read": create_token(settings, "reader", ["read"]),
        "match": create_token(settings, "matcher", ["match"]),
    }
    with connect(settings) as wh:
        rows = wh.query_df(
            "select golden_id, phone, email, name from marts.dim_customer "
            "where phone like '+861%' and email is not null order by golden_id limit 1"
        )
    person = rows.iloc[0].to_dict()
    server = Server(settings, env=env, workers=2).start()
    try:
        yield Hub(settings, server, tokens, summary["run_id"], person, api_dsn)
    finally:
        server.stop()


def get(hub: Hub, path: str, who: str = "all", **params: Any) -> Any:
    with hub.server.client(hub.tokens.get(who, who)) as c:
        return c.get(path, params=params or None)


def post(hub: Hub, path: str, body: Any, who: str = "all") -> Any:
    with hub.server.client(hub.tokens.get(who, who)) as c:
        return c.post(path, json=body)


# ----------------------------------------------------------------------------- health, tokens
def test_health_names_the_published_run(hub: Hub) -> None:
    deadline = time.monotonic() + 120
    while True:  # the indexes are built in the background at start-up (hub.app.Warmer)
        r = get(hub, "/health", who="none")
        assert r.status_code == 200
        body = r.json()
        if body["ready"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    with connect(hub.settings) as wh:
        count = wh.scalar("select count(*) from marts.dim_customer")
    assert body == {"status": "ok", "golden_version": hub.run_id, "golden_customers": count, "ready": True}


def test_missing_bad_and_revoked_tokens_are_401_and_missing_scope_403(hub: Hub) -> None:
    gid = hub.person["golden_id"]
    with hub.server.client() as c:
        r = c.get(f"/v1/customers/{gid}")
    assert r.status_code == 401 and error_of(r)["code"] == "unauthorized"
    assert get(hub, f"/v1/customers/{gid}", who="mdm_not-a-token").status_code == 401
    r = get(hub, f"/v1/customers/{gid}", who="match")
    assert r.status_code == 403 and "read" in error_of(r)["message"]
    assert post(hub, "/v1/match", {"name": "x"}, who="read").status_code == 403
    temp = mdm(hub.settings, "api-token", "create", "--name", "short-lived", "--scopes", "read").strip()
    assert temp.startswith("mdm_")
    assert get(hub, f"/v1/customers/{gid}", who=temp).status_code == 200
    mdm(hub.settings, "api-token", "revoke", "short-lived")
    r = get(hub, f"/v1/customers/{gid}", who=temp)
    assert r.status_code == 401
    listing = mdm(hub.settings, "api-token", "list")
    assert "short-lived" in listing and "revoked" in listing and temp not in listing
    # only the hash is stored
    with open_store(hub.settings) as store:
        stored = [str(v) for row in store.query("select * from hub.api_tokens") for v in row]
    assert token_hash(temp) in stored and not any(temp in v for v in stored)


# ----------------------------------------------------------------------------- reads
def test_lookup_standardises_mobile_and_email_and_finds_source_records(hub: Hub) -> None:
    gid, phone, email = hub.person["golden_id"], hub.person["phone"], hub.person["email"]
    national = phone.removeprefix("+86")
    typed = f"{national[:3]}-{national[3:7]} {national[7:]}"
    assert gid in get(hub, "/v1/lookup", mobile=typed).json()["golden_ids"]
    assert gid in get(hub, "/v1/lookup", mobile=f"+86 {national}").json()["golden_ids"]
    assert gid in get(hub, "/v1/lookup", email=f"  {email.upper()} ").json()["golden_ids"]
    with connect(hub.settings) as wh:
        source, source_id = wh.query("select source, source_id from mdm.xref where golden_id = ? limit 1", [gid])[0]
    assert get(hub, "/v1/lookup", source=source, source_id=source_id).json() == {"golden_ids": [gid]}
    assert get(hub, "/v1/lookup", mobile="13900000017").json() == {"golden_ids": []}
    r = get(hub, "/v1/lookup", mobile="12345")
    assert r.status_code == 422 and error_of(r)["message"].startswith("mobile")
    assert "12345" not in r.text
    r = get(hub, "/v1/lookup", mobile=typed, email=email)
    assert r.status_code == 422
    r = get(hub, "/v1/lookup", source="nowhere", source_id="1")
    assert r.status_code == 422 and error_of(r)["message"].startswith("source")


def test_customer_has_provenance_per_attribute_and_unknown_is_404(hub: Hub) -> None:
    gid = hub.person["golden_id"]
    r = get(hub, f"/v1/customers/{gid}")
    assert r.status_code == 200
    body = r.json()
    assert body["current_golden_id"] == gid and body["golden_version"] == hub.run_id
    with connect(hub.settings) as wh:
        g = wh.query_df("select * from marts.dim_customer where golden_id = ?", [gid]).iloc[0]
        records = sorted(r[0] for r in wh.query("select record_id from mdm.xref where golden_id = ?", [gid]))
    assert body["source_records"] == records
    phone = body["attributes"]["phone"]
    assert phone["value"] == g["phone"] and phone["source_record"] == g["phone_source_record"]
    assert phone["source_record"] in records and phone["rule"].startswith("survivorship")
    assert body["attributes"]["email"]["source_record"] == g["email_source_record"]
    assert body["consent"]["marketing"]["status"] == g["consent_marketing"]
    assert body["contact_status"]["email"] == g["email_status"]
    r = get(hub, "/v1/customers/G_DOES_NOT_EXIST")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"


def test_due_follows_the_freshness_policy(hub: Hub) -> None:
    with connect(hub.settings) as wh:
        rows = wh.query(
            "select golden_id, field from governance.governance_field_freshness where not within_policy "
            "order by golden_id, field"
        )
    assert rows, "the generated data has fields due for re-verification"
    gid = rows[0][0]
    expected = sorted({"mobile" if f == "phone" else f for g, f in rows if g == gid})
    r = get(hub, f"/v1/customers/{gid}/due")
    assert r.status_code == 200
    fields = r.json()["fields"]
    assert sorted(f["field"] for f in fields) == expected
    assert all(f["due_since"] and f["reason"] for f in fields)
    assert get(hub, f"/v1/customers/{gid}/due", who="read").status_code == 403


def test_export_holds_everything_about_the_person_and_cli_agrees(hub: Hub, tmp_path: Path) -> None:
    with connect(hub.settings) as wh:
        gid, _member = wh.query(
            "select x.golden_id, x.source_id from mdm.xref as x join marts.fct_orders as o on o.member_id = x.source_id "
            "where x.source = 'ecommerce' limit 1"
        )[0]
        n_orders = wh.scalar(
            "select count(*) from marts.fct_orders where member_id in "
            "(select source_id from mdm.xref where source = 'ecommerce' and golden_id = ?)",
            [gid],
        )
        n_records = wh.scalar("select count(*) from mdm.xref where golden_id = ?", [gid])
    r = get(hub, f"/v1/customers/{gid}/export")
    assert r.status_code == 200
    body = r.json()
    assert body["golden_record"]["golden_id"] == gid
    assert len(body["source_records"]) == n_records and len(body["orders"]) == n_orders > 0
    assert any(h["event"] == "create" for h in body["golden_id_history"])
    assert isinstance(body["consent_statements"], list)
    assert get(hub, f"/v1/customers/{gid}/export", who="read").status_code == 403
    out = tmp_path / "subject.json"
    mdm(hub.settings, "privacy", "export", gid, "--out", str(out))
    cli = json.loads(out.read_text())
    assert out.stat().st_mode & 0o777 == 0o600  # personal data: private
    assert cli["golden_record"] == body["golden_record"]
    assert len(cli["source_records"]) == n_records and len(cli["orders"]) == n_orders


def test_match_answers_the_contract(hub: Hub) -> None:
    r = post(hub, "/v1/match", {"mobile": hub.person["phone"], "name": hub.person["name"]}, who="match")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] in ("match", "possible_match", "no_match")
    assert body["candidates"] and body["candidates"][0]["golden_id"] == hub.person["golden_id"]
    r = post(hub, "/v1/match", {"province": "上海"}, who="match")
    assert r.status_code == 422 and error_of(r)["message"].startswith("name")


# ----------------------------------------------------------------------------- writes
def test_changes_are_idempotent_validated_and_conflicts_are_409(hub: Hub) -> None:
    gid = hub.person["golden_id"]
    path = f"/v1/customers/{gid}/changes"
    body = {"event_id": "web-1", "field": "email", "new_value": "new.address@example.com"}
    first = post(hub, path, body)
    assert first.status_code == 202 and first.json() == {"event_id": "web-1", "status": "accepted"}
    again = post(hub, path, body)
    assert again.status_code == 200 and again.json() == first.json()
    r = post(hub, path, {**body, "new_value": "other@example.com"})
    assert r.status_code == 409 and error_of(r)["code"] == "conflict"
    with open_store(hub.settings) as store:
        assert store.scalar("select count(*) from hub.self_service_changes where event_id = 'web-1'") == 1
    for bad, named in (
        ({"field": "email", "new_value": "x@example.com"}, "event_id"),
        ({"event_id": "web-2", "field": "shoe_size", "new_value": "42"}, "field"),
        ({"event_id": "web-3", "field": "mobile", "new_value": "98765"}, "new_value"),
        ({"event_id": "web-4", "field": "email", "new_value": "not-an-address"}, "new_value"),
        ({"event_id": "web-5", "field": "consent_marketing", "new_value": "maybe"}, "new_value"),
        ({"event_id": "web-6", "field": "city", "new_value": "上海", "colour": "red"}, "colour"),
        ({"event_id": "web-7", "field": "city", "new_value": "上海", "submitted_at": "yesterday"}, "submitted_at"),
    ):
        r = post(hub, path, bad)
        assert r.status_code == 422, (named, r.text)
        message = error_of(r)["message"]
        assert message.startswith(named), message
        assert "98765" not in message and "not-an-address" not in message
    r = post(hub, "/v1/customers/G_NOBODY/changes", {"event_id": "web-8", "field": "city", "new_value": "上海"})
    assert r.status_code == 404
    r = post(hub, path, {**body, "event_id": "web-9"}, who="read")
    assert r.status_code == 403


def test_erasure_requests_are_idempotent_and_validated(hub: Hub) -> None:
    body = {"request_id": "dsr-1", "identifier_type": "mobile", "identifier_value": "13900000017"}
    assert post(hub, "/v1/erasure-requests", body, who="read").status_code == 403
    first = post(hub, "/v1/erasure-requests", body)
    assert first.status_code == 202 and first.json() == {"request_id": "dsr-1", "status": "accepted"}
    assert post(hub, "/v1/erasure-requests", body).status_code == 200
    assert post(hub, "/v1/erasure-requests", {**body, "identifier_value": "13900000018"}).status_code == 409
    r = post(hub, "/v1/erasure-requests", {**body, "request_id": "dsr-2", "identifier_type": "passport"})
    assert r.status_code == 422 and error_of(r)["message"].startswith("identifier_type")
    r = post(hub, "/v1/erasure-requests", {**body, "request_id": "dsr-3", "identifier_value": "12"})
    assert r.status_code == 422 and error_of(r)["message"].startswith("identifier_value")


def test_body_over_the_limit_is_413_and_bad_json_400(hub: Hub) -> None:
    with hub.server.client(hub.tokens["all"]) as c:
        r = c.post(
            "/v1/match", content=b'{"name": "' + b"x" * 70_000 + b'"}', headers={"content-type": "application/json"}
        )
        assert r.status_code == 413 and error_of(r)["code"] == "body_too_large"
        r = c.post("/v1/match", content=b'{"name": ', headers={"content-type": "application/json"})
        assert r.status_code == 400 and error_of(r)["code"] == "bad_request"


def test_rate_limit_is_per_token(hub: Hub) -> None:
    server = Server(
        hub.settings,
        env={
            "MDM_HUB_RATE_LIMIT": "1",
            "MDM_HUB_RATE_BURST": "3",
            **({"MDM_HUB_PG_DSN": hub.api_dsn} if hub.api_dsn else {}),
        },
    ).start()
    try:
        with server.client(hub.tokens["read"]) as c:
            codes = [c.get("/v1/lookup", params={"mobile": "13900000017"}).status_code for _ in range(6)]
        assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
        with server.client(hub.tokens["read"]) as c:
            r = c.get("/v1/lookup", params={"mobile": "13900000017"})
        if r.status_code == 429:
            assert error_of(r)["code"] == "rate_limited" and r.headers["retry-after"]
        with server.client(hub.tokens["all"]) as c:  # another token has its own bucket
            assert c.get("/v1/lookup", params={"mobile": "13900000017"}).status_code == 200
    finally:
        server.stop()


# ----------------------------------------------------------------------------- audit, logs
def test_access_log_names_the_token_and_logs_hold_no_personal_values(hub: Hub) -> None:
    gid, phone, email = hub.person["golden_id"], hub.person["phone"], hub.person["email"]
    assert get(hub, f"/v1/customers/{gid}", who="read").status_code == 200
    get(hub, "/v1/lookup", who="read", mobile=phone)
    with open_store(hub.settings) as store:
        rows = store.query(
            "select principal, action, golden_id, route, status from hub.access_log where golden_id = ?", [gid]
        )
    assert ("token:reader", "read", gid, "/v1/customers/{golden_id}", 200) in rows
    assert ("token:reader", "lookup", gid, "/v1/lookup", 200) in rows
    log = hub.server.log_text()
    assert "/v1/customers/{golden_id}" in log
    national = phone.removeprefix("+86")
    for value in (national, email, email.split("@")[0], hub.person["name"], *hub.tokens.values()):
        assert value not in log


# ----------------------------------------------------------------------------- serving and erasure
def test_merged_id_answers_with_the_record_it_now_lives_in(hub: Hub) -> None:
    gid = hub.person["golden_id"]
    old = "G_MERGED_" + uuid.uuid4().hex[:8].upper()
    with connect(hub.settings) as wh:  # a merge as the link step records it
        wh.execute(
            "insert into mdm.golden_registry (golden_id, created_at, status, merged_into) "
            "values (?, current_timestamp, 'merged', ?)",
            [old, gid],
        )
    serving.refresh(hub.settings, hub.run_id)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = get(hub, f"/v1/customers/{old}")
        if r.status_code == 200:
            break
        time.sleep(0.2)
    assert r.status_code == 200, r.text
    assert r.json()["golden_id"] == old and r.json()["current_golden_id"] == gid
    assert get(hub, f"/v1/customers/{old}/due").json()["current_golden_id"] == gid


def test_erased_person_is_404_in_every_serving_file_and_gone_from_the_store(hub: Hub) -> None:
    with connect(hub.settings) as wh:
        gid, phone = wh.query(
            "select golden_id, phone from marts.dim_customer where golden_id <> ? and phone like '+861%' "
            "and phone in (select r.phone_e164 from intermediate.int_customer_records as r join mdm.xref as x "
            "on x.source = r.source and x.source_id = r.source_id group by r.phone_e164 "
            "having count(distinct x.golden_id) = 1) order by golden_id desc limit 1",
            [hub.person["golden_id"]],
        )[0]
    assert get(hub, f"/v1/customers/{gid}").status_code == 200  # leaves an access-log row
    for _ in range(4):  # the workers build their lookup index of this serving version
        assert get(hub, "/v1/lookup", mobile=phone).json()["golden_ids"] == [gid]
    removed = serving.scrub(hub.settings, [gid])
    assert removed["golden_customer"] == 1
    store_removed = erase(hub.settings, [gid])
    assert store_removed["access_log"] >= 1
    deadline = time.monotonic() + 10
    while get(hub, f"/v1/customers/{gid}").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.2)
    r = get(hub, f"/v1/customers/{gid}")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"
    assert get(hub, f"/v1/customers/{gid}/export").status_code == 404
    for _ in range(6):  # the scrub is a new serving version: no worker answers from its old index
        assert gid not in get(hub, "/v1/lookup", mobile=phone).json()["golden_ids"]
    with open_store(hub.settings) as store:
        assert store.scalar("select count(*) from hub.access_log where golden_id = ?", [gid]) == 0
    if hub.settings.target == "duckdb":
        files = list(serving.serving_dir(hub.settings).glob("*.duckdb"))
        assert len(files) == 1  # older snapshots (which held the person) are deleted
        assert phone.removeprefix("+86").encode() not in files[0].read_bytes()  # not even in freed blocks
        con = duckdb.connect(str(files[0]), read_only=True)
        try:
            tables = [
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.columns where table_schema = 'serving' "
                    "and column_name = 'golden_id'"
                ).fetchall()
            ]
            for table in tables:
                assert con.execute(f"select count(*) from serving.{table} where golden_id = ?", [gid]).fetchone() == (
                    0,
                )
        finally:
            con.close()
    else:
        with connect(hub.settings) as wh:
            assert wh.scalar("select count(*) from serving.golden_customer where golden_id = ?", [gid]) == 0


def test_reminders_respect_consent_and_the_interval(hub: Hub, tmp_path: Path) -> None:
    first, second = tmp_path / "r1.csv", tmp_path / "r2.csv"
    mdm(hub.settings, "export", "reminders", "--out", str(first))
    rows = list(csv.DictReader(first.open(encoding="utf-8")))
    with connect(hub.settings) as wh:
        granted = {
            r[0] for r in wh.query("select golden_id from marts.dim_customer where consent_marketing = 'granted'")
        }
        due = {
            r[0]
            for r in wh.query("select golden_id from governance.governance_field_freshness where not within_policy")
        }
    assert rows, "some consenting customers have fields due"
    assert {r["golden_id"] for r in rows} <= granted & due
    assert {r["channel"] for r in rows} <= {"email", "sms"}
    mdm(hub.settings, "export", "reminders", "--out", str(second))
    assert list(csv.DictReader(second.open(encoding="utf-8"))) == []  # never twice within the interval
    third = tmp_path / "r3.csv"
    mdm(hub.settings, "export", "reminders", "--out", str(third), env={"MDM_REMINDER_INTERVAL_DAYS": "0"})
    assert len(list(csv.DictReader(third.open(encoding="utf-8")))) == len(rows)


# ----------------------------------------------------------------------------- roles (PostgreSQL)
def test_mdm_api_reads_serving_and_writes_only_the_hub_store(hub: Hub) -> None:
    if hub.api_dsn is None:
        pytest.skip("roles exist on PostgreSQL only")
    with psycopg.connect(hub.api_dsn, autocommit=True) as con:
        assert con.execute("select count(*) from serving.golden_customer").fetchone()[0] > 0
        con.execute(
            "insert into hub.access_log (at, principal, action, route, status) "
            "values ('2026-01-01', 'token:t', 'read', '/x', 200)"
        )
        for statement in (
            "select count(*) from marts.dim_customer",
            "select count(*) from raw.crm",
            "select count(*) from mdm.xref",
            "delete from serving.golden_customer",
            "create table hub.sneaky (x int)",
            "create table serving.sneaky (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute(statement)
