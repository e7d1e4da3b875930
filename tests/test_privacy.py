"""Consent, right to erasure and the audit log, on DuckDB and on a real PostgreSQL.

One generated landing zone per warehouse, built once per module (the daily pipeline in this
process, governance outputs included; the generated erasure requests are handled by its erasure
step). Then a second run brings an erasure request by mobile for one person (in another spelling
of the number), a request that matches nobody, a consent withdrawal and an e-mail change for
another person; a third run re-delivers the erased person's old CRM rows next to a new customer.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from customer_mdm.config import Settings
from customer_mdm.pipeline import run_inline
from customer_mdm.warehouse import Warehouse, connect
from mdm_devtools.generate import generate_landing

pytestmark = pytest.mark.slow

PEOPLE = 120
NOBODY = "13900000017"


@dataclass
class World:
    settings: Settings
    person: str  # the erased person (truth person_id)
    mobile: str  # E.164
    email: str
    records: list[str]  # source:source_id of the person
    control: str  # golden id of the person whose consent and e-mail change
    control_record: str
    other_golden: pd.DataFrame  # dim_customer before the erasure, other golden ids
    before: dict[str, int]  # mentions of the erased person before the erasure
    summaries: list[dict[str, Any]] = field(default_factory=list)
    audit_before: int = 0


# --------------------------------------------------------------------------- helpers
def _norm(text: str) -> str:
    return re.sub(r"[\s\-.()]", "", unicodedata.normalize("NFKC", text)).lower()


def _patterns(world_mobile: str, email: str, ids: list[str]) -> list[re.Pattern[str]]:
    national = world_mobile.removeprefix("+86")
    words = [national, *[i.split(":", 1)[1].lower() for i in ids]]
    pats = [re.compile(rf"(?<![0-9a-z]){re.escape(w)}(?![0-9a-z])") for w in words]
    local = email.split("@", 1)[0].lower()
    pats.append(re.compile(rf"(?<![0-9a-z._%+]){re.escape(local)}@"))
    return pats


def mentions(wh: Warehouse, patterns: list[re.Pattern[str]]) -> dict[str, int]:
    """Rows of every table of every schema that mention one of the patterns (any text column)."""
    tables = wh.query(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema not in ('information_schema', 'pg_catalog', 'pg_toast') "
        "and table_schema not like 'pg_temp%' and table_type = 'BASE TABLE'"
    )
    found: dict[str, int] = {}
    for schema, name in tables:
        frame = wh.query_df(f'select * from "{schema}"."{name}"')
        if frame.empty:
            continue
        cells = frame.apply(lambda col: col.map(lambda v: "" if v is None else _norm(str(v))))
        text = cells.agg("|".join, axis=1)  # a separator _norm keeps: no match across two cells
        hits = text.map(lambda t: any(p.search(t) for p in patterns))
        if hits.any():
            found[f"{schema}.{name}"] = int(hits.sum())
    return found


def _truth(landing: Path) -> pd.DataFrame:
    return pd.read_csv(landing / "_truth" / "truth.csv", dtype=str)


def _people(landing: Path) -> pd.DataFrame:
    return pd.read_csv(landing / "_truth" / "people.csv", dtype=str)


def _pick_person(wh: Warehouse, landing: Path) -> tuple[str, str, str, list[str]]:
    """A person linked from at least two records whose mobile and e-mail no other person's record carries."""
    truth = _truth(landing)
    people = _people(landing).set_index("person_id")
    recs = wh.query_df(
        "select source || ':' || source_id as record_id, phone_e164, email from intermediate.int_customer_records"
    )
    truth["record_id"] = truth["source"] + ":" + truth["source_id"]
    recs = recs.merge(truth[["record_id", "person_id"]], on="record_id")
    erased = set(wh.query_df("select record_id from mdm.xref")["record_id"])
    for person_id, group in recs.groupby("person_id"):
        if len(group) < 2 or not group["record_id"].str.startswith("crm:").any():
            continue
        mobile, email = people.loc[person_id, "mobile"], people.loc[person_id, "email"]
        if not isinstance(email, str) or not group["record_id"].isin(erased).all():
            continue
        others = recs[recs["person_id"] != person_id]
        if mobile not in set(group["phone_e164"]) or mobile in set(others["phone_e164"]):
            continue
        if email.lower() in set(others["email"].dropna()):
            continue
        ids = truth.loc[truth["person_id"] == person_id, "record_id"].tolist()
        return str(person_id), mobile, email, ids
    raise AssertionError("no suitable person in the generated data")


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _read_csv_any(path: Path) -> list[dict[str, str]]:
    for enc in ("utf-8-sig", "gb18030"):
        try:
            with path.open(encoding=enc, newline="") as fh:
                return list(csv.DictReader(fh))
        except UnicodeDecodeError:
            continue
    raise AssertionError(f"cannot decode {path}")


