"""The pipeline side of the console on both warehouses: actions queued in the hub store are
applied at the start of the link step through the same path as `mdm review decide`; corrections
are stored for survivorship, the golden id is marked dirty, every action is audited with the
user; actions naming gone records are rejected without stopping the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import pytest

from customer_mdm.config import Settings
from customer_mdm.console import auth
from customer_mdm.console.apply import apply_pending
from customer_mdm.console.store import actions, add_action, connect_store
from customer_mdm.linkage.step import ensure_tables
from customer_mdm.security import mask_email, mask_name, mask_phone
from customer_mdm.warehouse import connect

RECORDS = {"crm:A1": "G1", "crm:A2": "G1", "ecommerce:B1": "G2", "callcenter:C1": "G2"}


def _warehouse(settings: Settings) -> None:
    settings.ensure_dirs()
    with connect(settings) as wh:
        for schema in ("mdm", "audit"):
            wh.execute(f"create schema if not exists {schema}")
        ensure_tables(wh)
        for rid, gid in RECORDS.items():
            source, sid = rid.split(":")
            wh.execute(
                "insert into mdm.link_state (record_id, content_hash, model_version) values (?, 'h', 'v1')", [rid]
            )
            wh.execute(
                "insert into mdm.xref (record_id, source, source_id, golden_id, assignment, run_id) "
                "values (?, ?, ?, ?, 'model', 'r0')",
                [rid, source, sid, gid],
            )


def test_queued_actions_are_applied_by_the_next_link_step(settings: Settings) -> None:
    _warehouse(settings)
    with connect_store(settings) as store:
        add_action(store, "decision", "user:alice", record_id_l="ecommerce:B1", record_id_r="crm:A1", value="match")
        add_action(store, "split", "user:alice", golden_id="G2", record_id_l="callcenter:C1", note="other person")
        add_action(store, "correction", "user:alice", golden_id="G1", record_id_l="crm:A2", field="name", value="王芳")
        add_action(store, "correction", "user:bob", golden_id="G1", record_id_l="crm:A2", field="tier", value="vip")
        add_action(store, "decision", "user:bob", record_id_l="crm:GONE", record_id_r="crm:A1", value="no_match")
        add_action(store, "worklist", "user:bob", status="logged", golden_id="G1", value="done")

    summary = apply_pending(settings, "run_2")
    assert summary["applied"] == 3 and summary["rejected"] == 2

    with connect(settings) as wh:
        decisions = wh.query(
            "select record_id_l, record_id_r, decision, decided_by from mdm.steward_decisions order by 1, 2"
        )
        assert decisions == [
            ("callcenter:C1", "ecommerce:B1", "no_match", "user:alice"),  # the split: must-not-link
            ("crm:A1", "ecommerce:B1", "match", "user:alice"),
        ]
        corrections = wh.query(
            "select record_id, golden_id, attribute, value, corrected_by from mdm.steward_corrections"
        )
        assert corrections == [("crm:A2", "G1", "name", "王芳", "user:alice")]
        assert ("G1", "run_2", "steward") in wh.query("select golden_id, run_id, reason from mdm.golden_dirty")
        audit = wh.query("select actor, action, golden_id, field, new_value from audit.golden_changes order by 2, 3")
    assert {(a[0], a[1]) for a in audit} == {("user:alice", "steward_decision"), ("user:alice", "steward_correction")}
    correction_audit = next(a for a in audit if a[1] == "steward_correction")
    assert correction_audit[2:4] == ("G1", "name")
    assert "王芳" not in correction_audit[4] and "crm:A2" not in correction_audit[4]  # pseudonymised
    assert set(json.loads(correction_audit[4])) == {"value", "record"}

    with connect_store(settings) as store:
        done = {(a["kind"], a["actor"]): a for a in actions(store)}
    assert done[("decision", "user:alice")]["status"] == "applied"
    assert done[("decision", "user:alice")]["run_id"] == "run_2"
    assert done[("correction", "user:bob")]["status"] == "rejected"
    assert "cannot be corrected" in done[("correction", "user:bob")]["outcome"]
    assert done[("decision", "user:bob")]["status"] == "rejected"
    assert "unknown record" in done[("decision", "user:bob")]["outcome"]
    assert done[("worklist", "user:bob")]["status"] == "logged"  # nothing to apply

    # applied once: a second link step finds nothing pending
    assert apply_pending(settings, "run_3") == {"applied": 0, "rejected": 0}


def test_store_erasure_removes_the_console_rows_of_erased_persons(settings: Settings) -> None:
    with connect_store(settings) as store:
        add_action(store, "correction", "user:alice", golden_id="G1", record_id_l="crm:A2", field="name", value="王芳")
        add_action(store, "merge", "user:alice", golden_id="G3", other_golden_id="G1", record_id_l="x:1")
        add_action(store, "correction", "user:alice", golden_id="G2", record_id_l="crm:B1", field="name", value="李")
    # the erasure step runs in its own process (an Airflow task) that never imported the console
    code = (
        "import sys, types; from customer_mdm.config import Settings; "
        "from customer_mdm.hub.erasure import erase_persons; "
        "s = Settings.from_env(); "
        "print(erase_persons(s, [types.SimpleNamespace(golden_ids={'G1'})], [])['store'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **settings.env()}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "console_actions" in done.stdout
    with connect_store(settings) as store:
        left = [(a["golden_id"], a["value"]) for a in actions(store)]
    assert left == [("G2", "李")]
    with connect_store(settings) as store:
        left = [(a["golden_id"], a["value"]) for a in actions(store)]
    assert left == [("G2", "李")]


@pytest.mark.parametrize(
    ("column", "python_mask", "sql_mask"),
    [
        ("phone", auth.mask_phone, mask_phone),
        ("email", auth.mask_email, mask_email),
        ("name", auth.mask_name, mask_name),
    ],
)
def test_console_masks_equal_the_bi_views_masks(column, python_mask, sql_mask) -> None:
    samples = ["+8613812345678", "zhang.wei@example.com", "王伟", "欧阳娜娜", "12345", "no-at-sign", "", None, "a@b.cn"]
    con = duckdb.connect()
    try:
        for value in samples:
            expected = con.execute(f"select {sql_mask('v')} from (select cast(? as varchar) as v)", [value]).fetchall()
            assert python_mask(value) == expected[0][0], (column, value)
    finally:
        con.close()
