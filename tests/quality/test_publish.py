"""Write-audit-publish on a real DuckDB and a real PostgreSQL: a clean build is swapped into
marts atomically; a build that breaks a blocking expectation leaves yesterday's tables in place."""

from __future__ import annotations

import json
from datetime import date

import pytest
from quality_data import build_golden, build_records, golden_rows, quarantine, query, record

from customer_mdm.config import Settings
from customer_mdm.quality import QualityGateFailed, audit_and_publish, data_docs_index, validate_layer
from customer_mdm.warehouse import Warehouse, connect

PEOPLE = 4


@pytest.fixture
def built(settings: Settings) -> Settings:
    """Yesterday's marts (OLD1, OLD2, a BI view on dim_customer) and today's clean build (G1..G4)."""
    build_records(settings, [record(n) for n in range(1, PEOPLE + 1)])
    build_golden(settings, "marts", *golden_rows(2, prefix="OLD"))
    build_golden(settings, "golden_build", *golden_rows(PEOPLE))
    with connect(settings) as wh:
        wh.execute("create view marts.v_customers as select golden_id, name from marts.dim_customer")
    return settings


def golden_ids(settings: Settings, table: str = "marts.dim_customer") -> list[str]:
    return [r[0] for r in query(settings, f"select golden_id from {table} order by golden_id")]


def publications(settings: Settings, run_id: str) -> list[tuple]:
    return query(
        settings,
        "select table_name, status, method, row_count, evaluated, successful, success_percent, blocking_failures "
        "from ops.publications where run_id = ? order by table_name",
        [run_id],
    )


def test_a_passing_build_is_swapped_in_and_recorded_warnings_do_not_block(built: Settings):
    with connect(built) as wh:  # a warning only: published anyway, the row quarantined
        wh.execute("update golden_build.customer_xref set match_probability = 1.5 where record_id = 'crm:C1'")

        # a golden companion without a suite is published alongside, recorded as not audited
        wh.execute(
            "create table golden_build.customer_segments as select golden_id, 'vip' as segment from golden_build.dim_customer"
        )

    summary = audit_and_publish(built, "run-1", tables=("dim_customer", "customer_xref", "customer_segments"))

    assert golden_ids(built) == ["G1", "G2", "G3", "G4"]
    assert golden_ids(built, "marts.customer_segments") == ["G1", "G2", "G3", "G4"]
    assert golden_ids(built, "marts.customer_xref") == ["G1", "G2", "G3", "G4"]
    assert golden_ids(built, "marts.v_customers") == ["G1", "G2", "G3", "G4"]  # the BI view survived
    method = "replace_rows" if built.target == "postgres" else "swap"
    assert summary["tables"] == {
        "dim_customer": {"published_table": "marts.dim_customer", "rows": 4, "method": method, "audited": True},
        "customer_xref": {"published_table": "marts.customer_xref", "rows": 4, "method": method, "audited": True},
        "customer_segments": {
            "published_table": "marts.customer_segments",
            "rows": 4,
            "method": "swap",
            "audited": False,
        },
    }
    label = "gx:golden.customer_xref:expect_column_values_to_be_between(match_probability)"
    assert summary["warnings"] == [label] and summary["validation"]["success"]
    (row,) = [json.loads(raw) for _, _, _, reason, raw in quarantine(built, "run-1") if reason == f"{label} [warning]"]
    assert row == {"record_id": "crm:C1", "match_probability": 1.5}
    assert publications(built, "run-1") == [
        ("marts.customer_segments", "published", "swap", 4, 0, 0, None, 0),
        ("marts.customer_xref", "published", method, 4, 7, 6, 85.714, 0),
        ("marts.dim_customer", "published", method, 4, 6, 6, 100.0, 0),
    ]
    index = data_docs_index(built).read_text(encoding="utf-8")
    assert "golden.dim_customer" in index and "golden.customer_xref" in index


def test_a_table_missing_from_the_build_is_not_published(built: Settings):
    with pytest.raises(QualityGateFailed, match=r"golden_build\.customer_segments does not exist"):
        audit_and_publish(built, "run-missing", tables=("customer_segments",))
    assert publications(built, "run-missing") == [("marts.customer_segments", "blocked", None, None, 0, 0, None, 0)]


