"""validate_layer on a real DuckDB and a real PostgreSQL: raw row counts against the manifest,
incremental validation, blocking and warning expectations, failing rows in ops.quarantine."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Any

import pytest
from quality_data import NOW, build_records, insert, quarantine, record

from customer_mdm.config import Settings
from customer_mdm.quality import QualityGateFailed, data_docs_index, validate_layer
from customer_mdm.schema import ensure_schema
from customer_mdm.sources import FEEDS
from customer_mdm.warehouse import connect

COUNTS = "gx:raw.crm.manifest_row_counts:expect_column_pair_values_to_be_equal(raw_rows,manifest_rows)"
BLANK_ID = "gx:raw.crm:expect_column_values_to_match_regex(crm_id)"
STD = "gx:standardised.int_customer_records"


def crm_batch(batch: str, ids: list[str], ingested_at: Any) -> list[dict[str, Any]]:
    return [
        {
            "crm_id": crm_id,
            "name": "王伟",
            "mobile": "13812345678",
            "email": "a@qq.com",
            "updated_at": "2026-11-20 13:05:00",
            "_source_file": f"crm/{batch}.csv",
            "_batch_id": batch,
            "_row_number": n,
            "_ingested_at": ingested_at,
        }
        for n, crm_id in enumerate(ids, start=1)
    ]


def manifest(batch: str, rows_loaded: int, recorded_at: Any) -> dict[str, Any]:
    return {
        "feed": "crm",
        "file_path": f"crm/{batch}.csv",
        "file_name": f"{batch}.csv",
        "batch_id": batch,
        "status": "ingested",
        "rows_loaded": rows_loaded,
        "rows_quarantined": 0,
        "run_id": "ingest",
        "recorded_at": recorded_at,
    }


def test_raw_row_counts_are_checked_against_the_manifest(settings: Settings):
    t1, t2 = NOW, NOW + timedelta(hours=1)
    with connect(settings) as wh:
        ensure_schema(wh)
        insert(wh, "raw.crm", crm_batch("b1", ["C1", "C2"], t1))
        insert(wh, "ops.manifest", [manifest("b1", 2, t1)])

    # every raw suite against the tables schema.ensure_schema creates (on PostgreSQL two feeds, for time:
    # each suite costs a GX checkpoint run with a Data Docs build)
    feeds = None if settings.target == "duckdb" else ["crm", "contact_events"]
    ok = validate_layer(settings, "raw", "run-ok", assets=feeds)
    assert ok.success, ok.message()
    assert [a.suite for a in ok.assets] == sorted(f"raw.{f.name}" for f in FEEDS if feeds is None or f.name in feeds)
    assert {a.suite: a.rows for a in ok.assets}["raw.crm"] == 2
    assert not ok.warnings and ok.quarantined_rows == 0
    assert data_docs_index(settings).is_file()

    # the next file: the manifest recorded 3 rows, raw holds 2, one with a blank id
    with connect(settings) as wh:
        insert(wh, "raw.crm", crm_batch("b2", ["C3", "  "], t2))
        insert(wh, "ops.manifest", [manifest("b2", 3, t2)])
    bad = validate_layer(settings, "raw", "run-bad", since=t1 + timedelta(minutes=1), assets=["crm"])
    assert bad.assets[0].rows == 2  # incremental: only the rows (and batches) ingested since ``since``
    assert sorted(e.label for e in bad.blocking_failures) == [COUNTS, BLANK_ID]
    with pytest.raises(QualityGateFailed, match=re.escape(COUNTS)):
        bad.raise_for_blocking()
    rows = quarantine(settings, "run-bad")
    assert [(feed, batch, row, reason) for feed, batch, row, reason, _ in rows] == [
        ("crm", "b2", None, f"{COUNTS} [blocking]"),
        ("crm", "b2", 2, f"{BLANK_ID} [blocking]"),
    ]
    assert json.loads(rows[0][4]) == {"batch_id": "b2", "source_file": "crm/b2.csv", "raw_rows": 2, "manifest_rows": 3}

    later = validate_layer(settings, "raw", "run-later", since=t2 + timedelta(minutes=1), assets=["crm"])
    assert later.success, later.message()
    assert later.assets[0].rows == 0


def test_standardised_warnings_are_quarantined_and_never_block(settings: Settings):
    rows = [record(n) for n in range(1, 41)]
    rows[1] = record(2, phone_e164="+86 138 0000")
    rows[2] = record(3, province="沪")
    rows[3] = record(4, email="not-an-email")
    rows[4] = record(5, birth_date=date(1850, 1, 1))
    rows[5] = record(6, gender="X")
    build_records(settings, rows)

    result = validate_layer(settings, "standardised", "run-std")
    assert result.success, result.message()
    warned = {
        f"{STD}:expect_column_values_to_match_regex(phone_e164)": "crm:b1:2",
        f"{STD}:expect_column_values_to_be_in_set(province)": "crm:b1:3",
        f"{STD}:expect_column_values_to_match_regex(email)": "crm:b1:4",
        f"{STD}:expect_column_values_to_be_between(birth_date)": "crm:b1:5",
        f"{STD}:expect_column_values_to_be_in_set(gender)": "crm:b1:6",
    }
    assert {e.label for e in result.warnings} == set(warned)
    outcome = next(e for e in result.warnings if e.column == "province")
    assert (outcome.unexpected_count, outcome.element_count) == (1, 40)
    # the failing value is never copied into the outcome (run steps, summary, XCom, logs, alerts)
    assert "沪" not in json.dumps(outcome.to_dict(), ensure_ascii=False) and "沪" not in outcome.describe()
    assert "沪" not in json.dumps([e.to_dict() for e in result.warnings], ensure_ascii=False)
    found = {reason: json.loads(raw) for _, _, _, reason, raw in quarantine(settings, "run-std")}
    assert {r.removesuffix(" [warning]"): v["record_key"] for r, v in found.items()} == warned
    assert found[f"{STD}:expect_column_values_to_be_in_set(province) [warning]"]["province"] == "沪"
    assert all(v["_batch_id"] and v["_row_number"] for v in found.values())

    # a second current version of the same source record is blocking
    with connect(settings) as wh:
        insert(wh, "intermediate.int_customer_records", [record(7, record_key="crm:b2:1")])
    dup = validate_layer(settings, "standardised", "run-dup")
    label = f"{STD}:expect_compound_columns_to_be_unique(source,source_id)"
    assert [e.label for e in dup.blocking_failures] == [label]
    assert label in dup.message()
    duplicated = [
        json.loads(raw) for _, _, _, reason, raw in quarantine(settings, "run-dup") if reason.startswith(label)
    ]
    assert len(duplicated) == 2 and {(d["source"], d["source_id"]) for d in duplicated} == {("crm", "C7")}
    assert dup.to_dict()["blocking_failures"] == [label]


def test_a_missing_table_is_a_blocking_failure(settings: Settings):
    result = validate_layer(settings, "golden", "run-missing", schema_override="golden_build")
    assert {e.label for e in result.blocking_failures} == {
        "gx:golden.customer_xref:expect_table_to_exist()",
        "gx:golden.dim_customer:expect_table_to_exist()",
    }
    assert "golden_build.dim_customer does not exist" in result.message()
