"""From the hub store into the pipeline: self-service changes and erasure requests received over
HTTP become landing files of the ``self_service`` and ``erasure`` feeds, so they pass the same
raw tables, gates (Great Expectations, staging tests), quarantine and manifest as files that
arrive from the portal.

:func:`take_pending` runs in the pipeline's start step. Rows go pending -> exporting (with the
batch file name, in one transaction) -> file written (temp + rename) -> taken. A run that dies
between the two rewrites the same file, byte for byte, at its next start: the manifest sees the
same file and nothing is doubled.

:class:`RunTrigger` (in the server): when an accepted change or request has waited more than
``MDM_HUB_RUN_AFTER_MINUTES`` (unset: never), start an incremental run: ``mdm run`` in a child
process (``MDM_HUB_RUN_MODE=embedded``, the default; arguments ``MDM_HUB_RUN_ARGS``, default
``run --quiet``), or a dag run through Airflow's REST API (``MDM_HUB_RUN_MODE=airflow``:
``MDM_AIRFLOW_API_URL``, ``MDM_AIRFLOW_USER``, ``MDM_AIRFLOW_PASSWORD``). A lock file held by the
child keeps several workers from starting two runs.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shlex
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from customer_mdm.config import Settings
from customer_mdm.hub.store import SCHEMA, Store, ensure_store, now, open_store

log = logging.getLogger(__name__)

CHANGE_COLUMNS = ("event_id", "source_system", "source_id", "field", "new_value", "submitted_at")
ERASURE_COLUMNS = ("request_id", "identifier_type", "identifier_value", "requested_at")
#: intake table -> (feed folder, file prefix, suffix, key column, feed columns)
INTAKE: dict[str, tuple[str, str, str, str, tuple[str, ...]]] = {
    "self_service_changes": ("self_service", "hub_changes_", ".jsonl", "event_id", CHANGE_COLUMNS),
    "erasure_requests": ("erasure", "hub_erasure_", ".csv", "request_id", ERASURE_COLUMNS),
}


def _render(suffix: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> bytes:
    if suffix == ".jsonl":
        lines = [json.dumps(dict(zip(columns, r, strict=True)), ensure_ascii=False, sort_keys=True) for r in rows]
        return ("\n".join(lines) + "\n").encode("utf-8")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def take_pending(settings: Settings, run_id: str) -> dict[str, Any]:
    """Write the store's pending intake into the landing zone as feed files and mark it taken.

    Returns per intake table the files written and rows taken. Called by the pipeline's start
    step (before ingestion); a store that does not exist yet (no server ever ran) is skipped."""
    from customer_mdm.hub.store import store_path

    summary: dict[str, Any] = {}
    if settings.target == "duckdb" and not store_path(settings).exists():
        return summary
    ensure_store(settings, dsn=settings.pg_dsn)
    with open_store(settings, dsn=settings.pg_dsn) as store:
        for table, (folder, prefix, suffix, key, columns) in INTAKE.items():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            batch = f"{prefix}{stamp}{suffix}"
            with store.transaction():
                store.execute(
                    f"update {SCHEMA}.{table} set status = 'exporting', batch = ? where status = 'pending'", [batch]
                )
            batches = [
                str(r[0])
                for r in store.query(
                    f"select distinct batch from {SCHEMA}.{table} where status = 'exporting' order by 1"
                )
            ]
            written: list[str] = []
            taken = 0
            for name in batches:
                rows = _batch_rows(store, table, key, columns, name)
                _write_atomic(settings.landing / folder / name, _render(suffix, columns, rows))
                with store.transaction():
                    taken += store.execute(
                        f"update {SCHEMA}.{table} set status = 'taken', taken_at = ? "
                        "where status = 'exporting' and batch = ?",
                        [now(), name],
                    )
                written.append(name)
            summary[table] = {"files": written, "rows": taken}
            if taken:
                log.info("hub intake: %d %s written to %s for run %s", taken, table, folder, run_id)
    return summary


def _batch_rows(store: Store, table: str, key: str, columns: tuple[str, ...], batch: str) -> list[tuple[Any, ...]]:
    cols = ", ".join(columns)
    return store.query(f"select {cols} from {SCHEMA}.{table} where batch = ? order by {key}", [batch])


def pending_age_minutes(settings: Settings, store: Store | None = None) -> float | None:
    """Minutes the oldest pending change or request has waited (None when nothing waits)."""
    own = store is None
    store = store or open_store(settings)
    try:
        oldest = [store.scalar(f"select min(received_at) from {SCHEMA}.{t} where status = 'pending'") for t in INTAKE]
    finally:
        if own:
            store.close()
    times = [datetime.strptime(str(o), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) for o in oldest if o]
    if not times:
        return None
    return (datetime.now(UTC) - min(times)).total_seconds() / 60


class RunTrigger:
    """Starts an incremental run when intake has waited too long (see the module docstring)."""

    def __init__(self, settings: Settings, after_minutes: float | None, mode: str, check_seconds: float) -> None:
        self.settings = settings
        self.after_minutes = after_minutes
        self.mode = mode
        self.check_seconds = check_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(cls, settings: Settings) -> RunTrigger:
        raw = os.environ.get("MDM_HUB_RUN_AFTER_MINUTES")
        after = float(raw) if raw else None
        mode = (os.environ.get("MDM_HUB_RUN_MODE") or "embedded").lower()
        check = float(os.environ.get("MDM_HUB_TRIGGER_CHECK_SECONDS") or 30)
        return cls(settings, after, mode, check)

    def start(self) -> None:
        """Start the background check (no-op when no waiting time is configured)."""
        if self.after_minutes is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="mdm-hub-run-trigger", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def poke(self) -> None:
        """Check soon (after an accepted write)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.check_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - keep serving; the next check tries again
                log.warning("hub run trigger: check failed (%s)", type(exc).__name__)

    def check(self) -> str | None:
        """Trigger a run if intake waited longer than configured; returns what was done."""
        if self.after_minutes is None:
            return None
        age = pending_age_minutes(self.settings)
        if age is None or age < self.after_minutes:
            return None
        if self.mode == "airflow":
            return trigger_airflow(self.settings)
        return trigger_embedded(self.settings)


