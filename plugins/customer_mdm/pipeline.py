"""The daily pipeline's steps as plain functions. The Airflow DAG and the CLI both call these.

Every step records itself in ``ops.run_steps`` (status, timing, JSON details) so a run's summary
can be rebuilt from the warehouse alone, whoever ran it (Airflow scheduler, ``airflow dags test``
or the CLI). A step that fails records the error before re-raising it.

One run at a time: ``start_run`` takes the run lock (:mod:`customer_mdm.runlock`), every daily
step renews it and refuses to run while another run holds it, ``finish_run`` releases it.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from customer_mdm import lineage, plan, runlock, security
from customer_mdm.audit import record_link_events
from customer_mdm.backup import Sealer, backup, list_snapshots
from customer_mdm.config import Settings
from customer_mdm.console.alerts import check_quality_drop
from customer_mdm.console.apply import apply_pending
from customer_mdm.dbt import DbtFailed, build_fingerprint, generate_docs, run_dbt
from customer_mdm.errors import MdmError, PipelineFailed, RunLocked, WarehouseUnreachable
from customer_mdm.freshness import freshness_check
from customer_mdm.governance import record_scorecard, write_report
from customer_mdm.governance.scorecard import METRICS
from customer_mdm.hub import serving
from customer_mdm.hub.intake import take_pending
from customer_mdm.ingest import ingest_feed
from customer_mdm.ingest.loader import check_landing
from customer_mdm.lineage import emit_bi_views, emit_dbt_models, file_dataset, settings_table
from customer_mdm.linkage.step import link
from customer_mdm.privacy import erase_pending
from customer_mdm.schema import ensure_dbt_tables, ensure_schema
from customer_mdm.sources import FEEDS, feed
from customer_mdm.standardize.step import standardize
from customer_mdm.warehouse import Warehouse, connect, kept_open

log = logging.getLogger(__name__)

T = TypeVar("T")


#: Steps every daily run must complete, in order; ``finish`` checks them (customer_mdm.plan).
expected_steps = plan.expected_steps


def _daily_step(name: str) -> bool:
    """Whether ``name`` is a daily step that runs under the run lock (``start`` takes it)."""
    return name != "start" and name in plan.expected_steps()


def new_run_id() -> str:
    return datetime.now(UTC).strftime("run_%Y%m%dT%H%M%S_") + uuid.uuid4().hex[:6]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class StepRecord:
    details: dict[str, Any] = field(default_factory=dict)
    #: what the step read and wrote, as OpenLineage datasets (customer_mdm.lineage)
    inputs: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)


@contextmanager
def step(settings: Settings, run_id: str, name: str) -> Iterator[StepRecord]:
    """Record a step's start, end, status and details in ``ops.run_steps``, and send its
    OpenLineage events (:mod:`customer_mdm.lineage`: START, then COMPLETE or FAIL with the datasets
    the step put in ``inputs`` and ``outputs``). The DuckDB warehouse stays open while the step
    runs (:func:`~customer_mdm.warehouse.kept_open`)."""
    started = _now()
    lineage.step_started(run_id, name)
    record = StepRecord()
    t0 = time.perf_counter()
    status, error = "success", None
    with kept_open(settings):
        if _daily_step(name):  # never beside another run: refused before anything is recorded
            runlock.renew(settings, run_id)
        try:
            yield record
        except BaseException as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            record.details["seconds"] = round(time.perf_counter() - t0, 3)
            if error:
                record.details["error"] = error[:4000]
            try:
                with connect(settings) as wh:
                    wh.execute("delete from ops.run_steps where run_id = ? and step = ?", [run_id, name])
                    wh.execute(
                        "insert into ops.run_steps (run_id, step, status, started_at, finished_at, details) "
                        "values (?, ?, ?, ?, ?, ?)",
                        [run_id, name, status, started, _now(), json.dumps(record.details, default=str)],
                    )
            except Exception:
                log.exception("could not record step %s of run %s", name, run_id)
            lineage.step_finished(run_id, name, record.inputs, record.outputs, error)


# ----------------------------------------------------------------------------- steps
def start_run(settings: Settings, run_id: str, dag_run_id: str | None = None) -> str:
    """Create the warehouse schemas and tables if needed, take the run lock (RunLocked when another
    run holds it) and open the run's record. ``dag_run_id``: an Airflow DAG run, whose lease
    ``finish`` releases (or which expires)."""
    settings.ensure_dirs()
    with kept_open(settings):
        with connect(settings) as wh:
            ensure_schema(wh)
        runlock.acquire(settings, run_id, "lease" if dag_run_id else "pid")
    with connect(settings) as wh:
        wh.execute("delete from ops.runs where run_id = ?", [run_id])
        wh.execute(
            "insert into ops.runs (run_id, dag_run_id, target, landing, status, started_at) "
            "values (?, ?, ?, ?, 'running', ?)",
            [run_id, dag_run_id or run_id, settings.target, str(settings.landing), _now()],
        )
    with step(settings, run_id, "start") as rec:
        rec.details["landing"] = str(check_landing(settings))
        rec.details["hub_intake"] = take_pending(settings, run_id)
    log.info("run %s started on %s (landing %s)", run_id, settings.target, settings.landing)
    return run_id


def ingest_steps(settings: Settings, run_id: str) -> dict[str, str]:
    """Every feed's ingest step, as the DAG runs them: a feed that fails (its folder unreadable, a
    share that is down) is recorded as a failed step and the others go on; ``finish_run`` then
    marks the run failed, after the golden tables were built from what did arrive."""
    failed: dict[str, str] = {}
    for f in FEEDS:
        _, error = _tolerating(plan.step_named("ingest"), functools.partial(ingest_step, settings, run_id, f.name))
        if error is not None:
            failed[f.name] = error
    return failed


def ingest_step(settings: Settings, run_id: str, feed_name: str) -> dict[str, Any]:
    with step(settings, run_id, f"ingest_{feed_name}") as rec:
        result = ingest_feed(settings, feed_name, run_id)
        rec.details.update(result.to_dict())
        rec.inputs = [file_dataset(settings.landing / f.file_path) for f in result.files if f.status == "ingested"]
        rec.outputs = [settings_table(settings, feed(feed_name).raw_table)]
    return rec.details


def source_freshness_step(settings: Settings, run_id: str, policy: str | None = None) -> dict[str, Any]:
    """``dbt source freshness`` after ingestion: recorded in ``ops.source_freshness``, stale feeds
    alerted, and under the ``fail`` policy a feed past ``error_after`` fails the step
    (``customer_mdm.freshness``). ``policy`` overrides ``MDM_FRESHNESS_POLICY``."""
    with step(settings, run_id, "source_freshness") as rec:
        rec.inputs = [settings_table(settings, f.raw_table) for f in FEEDS]
        rec.details.update(freshness_check(settings, run_id, policy))
    return rec.details


# ----------------------------------------------------------------------------- dbt layers
@dataclass(frozen=True)
class DbtLayer:
    """One dbt step: what it builds and what its watermark is taken from."""

    name: str  # staging | build | golden (ops.dbt_window.layer, ops.dbt_state.layer)
    step: str  # the pipeline step
    select: tuple[str, ...]  # dbt node selection
    inputs: tuple[str, ...]  # tables whose newest _ingested_at the layer has built when it succeeds


#: what each dbt layer's watermark is taken from: the raw tables (staging), the staging models
#: (build), the intermediate tables the golden models read
_LAYER_INPUTS: dict[str, Callable[[], tuple[str, ...]]] = {
    "staging": lambda: tuple(f.raw_table for f in FEEDS),
    "build": lambda: tuple(f.staging_table for f in FEEDS if f.staging_model),
    "golden": lambda: (
        "intermediate.int_customer_records",
        "intermediate.int_self_service_changes",
        "intermediate.int_contact_events",
    ),
}


def dbt_layer(name: str) -> DbtLayer:
    """A dbt layer as the plan declares its step (``dbt_<name>``), with its watermark inputs."""
    step_ = plan.step_named(f"dbt_{name}")
    return DbtLayer(name, step_.name, step_.dbt, _LAYER_INPUTS[name]())


def _newest_ingested(wh: Warehouse, tables: tuple[str, ...]) -> datetime | None:
    present = [t for t in tables if wh.table_exists(t)]
    if not present:
        return None
    union = " union all ".join(f"select max(_ingested_at) as newest from {t}" for t in present)
    value = wh.scalar(f"select max(newest) from ({union}) as inputs")
    return value if isinstance(value, datetime) else None


def _link_mode(wh: Warehouse, run_id: str) -> str | None:
    """How this run's link step linked (full | incremental): ``mdm.link_runs``, which the link step
    writes with the state it links (the step log is not read back)."""
    if not wh.table_exists("mdm.link_runs"):
        return None
    rows = wh.query("select mode from mdm.link_runs where run_id = ? order by linked_at desc limit 1", [run_id])
    return str(rows[0][0]) if rows else None


def _plan_layer(
    wh: Warehouse, run_id: str, layer: DbtLayer, fingerprint: str, full: bool
) -> tuple[str, str, datetime | None]:
    """Full or incremental, why, and the ``since`` of an incremental build."""
    state = wh.query("select fingerprint, watermark from ops.dbt_state where layer = ?", [layer.name])
    if full:
        return "full", "full run requested", None
    if not state:
        return "full", "first build (no ops.dbt_state)", None
    previous_fingerprint, watermark = state[0]
    if previous_fingerprint != fingerprint:
        return "full", f"build fingerprint changed ({previous_fingerprint} -> {fingerprint})", None
    if layer.name == "golden" and _link_mode(wh, run_id) == "full":
        return "full", "the link step of this run ran in full mode", None
    return "incremental", "same build fingerprint", watermark


def _dbt_step(settings: Settings, run_id: str, layer: DbtLayer, full: bool = False) -> dict[str, Any]:
    """Run one dbt layer, incrementally unless a full rebuild is due. The details say which
    (``mode`` full | incremental, ``mode_reason``) and over what (``since``, ``watermark``)."""
    with step(settings, run_id, layer.step) as rec:
        fingerprint = build_fingerprint(settings, layer.name)
        with connect(settings) as wh:
            ensure_dbt_tables(wh)
            mode, reason, since = _plan_layer(wh, run_id, layer, fingerprint, full)
            watermark = _newest_ingested(wh, layer.inputs)  # before dbt reads them: rows come later
            dirty_runs = [r[0] for r in wh.query("select distinct run_id from mdm.golden_dirty")]
            with wh.transaction():
                wh.execute("delete from ops.dbt_window where layer = ?", [layer.name])
                wh.execute(
                    "insert into ops.dbt_window (layer, since, run_id, written_at) values (?, ?, ?, ?)",
                    [layer.name, since, run_id, _now()],
                )
        if since is not None and (watermark is None or watermark < since):
            watermark = since  # the window never moves back
        rec.details.update(
            mode=mode, mode_reason=reason, since=_text(since), watermark=_text(watermark), fingerprint=fingerprint
        )
        log.info("%s: %s build (%s)", layer.step, mode, reason)
        if mode == "full":
            args = [*layer.select, "--full-refresh"]
        else:  # seeds only change with the fingerprint: reloading and retesting them is for full builds
            args = [*layer.select, "--exclude", "resource_type:seed"]
        result = run_dbt(settings, "build", args, check=False, ensure_tables=False)
        rec.details.update(result.to_dict())
        target = settings.dbt_state_dir / "target"
        rec.details["lineage_events"] = emit_dbt_models(settings, target, (run_id, layer.step))
        rec.details["dbt_seconds"] = rec.details.pop("seconds")  # "seconds" is the whole step's
        if not result.success:  # the window stays where it was: the next run retests these rows
            raise DbtFailed(f"{layer.step} failed:\n  " + "\n  ".join(result.failures))
        with connect(settings) as wh:
            if layer.name == "golden" and mode == "incremental":
                rows = wh.query("select reason, count(*) from intermediate.int_golden_affected group by reason")
                rec.details["golden_ids_rebuilt"] = {str(r): int(n) for r, n in sorted(rows)}
            with wh.transaction():
                if layer.name == "golden":
                    _clear_golden_dirty(wh, dirty_runs)
                wh.execute("delete from ops.dbt_state where layer = ?", [layer.name])
                wh.execute(
                    "insert into ops.dbt_state (layer, fingerprint, watermark, mode, reason, run_id, built_at) "
                    "values (?, ?, ?, ?, ?, ?, ?)",
                    [layer.name, fingerprint, watermark, mode, reason, run_id, _now()],
                )
    return rec.details


def _clear_golden_dirty(wh: Warehouse, run_ids: list[str | None]) -> None:
    """Forget the dirty golden ids of the link runs seen before dbt_golden ran: they are built now."""
    known = [r for r in run_ids if r is not None]
    conditions = [f"run_id in ({', '.join('?' for _ in known)})"] if known else []
    conditions += ["run_id is null"] if None in run_ids else []
    if conditions:
        wh.execute(f"delete from mdm.golden_dirty where {' or '.join(conditions)}", known)


def _text(value: datetime | None) -> str | None:
    """A timestamp for the step details (JSON, Airflow XCom)."""
    return None if value is None else str(value)


def dbt_staging_step(settings: Settings, run_id: str, full: bool = False) -> dict[str, Any]:
    """Build and test the staging tables (the standardiser reads them)."""
    return _dbt_step(settings, run_id, dbt_layer("staging"), full)


def standardize_step(settings: Settings, run_id: str) -> dict[str, Any]:
    """Bring the std.* lookup tables up to date with the new raw values."""
    with step(settings, run_id, "standardize") as rec:
        rec.details["lookups"] = standardize(settings)
    return rec.details


def dbt_build_step(settings: Settings, run_id: str, full: bool = False) -> dict[str, Any]:
    """Build and test the intermediate models and the marts that do not need linkage."""
    return _dbt_step(settings, run_id, dbt_layer("build"), full)


def erasure_step(settings: Settings, run_id: str) -> dict[str, Any]:
    """Right to erasure, after ``link`` (so every record of the person, this run's too, is found
    through the fresh cross-reference) and before ``dbt_golden``: handle new erasure requests
    (erase the person from every layer, write tombstones, audit), then drop the new records whose
    identifiers match a tombstone (an old export bringing an erased person back)."""
    started = _now()
    with connect(settings) as wh:
        state = wh.query("select run_id, checked_from, previous_checked_from from ops.erasure_state")
    # records ingested from the start of the last successful erasure step of another run on are
    # checked against the tombstones (none yet: every record)
    last_run, checked_from, previous = state[0] if state else (None, None, None)
    since = previous if last_run == run_id else checked_from  # a retry starts where the run started
    with step(settings, run_id, "erasure") as rec:
        rec.details.update(erase_pending(settings, run_id, since=since if isinstance(since, datetime) else None))
        with connect(settings) as wh, wh.transaction():
            wh.execute("delete from ops.erasure_state")
            wh.execute(
                "insert into ops.erasure_state (run_id, checked_from, previous_checked_from, written_at) "
                "values (?, ?, ?, ?)",
                [run_id, checked_from if last_run == run_id else started, since, _now()],
            )
    return rec.details


def link_step(settings: Settings, run_id: str, full: bool = False) -> dict[str, Any]:
    """Record linkage: first the steward actions queued by the console (customer_mdm.console.apply),
    then score new and changed records, cluster, assign stable golden ids; the merges, splits and
    new ids of the run go to the audit log (audit.golden_changes)."""
    with step(settings, run_id, "link") as rec:
        rec.inputs = [settings_table(settings, "intermediate.int_customer_records")]
        rec.details["console_actions"] = apply_pending(settings, run_id)  # decisions, corrections
        rec.details.update(link(settings, run_id, full=full))
        rec.outputs = [settings_table(settings, t) for t in ("mdm.xref", "mdm.golden_dirty", "audit.golden_changes")]
        with connect(settings) as wh:
            rec.details["audit_rows"] = record_link_events(wh, run_id)
    return rec.details


def dbt_golden_step(settings: Settings, run_id: str, full: bool = False) -> dict[str, Any]:
    """Build and test the golden customer table and the cross-reference marts: incrementally, the
    golden ids in ``mdm.golden_dirty`` and those touched by data ingested since the last build;
    in full when asked, when the project changed or when this run's link step ran in full."""
    return _dbt_step(settings, run_id, dbt_layer("golden"), full)


