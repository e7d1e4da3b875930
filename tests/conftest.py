"""Shared pytest fixtures. Markers are declared in pyproject.toml.

``settings`` is parametrised over both warehouses: every test that takes it runs once on the
embedded DuckDB file and once on a real PostgreSQL server (``pg_dsn``: a fresh database on a
server the session starts), never on a mock.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from customer_mdm.config import Settings
from mdm_devtools.pytest_fixtures import pg_dsn, pg_server  # noqa: F401


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


# Test files that build whole warehouses or run Airflow, longest first. `make test` runs files in
# parallel (pytest-xdist, --dist loadfile), handing them out in collection order: starting the long
# ones first keeps them from ending the run alone on one core.
LONGEST_FIRST = (
    "test_end_to_end.py",
    "test_durability.py",  # tests/hub: two pipeline runs per warehouse and a load test
    "test_api.py",  # tests/hub: a pipeline run per warehouse, mdm serve as a process
    "test_production_smoke.py",
    "test_privacy.py",
    "test_kill_resilience.py",
    "test_step.py",
    "test_incremental_dbt.py",
    "test_spark_engine.py",
    "test_standardization.py",
    "test_scorecard.py",
    "test_governance_models.py",
    "test_backup.py",
    "test_roles.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept otherwise
