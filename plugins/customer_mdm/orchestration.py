"""What every DAG shares: default task arguments, callbacks and the run id convention.

Imported by the DAG files at parse time, so it imports nothing heavy.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

log = logging.getLogger(__name__)

#: Airflow asset URIs linking producer and consumer DAGs
LINKAGE_MODEL_ASSET = "mdm://models/linkage"
#: the published golden tables (marts.dim_customer, marts.customer_xref): written by mdm_daily's
#: publish task once the golden suites pass; mdm_governance runs on every update
GOLDEN_ASSET = "mdm://warehouse/marts/dim_customer"


def on_task_failure(context: Any) -> None:
    """Failure callback shared by every task: log what failed and where to look."""
    ti = context.get("task_instance") or context.get("ti")
    exc = context.get("exception")
    log.error(
        "MDM task failed: dag=%s task=%s run=%s try=%s error=%s",
        getattr(ti, "dag_id", "?"),
        getattr(ti, "task_id", "?"),
        context.get("run_id"),
        getattr(ti, "try_number", "?"),
        exc,
    )


def default_args() -> dict[str, Any]:
    """Retries, timeouts and callbacks, set once for every task of every DAG.

    ``MDM_TASK_RETRIES`` overrides the retry count (``mdm run`` sets 0: a local run should fail
    fast and say why; the scheduler in production retries).
    """
    return {
        "owner": "customer-mdm",
        "retries": int(os.environ.get("MDM_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=20),
        "execution_timeout": timedelta(hours=2),
        "on_failure_callback": on_task_failure,
    }


def run_id_from_context(context: Any) -> str:
    """The platform's run id: ``conf['mdm_run_id']`` when the CLI started the run, else Airflow's."""
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) or {}
    return str(conf.get("mdm_run_id") or context["run_id"])


def full_from_context(context: Any) -> bool:
    """``conf['full']``: rebuild and rescore everything (``mdm run --full``)."""
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    return bool(conf.get("full"))
