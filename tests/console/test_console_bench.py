"""The console part of ``make bench`` (mdm_devtools.console_bench) on a tiny published serving
layer: a steward made by ``mdm user add`` signs in over HTTP and every page kind gets figures;
no sampled personal value reaches the figures, the table or the log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from customer_mdm.config import Settings
from mdm_devtools.console_bench import PAGES, bench_console, render_console, sample_values
from tests.console.conftest import served
from tests.console.test_console_search import build_serving


def test_bench_times_every_console_page(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env(env={}, home=tmp_path / "home", landing=tmp_path / "landing", target="duckdb")
    settings.home.mkdir(parents=True)
    build_serving(settings)
    with served(settings) as base:
        result = bench_console(settings, base, requests=3)
    for kind in PAGES:
        figures = result[kind]
        assert figures["requests"] == 3 and figures["errors"] == 0, kind
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"], kind
    assert result["largest_cluster"] == 2
    table = render_console([(10, result)])
    assert all(f"| {kind} " in table for kind in PAGES)
    values = sample_values(settings, 3)
    assert values["names"] and values["phones"]
    shown = table + str(result) + caplog.text
    assert not [v for v in values["names"] + values["phones"] + values["golden_ids"] if v in shown]
    con = sqlite3.connect(str(settings.home / "hub" / "hub.sqlite"))
    try:  # the bench's steward is signed out and disabled
        users = con.execute("select disabled from console_users where name like 'bench-%'").fetchall()
        sessions = con.execute("select count(*) from console_sessions where user_name like 'bench-%'").fetchall()
    finally:
        con.close()
    assert users == [(1,)] and sessions == [(0,)]