# ----------------------------------------------------------------------------- quality gates
def _run_started(settings: Settings, run_id: str) -> datetime | None:
    with connect(settings) as wh:
        value = wh.scalar("select started_at from ops.runs where run_id = ?", [run_id])
    return value if isinstance(value, datetime) else None


def _validate_step(settings: Settings, run_id: str, layer: str, full: bool) -> dict[str, Any]:
    """Run a layer's Great Expectations suites on what this run brought (everything when
    ``full``); a blocking failure fails the step, naming the expectations; warnings never do."""
    from customer_mdm.quality import data_docs_index, validate_layer  # heavy/optional: great_expectations

    with step(settings, run_id, f"validate_{layer}") as rec:
        since = None if full else _run_started(settings, run_id)
        rec.details["since"] = since
        assets = None
        if layer == "raw" and since is not None:  # only the feeds that delivered rows in this run
            assets = _feeds_loaded(settings, run_id)
            rec.details["feeds"] = assets
            if not assets:
                return rec.details
        result = validate_layer(settings, layer, run_id, since=since, assets=assets)
        rec.details.update(result.to_dict())
        rec.details["data_docs"] = str(data_docs_index(settings))
        result.raise_for_blocking()
    return rec.details


def _feeds_loaded(settings: Settings, run_id: str) -> list[str]:
    """The feeds whose files this run ingested rows from (``ops.manifest``), in the plan's order."""
    with connect(settings) as wh:
        rows = wh.query(
            "select distinct feed from ops.manifest where run_id = ? and status = 'ingested' and rows_loaded > 0",
            [run_id],
        )
    loaded = {str(r[0]) for r in rows}
    return [f.name for f in FEEDS if f.name in loaded]


