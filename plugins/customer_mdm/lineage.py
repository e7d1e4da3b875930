"""OpenLineage: run events for every pipeline step and every dbt model, with datasets named the way
lineage tools (Marquez, DataHub, OpenMetadata, Atlan ...) read them.

Names (the OpenLineage naming spec; Airflow assets use the matching URIs):

==================  ==============================================  ===========================================
dataset             OpenLineage namespace / name                    Airflow asset URI
==================  ==============================================  ===========================================
landing file        ``file`` / ``/abs/landing/crm/crm_1.csv``         ``file:///abs/landing/crm/crm_1.csv``
PostgreSQL table    ``postgres://host:port`` / ``db.schema.table``    ``postgres://host:port/db/schema/table``
DuckDB table        ``file`` / ``/abs/warehouse.duckdb/schema/table``  ``file:///abs/warehouse.duckdb/schema/table``
==================  ==============================================  ===========================================

What emits:

* :func:`step_started` / :func:`step_finished` (``customer_mdm.pipeline.step``): START and
  COMPLETE/FAIL of each step, job ``customer_mdm.<step>``, its inputs and outputs (an ingest step
  reads the landing files it loaded and writes ``raw.<feed>``; publish reads ``golden_build.*`` and
  writes ``marts.*``); its parent is the Airflow task run that ran it (the provider's job
  ``mdm_daily.<task>``, so the hierarchy is DAG run -> task -> step -> dbt model), or outside Airflow
  the platform run (job ``customer_mdm.daily_run``);
* :func:`emit_dbt_models` (``customer_mdm.dbt.run_dbt``): one COMPLETE/FAIL event per dbt node
  run, job ``customer_mdm.dbt.<model>``, from ``run_results.json`` and ``manifest.json`` (inputs:
  the node's sources and parent models; output: its relation);
* :func:`emit_bi_views` (``customer_mdm.security.apply``): the masked views of schema ``bi`` from
  their base tables;
* the Airflow OpenLineage provider (``apache-airflow-providers-openlineage``): a START/COMPLETE for
  every Airflow task, configured by the same ``OPENLINEAGE_URL`` (or ``AIRFLOW__OPENLINEAGE__TRANSPORT``).

Emission is on when ``OPENLINEAGE_URL`` or ``OPENLINEAGE_CONFIG`` (or ``OPENLINEAGE__TRANSPORT__*``) is
set and ``OPENLINEAGE_DISABLED`` is not ``true``; the job namespace is ``OPENLINEAGE_NAMESPACE``
(default ``customer-mdm``). A lineage backend that is down is logged and never fails a step.
Events carry names of files, tables and jobs only, never data. This module imports nothing heavy
(DAG files import the asset URIs); the OpenLineage client is imported when an event is sent.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

NAMESPACE_ENV = "OPENLINEAGE_NAMESPACE"
DEFAULT_NAMESPACE = "customer-mdm"
PRODUCER = "https://github.com/customer-mdm/customer-mdm"
#: job name prefix of the pipeline's steps, and the job of a platform run outside Airflow (the
#: Airflow provider names its task jobs ``<dag_id>.<task_id>``: different names, no collision)
JOB_PREFIX = "customer_mdm"
DAILY_JOB = f"{JOB_PREFIX}.daily_run"

Dataset = tuple[str, str]  # (namespace, name)


# ----------------------------------------------------------------------------- naming
def _pg_location(dsn: str) -> tuple[str, str, str]:
    """(host, port, database) of a libpq DSN, URL or ``key=value`` form, without importing psycopg."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        return parts.hostname or "localhost", str(parts.port or 5432), unquote(parts.path.lstrip("/")) or "postgres"
    params = dict(re.findall(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn))
    params = {k: v.strip("'") for k, v in params.items()}
    return params.get("host", "localhost"), params.get("port", "5432"), params.get("dbname", "postgres")


def table_dataset(target: str, location: str, table: str) -> Dataset:
    """The OpenLineage dataset of ``schema.table``: ``location`` is the PostgreSQL DSN or the DuckDB file."""
    schema, name = table.split(".", 1)
    if target == "postgres":
        host, port, database = _pg_location(location)
        return f"postgres://{host}:{port}", f"{database}.{schema}.{name}"
    return "file", f"{Path(location).resolve()}/{schema}/{name}"


