"""Backup of the golden customer data, after every publication of the golden tables.

Scheduled on the golden asset that ``mdm_daily``'s publish task updates, like ``mdm_governance``:
one consistent snapshot (Parquet + manifest with checksums) of ``marts.dim_customer``,
``marts.customer_xref`` and the ``mdm.*`` linkage state under ``$MDM_BACKUP_DIR`` (default
``$MDM_HOME/backups``), copied and verified to ``$MDM_BACKUP_COPY_DIR`` when set, the newest
``$MDM_BACKUP_KEEP`` (14) kept. ``mdm restore SNAPSHOT`` brings one back.
This file only wires tasks: the step is declared in ``customer_mdm.plan.BACKUP``
(``customer_mdm.pipeline.backup_step``).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag

from customer_mdm import plan
from customer_mdm.orchestration import GOLDEN_ASSET, default_args, run_failure_alert, wire


@dag(
    dag_id="mdm_backup",
    schedule=[Asset(GOLDEN_ASSET)],
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    on_failure_callback=run_failure_alert,
    tags=["mdm", "backup"],
    doc_md=__doc__,
)
def mdm_backup() -> None:
    wire(plan.BACKUP)


mdm_backup()
