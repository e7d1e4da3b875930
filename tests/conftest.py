"""Shared pytest fixtures. Markers are declared in pyproject.toml.

``settings`` is parametrised over both warehouses: every test that takes it runs once on the
embedded DuckDB file and once on a real PostgreSQL server (``pg_dsn``: a fresh database on a
server the session starts), never on a mock.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from customer_mdm.config import Settings
from customer_mdm.devtools.pytest_fixtures import pg_dsn, pg_server  # noqa: F401


def make_settings(tmp_path: Path, target: str = "duckdb", dsn: str | None = None) -> Settings:
    landing = tmp_path / "landing"
    landing.mkdir(exist_ok=True)
    return Settings.from_env(env={}, home=tmp_path / "home", landing=landing, target=target, pg_dsn=dsn)


@pytest.fixture
def duckdb_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "postgres":
        return make_settings(tmp_path, "postgres", request.getfixturevalue("pg_dsn"))
    return make_settings(tmp_path)
