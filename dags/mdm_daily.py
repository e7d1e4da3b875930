"""Daily customer master-data pipeline.

start -> ingest one task per landing feed -> validate_raw (Great Expectations) -> dbt staging
-> standardize (Python lookups) -> dbt build (intermediate, marts) -> validate_standardised ->
link (Splink, golden ids) -> erasure (erasure requests, tombstones) -> dbt golden (into
golden_build) -> publish (golden suites, then swap into marts: write-audit-publish) -> finish
(run summary). Every step is incremental: only what
changed since the last run is rebuilt. The run options are Airflow params (a form under
"Trigger"): ``full`` rebuilds and rescores everything (``mdm run --full``), ``freshness_policy``
overrides ``MDM_FRESHNESS_POLICY``. ``source_freshness`` runs ``dbt source freshness`` once the
feeds are ingested: a stale feed is recorded, alerted and, under the ``fail`` policy, fails the run
(after publication, like a feed that is down).

Ingestion tasks never fail on bad input: bad files and rows go to ``ops.quarantine``. A feed
task fails only when its source or the warehouse is unreachable; the other feeds and the build
still run (trigger rule ``all_done`` on ``validate_raw``), and ``finish`` fails the run, naming
what went wrong. A blocking expectation fails its gate and stops the run before publication:
yesterday's golden tables stay in ``marts``. ``publish`` updates the golden asset, on which
``mdm_governance`` (worklist, segments, scorecard, report) is scheduled; ``link`` reads the
model asset that ``mdm_train_linkage`` publishes. A failed task or run is alerted
(``customer_mdm.alerts``: log + ``MDM_ALERT_WEBHOOK``), and so are golden tables not published
``MDM_GOLDEN_DEADLINE_HOURS`` (default 6) after the 03:00 schedule (an Airflow deadline alert).
This file only wires tasks: the steps, their order and the function each runs are declared in
``customer_mdm.plan.DAILY``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from customer_mdm import plan
from customer_mdm.orchestration import daily_params, default_args, golden_deadline, run_failure_alert, wire


@dag(
    dag_id="mdm_daily",
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    dagrun_timeout=pendulum.duration(hours=6),
    on_failure_callback=run_failure_alert,
    deadline=golden_deadline(),
    params=daily_params(),
    tags=["mdm", "daily"],
    doc_md=__doc__,
)
def mdm_daily() -> None:
    wire(plan.DAILY)


mdm_daily()
