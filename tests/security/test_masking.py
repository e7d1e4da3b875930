"""The masked BI views on both warehouses: exact masked values for every rule, the allow-list of
columns, and on DuckDB the BI export (`mdm export bi`) that is the masked view."""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from customer_mdm.cli import main
from customer_mdm.config import Settings
from customer_mdm.security import BI_VIEW_NAMES, apply, export_bi
from customer_mdm.warehouse import connect

DIM = {
    "golden_id": "text",
    "name": "text",
    "name_pinyin": "text",
    "name_source_record": "text",
    "gender": "text",
    "birth_date": "date",
    "phone": "text",
    "phone_status": "text",
    "email": "text",
    "email_status": "text",
    "province": "text",
    "city": "text",
    "district": "text",
    "street": "text",
    "company": "text",
    "customer_type": "text",
    "tier": "text",
    "consent_marketing": "boolean",
    "needs_new_contact": "boolean",
    "source_record_count": "bigint",
    "source_count": "bigint",
    "first_seen_at_utc": "timestamp",
    "last_updated_at_utc": "timestamp",
}
SEEN = datetime(2026, 1, 2, 3, 4, 5)


def person(golden_id: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = {c: None for c in DIM}
    row.update(golden_id=golden_id, customer_type="person", tier="regular", source_record_count=2, source_count=1)
    row.update(first_seen_at_utc=SEEN, last_updated_at_utc=SEEN)
    row.update(values)
    return row


PEOPLE = [
    person(
        "G1",
        name="王伟",
        name_pinyin="wang wei",
        name_source_record="crm:C1",
        gender="M",
        birth_date=date(1984, 5, 17),
        phone="+8613812345678",
        phone_status="verified",
        email="zhang.wei@example.com",
        email_status="verified",
        province="上海市",
        city="上海市",
        district="浦东新区",
        street="世纪大道100号",
        company="上海某某科技有限公司",
        consent_marketing=True,
        needs_new_contact=False,
    ),
    person(  # a landline, a company customer, no birth date
        "G2",
        name="Li Na",
        phone="+862112345678",
        email="a@b.cn",
        customer_type="company",
        company="北京某某贸易有限公司",
        province="北京市",
        city="北京市",
        district="朝阳区",
        street="建国路1号",
    ),
    person("G3", name="", phone="12345", email="not-an-email", birth_date=date(2001, 12, 31)),  # junk stays junk
    person("G4"),  # everything missing
]


def build_marts(settings: Settings) -> None:
    with connect(settings) as wh:
        wh.execute("create schema if not exists marts")
        wh.execute("drop table if exists marts.dim_customer")
        wh.execute(f"create table marts.dim_customer ({', '.join(f'{c} {t}' for c, t in DIM.items())})")
        wh.insert_df("marts.dim_customer", pd.DataFrame(PEOPLE)[list(DIM)])
        wh.execute("drop table if exists marts.customer_xref")
        wh.execute(
            "create table marts.customer_xref (record_id text, source text, source_id text, golden_id text, "
            "match_probability double precision, assignment text, assigned_at_utc timestamp, run_id text)"
        )
        wh.execute(
            "insert into marts.customer_xref values ('crm:C1', 'crm', 'C1', 'G1', 0.99, 'model', ?, 'r1')", [SEEN]
        )


def band(born: date) -> str:
    low = (date.today().year - born.year) // 10 * 10
    return f"{low}-{low + 9}"


EXPECTED = [
    {
        "golden_id": "G1",
        "name_masked": "王**",
        "gender": "M",
        "birth_decade": 1980,
        "age_band": band(date(1984, 5, 17)),
        "phone_masked": "+86138****5678",
        "phone_status": "verified",
        "email_masked": "z***@example.com",
        "email_status": "verified",
        "province": "上海市",
        "city": "上海市",
        "district": "浦东新区",
        "company": None,  # a person's employer is not shown
        "customer_type": "person",
        "tier": "regular",
        "consent_marketing": True,
        "needs_new_contact": False,
        "source_record_count": 2,
        "source_count": 1,
        "first_seen_at_utc": SEEN,
        "last_updated_at_utc": SEEN,
    },
    {
        "golden_id": "G2",
        "name_masked": "L**",
        "gender": None,
        "birth_decade": None,
        "age_band": None,
        "phone_masked": "+86211****5678",
        "phone_status": None,
        "email_masked": "a***@b.cn",
        "email_status": None,
        "province": "北京市",
        "city": "北京市",
        "district": "朝阳区",
        "company": "北京某某贸易有限公司",
        "customer_type": "company",
        "tier": "regular",
        "consent_marketing": None,
        "needs_new_contact": None,
        "source_record_count": 2,
        "source_count": 1,
        "first_seen_at_utc": SEEN,
        "last_updated_at_utc": SEEN,
    },
]


def rows(settings: Settings, sql: str) -> list[dict[str, object]]:
    with connect(settings) as wh:
        frame = wh.query_df(sql)
    return [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in frame.to_dict("records")]


def test_masked_dim_customer_on_both_warehouses(settings: Settings):
    build_marts(settings)
    summary = apply(settings, env={})

    assert summary["views"] == ["bi.dim_customer", "bi.customer_xref"]  # the others wait for their tables
    got = rows(settings, "select * from bi.dim_customer order by golden_id")
    for row in got:
        row["birth_decade"] = None if row["birth_decade"] is None else int(row["birth_decade"])  # type: ignore[call-overload]
        row["source_record_count"] = int(row["source_record_count"])  # type: ignore[call-overload]
        row["source_count"] = int(row["source_count"])  # type: ignore[call-overload]
    assert got[:2] == EXPECTED
    assert (got[2]["name_masked"], got[2]["phone_masked"], got[2]["email_masked"]) == (None, "****", "***")
    assert (got[2]["birth_decade"], got[2]["age_band"]) == (2000, band(date(2001, 12, 31)))
    assert {k for k, v in got[3].items() if v is not None} == {
        "golden_id",
        "customer_type",
        "tier",
        "source_record_count",
        "source_count",
        "first_seen_at_utc",
        "last_updated_at_utc",
    }
    # nothing identifying leaks: no column of the view holds a full phone, email, street or birth date
    flat = " ".join(str(v) for r in got for v in r.values())
    for secret in ("13812345678", "zhang.wei", "世纪大道", "建国路", "1984-05-17", "王伟", "wang wei", "crm:C1"):
        assert secret not in flat

    # idempotent; an unchanged view is not recreated, a dropped one comes back
    assert apply(settings, env={})["views"] == summary["views"]
    with connect(settings) as wh:
        wh.execute("drop view bi.customer_xref")
    assert apply(settings, env={})["views"] == summary["views"]
    assert rows(settings, "select golden_id, source_id from bi.customer_xref") == [
        {"golden_id": "G1", "source_id": "C1"}
    ]


def test_bi_export_on_duckdb_is_the_masked_view(duckdb_settings: Settings, tmp_path: Path):
    build_marts(duckdb_settings)  # published before the views existed: the export creates them
    out = tmp_path / "out" / "customers.csv"
    env = {"MDM_HOME": str(duckdb_settings.home), "MDM_LANDING": str(duckdb_settings.landing)}
    result = CliRunner().invoke(main, ["export", "bi", "--out", str(out)], env=env, catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert "wrote 4 rows of bi.dim_customer (masked)" in result.output
    with out.open(encoding="utf-8", newline="") as fh:
        exported = list(csv.DictReader(fh))
    assert list(exported[0]) == list(EXPECTED[0])
    assert [r["phone_masked"] for r in exported] == ["+86138****5678", "+86211****5678", "****", ""]
    assert [r["email_masked"] for r in exported] == ["z***@example.com", "a***@b.cn", "***", ""]
    assert exported[0]["birth_decade"] == "1980" and exported[0]["district"] == "浦东新区"
    text = out.read_text(encoding="utf-8")
    for secret in ("13812345678", "zhang.wei", "世纪大道", "1984-05-17", "王伟"):
        assert secret not in text

    xref = tmp_path / "xref.csv"
    assert export_bi(duckdb_settings, "customer_xref", xref) == 1


def test_bi_export_errors_are_clear(duckdb_settings: Settings, tmp_path: Path):
    env = {"MDM_HOME": str(duckdb_settings.home), "MDM_LANDING": str(duckdb_settings.landing)}
    result = CliRunner().invoke(main, ["export", "bi", "--out", str(tmp_path / "x.csv")], env=env)
    assert result.exit_code == 2 and "no bi.dim_customer yet" in result.output and "mdm run" in result.output
    result = CliRunner().invoke(main, ["export", "bi", "--view", "raw", "--out", str(tmp_path / "x.csv")], env=env)
    assert result.exit_code == 2 and "Invalid value for '--view'" in result.output
    result = CliRunner().invoke(main, ["roles", "apply"], env=env)
    assert result.exit_code == 2 and "PostgreSQL only" in result.output


def test_the_cli_offers_every_bi_view():
    export = main.commands["export"]
    bi = export.commands["bi"]  # type: ignore[attr-defined]
    (view,) = [p for p in bi.params if p.name == "view"]
    assert tuple(view.type.choices) == BI_VIEW_NAMES


@pytest.mark.postgres
def test_mdm_roles_apply_on_postgres(pg_dsn: str, tmp_path: Path):
    settings = Settings.from_env(env={}, home=tmp_path / "home", landing=tmp_path, target="postgres", pg_dsn=pg_dsn)
    build_marts(settings)
    env = {"MDM_HOME": str(tmp_path / "home"), "MDM_TARGET": "postgres", "MDM_PG_DSN": pg_dsn}
    result = CliRunner().invoke(main, ["roles", "apply"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for role in ("mdm_pipeline", "mdm_steward", "bi_reader"):
        assert role in result.output
    assert "masked views: bi.dim_customer, bi.customer_xref" in result.output
    result = CliRunner().invoke(main, ["roles", "apply", "--reassign-ownership"], env=env)
    assert result.exit_code == 2 and "needs --admin-dsn" in result.output
