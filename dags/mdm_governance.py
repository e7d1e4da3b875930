"""Governance outputs, after every publication of the golden tables.

Scheduled on the golden asset that ``mdm_daily``'s publish task updates (so it runs once per
successful daily run, whenever that finishes): dbt governance models (re-verification worklist,
cross-source consistency report, customer segments and RFM tiers) -> quality scorecard (stored
in ``governance.scorecard_history``) and the static HTML report under
``$MDM_HOME/reports/scorecard/index.html`` -> the dbt docs site (catalogue, exposures, lineage)
under ``$MDM_HOME/dbt/docs``.
This file only wires tasks: the steps are declared in ``customer_mdm.plan.GOVERNANCE``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag

from customer_mdm import plan
from customer_mdm.orchestration import GOLDEN_ASSET, default_args, run_failure_alert, wire


@dag(
    dag_id="mdm_governance",
    schedule=[Asset(GOLDEN_ASSET)],
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    on_failure_callback=run_failure_alert,
    tags=["mdm", "governance"],
    doc_md=__doc__,
)
def mdm_governance() -> None:
    wire(plan.GOVERNANCE)


mdm_governance()
