"""Weekly retraining of the Splink linkage model.

Trains on the current unified records (intermediate.int_customer_records), saves a new model
version (JSON + match-weight and m/u charts) under $MDM_HOME/models/linkage and makes it current.
The next daily run sees the new version and rescores every record with it; until then the daily
runs keep predicting with the version they have. The model is published as an Airflow asset so
that consumers can be scheduled on it.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task

from customer_mdm.orchestration import LINKAGE_MODEL_ASSET, default_args, run_failure_alert


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
    @task(outlets=[Asset(LINKAGE_MODEL_ASSET)])
    def train_model() -> dict:
        from customer_mdm.config import Settings
        from customer_mdm.linkage.training import train_and_publish

        return train_and_publish(Settings.from_env())

    train_model()


mdm_train_linkage()