def _lock_path(settings: Settings) -> Path:
    return settings.home / "hub" / "triggered-run.lock"


def trigger_embedded(settings: Settings) -> str | None:
    """``mdm run`` in a child process, unless one started by a hub process is still running."""
    import fcntl

    path = _lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # a triggered run is still going
        args = shlex.split(os.environ.get("MDM_HUB_RUN_ARGS") or "run --quiet")
        env = {**os.environ, **settings.env()}
        logfile = open(settings.home / "hub" / "triggered-runs.log", "ab")
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "customer_mdm.cli", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                pass_fds=(fd,),  # the child holds the lock until it ends
                start_new_session=True,
            )
        finally:
            logfile.close()
        _record_trigger(settings, "embedded", str(child.pid))
        log.info("hub: intake waited too long, started an incremental run (pid %d)", child.pid)
        return f"embedded:{child.pid}"
    finally:
        os.close(fd)  # the child's copy of the descriptor keeps the lock


def trigger_airflow(settings: Settings) -> str | None:
    """Trigger the mdm_daily DAG through Airflow 3's REST API (``POST /api/v2/dags/{id}/dagRuns``)."""
    import httpx

    base = (os.environ.get("MDM_AIRFLOW_API_URL") or "http://localhost:8080").rstrip("/")
    user = os.environ.get("MDM_AIRFLOW_USER") or "admin"
    password = os.environ.get("MDM_AIRFLOW_PASSWORD") or ""
    with httpx.Client(timeout=30) as client:
        token = client.post(f"{base}/auth/token", json={"username": user, "password": password})
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        running = client.get(f"{base}/api/v2/dags/mdm_daily/dagRuns", params={"state": "running"}, headers=headers)
        if running.status_code == 200 and running.json().get("total_entries", 0):
            return None
        response = client.post(
            f"{base}/api/v2/dags/mdm_daily/dagRuns",
            json={"logical_date": None, "note": "triggered by the hub: intake waited"},
            headers=headers,
        )
        response.raise_for_status()
        run_id = str(response.json().get("dag_run_id"))
    _record_trigger(settings, "airflow", run_id)
    return f"airflow:{run_id}"


def _record_trigger(settings: Settings, mode: str, ref: str) -> None:
    with open_store(settings) as store:
        store.execute(f"insert into {SCHEMA}.run_triggers (at, mode, ref) values (?, ?, ?)", [now(), mode, ref])
