"""One pipeline run at a time: a second run beside a running one is refused with a clear message
(or waits, by option), on DuckDB and on PostgreSQL; a crashed run never keeps the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from customer_mdm import runlock
from customer_mdm.config import Settings
from customer_mdm.errors import PipelineFailed, RunLocked
from customer_mdm.pipeline import finish_run, ingest_step, start_run
from customer_mdm.warehouse import connect


def _cli(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **settings.env(),
        "PYTHONPATH": str(settings.project_root / "plugins"),
        "MDM_RUN_LOCK_WAIT": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "customer_mdm.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_a_second_run_beside_a_running_one_is_refused(settings: Settings):
    settings.landing.mkdir(parents=True, exist_ok=True)
    with runlock.holding(settings, "run-A"):  # as `mdm run` holds it for its whole run
        start_run(settings, "run-A")
        second = _cli(settings, "run", "--no-airflow", "--no-governance")
        assert second.returncode == 2, second.stderr
        assert "another pipeline run holds the run lock" in second.stderr and "run-A" in second.stderr
        with pytest.raises(RunLocked):  # a DAG run's start, in another process or this one
            start_run(settings, "run-B", dag_run_id="scheduled__B")
        with pytest.raises(RunLocked):  # and any step of another run
            ingest_step(settings, "run-B", "crm")
        ingest_step(settings, "run-A", "crm")  # the holder's steps run
    with connect(settings) as wh:
        assert wh.scalar("select count(*) from ops.runs where run_id <> 'run-A'") == 0
        assert wh.scalar("select count(*) from ops.run_steps where run_id <> 'run-A'") == 0
        assert wh.scalar("select run_id from ops.run_lock") is None  # released at the end
    start_run(settings, "run-C")  # free again


def test_a_dag_run_holds_the_lease_across_processes_until_finish(settings: Settings):
    start_run(settings, "dag-run-1", dag_run_id="scheduled__1")  # the DAG's start task
    with pytest.raises(RunLocked, match="Airflow DAG run dag-run-1"):
        start_run(settings, "manual-2")  # a manual run beside the scheduler, same process even
    refused = _cli(settings, "run", "--no-airflow", "--no-governance")
    assert refused.returncode == 2 and "dag-run-1" in refused.stderr
    ingest_step(settings, "dag-run-1", "crm")  # the DAG's own steps renew the lease
    with pytest.raises(PipelineFailed):  # finish (trigger rule all_done) releases the lease
        finish_run(settings, "dag-run-1")
    start_run(settings, "manual-2")


def test_waiting_for_the_lock_by_option(duckdb_settings: Settings):
    settings = duckdb_settings
    start_run(settings, "dag-run-1", dag_run_id="scheduled__1")
    waiting = Settings.from_env(env={"MDM_RUN_LOCK_WAIT": "20"}, home=settings.home, landing=settings.landing)
    releaser = threading.Timer(1.0, runlock.release, [settings, "dag-run-1"])
    releaser.start()
    started = time.monotonic()
    start_run(waiting, "manual-2")
    assert 0.9 < time.monotonic() - started < 15
    releaser.join()


def test_an_expired_lease_is_taken_over(settings: Settings):
    start_run(settings, "dag-run-1", dag_run_id="scheduled__1")
    with connect(settings) as wh:
        wh.execute("update ops.run_lock set expires_at = ?", [runlock._now() - runlock.LEASE])
    start_run(settings, "dag-run-2", dag_run_id="scheduled__2")


def test_a_killed_run_does_not_keep_the_lock(settings: Settings, tmp_path: Path):
    script = (
        "import sys, time\n"
        "from customer_mdm import runlock\n"
        "from customer_mdm.config import Settings\n"
        "s = Settings.from_env()\n"
        "with runlock.holding(s, 'killed-run'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    env = {**os.environ, **settings.env(), "PYTHONPATH": str(settings.project_root / "plugins")}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match="killed-run"):
            start_run(settings, "next-run")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    start_run(settings, "next-run")  # the OS-level lock died with the process
    with connect(settings) as wh:
        assert wh.scalar("select run_id from ops.run_lock") == "next-run"