BREAKAGES = [
    pytest.param(
        "insert into golden_build.dim_customer (golden_id, name) values ('G2', '李娜')",
        "gx:golden.dim_customer:expect_column_values_to_be_unique(golden_id)",
        "G2",
        id="duplicate_golden_id",
    ),
    pytest.param(
        "insert into golden_build.customer_xref (record_id, source, source_id, golden_id, assignment) "
        "values ('crm:C9', 'crm', 'C9', 'G404', 'model')",
        "gx:golden.customer_xref.xref_orphans:expect_column_values_to_not_be_null(dim_customer_golden_id)",
        "G404",
        id="orphan_xref_row",
    ),
    pytest.param(
        "update golden_build.customer_xref set assignment = 'guessed' where record_id = 'crm:C3'",
        "gx:golden.customer_xref:expect_column_values_to_be_in_set(assignment)",
        "guessed",
        id="bad_assignment",
    ),
]


@pytest.mark.parametrize("breakage, label, evidence", BREAKAGES)
def test_a_blocking_failure_keeps_yesterdays_tables(built: Settings, breakage: str, label: str, evidence: str):
    with connect(built) as wh:
        wh.execute(breakage)
    before = {t: query(built, f"select * from marts.{t} order by 1") for t in ("dim_customer", "customer_xref")}

    with pytest.raises(QualityGateFailed) as err:
        audit_and_publish(built, "run-broken")

    assert label in str(err.value) and "left unchanged" in str(err.value)
    assert err.value.result is not None
    assert [e.label for e in err.value.result.blocking_failures] == [label]
    after = {t: query(built, f"select * from marts.{t} order by 1") for t in ("dim_customer", "customer_xref")}
    assert after == before and golden_ids(built) == ["OLD1", "OLD2"]
    assert golden_ids(built, "marts.v_customers") == ["OLD1", "OLD2"]
    failing = [
        json.loads(raw) for _, _, _, reason, raw in quarantine(built, "run-broken") if reason == f"{label} [blocking]"
    ]
    assert failing and any(evidence in row.values() for row in failing), failing
    assert {status for _, status, *_ in publications(built, "run-broken")} == {"blocked"}


def test_conflicting_birth_dates_warn_then_block_above_one_percent(settings: Settings):
    people = 200
    dim, xref = golden_rows(people)
    records = [record(n) for n in range(1, people + 1)]

    def conflict(n: int) -> None:  # a second record with another full birth date joins person n
        records.append(record(n, source="ecommerce", birth_date=date(1999, 12, 31)))
        xref.append(
            {
                **xref[n - 1],
                "record_id": f"ecommerce:E{n}",
                "source": "ecommerce",
                "source_id": f"E{n}",
                "assignment": "model",
                "match_probability": 0.9,
            }
        )

    label = "gx:golden.dim_customer.birth_date_conflicts:expect_column_values_to_be_between(birth_dates)"
    conflict(7)  # 1 of 200 golden ids: 0.5 %, a warning
    build_records(settings, records)
    build_golden(settings, "golden_build", dim, xref)
    warned = validate_layer(settings, "golden", "run-1", schema_override="golden_build", assets=["dim_customer"])
    assert warned.success and [e.label for e in warned.warnings] == [label]
    (row,) = [json.loads(raw) for *_, raw in quarantine(settings, "run-1")]
    assert row == {"golden_id": "G7", "birth_dates": 2}

    for n in (8, 9):  # 3 of 200: 1.5 %, above the blocking threshold
        conflict(n)
    build_records(settings, records)
    build_golden(settings, "golden_build", dim, xref)
    blocked = validate_layer(settings, "golden", "run-2", schema_override="golden_build", assets=["dim_customer"])
    assert [e.label for e in blocked.blocking_failures] == [label]
    assert "allowed 1.00 %" in blocked.message()
    # Data Docs keep every run's results
    runs = {p.name for p in (data_docs_index(settings).parent / "validations" / "golden" / "dim_customer").iterdir()}
    assert {"run-1", "run-2"} <= runs