def validate_raw_step(settings: Settings, run_id: str, full: bool = False) -> dict[str, Any]:
    """Gate the raw layer: schema, lineage, required keys, batch row counts against the manifest."""
    return _validate_step(settings, run_id, "raw", full)


def validate_standardised_step(settings: Settings, run_id: str, full: bool = False) -> dict[str, Any]:
    """Gate int_customer_records: keys unique, validity of phones, emails, regions, dates."""
    return _validate_step(settings, run_id, "standardised", full)


def publish_step(settings: Settings, run_id: str) -> dict[str, Any]:
    """Write-audit-publish: validate golden_build.* with the golden suites, then swap them into
    marts in one transaction; a blocking failure keeps yesterday's tables and fails the step."""
    from customer_mdm.quality import audit_and_publish, data_docs_index  # heavy/optional: great_expectations
    from customer_mdm.quality.publish import PUBLISHED_TABLES

    with step(settings, run_id, "publish") as rec:
        rec.details["data_docs"] = str(data_docs_index(settings))
        rec.inputs = [settings_table(settings, f"golden_build.{t}") for t in PUBLISHED_TABLES]
        rec.details.update(audit_and_publish(settings, run_id))
        rec.outputs = [settings_table(settings, f"marts.{t}") for t in PUBLISHED_TABLES]
        rec.details["serving"] = serving.refresh(settings, run_id)
        rec.details["security"] = _apply_security(settings)
    return rec.details


