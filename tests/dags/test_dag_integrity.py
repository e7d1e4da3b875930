"""Every DAG file imports cleanly, has no cycles and uses the shared defaults."""

from __future__ import annotations

import ast
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from customer_mdm import plan
from customer_mdm.config import Settings

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
HEAVY = {"pandas", "duckdb", "psycopg", "great_expectations", "splink", "pyarrow", "dbt", "numpy", "pyspark"}


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("airflow")
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_no_import_errors(dagbag):
    assert not dagbag.import_errors, dagbag.import_errors
    assert "mdm_daily" in dagbag.dag_ids


def test_no_cycles(dagbag):
    from airflow.utils.dag_cycle_tester import check_cycle

    for dag in dagbag.dags.values():
        check_cycle(dag)


def test_shared_retries_timeouts_and_callbacks(dagbag):
    from customer_mdm.alerts import MdmAlertNotifier
    from customer_mdm.orchestration import run_failure_alert, task_failure_alert

    assert isinstance(task_failure_alert, MdmAlertNotifier) and task_failure_alert.event == "task_failed"
    for dag in dagbag.dags.values():
        assert dag.max_active_runs == 1
        dag_callbacks = (
            dag.on_failure_callback if isinstance(dag.on_failure_callback, list) else [dag.on_failure_callback]
        )
        if dag.dag_id in ("mdm_daily", "mdm_governance", "mdm_train_linkage", "mdm_backup"):
            assert run_failure_alert in dag_callbacks, dag.dag_id
        for task in dag.tasks:
            assert task.retries >= 1, task.task_id
            assert task.retry_delay.total_seconds() > 0, task.task_id
            assert task.execution_timeout is not None, task.task_id
            callbacks = task.on_failure_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            assert task_failure_alert in callbacks, task.task_id


def test_daily_dag_is_scheduled_and_alerts_when_the_golden_tables_are_late(dagbag):
    from airflow.sdk import AsyncCallback, DeadlineReference

    from customer_mdm.alerts import MdmAlertNotifier

    dag = dagbag.dags["mdm_daily"]
    assert dag.timetable.expression == "0 3 * * *"
    assert str(dag.timetable.timezone.name) == "Asia/Shanghai"
    deadlines = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    assert len(deadlines) == 1
    alert = deadlines[0]
    assert alert.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    assert alert.interval.total_seconds() == 6 * 3600
    assert isinstance(alert.callback, AsyncCallback), "runs in the triggerer"
    assert alert.callback.path == f"{MdmAlertNotifier.__module__}.{MdmAlertNotifier.__qualname__}"
    assert alert.callback.kwargs == {"event": "golden_tables_late"}
    assert dag.dagrun_timeout is not None


def test_deadline_hours_come_from_the_environment(monkeypatch):
    from customer_mdm.errors import ConfigError
    from customer_mdm.orchestration import golden_deadline

    monkeypatch.setenv("MDM_GOLDEN_DEADLINE_HOURS", "2.5")
    alert = golden_deadline()
    assert alert is not None and alert.interval.total_seconds() == 2.5 * 3600
    for off in ("off", "0"):
        monkeypatch.setenv("MDM_GOLDEN_DEADLINE_HOURS", off)
        assert golden_deadline() is None
    for bad in ("soon", "-1"):
        monkeypatch.setenv("MDM_GOLDEN_DEADLINE_HOURS", bad)
        with pytest.raises(ConfigError, match="MDM_GOLDEN_DEADLINE_HOURS"):
            golden_deadline()


def test_training_and_reports_are_their_own_dags_linked_by_assets(dagbag):
    from customer_mdm.orchestration import GOLDEN_ASSET, LINKAGE_MODEL_ASSET

    train = dagbag.dags["mdm_train_linkage"]
    assert train.timetable.expression == "0 2 * * 0"
    assert [o.uri for o in train.get_task("train_model").outlets] == [LINKAGE_MODEL_ASSET]
    assert [i.uri for i in dagbag.dags["mdm_daily"].get_task("link").inlets] == [LINKAGE_MODEL_ASSET]
    assert GOLDEN_ASSET in repr(dagbag.dags["mdm_governance"].timetable.asset_condition)


def test_daily_dag_has_one_ingest_task_per_feed(dagbag):
    dag = dagbag.dags["mdm_daily"]
    ingest = {t.task_id for t in dag.tasks if t.task_id.startswith("ingest_")}
    assert ingest == {f"ingest_{f.name}" for f in plan.FEEDS}
    gate = dag.get_task("validate_raw")
    assert ingest <= gate.upstream_task_ids
    assert gate.trigger_rule == "all_done", "one source down must not stop the build"
    assert "source_freshness" in {t.task_id for t in dag.tasks}
    order = [
        "validate_raw",
        "dbt_staging",
        "standardize",
        "dbt_build",
        "validate_standardised",
        "link",
        "erasure",
        "dbt_golden",
        "publish",
        "finish",
    ]
    for before, after in itertools.pairwise(order):
        assert before in dag.get_task(after).upstream_task_ids, (before, after)
    assert dag.get_task("finish").trigger_rule == "all_done"


