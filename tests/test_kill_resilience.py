"""A pipeline run killed with SIGKILL half-way leaves the published golden tables intact, and
the next run completes with the same result as a run that was never interrupted.

The warehouse after a first run is copied twice: one copy takes the next day's delivery in a
clean run, the other in a run (``mdm run --no-airflow`` in a child process group) that is
killed as soon as the golden build starts (the link step has committed its new state). Then
the killed warehouse is run again and both are compared: golden ids, cross-reference, golden
records and the raw tables (no lost or duplicated rows).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from customer_mdm.config import Settings
from customer_mdm.pipeline import run_inline
from customer_mdm.sources import FEEDS
from customer_mdm.warehouse import connect
from mdm_devtools.generate import generate_landing

pytestmark = pytest.mark.slow

PEOPLE = 120
PUBLISHED = ("marts.dim_customer", "marts.customer_xref")


def _rows(settings: Settings, table: str) -> list[tuple[Any, ...]]:
    with connect(settings) as wh:
        return sorted(wh.query(f"select * from {table}"), key=repr)


def _add_delivery(landing: Path) -> None:
    """The next day's CRM file: second accounts of some people, and a changed record."""
    crm = sorted((landing / "crm").glob("crm_*.csv"))[-1]
    frame = pd.read_csv(crm, dtype=str, keep_default_na=False, encoding="utf-8-sig").head(12)
    frame["crm_id"] = [f"K{i:05d}" for i in range(len(frame))]
    frame.to_csv(landing / "crm" / "crm_2099-01-01.csv", index=False)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = tmp_path_factory.mktemp("kill")
    generate_landing(base / "landing", PEOPLE, seed=23, days=2)
    settings = Settings.from_env(env={}, home=base / "home", landing=base / "landing")
    run_inline(settings, governance=False)
    _add_delivery(settings.landing)
    return settings


def _copy(settings: Settings, home: Path) -> Settings:
    shutil.copytree(settings.home, home)
    return Settings.from_env(env={}, home=home, landing=settings.landing)


def _run_and_kill(settings: Settings, marker: str, timeout: float = 900) -> str:
    """Start ``mdm run --no-airflow`` in its own process group; SIGKILL the group (dbt included)
    when ``marker`` appears in its log. Returns the log up to then."""
    cmd = [sys.executable, "-m", "customer_mdm.cli", "run", "--no-airflow", "--no-governance"]
    env = {**os.environ, **settings.env()}
    proc = subprocess.Popen(
        cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True
    )
    log: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            log.append(line)
            if marker in line:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            if time.monotonic() > deadline:
                break
        else:
            pytest.fail(f"the run ended before {marker!r} was logged:\n{''.join(log[-30:])}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(log[-30:])
    return "".join(log)


@pytest.mark.parametrize("marker", ["dbt_golden:"])
def test_killed_run_keeps_published_tables_and_the_rerun_equals_a_clean_run(
    first_run: Settings, tmp_path: Path, marker: str
):
    clean = _copy(first_run, tmp_path / "clean")
    killed = _copy(first_run, tmp_path / "killed")
    before = {t: _rows(killed, t) for t in PUBLISHED}

    _run_and_kill(killed, marker)
    for table in PUBLISHED:  # what BI tools read is exactly yesterday's
        assert _rows(killed, table) == before[table], table
    with connect(killed) as wh:
        assert wh.scalar("select count(*) from ops.runs where status = 'running'") == 1  # the killed run

    summary = run_inline(killed, governance=False)  # the next run completes ...
    assert summary["status"] == "success"
    run_inline(clean, governance=False)

    with connect(killed) as k, connect(clean) as c:  # ... with the same result as an uninterrupted run
        for feed in FEEDS:
            assert k.scalar(f"select count(*) from {feed.raw_table}") == c.scalar(
                f"select count(*) from {feed.raw_table}"
            ), feed.raw_table
        for sql in (
            "select count(*) from mdm.xref",
            "select count(distinct record_id) from mdm.xref",
            "select count(*) from marts.customer_xref",
            "select count(*) from marts.dim_customer",
            "select count(distinct golden_id) from marts.dim_customer",
            "select count(*) from mdm.golden_dirty",
        ):
            assert k.scalar(sql) == c.scalar(sql), sql
        assert k.scalar("select count(*) from marts.customer_xref where source_id like 'K%'") == 12
        mapping = "select record_id, golden_id from mdm.xref order by record_id"
        assert k.query(mapping) == c.query(mapping)
        golden = "select golden_id from marts.dim_customer order by golden_id"
        assert k.query(golden) == c.query(golden)
    xref_cols = "source, source_id, golden_id, match_probability, assignment"
    with connect(killed) as k, connect(clean) as c:
        q = f"select {xref_cols} from marts.customer_xref order by source, source_id"
        assert k.query(q) == c.query(q)
