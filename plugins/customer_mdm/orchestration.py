"""What every DAG shares: default task arguments, failure alerts, the golden-table deadline, the
run id convention, and :func:`wire`, which makes a DAG's tasks and edges from the plan's steps
(:mod:`customer_mdm.plan`).

Imported by the DAG files at parse time, so it imports nothing heavy.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

# exported by airflow.sdk at run time; imported from their modules for the type checker (the
# package's .pyi stub does not list them yet)
from airflow.sdk import Asset, task
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference
from airflow.sdk.definitions.param import Param

from customer_mdm import plan
from customer_mdm.alerts import GOLDEN_LATE, RUN_FAILED, TASK_FAILED, MdmAlertNotifier
from customer_mdm.config import Settings
from customer_mdm.errors import ConfigError
from customer_mdm.lineage import home_asset_uri, warehouse_asset_uri

log = logging.getLogger(__name__)

#: Airflow asset URIs linking producer and consumer DAGs, named as lineage tools read them
#: (customer_mdm.lineage): the trained linkage model's directory under $MDM_HOME ...
LINKAGE_MODEL_ASSET = home_asset_uri("models/linkage")
#: ... and the published golden tables (marts.dim_customer, marts.customer_xref), written by
#: mdm_daily's publish task once the golden suites pass; mdm_governance runs on every update.
#: postgres://host:port/db/marts/dim_customer, or file:///.../warehouse.duckdb/marts/dim_customer
GOLDEN_ASSET = warehouse_asset_uri("marts.dim_customer")


#: hours after a daily run's scheduled time (its logical date) by which the golden tables must be
#: published; past it the deadline alert fires (``MDM_GOLDEN_DEADLINE_HOURS``)
GOLDEN_DEADLINE_HOURS = 6.0

#: every task's failure callback: log + ``$MDM_ALERT_WEBHOOK`` (see ``customer_mdm.alerts``)
task_failure_alert = MdmAlertNotifier(TASK_FAILED)
#: a DAG run that ends failed (run by the dag-processor)
run_failure_alert = MdmAlertNotifier(RUN_FAILED)


def on_task_failure(context: Any) -> None:
    """The task failure alert as a plain function (the callback before the notifier; kept for callers)."""
    task_failure_alert(context)


def default_args() -> dict[str, Any]:
    """Retries, timeouts and callbacks, set once for every task of every DAG.

    ``MDM_TASK_RETRIES`` overrides the retry count (``mdm run`` sets 0: a local run should fail
    fast and say why; the scheduler in production retries). A task that fails for good calls
    :data:`task_failure_alert`.
    """
    return {
        "owner": "customer-mdm",
        "retries": int(os.environ.get("MDM_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=20),
        "execution_timeout": timedelta(hours=2),
        "on_failure_callback": [task_failure_alert],
    }


def golden_deadline_hours() -> float | None:
    """``MDM_GOLDEN_DEADLINE_HOURS`` (default 6); ``off`` or ``0`` turns the deadline alert off."""
    raw = os.environ.get("MDM_GOLDEN_DEADLINE_HOURS", "").strip()
    if not raw:
        return GOLDEN_DEADLINE_HOURS
    if raw.lower() in ("off", "0", "none"):
        return None
    try:
        hours = float(raw)
    except ValueError:
        raise ConfigError(f"MDM_GOLDEN_DEADLINE_HOURS must be a number of hours or 'off', not {raw!r}") from None
    if hours <= 0:
        raise ConfigError(f"MDM_GOLDEN_DEADLINE_HOURS must be positive (or 'off'), not {raw!r}")
    return hours


def golden_deadline() -> DeadlineAlert | None:
    """Alert when a daily run has not published the golden tables N hours after its scheduled time.

    An Airflow deadline alert on the run's logical date (the 03:00 schedule point): if the run is
    still going (or queued) ``MDM_GOLDEN_DEADLINE_HOURS`` (default 6) later, the scheduler hands
    :class:`~customer_mdm.alerts.MdmAlertNotifier` to the triggerer, which logs and POSTs the alert.
    A run that succeeds in time removes its deadline; a failed run keeps it (after
    :data:`run_failure_alert`), since the golden tables stay late until a run succeeds. Runs without
    a logical date (manual triggers without one) get no deadline. ``None`` when turned off (``mdm run``
    does: ``airflow dags test`` in Airflow 3.3.2 fails at the end of a successful run of a DAG with a
    deadline, and an interactive run needs no lateness alert).
    """
    hours = golden_deadline_hours()
    if hours is None:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=timedelta(hours=hours),
        callback=AsyncCallback(MdmAlertNotifier, kwargs={"event": GOLDEN_LATE}),
        name="golden_tables_published",
    )


#: the form "Trigger DAG w/ config" shows for mdm_daily (Airflow params, validated by JSON schema);
#: ``mdm run`` passes the same keys as conf
FRESHNESS_POLICY_CHOICES = ("env", "warn", "fail", "off")


def daily_params() -> dict[str, Param]:
    """Run options of ``mdm_daily``: a full rebuild, the freshness policy, the platform run id."""
    return {
        "full": Param(
            False,
            type="boolean",
            title="Full rebuild",
            description="Rebuild every dbt layer and rescore every record instead of the incremental run "
            "(mdm run --full). Needed after changing survivorship rules or standardisation.",
        ),
        "freshness_policy": Param(
            "env",
            type="string",
            enum=list(FRESHNESS_POLICY_CHOICES),
            title="Source freshness policy",
            description="warn: alert on stale source feeds and go on; fail: also fail the run when a feed is "
            "past error_after; off: skip the check; env: MDM_FRESHNESS_POLICY (default warn).",
        ),
        "mdm_run_id": Param(
            None,
            type=["null", "string"],
            title="Platform run id",
            description="Record the run under this id in ops.runs (the CLI sets it); empty: Airflow's run id.",
        ),
    }


def _option(context: Any, name: str) -> Any:
    """A run option: the run's params (the form, validated), else its raw conf (older triggers)."""
    params = context.get("params") or {}
    if name in params and params[name] is not None:
        return params[name]
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    return conf.get(name)


