"""Incremental dbt layers: a daily run over a delta gives exactly the tables a full rebuild gives.

On DuckDB and on a real PostgreSQL: a generated landing zone is run through the daily steps in
this process, up to dbt_golden (every dbt layer built in full; the quality gates and the
publication of the golden tables have tests of their own), then a delta arrives (new CRM records and newer versions of existing
ones, one under another spelling of its id, a newer export of an order, contact events and
self-service changes, one of them a newer version of an existing change) and the next run builds
the dbt layers incrementally. Every dbt table must then equal a ``--full-refresh`` rebuild of the
same data. The golden models also rebuild ids the link step lists in ``mdm.golden_dirty`` (inserted
by hand here), and a scoped staging test still fails on a broken row in the new batch.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from customer_mdm import plan
from customer_mdm.config import Settings
from customer_mdm.dbt import DbtFailed, run_dbt
from customer_mdm.pipeline import (
    dbt_build_step,
    dbt_golden_step,
    dbt_staging_step,
    ingest_step,
    link_step,
    new_run_id,
    standardize_step,
    start_run,
)
from customer_mdm.sources import FEEDS
from customer_mdm.warehouse import connect
from mdm_devtools.generate import generate_landing

pytestmark = pytest.mark.slow

PEOPLE = 300
DBT_STEPS = ("dbt_staging", "dbt_build", "dbt_golden")

#: every model the dbt steps maintain incrementally (none carries a build timestamp: the
#: customer_xref's assigned_at_utc is the link step's, the same for both builds)
MODELS = (
    *plan.staging_models(),
    "int_customer_records",
    "int_contact_events",
    "int_self_service_changes",
    "fct_orders",
    "int_golden_candidates",
    "dim_customer",
    "customer_xref",
)

#: the dbt models a full rebuild re-creates (not the governance marts, which are not incremental)
REBUILD = [
    "--full-refresh",
    "--select",
    "path:models/staging",
    "path:models/intermediate",
    "path:models/marts/fct_orders.sql",
    "path:models/marts/golden",
]


# --------------------------------------------------------------------------- helpers
def _generate(settings: Settings) -> None:
    generate_landing(settings.landing, PEOPLE, seed=11, days=2)


def relation(settings: Settings, model: str) -> str:
    """Where dbt builds a model (``schema.table``), from the manifest of the last dbt command."""
    manifest = json.loads((settings.dbt_state_dir / "target" / "manifest.json").read_text(encoding="utf-8"))
    node = manifest["nodes"][f"model.customer_mdm.{model}"]
    return f"{node['schema']}.{node['alias']}"


def _snapshot(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every incremental model, in a Python-side order (collations differ)."""
    out = {}
    with connect(settings) as wh:
        for model in MODELS:
            table = relation(settings, model)
            columns = sorted(wh.columns_of(table))
            rows = wh.query(f"select {', '.join(columns)} from {table}")
            out[model] = sorted(rows, key=lambda r: tuple("" if v is None else str(v) for v in r))
    return out


def daily_run(settings: Settings) -> dict[str, dict[str, Any]]:
    """The daily steps up to the golden models, in this process; the details of each step."""
    run_id = start_run(settings, new_run_id())
    for feed in FEEDS:
        ingest_step(settings, run_id, feed.name)
    steps = {
        "dbt_staging": dbt_staging_step(settings, run_id),
        "standardize": standardize_step(settings, run_id),
        "dbt_build": dbt_build_step(settings, run_id),
        "link": link_step(settings, run_id),
        "dbt_golden": dbt_golden_step(settings, run_id),
    }
    return json.loads(json.dumps(steps, default=str))  # as ops.run_steps keeps them


def _difference(left: list[tuple[Any, ...]], right: list[tuple[Any, ...]]) -> str:
    only_left = [r for r in left if r not in right]
    only_right = [r for r in right if r not in left]
    return f"{len(left)} vs {len(right)} rows; only incremental: {only_left[:3]}; only full: {only_right[:3]}"


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rows)