def _apply_security(settings: Settings) -> dict[str, Any]:
    """The masked BI views and (PostgreSQL) the roles' grants, after every step that publishes or
    recreates tables (customer_mdm.security)."""
    summary = security.apply(settings)
    present = set(summary.get("views") or [])
    emit_bi_views(settings, {v.qualified: v.requires for v in security.BI_VIEWS if v.qualified in present})
    return {k: summary[k] for k in ("views", "roles", "warnings") if k in summary}


# ----------------------------------------------------------------------------- governance
def _governance_run(settings: Settings, run_id: str) -> str:
    """The platform run the governance outputs belong to: ``run_id`` when it is one, else (an
    Airflow run scheduled on the golden asset) the latest run that published the golden tables."""
    with connect(settings) as wh:
        if wh.scalar("select count(*) from ops.runs where run_id = ?", [run_id]):
            return run_id
        latest = wh.query(
            "select run_id from ops.run_steps where step = 'publish' and status = 'success' "
            "order by finished_at desc limit 1"
        )
    if not latest:
        raise MdmError("no published golden tables yet: run the daily pipeline first (mdm run)")
    return str(latest[0][0])


def dbt_governance_step(settings: Settings, run_id: str) -> dict[str, Any]:
    """Build and test the governance models (worklist, consistency report, segments) on the
    published golden tables; rebuilt in full each time (they measure against "now")."""
    run_id = _governance_run(settings, run_id)
    with step(settings, run_id, "dbt_governance") as rec:
        result = run_dbt(settings, "build", ["--select", "tag:governance"], check=False)
        rec.details.update(result.to_dict())
        rec.details["lineage_events"] = emit_dbt_models(
            settings, settings.dbt_state_dir / "target", (run_id, "dbt_governance")
        )
        rec.details["dbt_seconds"] = rec.details.pop("seconds")
        if not result.success:
            raise DbtFailed("dbt_governance failed:\n  " + "\n  ".join(result.failures))
        rec.details["security"] = _apply_security(settings)  # dbt recreated the governance tables
    return rec.details


