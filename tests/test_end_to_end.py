"""The daily DAG end to end through Airflow (`mdm run`), on DuckDB and on a real PostgreSQL.

Generated landing data -> `mdm run` (airflow dags test, SQLite metadata) -> raw + staging
tables in the warehouse, run summary, `mdm status`; a second run is idempotent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from customer_mdm import plan
from customer_mdm.config import Settings
from customer_mdm.warehouse import connect
from mdm_devtools.generate import generate_landing

pytestmark = pytest.mark.airflow

#: feed -> its staging model, as the plan declares them
STAGING = {f.name: f.staging_model for f in plan.FEEDS}


def mdm(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings.env()}
    return subprocess.run(
        [sys.executable, "-m", "customer_mdm.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )


def test_daily_pipeline_end_to_end_and_idempotent(settings: Settings):
    generated = generate_landing(settings.landing, 400, seed=11, days=2)

    first = mdm(settings, "run", "--quiet", "--json")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-5000:]
    summary = json.loads(first.stdout)
    assert summary["status"] == "success"
    assert summary["target"] == settings.target
    for feed_name, records in generated.records.items():
        assert summary["feeds"][feed_name]["rows_loaded"] == records, feed_name
    assert summary["rows_quarantined"] == 0
    for step in ("source_freshness", "dbt_staging", "standardize", "dbt_build"):
        assert summary["steps"][step]["status"] == "success", step
    # every feed was just loaded (the erasure requests have no freshness policy)
    assert summary["steps"]["source_freshness"]["counts"] == {"pass": 7}

    # the generated erasure requests were handled: their persons' rows (and the requests) are gone
    erasure = summary["steps"]["erasure"]
    assert erasure["status"] == "success" and erasure["erased"] >= 1
    erased: dict[str, int] = {}
    for deleted in [*(r["rows_deleted"] for r in erasure["requests"]), erasure["tombstone_rows_deleted"]]:
        for table, n in deleted.items():
            erased[table] = erased.get(table, 0) + n
    with connect(settings) as wh:
        for feed_name, model in STAGING.items():
            raw = wh.scalar(f"select count(*) from raw.{feed_name}")
            staged = wh.scalar(f"select count(*) from staging.{model}")
            assert raw == generated.records[feed_name] - erased.get(f"raw.{feed_name}", 0), feed_name
            assert staged == generated.records[feed_name] - erased.get(f"staging.{model}", 0), feed_name
        truth_records = sum(1 for _ in open(settings.landing / "_truth" / "truth.csv")) - 1
        left = truth_records - erased.get("intermediate.int_customer_records", 0)
        assert wh.scalar("select count(*) from intermediate.int_customer_records") == left
        assert wh.scalar("select count(*) from marts.fct_orders") > 0

    assert summary["steps"]["publish"]["status"] == "success"
    assert summary["steps"]["scorecard"]["status"] == "success"  # the mdm_governance DAG ran after it
    assert summary["quality"]["data_docs"] and summary["quality"]["scorecard_report"]
    with connect(settings) as wh:
        assert wh.scalar("select count(*) from marts.dim_customer") > 0
        assert wh.scalar("select count(*) from governance.scorecard_history") > 0

    second = mdm(settings, "run", "--quiet", "--json", "--no-governance")
    assert second.returncode == 0, second.stderr[-5000:]
    again = json.loads(second.stdout)
    assert again["rows_loaded"] == 0
    assert all(f["files_skipped"] == generated.files[name] for name, f in again["feeds"].items())
    with connect(settings) as wh:
        assert wh.scalar("select count(*) from raw.crm") == generated.records["crm"] - erased.get("raw.crm", 0)
        assert wh.scalar("select count(*) from ops.runs where status = 'success'") == 2

    status = mdm(settings, "status")
    assert status.returncode == 0
    assert summary["run_id"] in status.stdout and again["run_id"] in status.stdout


def test_bad_files_are_reported_in_the_run_summary(duckdb_settings: Settings):
    settings = duckdb_settings
    generate_landing(settings.landing, 100, seed=3, days=1, dirty_files=True)
    result = mdm(settings, "run", "--quiet", "--no-governance")
    assert result.returncode == 0, result.stderr[-5000:]
    assert "SUCCESS" in result.stdout
    assert "quarantined:" in result.stdout
    bad = (settings.landing / "_truth" / "bad_files.csv").read_text().splitlines()[1:]
    for line in bad:
        file_name = line.split(",")[0]
        assert file_name.split("/")[-1] in result.stdout + mdm(settings, "quarantine").stdout
