"""Source freshness on schedule: a feed that stopped delivering is found by `dbt source freshness`
in the daily run, recorded in ops.source_freshness, alerted to a real local webhook, counted in the
scorecard, and fails the run under the `fail` policy. Both warehouses."""

from __future__ import annotations

import json

import pytest

from customer_mdm.alerts import SOURCE_STALE, WEBHOOK_ENV
from customer_mdm.errors import ConfigError
from customer_mdm.freshness import POLICY_ENV, SourcesStale, freshness_policy
from customer_mdm.governance.scorecard import _Schemas, _source_freshness
from customer_mdm.pipeline import ingest_steps, source_freshness_step, start_run
from customer_mdm.warehouse import connect
from mdm_devtools.generate import generate_landing
from mdm_devtools.receivers import HttpReceiver

SOURCE_TABLES = 7  # every source table with a freshness policy (erasure requests have none)


def stop_feeds(settings, run_id: str) -> None:
    """Ingest a small landing zone, then age two feeds' loads as if they had stopped: the orders
    two days ago (past warn_after, 1 day), the store cards four days ago (past error_after, 3 days)."""
    generate_landing(settings.landing, 40, seed=5, days=1)
    start_run(settings, run_id)
    assert not ingest_steps(settings, run_id)
    with connect(settings) as wh:
        wh.execute("update raw.ecommerce_orders set _ingested_at = _ingested_at - interval '2 days'")
        wh.execute("update raw.store_pos set _ingested_at = _ingested_at - interval '4 days'")


def test_a_stopped_feed_warns_alerts_and_counts_in_the_scorecard(settings, monkeypatch):
    monkeypatch.delenv(POLICY_ENV, raising=False)
    stop_feeds(settings, "run_fresh")
    with HttpReceiver() as hook:
        monkeypatch.setenv(WEBHOOK_ENV, f"{hook.url}/alerts")
        details = source_freshness_step(settings, "run_fresh")  # policy warn: the step succeeds
    assert details["policy"] == "warn" and details["checked"] == SOURCE_TABLES
    assert details["counts"] == {"pass": SOURCE_TABLES - 2, "warn": 1, "error": 1}
    assert [s.split(" ")[0] for s in details["stale"]] == ["ecommerce.ecommerce_orders", "store_pos.store_pos"]

    (alert,) = hook.bodies
    assert alert["event"] == SOURCE_STALE and alert["dag_id"] == "mdm_daily" and alert["run_id"] == "run_fresh"
    assert "ecommerce.ecommerce_orders" in alert["text"] and "older than 1 day" in alert["text"]
    assert "store_pos.store_pos" in alert["text"] and "older than 3 days" in alert["text"]
    assert alert["text"].startswith("【MDM 数据源停更 source stale】")
    assert {(s["source"], s["status"]) for s in alert["sources"]} == {
        ("ecommerce.ecommerce_orders", "warn"),
        ("store_pos.store_pos", "error"),
    }
    orders = next(s for s in alert["sources"] if s["status"] == "warn")
    assert 47 * 3600 < orders["age_seconds"] < 49 * 3600

    with connect(settings, read_only=True) as wh:
        rows = wh.query("select source_name, table_name, status from ops.source_freshness where run_id = 'run_fresh'")
        step = wh.query(
            "select status, details from ops.run_steps where run_id = 'run_fresh' and step = 'source_freshness'"
        )
        (card,) = _source_freshness(wh, _Schemas("marts", "intermediate", "governance"))
    assert len(rows) == SOURCE_TABLES and ("store_pos", "store_pos", "error") in rows
    assert step[0][0] == "success" and json.loads(step[0][1])["counts"]["warn"] == 1
    assert card == ("overall", "timeliness", "sources_fresh", SOURCE_TABLES - 2, SOURCE_TABLES)


def test_the_fail_policy_fails_on_error_after_only(settings, monkeypatch):
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    stop_feeds(settings, "run_fail")
    monkeypatch.setenv(POLICY_ENV, "fail")
    with pytest.raises(SourcesStale, match=r"store_pos\.store_pos last loaded .* \(error: older than 3 days\)") as err:
        source_freshness_step(settings, "run_fail")
    assert "ecommerce_orders" not in str(err.value), "a feed only past warn_after never fails the run"
    with connect(settings, read_only=True) as wh:
        (status,) = wh.query("select status from ops.run_steps where run_id = 'run_fail' and step = 'source_freshness'")
    assert status == ("failed",)

    with connect(settings) as wh:  # the store feed delivers again
        wh.execute("update raw.store_pos set _ingested_at = _ingested_at + interval '4 days'")
    details = source_freshness_step(settings, "run_fail")
    assert details["counts"] == {"pass": SOURCE_TABLES - 1, "warn": 1}

    off = source_freshness_step(settings, "run_fail", policy="off")
    assert (off["policy"], off["checked"]) == ("off", 0)


def test_the_policy_is_checked(monkeypatch):
    monkeypatch.setenv(POLICY_ENV, "sometimes")
    with pytest.raises(ConfigError, match=POLICY_ENV):
        freshness_policy()
    assert freshness_policy("off") == "off", "a DAG run's param overrides the environment"
    monkeypatch.delenv(POLICY_ENV)
    assert freshness_policy() == "warn"
