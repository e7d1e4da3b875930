"""Shared pytest fixtures. Markers are declared in pyproject.toml.

``settings`` is parametrised over both warehouses: every test that takes it runs once on the
embedded DuckDB file and once on a real PostgreSQL server (``pg_dsn``: a fresh database on a
server the session starts), never on a mock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


# `make test` runs the tests in parallel (pytest-xdist, `--dist loadgroup`) in groups: a group runs
# on one worker, and the groups are handed out in the order of their first test here. A group is a
# test file (its module fixtures are built once), except in the files below, whose warehouse is a
# module fixture (or a function one) parametrised over DuckDB and PostgreSQL: there each
# warehouse's half is a group of its own, so the two halves run at the same time on two workers;
# and in the folders below, whose files share session fixtures (one build for the whole folder).
# The group is computed from the test's node id by the scheduler below (xdist's own `xdist_group`
# marker does not group under pytest 9, whose node ids xdist can no longer rename).
SPLIT_BY_WAREHOUSE = frozenset(
    {
        "tests/test_end_to_end.py",
        "tests/test_privacy.py",
        "tests/test_erasure_holds.py",
        "tests/hub/test_api.py",
        "tests/hub/test_durability.py",
        "tests/test_incremental_dbt.py",
    }
)
GROUP_BY_FOLDER = ("tests/governance/",)

# The longest groups first (measured with --durations), so that none of them is left to end the
# run alone on one core while the other one idles. Every other group follows in file order.
LONGEST_FIRST = (  # seconds per group in a full run on 2 cores, before the groups were split
    "tests/test_end_to_end.py[duckdb]",  # 275: two runs through Airflow
    "tests/deploy/test_production_smoke.py",  # 160
    "tests/linkage/test_step.py",  # 160
    "tests/test_kill_resilience.py",  # 155
    "tests/hub/test_durability.py[postgres]",  # 140
    "tests/test_end_to_end.py[postgres]",  # 140
    "tests/test_privacy.py[postgres]",  # 135
    "tests/governance/",  # 130
    "tests/test_privacy.py[duckdb]",  # 130
    "tests/linkage/test_spark_engine.py",  # 125
    "tests/hub/test_durability.py[duckdb]",  # 120
    "tests/test_end_to_end.py[other]",  # 110
    "tests/console/test_console_browser.py",  # 110
    "tests/linkage/test_drift.py",  # 110
    "tests/test_erasure_holds.py[duckdb]",  # 95
    "tests/hub/test_matching_postgres.py",  # 95
    "tests/test_erasure_holds.py[postgres]",  # 90
    "tests/hub/test_matching.py",  # 85
    "tests/test_incremental_dbt.py[postgres]",  # 75
    "tests/test_standardization.py",  # 70
    "tests/console/test_console_postgres.py",  # 65
    "tests/test_lineage.py",  # 65
    "tests/test_plan_new_feed.py",  # 40: a made-up eighth feed end to end
    "tests/test_incremental_dbt.py[duckdb]",  # 50
    "tests/linkage/test_model.py",  # 50
    "tests/test_freshness.py",  # 50
    "tests/hub/test_api.py[duckdb]",  # 45
    "tests/hub/test_api.py[postgres]",  # 45
    "tests/quality/test_publish.py",  # 45
    "tests/test_incremental_dbt.py[other]",  # 45
)


def xdist_group(nodeid: str) -> str:
    """The group of a test: its file, its file and warehouse (``SPLIT_BY_WAREHOUSE``) or its
    folder (``GROUP_BY_FOLDER``)."""
    path, _, name = nodeid.partition("::")
    folder = next((f for f in GROUP_BY_FOLDER if path.startswith(f)), None)
    if folder is not None:
        return folder
    if path not in SPLIT_BY_WAREHOUSE:
        return path
    params = set(name.partition("[")[2].rstrip("]").split("-"))
    warehouse = next((w for w in ("duckdb", "postgres") if w in params), "other")
    return f"{path}[{warehouse}]"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup``: xdist's scope scheduling over the groups of :func:`xdist_group`."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(xdist_group(item.nodeid), len(rank)))  # stable: file order otherwise