@pytest.mark.postgres
def test_postgres_views_survive_a_column_change(pg_settings: Settings):
    build_records(pg_settings, [record(n) for n in range(1, PEOPLE + 1)])
    build_golden(pg_settings, "marts", *golden_rows(2, prefix="OLD"))
    build_golden(pg_settings, "golden_build", *golden_rows(PEOPLE))
    with connect(pg_settings) as wh:
        wh.execute("create view marts.v_customers as select golden_id, name from marts.dim_customer")
        wh.execute("create view marts.v_customer_count as select count(*) as n from marts.v_customers")
        wh.execute("alter table golden_build.dim_customer add column tier text")
        wh.execute("update golden_build.dim_customer set tier = 'vip'")

    summary = audit_and_publish(pg_settings, "run-1")

    assert summary["tables"]["dim_customer"]["method"] == "swap"
    assert summary["tables"]["customer_xref"]["method"] == "replace_rows"
    assert query(pg_settings, "select n from marts.v_customer_count") == [(4,)]
    assert golden_ids(pg_settings, "marts.v_customers") == ["G1", "G2", "G3", "G4"]
    assert query(pg_settings, "select distinct tier from marts.dim_customer") == [("vip",)]


# --------------------------------------------------------------------------- incremental publication
def _incremental_golden_build(settings: Settings, affected: list[str]) -> None:
    """What an incremental dbt_golden leaves: ops.dbt_state mode incremental, the rebuilt ids."""
    from quality_data import NOW

    from customer_mdm.schema import ensure_dbt_tables

    with connect(settings) as wh:
        ensure_dbt_tables(wh)
        wh.execute("delete from ops.dbt_state where layer = 'golden'")
        wh.execute(
            "insert into ops.dbt_state (layer, fingerprint, watermark, mode, reason, run_id, built_at) "
            "values ('golden', 'f', null, 'incremental', 'same build fingerprint', 'r', ?)",
            [NOW],
        )
        wh.execute("drop table if exists intermediate.int_golden_affected")
        wh.execute("create table intermediate.int_golden_affected (golden_id text, reason text)")
        for gid in affected:
            wh.execute("insert into intermediate.int_golden_affected values (?, 'dirty')", [gid])


def _add_g21(wh: Warehouse, assignment: str = "new") -> None:
    """A new person in the build: golden id G21 with record crm:C21."""
    wh.execute(
        "insert into golden_build.dim_customer (golden_id, name, birth_date, source_record_count) "
        "values ('G21', '张敏', ?, 1)",
        [date(1980, 1, 22)],
    )
    wh.execute(
        "insert into golden_build.customer_xref (record_id, source, source_id, golden_id, assignment) "
        "values ('crm:C21', 'crm', 'C21', 'G21', ?)",
        [assignment],
    )


def _rows(settings: Settings, table: str) -> list[tuple]:
    return query(settings, f"select * from {table} order by 1, 2")


