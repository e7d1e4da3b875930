"""Weekly retraining of the Splink linkage model.

Trains on the current unified records (intermediate.int_customer_records), saves a new model
version (JSON + match-weight and m/u charts) under $MDM_HOME/models/linkage and makes it current.
The next daily run sees the new version and rescores every record with it; until then the daily
runs keep predicting with the version they have. The model is published as an Airflow asset so
that consumers can be scheduled on it.
The step is declared in ``customer_mdm.plan.TRAIN`` (``customer_mdm.linkage.training.train_and_publish``).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from customer_mdm import plan
from customer_mdm.orchestration import default_args, run_failure_alert, wire


@dag(
    dag_id="mdm_train_linkage",
    schedule="0 2 * * 0",
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    on_failure_callback=run_failure_alert,
    tags=["mdm", "linkage"],
    doc_md=__doc__,
)
def mdm_train_linkage() -> None:
    wire(plan.TRAIN)


mdm_train_linkage()
