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
This file only wires tasks: the work is in ``customer_mdm.pipeline``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task

from customer_mdm.orchestration import (
    GOLDEN_ASSET,
    LINKAGE_MODEL_ASSET,
    daily_params,
    default_args,
    freshness_policy_from_context,
    full_from_context,
    golden_deadline,
    run_failure_alert,
    run_id_from_context,
)
from customer_mdm.sources import FEEDS


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
    @task
    def start(**context) -> str:
        from customer_mdm.config import Settings
        from customer_mdm.pipeline import start_run

        return start_run(Settings.from_env(), run_id_from_context(context), context["run_id"])

    @task
    def ingest(mdm_run: str, feed_name: str) -> dict:
        from customer_mdm.config import Settings
        from customer_mdm.pipeline import ingest_step

        return ingest_step(Settings.from_env(), mdm_run, feed_name)

    @task(trigger_rule="all_done")
    def source_freshness(mdm_run: str, **context) -> dict:
        from customer_mdm.config import Settings
        from customer_mdm.pipeline import source_freshness_step

        return source_freshness_step(Settings.from_env(), mdm_run, freshness_policy_from_context(context))

    @task(trigger_rule="all_done")
    def validate_raw(mdm_run: str, **context) -> dict:
        from customer_mdm.config import Settings
        from customer_mdm.pipeline import validate_raw_step

        return validate_raw_step(Settings.from_env(), mdm_run, full=full_from_context(context))

    @task
    def dbt_staging(mdm_run: str, **context) -> dict:
        from customer_mdm.config import Settings
        from customer_mdm.pipeline import dbt_staging_step

        return dbt_staging_step(Settings.from_env(), mdm_run, full=full_from_context(context))

    @task
    def standardize(mdm_run: str) -> dict:
        from customer_mdm.config import Settings
        from customer_mdm.pipeline import standardize_step

        return standardize_step(Settings.from_env(), mdm_run)

    @task
    def dbt_build(mdm_run: str, **context) -> dict:
        from customer_mdm.config import Settings
        from customer_mdm.pipeline import dbt_build_step

        return dbt_build_step(Settings.from_env(), mdm_run, full=full_from_context(context))

    @task
    def validate_standardised(mdm_run: str, **context) -> dict:
        from customer_mdm.config import Settings
        from customer_mdm.pipeline import validate_standardised_step

        return validate_standardised_step(Settings.from_env(), mdm_run, full=full_from_context(context))

    @task
    def erasure(mdm_run: str) -> dict:
        from customer_mdm.config import Settings
        from customer_mdm.pipeline import erasure_step

        return erasure_step(Settings.from_env(), mdm_run)

    @task(inlets=[Asset(LINKAGE_MODEL_ASSET)])
    def link(mdm_run: str, **context) -> dict:
        from customer_mdm.config import Settings
        from customer_mdm.pipeline import link_step

        return link_step(Settings.from_env(), mdm_run, full=full_from_context(context))

    @task
    def dbt_golden(mdm_run: str, **context) -> dict:
        from customer_mdm.config import Settings
        from customer_mdm.pipeline import dbt_golden_step

        return dbt_golden_step(Settings.from_env(), mdm_run, full=full_from_context(context))

    @task(outlets=[Asset(GOLDEN_ASSET)])
    def publish(mdm_run: str) -> dict:
        from customer_mdm.config import Settings
        from customer_mdm.pipeline import publish_step

        return publish_step(Settings.from_env(), mdm_run)

    @task(trigger_rule="all_done")
    def finish(mdm_run: str) -> dict:
        from customer_mdm.config import Settings
        from customer_mdm.pipeline import finish_run

        return finish_run(Settings.from_env(), mdm_run)

    mdm_run = start()
    ingests = [ingest.override(task_id=f"ingest_{f.name}")(mdm_run, f.name) for f in FEEDS]
    gate_raw = validate_raw(mdm_run)
    ingests >> gate_raw
    fresh = source_freshness(mdm_run)
    ingests >> fresh
    staged = dbt_staging(mdm_run)
    built = dbt_build(mdm_run)
    gate_raw >> staged >> standardize(mdm_run) >> built
    golden = dbt_golden(mdm_run)
    built >> validate_standardised(mdm_run) >> link(mdm_run) >> erasure(mdm_run) >> golden
    finished = finish(mdm_run)
    golden >> publish(mdm_run) >> finished
    fresh >> finished


mdm_daily()