def add_delta(settings: Settings) -> dict[str, Any]:
    """Write a next-day batch into the landing zone; returns what it changed."""
    with connect(settings) as wh:
        crm = wh.query_df("select * from staging.stg_crm__customers where is_latest order by crm_id")
        raw_crm = wh.query_df("select * from raw.crm")
        orders = wh.query_df("select * from staging.stg_ecommerce__orders where is_latest order by order_id")
        records = wh.query_df(
            "select source, source_id, phone_e164, email from intermediate.int_customer_records "
            "where phone_e164 is not null and email is not null order by source, source_id"
        )
        changes = wh.query_df("select * from raw.self_service order by event_id")
    columns = next(f.columns for f in FEEDS if f.name == "crm")
    by_id = {r["crm_id"].strip(): r for r in raw_crm.to_dict("records")}

    def crm_row(of: str, **changes: str) -> dict[str, Any]:
        row = {c: by_id[of.strip()][c] for c in columns}
        return {**row, "crm_id": of, **changes}

    ids = list(crm["crm_id"])
    updated = ids[:3]
    respelled = ids[3]
    copied = ids[4:7]
    rows = [
        crm_row(updated[0], email="updated.one@qq.com", updated_at="2026-11-20 10:00:00"),
        crm_row(updated[1], tier="VIP", updated_at="2026-11-20 10:00:00"),
        # an older version than the current one: is_latest must not move
        crm_row(updated[2], tier="VIP", updated_at="2001-01-01 00:00:00"),
        # the same record under another spelling of its id (' C000004 ' cleans to 'C000004')
        crm_row(f" {respelled} ", city="杭州", updated_at="2026-11-20 11:00:00"),
        # new records of existing people (a second CRM account each) and of new people
        *(crm_row(c, crm_id=f"C9{c[2:]}", updated_at="2026-11-20 12:00:00") for c in copied),
        crm_row(ids[7], crm_id="C990001", name="新客户", mobile="13900000001", email="new.one@163.com"),
    ]
    _write_csv(settings.landing / "crm" / "crm_2026-11-20.csv", rows)

    order = orders.iloc[0]
    _write_csv(
        settings.landing / "ecommerce" / "orders_2026-11-20.csv",
        [
            {
                "order_id": order["order_id"],
                "member_id": order["member_id"],
                "order_ts": order["ordered_at_raw"],
                "amount_cny": order["amount_cny_raw"],
                "status": "refunded",
            },
            {
                "order_id": "O-DELTA-1",
                "member_id": order["member_id"],
                "order_ts": "2026-11-20T09:00:00+08:00",
                "amount_cny": "88.00",
                "status": "paid",
            },
        ],
    )

    phone_record = records.iloc[0]
    email_record = records.iloc[-1]
    _write_csv(
        settings.landing / "contact_events" / "events_2026-11-20.csv",
        [
            {
                "channel": "phone",
                "value": phone_record["phone_e164"].removeprefix("+86"),
                "event": "unreachable",
                "occurred_at": "2026-11-20 08:00:00",
            },
            {
                "channel": "email",
                "value": email_record["email"],
                "event": "bounced",
                "occurred_at": "2026-11-20 08:30:00",
            },
        ],
    )

    redone = changes.iloc[0]
    lines = [
        # a newer version of an existing change: is_latest moves to it
        {**{k: redone[k] for k in ("event_id", "source_system", "source_id", "field")},
         "new_value": "redone@qq.com" if redone["field"] == "email" else redone["new_value"],
         "submitted_at": "2026-11-20T10:00:00+08:00"},
        {"event_id": "SS900000001", "source_system": "crm", "source_id": updated[1], "field": "email",
         "new_value": "self.service@163.com", "submitted_at": "2026-11-20T10:30:00+08:00"},
    ]  # fmt: skip
    (settings.landing / "self_service" / "changes_20261120.jsonl").write_text(
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8"
    )
    return {
        "updated": updated,
        "respelled": respelled,
        "phone_record": (phone_record["source"], phone_record["source_id"]),
        "order": order["order_id"],
    }


