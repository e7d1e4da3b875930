"""Airflow's OpenLineage provider is installed and, with OPENLINEAGE_URL set, sends a START and a
COMPLETE for a task run by Airflow, with the platform's asset URIs translated into OpenLineage
datasets (a real `airflow dags test` against a local HTTP receiver)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from customer_mdm.lineage import warehouse_asset_uri
from mdm_devtools.receivers import HttpReceiver

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

PROBE = """
import pendulum
from airflow.sdk import Asset, dag, task
from customer_mdm.orchestration import GOLDEN_ASSET, default_args

@dag(dag_id="ol_probe", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False,
     default_args=default_args())
def ol_probe():
    @task(outlets=[Asset(GOLDEN_ASSET)])
    def publish_probe():
        return 1
    publish_probe()

ol_probe()
"""


def test_the_provider_emits_task_events_with_the_assets(tmp_path: Path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "ol_probe.py").write_text(PROBE)
    home = tmp_path / "mdm"
    airflow = str(Path(sys.executable).with_name("airflow"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "OPENLINEAGE", "MDM_"))},
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "plugins"),
        "MDM_HOME": str(home),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        "OPENLINEAGE_NAMESPACE": "mdm-test",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "mdm-test",
    }
    migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600)
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    with HttpReceiver() as backend:
        env["OPENLINEAGE_URL"] = backend.url
        run = subprocess.run(
            [airflow, "dags", "test", "ol_probe"], env=env, capture_output=True, text=True, timeout=600
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    task_events = [e for e in backend.bodies if e["job"]["name"] == "ol_probe.publish_probe"]
    assert sorted(e["eventType"] for e in task_events) == ["COMPLETE", "START"]
    assert {e["job"]["namespace"] for e in task_events} == {"mdm-test"}
    golden = warehouse_asset_uri("marts.dim_customer", {"MDM_HOME": str(home)})
    complete = next(e for e in task_events if e["eventType"] == "COMPLETE")
    assert [(o["namespace"], o["name"]) for o in complete["outputs"]] == [("file", golden.removeprefix("file://"))]