def run_id_from_context(context: Any) -> str:
    """The platform's run id: the ``mdm_run_id`` option when the CLI started the run, else Airflow's."""
    return str(_option(context, "mdm_run_id") or context["run_id"])


def full_from_context(context: Any) -> bool:
    """The ``full`` option: rebuild and rescore everything (``mdm run --full``)."""
    value = _option(context, "full")
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def freshness_policy_from_context(context: Any) -> str | None:
    """The ``freshness_policy`` option, ``None`` for ``env`` (then ``MDM_FRESHNESS_POLICY`` decides)."""
    value = _option(context, "freshness_policy")
    return None if value in (None, "", "env") else str(value)


def _assets(names: tuple[str, ...]) -> list[Asset]:
    uris = {"golden": GOLDEN_ASSET, "linkage_model": LINKAGE_MODEL_ASSET}
    return [Asset(uris[n]) for n in names]


def _callable(step: plan.Step, feed_name: str | None) -> Any:
    """The task's Python callable: the step's function with the options it takes, read from the
    run (``mdm_run``: the platform run id the ``start`` task returned, else the run's own)."""

    def run(mdm_run: str | None = None, **context: Any) -> Any:
        options: dict[str, Any] = {
            "run_id": mdm_run or run_id_from_context(context),
            "dag_run_id": context["run_id"],
            "feed_name": feed_name,
            "full": full_from_context(context),
            "policy": freshness_policy_from_context(context),
        }
        kwargs: dict[str, Any] = {k: options[k] for k in step.options}
        return step.resolve()(Settings.from_env(), **kwargs)

    return run


def wire(steps: tuple[plan.Step, ...]) -> dict[str, Any]:
    """Inside a ``@dag`` function: one task per step of ``steps`` (one per feed for a per-feed
    step), with the plan's trigger rules, assets and edges. A ``start`` step's result (the
    platform run id) is handed to every other task. Returns the tasks by id."""
    tasks: dict[str, Any] = {}
    run_id = None
    for step in steps:
        feeds: list[str | None] = [f.name for f in plan.FEEDS] if step.per_feed else [None]
        for name, feed_name in zip(step.names(), feeds, strict=True):
            operator = task(
                task_id=name,
                trigger_rule=step.trigger_rule,
                inlets=_assets(step.inlets),
                outlets=_assets(step.outlets),
                doc_md=f"{step.summary}\n\nRuns `{step.function}` (customer_mdm.plan).",
            )(_callable(step, feed_name))
            tasks[name] = operator(run_id) if run_id is not None else operator()
        if step.name == "start":
            run_id = tasks["start"]
    for up, down in plan.edges(steps):
        tasks[up] >> tasks[down]
    return tasks