def _open(world: World) -> Warehouse:
    return connect(world.settings)


# --------------------------------------------------------------------------- the world
@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp(f"privacy_{request.param}")
    landing = tmp / "landing"
    generate_landing(landing, PEOPLE, seed=23, days=2)
    db_name = None
    if request.param == "postgres":
        server = request.getfixturevalue("pg_server")
        db_name = f"t_privacy_{tmp.name[-12:].replace('-', '_')}"
        dsn = server.create_database(db_name)
        settings = Settings.from_env(env={}, home=tmp / "home", landing=landing, target="postgres", pg_dsn=dsn)
    else:
        settings = Settings.from_env(env={}, home=tmp / "home", landing=landing)
    first = run_inline(settings, governance=True)
    yield make_world(settings, first)
    if db_name is not None:
        request.getfixturevalue("pg_server").drop_database(db_name)


def make_world(settings: Settings, first: dict[str, Any]) -> World:
    """After the first run: pick the people, deliver runs 2 and 3, run them."""
    landing = settings.landing
    with connect(settings) as wh:
        person, mobile, email, records = _pick_person(wh, landing)
        pats = _patterns(mobile, email, records)
        before = mentions(wh, pats)
        # a control person: a CRM record of another golden id, consent granted or unknown
        control_rec, control = wh.query(
            "select x.record_id, x.golden_id from mdm.xref as x join marts.dim_customer as d on d.golden_id = x.golden_id "
            "where x.source = 'crm' and d.consent_marketing <> 'withdrawn' and x.record_id not in ("
            + ", ".join(f"'{r}'" for r in records)
            + ") order by x.record_id limit 1"
        )[0]
        dim = wh.query_df("select * from marts.dim_customer")
        audit_before = int(wh.scalar("select count(*) from audit.golden_changes"))
    other = dim[dim["golden_id"] != control].sort_values("golden_id").reset_index(drop=True)

    # run 2: an erasure by mobile (another spelling), one matching nobody; the control withdraws
    # consent (self-service, newer than anything) and changes e-mail
    national = mobile.removeprefix("+86")
    spelled = f"+86 {national[:3]} {national[3:7]} {national[7:]}"
    _write(
        landing / "erasure" / "erasure_2026-12-01.csv",
        ["request_id", "identifier_type", "identifier_value", "requested_at"],
        [["ERT-1", "mobile", spelled, "2026-11-30 10:00:00"], ["ERT-2", "mobile", NOBODY, "2026-11-30 10:05:00"]],
    )
    src, sid = control_rec.split(":", 1)
    changes = [
        {
            "event_id": "SST-1",
            "source_system": src,
            "source_id": sid,
            "field": "consent_marketing",
            "new_value": "否",
            "submitted_at": "2026-11-30T09:00:00+08:00",
        },
        {
            "event_id": "SST-2",
            "source_system": src,
            "source_id": sid,
            "field": "email",
            "new_value": "control.person@example.cn",
            "submitted_at": "2026-11-30T09:00:00+08:00",
        },
    ]
    (landing / "self_service" / "changes_20261201.jsonl").write_text(
        "\n".join(json.dumps(c, ensure_ascii=False) for c in changes) + "\n", encoding="utf-8"
    )
    second = run_inline(settings, governance=False)

    # run 3: the erased person's old CRM rows come back in a new export, with a new customer; an
    # older (delivered later) grant of the control's consent must not override the withdrawal
    rows: list[dict[str, str]] = []
    crm_ids = {r.split(":", 1)[1] for r in records if r.startswith("crm:")}
    for path in sorted((landing / "crm").glob("*.csv")):
        rows += [r for r in _read_csv_any(path) if r["crm_id"] in crm_ids]
    assert rows
    header = list(rows[0])
    new_person = dict.fromkeys(header, "")
    new_person.update(
        crm_id="C990001",
        name="欧阳新客",
        mobile="13311112222",
        email="new.customer@example.cn",
        updated_at="2026-11-30 12:00:00",
        created_at="2026-11-30 12:00:00",
        consent_marketing="是",
    )
    _write(
        landing / "crm" / "crm_2026-12-02.csv", header, [[r.get(h, "") for h in header] for r in [*rows, new_person]]
    )
    older_grant = {
        "event_id": "SST-3",
        "source_system": src,
        "source_id": sid,
        "field": "consent_marketing",
        "new_value": "是",
        "submitted_at": "2026-11-29T09:00:00+08:00",
    }
    (landing / "self_service" / "changes_20261202.jsonl").write_text(
        json.dumps(older_grant, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    third = run_inline(settings, governance=False)

    return World(
        settings,
        person,
        mobile,
        email,
        records,
        str(control),
        str(control_rec),
        other,
        before,
        [first, second, third],
        audit_before,
    )


# --------------------------------------------------------------------------- erasure
def test_erasure_by_mobile_removes_every_trace(world: World) -> None:
    assert sum(world.before.values()) > 0 and any(t.startswith("raw.") for t in world.before)
    assert any(t.startswith("marts.") for t in world.before) and any(t.startswith("governance.") for t in world.before)
    with _open(world) as wh:
        after = mentions(wh, _patterns(world.mobile, world.email, world.records))
        linked = set(wh.query_df("select record_id from mdm.xref")["record_id"])
    assert after == {}, f"the erased person is still in {after}"
    assert not set(world.records) & linked


def test_erasure_request_recorded_tombstoned_and_audited(world: World) -> None:
    step = world.summaries[1]["steps"]["erasure"]
    requests = {r["request_id"]: r for r in step["requests"]}
    assert requests["ERT-1"]["status"] == "erased" and requests["ERT-1"]["records"] >= 2
    deleted = requests["ERT-1"]["rows_deleted"]
    for table in (
        "raw.crm",
        "staging.stg_crm__customers",
        "intermediate.int_customer_records",
        "mdm.xref",
        "marts.dim_customer",
        "golden_build.dim_customer",
    ):
        assert deleted.get(table, 0) >= 1, table
    assert requests["ERT-2"]["status"] == "not_found" and requests["ERT-2"]["records"] == 0
    with _open(world) as wh:
        done = dict(wh.query("select request_id, status from ops.erasure_requests"))
        stones = wh.query_df("select * from ops.erasure_tombstones")
        audit = wh.query_df("select * from audit.golden_changes where action = 'erasure'")
    assert done["ERT-1"] == "erased" and done["ERT-2"] == "not_found"
    # every request of the generated landing zone was handled by the first run
    generated = {r["request_id"] for r in world.summaries[0]["steps"]["erasure"]["requests"]}
    assert generated and generated <= set(done)
    from customer_mdm.privacy import pseudonym

    mine = stones[stones["request_id"] == "ERT-1"]
    assert pseudonym(world.settings, "phone", world.mobile) in set(mine["identifier_sha256"])
    assert {pseudonym(world.settings, "record", r) for r in world.records} <= set(mine["identifier_sha256"])
    assert set(mine["identifier_kind"]) >= {"request", "record"} and mine["identifier_sha256"].is_unique
    nobody = stones[stones["request_id"] == "ERT-2"]
    assert list(nobody["identifier_kind"]) == ["request"]
    assert nobody["identifier_sha256"].iloc[0] == pseudonym(world.settings, "phone", "+86" + NOBODY)
    # no identifier in clear in the tombstones
    assert not stones.astype(str).apply(lambda c: c.str.contains(world.mobile.removeprefix("+86"))).any().any()
    ert1 = audit[audit["actor"] == "ERT-1"]
    assert len(ert1) >= 1 and set(ert1["actor_kind"]) == {"erasure"} and ert1["golden_id"].notna().all()
    assert json.loads(ert1["new_value"].iloc[0])["rows_deleted"]["mdm.xref"] >= 2
    assert (audit[audit["actor"] == "ERT-2"]["reason"].str.contains("no record matches")).all()


def test_old_export_does_not_bring_the_person_back(world: World) -> None:
    third = world.summaries[2]
    assert third["status"] == "success"
    matches = third["steps"]["erasure"]["tombstone_matches"]
    assert matches.get("records", 0) >= 1
    assert third["steps"]["erasure"]["tombstone_rows_deleted"].get("raw.crm", 0) >= 1
    with _open(world) as wh:
        assert wh.scalar("select count(*) from marts.dim_customer where email = 'new.customer@example.cn'") == 1
        assert wh.scalar("select count(*) from raw.crm where crm_id = 'C990001'") == 1


def test_other_people_untouched(world: World) -> None:
    with _open(world) as wh:
        dim = wh.query_df("select * from marts.dim_customer")
    erased_golden = set(world.other_golden["golden_id"]) - set(dim["golden_id"])
    assert len(erased_golden) == 1  # only the erased person's golden id left
    kept = world.other_golden[~world.other_golden["golden_id"].isin(erased_golden)].reset_index(drop=True)
    now = dim[dim["golden_id"].isin(kept["golden_id"])].sort_values("golden_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(now[kept.columns], kept, check_dtype=False)


# --------------------------------------------------------------------------- consent
def test_consent_latest_statement_wins_and_audience(world: World) -> None:
    with _open(world) as wh:
        dim = wh.query_df(
            "select golden_id, consent_marketing, consent_marketing_source, consent_marketing_at from marts.dim_customer"
        )
        audience = (
            wh.query_df("select * from marts.marketing_audience")
            if wh.table_exists("marts.marketing_audience")
            else None
        )
    assert set(dim["consent_marketing"]) <= {"granted", "withdrawn", "unknown"}
    assert {"granted", "withdrawn", "unknown"} <= set(dim["consent_marketing"])
    assert dim.loc[dim["consent_marketing"] == "unknown", "consent_marketing_source"].isna().all()
    assert dim.loc[dim["consent_marketing"] != "unknown", "consent_marketing_at"].notna().all()
    control = dim.set_index("golden_id").loc[world.control]
    # the self-service withdrawal is the latest statement; the CRM's older grant (run 3) does not override it
    assert control["consent_marketing"] == "withdrawn" and control["consent_marketing_source"] == "self_service"
    assert audience is not None
    granted = set(dim.loc[dim["consent_marketing"] == "granted", "golden_id"])
    assert len(audience) > 0 and set(audience["golden_id"]) <= granted
    assert world.control not in set(audience["golden_id"])


# --------------------------------------------------------------------------- audit log
def test_audit_log(world: World) -> None:
    from customer_mdm.audit import list_changes
    from customer_mdm.linkage.step import record_decision
    from customer_mdm.privacy import pseudonym

    with _open(world) as wh:
        audit = wh.query_df("select * from audit.golden_changes")
        pair = wh.query("select record_id_l, record_id_r from mdm.review_queue order by 1, 2 limit 1")
        if not pair:
            pair = wh.query("select min(record_id), max(record_id) from mdm.xref")
    assert {"new", "survivorship_change", "erasure"} <= set(audit["action"])
    assert audit["changed_at"].notna().all() and audit["actor"].notna().all() and audit["reason"].notna().all()
    first_run = world.summaries[0]["run_id"]
    new = audit[(audit["action"] == "new") & (audit["actor"] == first_run)]
    assert len(new) == world.summaries[0]["steps"]["link"]["golden_ids"]  # the first run created every id
    assert new["new_value"].map(lambda v: json.loads(v)["records"] >= 1).all()
    # the control's e-mail changed at the second run's publication: value pseudonymised, source named
    change = audit[
        (audit["action"] == "survivorship_change") & (audit["golden_id"] == world.control) & (audit["field"] == "email")
    ]
    assert len(change) == 1
    new_value = json.loads(change["new_value"].iloc[0])
    old_value = json.loads(change["old_value"].iloc[0])
    assert new_value["record_source"] == world.control_record.split(":")[0]
    assert "value_sha256" in new_value and "value" not in new_value
    assert new_value["value_sha256"] != old_value["value_sha256"]
    assert new_value["record"] == pseudonym(world.settings, "record", world.control_record)
    assert "control.person@example.cn" not in audit.to_csv()
    consent = audit[
        (audit["action"] == "survivorship_change")
        & (audit["golden_id"] == world.control)
        & (audit["field"] == "consent_marketing")
    ]
    consent_value = json.loads(consent["new_value"].iloc[0])
    assert consent_value["value"] == "withdrawn" and consent_value["statement_source"] == "self_service"
    # a steward decision
    record_decision(world.settings, pair[0][0], pair[0][1], "no_match", "steward.li", "different people")
    with _open(world) as wh:
        steward = list_changes(world.settings, wh, action="steward_decision")
        by_record = list_changes(world.settings, wh, record=pair[0][0])
    # the actor is the authenticated principal (PostgreSQL login, OS user on DuckDB); --by is a note
    assert (
        len(steward) >= 1
        and set(steward["actor"]) == set(steward["principal"])
        and "steward.li" not in set(steward["actor"])
    )
    assert steward["reason"].str.contains("noted as: steward.li").all()
    assert (by_record["action"] == "steward_decision").any()


def test_audit_log_is_append_only_on_postgres(world: World) -> None:
    if world.settings.target != "postgres":
        pytest.skip("the append-only trigger is PostgreSQL's")
    import psycopg

    for sql in (
        "update audit.golden_changes set reason = 'x'",
        "delete from audit.golden_changes",
        "truncate audit.golden_changes",
    ):
        with connect(world.settings) as wh, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            wh.execute(sql)
    with connect(world.settings) as wh:
        assert wh.scalar("select count(*) from audit.golden_changes") > world.audit_before


def test_audit_cli(world: World) -> None:
    from click.testing import CliRunner

    from customer_mdm.cli import main

    env = {
        "MDM_HOME": str(world.settings.home),
        "MDM_TARGET": world.settings.target,
        "MDM_PG_DSN": world.settings.pg_dsn or "",
    }
    result = CliRunner().invoke(main, ["audit", "--golden-id", world.control], env=env)
    assert result.exit_code == 0, result.output
    assert "survivorship_change" in result.output and world.control in result.output
    result = CliRunner().invoke(main, ["audit", "--since", "2000-01-01", "--action", "erasure", "--json"], env=env)
    assert result.exit_code == 0 and "ERT-1" in result.output
    result = CliRunner().invoke(main, ["erasures"], env=env)
    assert result.exit_code == 0 and "ERT-2" in result.output and "not_found" in result.output


def test_apply_tombstones_after_a_restore(world: World) -> None:
    """A backup from before the erasure is restored: apply_tombstones removes the person again."""
    from customer_mdm.privacy import apply_tombstones

    with _open(world) as wh:
        row = wh.query_df("select * from raw.crm where crm_id = 'C990001'")
        erased_crm = next(r.split(":", 1)[1] for r in world.records if r.startswith("crm:"))
        row["crm_id"] = erased_crm  # stands for the restored old row of the erased person
        wh.insert_df("raw.crm", row)
        assert wh.scalar("select count(*) from raw.crm where crm_id = ?", [erased_crm]) == 1
    result = apply_tombstones(world.settings)
    assert result["matched"].get("raw.crm") == 1 and result["rows_deleted"].get("raw.crm") == 1
    with _open(world) as wh:
        assert wh.scalar("select count(*) from raw.crm where crm_id = ?", [erased_crm]) == 0
        assert wh.scalar("select count(*) from raw.crm where crm_id = 'C990001'") == 1