def scorecard_step(settings: Settings, run_id: str) -> dict[str, Any]:
    """Score the published golden tables (stored in governance.scorecard_history) and write the
    static HTML report with its trend charts."""
    run_id = _governance_run(settings, run_id)
    with step(settings, run_id, "scorecard") as rec:
        card = record_scorecard(settings, run_id).set_index(["scope", "dimension", "metric"])["value"]
        rec.details["overall"] = {
            m.dimension: round(float(card[("overall", m.dimension, m.name)]), 4)
            for m in METRICS
            if m.headline and ("overall", m.dimension, m.name) in card.index
        }
        rec.details["report"] = str(write_report(settings))
        rec.details["security"] = _apply_security(settings)  # bi.scorecard_latest
        rec.details["quality_alerts"] = len(check_quality_drop(settings, run_id))
        # the governance outputs reach the hub once the scorecard is recorded: the freshness
        # policy's due fields, the worklist and the scorecard of this run
        rec.details["serving"] = serving.refresh(settings, run_id)
    return rec.details


def dbt_docs_step(settings: Settings, run_id: str) -> dict[str, Any]:
    """The dbt docs site (catalogue, exposures, lineage graph from the landing tables to the BI
    views) regenerated after a publication into ``$MDM_HOME/dbt/docs``, where the console serves
    it. ``--no-compile``: the governance build just wrote the manifest, only the catalogue is read."""
    run_id = _governance_run(settings, run_id)
    with step(settings, run_id, "dbt_docs") as rec:
        rec.details["site"] = str(generate_docs(settings, ["--no-compile"]) / "index.html")
    return rec.details