@pytest.mark.parametrize("listed", [True, False], ids=["changes-listed", "a-change-not-listed"])
def test_an_incremental_build_publishes_only_the_changed_golden_ids(settings: Settings, listed: bool):
    """After an incremental golden build only the rebuilt ids' rows are replaced (merge_rows); the
    published tables are then checked row for row (count and checksum) against the build, and a
    change the build did not list makes the publication replace every row instead."""
    people = 20
    # record 3 (moving to G2 below) has record 2's birth date: no conflict
    records = [record(n, **({"birth_date": date(1980, 1, 3)} if n == 3 else {})) for n in range(1, people + 2)]
    build_records(settings, records)
    build_golden(settings, "golden_build", *golden_rows(people))
    assert audit_and_publish(settings, "run-1")["tables"]["dim_customer"]["method"] in ("swap", "replace_rows")
    with connect(settings) as wh:  # today's incremental build: G2 renamed, G4 gone, G21 new, C3 moved to G2
        wh.execute("update golden_build.dim_customer set name = '李娜' where golden_id = 'G2'")
        wh.execute("delete from golden_build.dim_customer where golden_id in ('G3', 'G4')")
        wh.execute("delete from golden_build.customer_xref where golden_id = 'G4'")
        wh.execute("update golden_build.customer_xref set golden_id = 'G2' where record_id = 'crm:C3'")
        _add_g21(wh)
        if not listed:  # a change outside the rebuilt ids (a bug, a hand edit): must not be lost
            wh.execute("update golden_build.dim_customer set name = '王芳' where golden_id = 'G1'")
    _incremental_golden_build(settings, ["G2", "G3", "G4", "G21"])

    summary = audit_and_publish(settings, "run-2")

    full = "replace_rows" if settings.target == "postgres" else "swap"
    methods = {t: d["method"] for t, d in summary["tables"].items()}
    # listed: validated and replaced on the changed ids only; else the check before validation sees
    # that the build differs elsewhere too: everything is validated and replaced
    method = "merge_rows" if listed else full
    assert methods == {"dim_customer": method, "customer_xref": method}
    assert summary["changed_golden_ids"] == (4 if listed else None)
    assert summary["validation"]["evaluated"] == 13 and summary["validation"]["success"]
    stored = {p.name for p in (settings.home / "gx").rglob("*")}  # GX keeps each suite and its results
    assert any("dim_customer.changed_rows" in name for name in stored) == listed
    for table in ("dim_customer", "customer_xref"):
        assert _rows(settings, f"marts.{table}") == _rows(settings, f"golden_build.{table}"), table
    names = dict(query(settings, "select golden_id, name from marts.dim_customer"))
    assert names["G2"] == "李娜" and "G4" not in names and names["G21"] == "张敏"
    assert names["G1"] == ("王伟" if listed else "王芳")
    recorded = dict(query(settings, "select table_name, method from ops.publications where run_id = 'run-2'"))
    assert recorded == {f"marts.{t}": m for t, m in methods.items()}
    audited = query(
        settings, "select golden_id, field from audit.golden_changes where action = 'survivorship_change' order by 1"
    )
    assert ("G2", "name") in audited and (("G1", "name") in audited) == (not listed)


def test_an_incremental_publication_blocks_on_a_bad_changed_row(settings: Settings):
    """Validated on the changed golden ids only, a blocking failure among them still keeps
    yesterday's tables; the row-count expectation is evaluated on the whole table."""
    build_records(settings, [record(n) for n in range(1, 22)])
    build_golden(settings, "golden_build", *golden_rows(20))
    audit_and_publish(settings, "run-1")
    before = _rows(settings, "marts.customer_xref")
    with connect(settings) as wh:
        _add_g21(wh, assignment="guessed")
    _incremental_golden_build(settings, ["G21"])

    with pytest.raises(QualityGateFailed, match="changed_rows:expect_column_values_to_be_in_set"):
        audit_and_publish(settings, "run-2")

    assert _rows(settings, "marts.customer_xref") == before
    with connect(settings) as wh:
        assert not wh.table_exists("golden_build._publish_changed")
    result = validate_layer(
        settings,
        "golden",
        "run-3",
        schema_override="golden_build",
        assets=["dim_customer"],
        row_filters={"dim_customer": "golden_id = 'G21'"},
    )
    counts = [e for e in result.expectations if e.expectation_type == "expect_table_row_count_to_be_between"]
    assert [(e.success, e.observed_value) for e in counts] == [(True, 21)]  # the whole table, not the 1 row
    assert result.assets[0].rows == 1


def test_an_incremental_publication_finds_an_orphan_among_the_changed_ids(settings: Settings):
    """The cross-reference orphan check runs on the changed golden ids' rows: a new record
    pointing at a golden id the build lacks blocks the publication."""
    build_records(settings, [record(n) for n in range(1, 22)])
    build_golden(settings, "golden_build", *golden_rows(20))
    audit_and_publish(settings, "run-1")
    with connect(settings) as wh:
        _add_g21(wh)
        wh.execute("delete from golden_build.dim_customer where golden_id = 'G21'")
    _incremental_golden_build(settings, ["G21"])

    with pytest.raises(QualityGateFailed, match="xref_orphans") as failed:
        audit_and_publish(settings, "run-2")
    orphans = [e for e in failed.value.result.expectations if e.dataset == "xref_orphans"]
    assert [(e.success, e.element_count) for e in orphans] == [(False, 1)]  # the changed id's one row
