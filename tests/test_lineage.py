"""OpenLineage: the daily run's events, received by a real local HTTP server, form a graph from a
landing file through raw, staging, intermediate, the golden build and the published table to the BI
view bi.dim_customer; datasets are named the way lineage tools read them."""

from __future__ import annotations

from collections import defaultdict, deque
from pathlib import Path

import pytest

from customer_mdm.config import Settings
from customer_mdm.lineage import dataset_uri, settings_table, step_job, table_dataset, warehouse_asset_uri
from customer_mdm.pipeline import expected_steps, run_inline
from mdm_devtools.generate import generate_landing
from mdm_devtools.receivers import HttpReceiver


def test_dataset_names_follow_the_openlineage_naming_spec(tmp_path: Path):
    dsn = "postgresql://mdm_pipeline:" + "x" + "@db.internal:6432/mdm?sslmode=require"
    assert table_dataset("postgres", dsn, "marts.dim_customer") == (
        "postgres://db.internal:6432",
        "mdm.marts.dim_customer",
    )
    assert table_dataset("postgres", "host=db dbname=wh user=u", "bi.dim_customer") == (
        "postgres://db:5432",
        "wh.bi.dim_customer",
    )
    duck = tmp_path / "w.duckdb"
    assert table_dataset("duckdb", str(duck), "raw.crm") == ("file", f"{duck}/raw/crm")
    assert dataset_uri(("postgres://db:5432", "mdm.marts.dim_customer")) == "postgres://db:5432/mdm/marts/dim_customer"
    assert dataset_uri(("file", "/x/w.duckdb/raw/crm")) == "file:///x/w.duckdb/raw/crm"
    env = {"MDM_TARGET": "postgres", "MDM_PG_DSN": dsn}
    assert warehouse_asset_uri("marts.dim_customer", env) == "postgres://db.internal:6432/mdm/marts/dim_customer"
    assert "x@" not in warehouse_asset_uri("marts.dim_customer", env), "no credentials in an asset URI"
    assert (
        warehouse_asset_uri("marts.dim_customer", {"MDM_HOME": str(tmp_path)})
        == f"file://{tmp_path}/warehouse.duckdb/marts/dim_customer"
    )


def graph(events: list[dict]) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """dataset -> datasets written by a job run that read it (COMPLETE events)."""
    edges: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for e in events:
        if e["eventType"] != "COMPLETE":
            continue
        for i in e["inputs"]:
            for o in e["outputs"]:
                edges[(i["namespace"], i["name"])].add((o["namespace"], o["name"]))
    return edges


def reachable(edges, start) -> set:
    seen, queue = {start}, deque([start])
    while queue:
        for nxt in edges.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


@pytest.mark.slow
def test_run_events_form_a_graph_from_a_landing_file_to_the_bi_view(tmp_path: Path, monkeypatch):
    landing = tmp_path / "landing"
    generate_landing(landing, 60, seed=3, days=1)
    settings = Settings.from_env(env={}, home=tmp_path / "home", landing=landing)
    with HttpReceiver() as backend:
        monkeypatch.setenv("OPENLINEAGE_URL", backend.url)
        monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "mdm-test")
        run_inline(settings, "run_lineage", governance=False)
    assert {r.path for r in backend.requests} == {"/api/v1/lineage"}, "OpenLineage's HTTP transport"
    events = backend.bodies
    assert {e["job"]["namespace"] for e in events} == {"mdm-test"}

    # every step of the daily run: a START and a COMPLETE, children of the platform run
    step_jobs = {step_job(s): s for s in expected_steps()}
    steps = defaultdict(list)
    for e in events:
        if e["job"]["name"] in step_jobs:
            steps[step_jobs[e["job"]["name"]]].append(e["eventType"])
    assert {s: sorted(v) for s, v in steps.items()} == {s: ["COMPLETE", "START"] for s in expected_steps()}
    parents = {
        (e["run"]["facets"]["parent"]["job"]["name"], e["run"]["facets"]["parent"]["run"]["runId"])
        for e in events
        if e["job"]["name"] in step_jobs
    }
    assert len(parents) == 1 and next(iter(parents))[0] == "customer_mdm.daily_run"
    # dbt models are children of their step
    dim = [e for e in events if e["job"]["name"] == "customer_mdm.dbt.dim_customer"]
    assert dim and dim[0]["run"]["facets"]["parent"]["job"]["name"] == "customer_mdm.dbt_golden"

    # every dbt model run: its own job with the model's relation as output
    dbt_jobs = {e["job"]["name"] for e in events if e["job"]["name"].startswith("customer_mdm.dbt.")}
    assert {
        "customer_mdm.dbt.stg_crm__customers",
        "customer_mdm.dbt.int_customer_records",
        "customer_mdm.dbt.dim_customer",
    } <= dbt_jobs
    golden_build = settings_table(settings, "golden_build.dim_customer")
    dim_customer = next(
        e for e in events if e["job"]["name"] == "customer_mdm.dbt.dim_customer" and e["eventType"] == "COMPLETE"
    )
    assert [(o["namespace"], o["name"]) for o in dim_customer["outputs"]] == [golden_build]

    # the graph: a landing file -> raw.crm -> staging -> ... -> golden_build -> marts -> bi.dim_customer
    crm_file = next((landing / "crm").iterdir())
    start = ("file", str(crm_file.resolve()))
    reached = reachable(graph(events), start)
    for table in (
        "raw.crm",
        "staging.stg_crm__customers",
        "intermediate.int_customer_records",
        "golden_build.dim_customer",
        "marts.dim_customer",
        "bi.dim_customer",
    ):
        assert settings_table(settings, table) in reached, table
    namespace, name = settings_table(settings, "bi.dim_customer")
    assert namespace == "file" and name == f"{settings.warehouse_file}/bi/dim_customer"
