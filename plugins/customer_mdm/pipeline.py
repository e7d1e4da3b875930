"""The daily pipeline's steps as plain functions. The Airflow DAG and the CLI both call these.

Every step records itself in ``ops.run_steps`` (status, timing, JSON details) so a run's summary
can be rebuilt from the warehouse alone, whoever ran it (Airflow scheduler, ``airflow dags test``
or the CLI). A step that fails records the error before re-raising it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from customer_mdm.config import Settings
from customer_mdm.schema import ensure_schema
from customer_mdm.sources import FEEDS
from customer_mdm.warehouse import connect

log = logging.getLogger(__name__)


#: Steps every daily run must complete, in order; ``finish`` checks them.
def expected_steps() -> list[str]:
    return [
        "start",
        *(f"ingest_{f.name}" for f in FEEDS),
        "dbt_staging",
        "standardize",
        "dbt_build",
        "link",
        "dbt_golden",
    ]


def new_run_id() -> str:
    return datetime.now(UTC).strftime("run_%Y%m%dT%H%M%S_") + uuid.uuid4().hex[:6]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class StepRecord:
    details: dict[str, Any] = field(default_factory=dict)


@contextmanager
def step(settings: Settings, run_id: str, name: str) -> Iterator[StepRecord]:
    """Record a step's start, end, status and details in ``ops.run_steps``."""
    started = _now()
    record = StepRecord()
    t0 = time.perf_counter()
    status, error = "success", None
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


# ----------------------------------------------------------------------------- steps
def start_run(settings: Settings, run_id: str, dag_run_id: str | None = None) -> str:
    """Create the warehouse schemas and tables if needed and open the run's record."""
    settings.ensure_dirs()
    with connect(settings) as wh:
        ensure_schema(wh)
        wh.execute("delete from ops.runs where run_id = ?", [run_id])
        wh.execute(
            "insert into ops.runs (run_id, dag_run_id, target, landing, status, started_at) "
            "values (?, ?, ?, ?, 'running', ?)",
            [run_id, dag_run_id or run_id, settings.target, str(settings.landing), _now()],
        )
    with step(settings, run_id, "start") as rec:
        from customer_mdm.ingest.loader import check_landing

        rec.details["landing"] = str(check_landing(settings))
    log.info("run %s started on %s (landing %s)", run_id, settings.target, settings.landing)
    return run_id


def ingest_step(settings: Settings, run_id: str, feed_name: str) -> dict[str, Any]:
    from customer_mdm.ingest import ingest_feed

    with step(settings, run_id, f"ingest_{feed_name}") as rec:
        result = ingest_feed(settings, feed_name, run_id)
        rec.details.update(result.to_dict())
    return rec.details


def _dbt_step(settings: Settings, run_id: str, name: str, args: list[str]) -> dict[str, Any]:
    from customer_mdm.dbt import DbtFailed, run_dbt

    with step(settings, run_id, name) as rec:
        result = run_dbt(settings, "build", args, check=False)
        rec.details.update(result.to_dict())
        if not result.success:
            raise DbtFailed(f"{name} failed:\n  " + "\n  ".join(result.failures))
    return rec.details


def dbt_staging_step(settings: Settings, run_id: str) -> dict[str, Any]:
    """Build and test the staging views (the standardiser reads them)."""
    return _dbt_step(settings, run_id, "dbt_staging", ["--select", "tag:staging"])


def standardize_step(settings: Settings, run_id: str) -> dict[str, Any]:
    """Bring the std.* lookup tables up to date with the new raw values."""
    from customer_mdm.standardize.step import standardize

    with step(settings, run_id, "standardize") as rec:
        rec.details["lookups"] = standardize(settings)
    return rec.details


def dbt_build_step(settings: Settings, run_id: str) -> dict[str, Any]:
    """Build and test the intermediate models and the marts that do not need linkage."""
    return _dbt_step(settings, run_id, "dbt_build", ["--exclude", "tag:staging", "tag:golden"])


def link_step(settings: Settings, run_id: str, full: bool = False) -> dict[str, Any]:
    """Record linkage: score new and changed records, cluster, assign stable golden ids."""
    from customer_mdm.linkage.step import link

    with step(settings, run_id, "link") as rec:
        rec.details.update(link(settings, run_id, full=full))
    return rec.details


def dbt_golden_step(settings: Settings, run_id: str) -> dict[str, Any]:
    """Build and test the golden customer table and the cross-reference marts."""
    return _dbt_step(settings, run_id, "dbt_golden", ["--select", "tag:golden"])


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
    if status != "success":
        from customer_mdm.errors import PipelineFailed

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
            "order by feed, source_file, row_number",
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
        "steps": step_info,
    }


def run_inline(settings: Settings, run_id: str | None = None, full: bool = False) -> dict[str, Any]:
    """Run every step in this process, without Airflow (benchmarks, debugging)."""
    run_id = run_id or new_run_id()
    start_run(settings, run_id)
    for f in FEEDS:
        ingest_step(settings, run_id, f.name)
    dbt_staging_step(settings, run_id)
    standardize_step(settings, run_id)
    dbt_build_step(settings, run_id)
    link_step(settings, run_id, full=full)
    dbt_golden_step(settings, run_id)
    return finish_run(settings, run_id)