@pytest.mark.parametrize(
    ("dag_id", "steps"),
    [
        ("mdm_daily", plan.DAILY),
        ("mdm_governance", plan.GOVERNANCE),
        ("mdm_backup", plan.BACKUP),
        ("mdm_train_linkage", plan.TRAIN),
    ],
)
def test_dags_are_the_plans_steps_and_edges(dagbag, dag_id, steps):
    """Every task is a step of the plan, every edge an `after` of the plan (the daily tasks also
    take the run id from start), with the plan's trigger rules; the task's doc names its code."""
    dag = dagbag.dags[dag_id]
    names = [n for s in steps for n in s.names()]
    assert sorted(t.task_id for t in dag.tasks) == sorted(names)
    upstream: dict[str, set[str]] = {n: set() for n in names}
    for up, down in plan.edges(steps):
        upstream[down].add(up)
    for s in steps:
        for name in s.names():
            t = dag.get_task(name)
            expected = upstream[name] | ({"start"} if "start" in names and name != "start" else set())
            assert t.upstream_task_ids == expected, name
            assert t.trigger_rule == s.trigger_rule, name
            assert s.function in (t.doc_md or ""), name
    assert plan.expected_steps() == [n for n in names if n != "finish"] or dag_id != "mdm_daily"


def test_publication_updates_the_golden_asset_that_schedules_governance(dagbag):
    from customer_mdm.orchestration import GOLDEN_ASSET

    outlets = dagbag.dags["mdm_daily"].get_task("publish").outlets
    assert [o.uri for o in outlets] == [GOLDEN_ASSET]
    governance = dagbag.dags["mdm_governance"]
    assert "dbt_governance" in governance.get_task("scorecard").upstream_task_ids
    assert GOLDEN_ASSET in repr(governance.timetable.asset_condition)


def test_backup_runs_on_the_golden_asset(dagbag):
    from customer_mdm.orchestration import GOLDEN_ASSET

    backup = dagbag.dags["mdm_backup"]
    assert [t.task_id for t in backup.tasks] == ["backup"]
    assert GOLDEN_ASSET in repr(backup.timetable.asset_condition)


def test_dag_files_import_nothing_heavy_at_parse_time():
    for path in DAGS_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = {(n.module or "").split(".")[0] for n in top_level if isinstance(n, ast.ImportFrom)}
        names |= {a.name.split(".")[0] for n in top_level if isinstance(n, ast.Import) for a in n.names}
        assert not names & HEAVY, f"{path.name} imports {names & HEAVY} at parse time"


def test_dag_parse_is_fast_and_light():
    code = (
        "import sys, importlib.util;"
        f"spec = importlib.util.spec_from_file_location('d', {str(DAGS_DIR / 'mdm_daily.py')!r});"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        f"print(sorted(set(sys.modules) & set({sorted(HEAVY)!r})))"
    )
    env = {**os.environ, **Settings.from_env(env={}).env()}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().endswith("[]"), out.stdout


def test_freshness_runs_after_ingestion_and_its_failure_fails_the_run(dagbag):
    dag = dagbag.dags["mdm_daily"]
    fresh = dag.get_task("source_freshness")
    ingest = {t.task_id for t in dag.tasks if t.task_id.startswith("ingest_")}
    assert fresh.upstream_task_ids == ingest | {"start"}
    assert fresh.trigger_rule == "all_done", "a feed that is down is exactly when freshness matters"
    assert "source_freshness" in dag.get_task("finish").upstream_task_ids
    assert not fresh.downstream_task_ids - {"finish"}, "a stale feed never stops publication"


def test_run_options_are_params_with_a_form(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    from customer_mdm.orchestration import freshness_policy_from_context, full_from_context, run_id_from_context

    params = dagbag.dags["mdm_daily"].params
    assert {"full", "freshness_policy", "mdm_run_id"} <= set(params.keys())
    for name in ("full", "freshness_policy", "mdm_run_id"):
        param = params.get_param(name)
        assert param.schema.get("title") and param.description, f"{name} needs a label and help in the form"
    assert params.get_param("full").schema["type"] == "boolean"
    with pytest.raises(ParamValidationError):
        params.get_param("freshness_policy").resolve("sometimes")
    with pytest.raises(ParamValidationError):
        params.get_param("full").resolve("yes please")
    resolved = {name: params.get_param(name).resolve() for name in params}
    resolved.update(full=params.get_param("full").resolve(True), freshness_policy="fail")
    context = {"params": resolved, "run_id": "manual__1", "dag_run": None}
    assert full_from_context(context) is True
    assert freshness_policy_from_context(context) == "fail"
    assert run_id_from_context(context) == "manual__1"
    # a run triggered with raw conf only (older CLI, REST without params) still works
    legacy = {"params": {}, "run_id": "manual__2", "dag_run": type("R", (), {"conf": {"full": True}})()}
    assert full_from_context(legacy) is True and freshness_policy_from_context(legacy) is None


def test_assets_are_named_as_lineage_tools_read_them(dagbag):
    from customer_mdm.orchestration import GOLDEN_ASSET, LINKAGE_MODEL_ASSET

    assert GOLDEN_ASSET.startswith(("file:///", "postgres://")) and GOLDEN_ASSET.endswith("/marts/dim_customer")
    assert LINKAGE_MODEL_ASSET.startswith("file:///") and LINKAGE_MODEL_ASSET.endswith("/models/linkage")
    uris = {a.uri for dag in dagbag.dags.values() for t in dag.tasks for a in [*t.inlets, *t.outlets]}
    assert not {u for u in uris if u.startswith("mdm://")}, "no private scheme"