def dataset_uri(dataset: Dataset) -> str:
    """The Airflow asset URI of an OpenLineage dataset (what the provider translates back)."""
    namespace, name = dataset
    if namespace == "file":
        return f"file://{name}"
    database, schema, table = name.split(".", 2)
    return f"{namespace}/{database}/{schema}/{table}"


def settings_table(settings: Any, table: str) -> Dataset:
    location = settings.pg_dsn if settings.target == "postgres" else str(settings.warehouse_file)
    return table_dataset(settings.target, location or "", table)


def file_dataset(path: Path | str) -> Dataset:
    return "file", str(Path(path).resolve())


def warehouse_asset_uri(table: str, env: Mapping[str, str] | None = None) -> str:
    """The Airflow asset URI of a warehouse table from the environment, for DAG files at parse time
    (no validation, no connection lookup: a DSN that comes only from an Airflow connection gives the
    host ``warehouse``)."""
    env = os.environ if env is None else env
    if (env.get("MDM_TARGET") or "duckdb").lower() == "postgres":
        dsn = env.get("MDM_PG_DSN") or "postgresql://warehouse:5432/mdm"
        return dataset_uri(table_dataset("postgres", dsn, table))
    home = Path(env.get("MDM_HOME") or ".mdm").expanduser()
    duckdb = env.get("MDM_DUCKDB_PATH") or str(home / "warehouse.duckdb")
    return dataset_uri(table_dataset("duckdb", duckdb, table))


def home_asset_uri(relative: str, env: Mapping[str, str] | None = None) -> str:
    """A ``file://`` asset URI under ``$MDM_HOME`` (e.g. the linkage model artefacts)."""
    env = os.environ if env is None else env
    home = Path(env.get("MDM_HOME") or ".mdm").expanduser().resolve()
    return f"file://{home / relative}"


# ----------------------------------------------------------------------------- emission
def enabled() -> bool:
    if os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return False
    return bool(
        os.environ.get("OPENLINEAGE_URL")
        or os.environ.get("OPENLINEAGE_CONFIG")
        or any(k.startswith("OPENLINEAGE__TRANSPORT") for k in os.environ)
    )


def namespace() -> str:
    return os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE


def run_uuid(*parts: str) -> str:
    """A stable run id (UUID) for a platform run, a step of it or a dbt node of a step."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "customer-mdm:" + "/".join(parts)))


#: one client per OpenLineage configuration (the environment may change, e.g. between tests)
_clients: dict[tuple[tuple[str, str], ...], Any] = {}


def _emit(events: Iterable[Any]) -> int:
    sent = 0
    try:
        from openlineage.client import OpenLineageClient

        key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("OPENLINEAGE")))
        if key not in _clients:
            _clients[key] = OpenLineageClient()
        client = _clients[key]
        for event in events:
            client.emit(event)
            sent += 1
    except Exception as exc:  # noqa: BLE001 - a lineage backend that is down never fails a step
        log.warning("OpenLineage event not delivered (%s: %s)", type(exc).__name__, str(exc)[:200])
    return sent


def _event(
    state: str,
    job: str,
    run_id: str,
    inputs: Iterable[Dataset] = (),
    outputs: Iterable[Dataset] = (),
    parent: tuple[str, str] | None = None,
    error: str | None = None,
    when: datetime | None = None,
) -> Any:
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run, parent_run

    facets: dict[str, Any] = {}
    if parent:
        parent_job, parent_run_id = parent
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent_run_id), job=parent_run.Job(namespace=namespace(), name=parent_job)
        )
    if error:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error[:2000], programmingLanguage="python"
        )
    return RunEvent(
        eventType=getattr(RunState, state),
        eventTime=(when or datetime.now(UTC)).isoformat(),
        run=Run(runId=run_id, facets=facets),
        job=Job(namespace=namespace(), name=job),
        inputs=[InputDataset(namespace=ns, name=name) for ns, name in dict.fromkeys(inputs)],
        outputs=[OutputDataset(namespace=ns, name=name) for ns, name in dict.fromkeys(outputs)],
        producer=PRODUCER,
    )


def step_job(step: str) -> str:
    return f"{JOB_PREFIX}.{step}"


def step_started(run_id: str, step: str) -> None:
    if enabled():
        _emit([_event("START", step_job(step), run_uuid(run_id, step), parent=_parent(run_id))])


def step_finished(
    run_id: str, step: str, inputs: Iterable[Dataset], outputs: Iterable[Dataset], error: str | None = None
) -> None:
    if enabled():
        state = "FAIL" if error else "COMPLETE"
        event = _event(state, step_job(step), run_uuid(run_id, step), inputs, outputs, _parent(run_id), error)
        _emit([event])


def _airflow_task_run() -> tuple[str, str] | None:
    """(job name, run id) of the Airflow task running this code, as the OpenLineage provider names
    them; ``None`` outside an Airflow task."""
    import sys

    if "airflow.sdk.execution_time.task_runner" not in sys.modules:
        return None
    try:
        from airflow.providers.openlineage.plugins.macros import lineage_job_name, lineage_run_id
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
        return str(lineage_job_name(ti)), str(lineage_run_id(ti))
    except Exception:  # noqa: BLE001 - not in a task context, or the provider is missing
        return None


def _parent(run_id: str) -> tuple[str, str]:
    return _airflow_task_run() or (DAILY_JOB, run_uuid(run_id))


# ----------------------------------------------------------------------------- dbt
def dbt_node_datasets(
    settings: Any, manifest: Mapping[str, Any], unique_id: str
) -> tuple[list[Dataset], list[Dataset]]:
    """Inputs (parent sources and models, seeds) and output (its relation) of a dbt node."""
    nodes = {**manifest.get("nodes", {}), **manifest.get("sources", {})}

    def relation(node: Mapping[str, Any]) -> Dataset | None:
        if node.get("resource_type") not in ("model", "seed", "snapshot", "source"):
            return None
        if node.get("resource_type") == "model" and (node.get("config") or {}).get("materialized") == "ephemeral":
            return None
        name = node.get("identifier") if node.get("resource_type") == "source" else node.get("alias")
        return settings_table(settings, f"{node['schema']}.{name or node['name']}")

    node = nodes.get(unique_id) or {}
    inputs: list[Dataset] = []
    pending = list((node.get("depends_on") or {}).get("nodes", []))
    seen: set[str] = set()
    while pending:  # ephemeral parents are inlined: their own parents are the inputs
        parent_id = pending.pop()
        if parent_id in seen or parent_id not in nodes:
            continue
        seen.add(parent_id)
        parent = nodes[parent_id]
        found = relation(parent)
        if found:
            inputs.append(found)
        elif parent.get("resource_type") == "model":
            pending += (parent.get("depends_on") or {}).get("nodes", [])
    output = relation(node)
    return sorted(set(inputs)), [output] if output else []


def emit_dbt_models(settings: Any, target_path: Path, parent_step: tuple[str, str] | None = None) -> int:
    """One event per model, seed or snapshot of the last dbt command (``run_results.json``)."""
    if not enabled():
        return 0
    results_file, manifest_file = target_path / "run_results.json", target_path / "manifest.json"
    if not results_file.exists() or not manifest_file.exists():
        return 0
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    results = json.loads(results_file.read_text(encoding="utf-8")).get("results", [])
    parent = (step_job(parent_step[1]), run_uuid(*parent_step)) if parent_step else None
    invocation = json.loads(results_file.read_text(encoding="utf-8")).get("metadata", {}).get("invocation_id", "")
    events = []
    for result in results:
        unique_id = str(result.get("unique_id"))
        if unique_id.split(".")[0] not in ("model", "seed", "snapshot"):
            continue
        inputs, outputs = dbt_node_datasets(settings, manifest, unique_id)
        status = str(result.get("status"))
        if status == "skipped":
            continue
        job = "customer_mdm.dbt." + unique_id.split(".")[-1]
        run_id = run_uuid(invocation, unique_id)
        error = None if status in ("success", "pass") else f"dbt {status}"
        events.append(_event("START", job, run_id, parent=parent))
        events.append(_event("FAIL" if error else "COMPLETE", job, run_id, inputs, outputs, parent, error))
    return _emit(events) // 2


def emit_bi_views(settings: Any, views: Mapping[str, Iterable[str]]) -> int:
    """The masked BI views: ``views`` maps ``bi.view`` to the tables it reads."""
    if not enabled() or not views:
        return 0
    run_id = run_uuid("bi_views", datetime.now(UTC).isoformat())
    inputs = sorted({settings_table(settings, t) for tables in views.values() for t in tables})
    outputs = sorted(settings_table(settings, v) for v in views)
    job = "customer_mdm.security.bi_views"
    return _emit([_event("START", job, run_id), _event("COMPLETE", job, run_id, inputs, outputs)]) // 2