def _when_reachable(action: Callable[[], T], settings: Settings, wait_seconds: float = 600) -> T:
    """Run ``action``, retrying while the warehouse cannot be opened: on DuckDB the governance
    DAG, scheduled on the same asset, may hold the file for a few minutes."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return action()
        except WarehouseUnreachable:
            if settings.target != "duckdb" or time.monotonic() > deadline:
                raise
            log.info("the warehouse is busy; retrying in 10 s")
            time.sleep(10)


def backup_step(settings: Settings, run_id: str) -> dict[str, Any]:
    """Snapshot the published golden tables and the linkage state (``customer_mdm.backup``):
    the mdm_backup DAG, after each publication. Recorded as step ``backup`` of the run that
    published them."""
    run_id = _governance_run(settings, run_id)
    with step(settings, run_id, "backup") as rec:
        path = _when_reachable(lambda: backup(settings), settings)
        snapshot = next(s for s in list_snapshots(path.parent, Sealer.from_env(settings)) if s.path == path)
        rec.details.update(
            snapshot=str(path), tables=len(snapshot.manifest["tables"]), rows=snapshot.rows, bytes=snapshot.bytes
        )
    return rec.details


def finish_run(settings: Settings, run_id: str) -> dict[str, Any]:
    """Close the run: status is success only if every expected step succeeded."""
    summary = run_summary(settings, run_id)
    missing = [s for s in expected_steps() if s not in summary["steps"]]
    failed = [s for s, d in summary["steps"].items() if d["status"] != "success"]
    status = "success" if not missing and not failed else "failed"
    summary["status"] = status
    summary["missing_steps"] = missing
    with connect(settings) as wh:
        wh.execute(
            "update ops.runs set status = ?, finished_at = ?, summary = ? where run_id = ?",
            [status, _now(), json.dumps(summary, default=str, ensure_ascii=False), run_id],
        )
    runlock.release_at_finish(settings, run_id)
    if status != "success":
        problems = [f"{s}: {summary['steps'][s].get('error', 'failed')}" for s in failed]
        problems += [f"{s}: did not run" for s in missing]
        raise PipelineFailed(f"run {run_id} failed:\n  " + "\n  ".join(problems))
    return summary


# ----------------------------------------------------------------------------- reporting
def run_summary(settings: Settings, run_id: str) -> dict[str, Any]:
    """Everything a data engineer wants to know about one run, from the warehouse."""
    with connect(settings, read_only=True) as wh:
        runs = wh.query(
            "select run_id, status, target, landing, started_at, finished_at from ops.runs where run_id = ?",
            [run_id],
        )
        if not runs:
            raise KeyError(f"no run {run_id!r} in ops.runs")
        steps = wh.query(
            "select step, status, started_at, finished_at, details from ops.run_steps "
            "where run_id = ? order by started_at",
            [run_id],
        )
        quarantined = wh.query(
            "select feed, source_file, kind, row_number, reason from ops.quarantine where run_id = ? "
            "and kind <> 'gx' order by feed, source_file, row_number",
            [run_id],
        )
        # rows failing an expectation: counted per reason (there may be thousands)
        gx_rows = wh.query(
            "select reason, count(*) from ops.quarantine where run_id = ? and kind = 'gx' group by reason "
            "order by reason",
            [run_id],
        )
    _, status, target, landing, started, finished = runs[0]
    step_info: dict[str, dict[str, Any]] = {}
    for name, st, _started, _finished, details in steps:
        info = json.loads(details) if details else {}
        info["status"] = st
        step_info[name] = info
    feeds = {}
    for f in FEEDS:
        d = step_info.get(f"ingest_{f.name}", {})
        feeds[f.name] = {
            k: d.get(k, 0)
            for k in (
                "files_ingested",
                "files_skipped",
                "files_quarantined",
                "files_changed",
                "rows_loaded",
                "rows_quarantined",
            )
        }
    end = finished or max((s[3] for s in steps if s[3]), default=started)
    return {
        "run_id": run_id,
        "status": status,
        "target": target,
        "landing": landing,
        "started_at": str(started),
        "finished_at": str(finished) if finished else None,
        "seconds": round((end - started).total_seconds(), 1) if end and started else None,
        "feeds": feeds,
        "rows_loaded": sum(v["rows_loaded"] for v in feeds.values()),
        "rows_quarantined": sum(v["rows_quarantined"] for v in feeds.values()),
        "files_quarantined": sum(v["files_quarantined"] + v["files_changed"] for v in feeds.values()),
        "quarantine": [{"feed": q[0], "file": q[1], "kind": q[2], "row": q[3], "reason": q[4]} for q in quarantined],
        "quality": _quality_summary(step_info, gx_rows),
        "erasure": {
            k: step_info.get("erasure", {}).get(k)
            for k in ("requests", "erased", "not_found", "invalid", "tombstone_matches", "tombstone_rows_deleted")
        },
        # which model linked, and whether (and why) this run retrained it
        "linkage": {
            k: step_info.get("link", {}).get(k)
            for k in ("mode", "model_version", "model_trained_now", "model_retrained", "full_reason", "review_queue")
        },
        "steps": step_info,
    }


def _quality_summary(step_info: dict[str, dict[str, Any]], gx_rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """The quality gates of a run: per gate its blocking failures and warnings; where to read more."""
    gates = {}
    for name in ("validate_raw", "validate_standardised", "publish"):
        info = step_info.get(name)
        if not info:
            continue
        validation = info.get("validation", info) if name == "publish" else info
        gates[name] = {
            "status": info["status"],
            "blocking_failures": validation.get("blocking_failures", []),
            "warnings": validation.get("warnings", []),
        }
    docs = next((i["data_docs"] for i in step_info.values() if i.get("data_docs")), None)
    return {
        "gates": gates,
        "rows_failing_expectations": {str(r): int(n) for r, n in gx_rows},
        "data_docs": docs,
        "scorecard_report": step_info.get("scorecard", {}).get("report"),
    }


def _tolerating(step_: plan.Step, action: Callable[[], T]) -> tuple[T | None, str | None]:
    """Run ``action``: (its result, None). When ``step_`` may fail (the plan: the steps after it
    run on all_done, as in the DAG), a failure is logged and returned as (None, the error) instead
    of raised. The run lock is never tolerated."""
    if not step_.may_fail:
        return action(), None
    try:
        return action(), None
    except RunLocked:
        raise
    except (MdmError, OSError) as exc:
        log.error("%s failed, the run goes on: %s", step_.name, exc)
        return None, str(exc)


def run_steps(settings: Settings, steps: tuple[plan.Step, ...], options: dict[str, Any]) -> Any:
    """Run ``steps`` in this process, in the plan's order, each with the run ``options`` it takes
    (``run_id``, ``dag_run_id``, ``full``, ``policy``); a per-feed step once per feed. Returns the
    last step's result."""
    result: Any = None
    for step_ in steps:
        function = step_.resolve()
        kwargs: dict[str, Any] = {k: options.get(k) for k in step_.options if k != "feed_name"}
        feeds: list[str | None] = [f.name for f in FEEDS] if step_.per_feed else [None]
        for feed_name in feeds:
            extra: dict[str, Any] = {"feed_name": feed_name} if feed_name else {}
            result, _ = _tolerating(step_, functools.partial(function, settings, **kwargs, **extra))
    return result


def run_inline(
    settings: Settings,
    run_id: str | None = None,
    full: bool = False,
    governance: bool = True,
    freshness_policy: str | None = None,
) -> dict[str, Any]:
    """Run every step in this process, without Airflow (benchmarks, debugging): the daily
    pipeline (``plan.DAILY``), then (``governance``) what the mdm_governance DAG does after a
    publication. As in the DAG, a feed that is down or a failed freshness check does not stop the
    build: ``finish`` fails the run."""
    run_id = run_id or new_run_id()
    options = {"run_id": run_id, "dag_run_id": None, "full": full, "policy": freshness_policy}
    with runlock.holding(settings, run_id):
        summary: dict[str, Any] = run_steps(settings, plan.DAILY, options)
        if governance:
            run_governance(settings, run_id)
            summary = run_summary(settings, run_id)
    return summary


def run_governance(settings: Settings, run_id: str) -> None:
    """The governance outputs of a published run (the mdm_governance DAG's tasks, in order)."""
    run_steps(settings, plan.GOVERNANCE, {"run_id": run_id})