# --------------------------------------------------------------------------- tests
def test_incremental_run_equals_full_rebuild(settings: Settings) -> None:
    _generate(settings)
    first = daily_run(settings)
    for name in DBT_STEPS:
        assert first[name]["mode"] == "full" and "first build" in first[name]["mode_reason"], first[name]

    delta = add_delta(settings)
    steps = daily_run(settings)
    for name in DBT_STEPS:
        details = steps[name]
        assert details["mode"] == "incremental", (name, details)
        assert details["since"] is not None and details["watermark"] > details["since"], (name, details)
    assert steps["link"]["mode"] == "incremental"
    rebuilt = steps["dbt_golden"]["golden_ids_rebuilt"]
    dim_customer = relation(settings, "dim_customer")
    with connect(settings) as wh:
        golden_ids = wh.scalar(f"select count(*) from {dim_customer}")
        assert wh.scalar("select count(*) from ops.dbt_state") == 3
        assert wh.scalar("select count(*) from mdm.golden_dirty") == 0
        # the delta's records and contacts, only a few of the persons: the link step lists the
        # records whose linkage fields or contact evidence changed as dirty (the first reason)
        assert {"dirty", "self_service"} <= set(rebuilt), rebuilt
        assert set(rebuilt) <= {"dirty", "record", "self_service", "contact_event", "membership"}, rebuilt
        assert 0 < sum(rebuilt.values()) < golden_ids / 4, rebuilt
        # what the delta changed made it through
        latest = dict(wh.query("select crm_id, email_raw from staging.stg_crm__customers where is_latest"))
        assert latest[delta["updated"][0]] == "updated.one@qq.com"
        versions = wh.query(
            "select count(*), sum(case when is_latest then 1 else 0 end) from staging.stg_crm__customers "
            "where source_id = ?",
            [delta["respelled"]],
        )
        assert versions[0][0] >= 2 and versions[0][1] == 1
        fct_orders = relation(settings, "fct_orders")
        assert wh.scalar(f"select status from {fct_orders} where order_id = ?", [delta["order"]]) == "refunded"
        # the person whose phone became unreachable is among the rebuilt ones
        assert wh.scalar(
            "select count(*) from intermediate.int_golden_affected as a "
            "inner join mdm.xref as x on x.golden_id = a.golden_id where x.source = ? and x.source_id = ?",
            list(delta["phone_record"]),
        )
    incremental = _snapshot(settings)

    result = run_dbt(settings, "run", REBUILD, check=False)
    assert result.success, result.failures
    rebuilt_in_full = _snapshot(settings)
    for model in MODELS:
        assert incremental[model], model
        assert incremental[model] == rebuilt_in_full[model], (
            model,
            _difference(incremental[model], rebuilt_in_full[model]),
        )

    # ids the link step marks dirty are rebuilt; the rest is left alone
    with connect(settings) as wh:
        some = [r[0] for r in wh.query(f"select golden_id from {dim_customer} order by golden_id limit 2")]
        wh.execute(f"update {dim_customer} set name = 'stale' where golden_id in (?, ?)", some)
        wh.execute("insert into mdm.golden_dirty (golden_id, run_id, reason) values (?, 'by_hand', 'test')", [some[0]])
    run_id = new_run_id()
    start_run(settings, run_id)
    details = dbt_golden_step(settings, run_id)
    assert details["mode"] == "incremental"
    assert details["golden_ids_rebuilt"] == {"dirty": 1}
    with connect(settings) as wh:
        names = dict(wh.query(f"select golden_id, name from {dim_customer} where golden_id in (?, ?)", some))
        assert names[some[0]] != "stale" and names[some[1]] == "stale"
        assert wh.scalar("select count(*) from mdm.golden_dirty") == 0


def test_full_refresh_when_asked_or_changed_and_scoped_staging_tests_still_fail(duckdb_settings: Settings) -> None:
    # the planning is warehouse-independent; the test above covers both warehouses
    settings = duckdb_settings
    _generate(settings)
    run_id = start_run(settings, new_run_id())
    for feed in FEEDS:
        ingest_step(settings, run_id, feed.name)
    assert dbt_staging_step(settings, run_id)["mode"] == "full"
    again = dbt_staging_step(settings, run_id)
    assert again["mode"] == "incremental" and again["since"] == again["watermark"]
    assert dbt_staging_step(settings, run_id, full=True)["mode_reason"] == "full run requested"
    with connect(settings) as wh:
        wh.execute("update ops.dbt_state set fingerprint = 'older' where layer = 'staging'")
    changed = dbt_staging_step(settings, run_id)
    assert changed["mode"] == "full" and changed["mode_reason"].startswith("build fingerprint changed")

    # the tests only look at the rows ingested since the previous build: an old row is not tested again
    with connect(settings) as wh:
        wh.execute(
            "insert into staging.stg_crm__customers (record_key, source, is_latest, _source_file, _batch_id, "
            "_row_number, _ingested_at) values ('crm:old:1', 'crm', true, 'crm/old.csv', 'old', 1, ?)",
            [datetime(2000, 1, 1)],
        )
    assert set(dbt_staging_step(settings, run_id)["counts"]) == {"success", "pass"}
    with connect(settings) as wh:
        wh.execute("delete from staging.stg_crm__customers where record_key = 'crm:old:1'")

    # a broken row in a new batch: its id is blank once cleaned (U+3000), so source_id is NULL
    with connect(settings) as wh:
        wh.execute(
            "insert into raw.crm (crm_id, name, _source_file, _batch_id, _row_number, _ingested_at) "
            "values (?, 'broken', 'crm/crm_2099-01-01.csv', 'crm:crm_2099-01-01.csv:0', 1, ?)",
            ["\u3000", datetime(2099, 1, 1)],
        )
    for _ in range(2):  # and again on the next run: a failed build does not move the window on
        with pytest.raises(DbtFailed, match="not_null_stg_crm__customers_source_id"):
            dbt_staging_step(settings, run_id)
        with connect(settings) as wh:
            details = json.loads(
                wh.scalar("select details from ops.run_steps where run_id = ? and step = 'dbt_staging'", [run_id])
            )
        assert details["mode"] == "incremental"
        assert len(details["failures"]) == 1 and "not_null_stg_crm__customers_source_id" in details["failures"][0]
