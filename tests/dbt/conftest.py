"""Fixtures for the dbt tests: a warehouse per target, loaded with dirty raw rows and built by dbt.

The PostgreSQL server is ``pg_server`` from ``mdm_devtools.pytest_fixtures``, which the root
``tests/conftest.py`` imports for the whole suite. The built warehouses are module scoped: each target
is built once per test module, because one ``dbt build`` costs several seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from staging_data import BuiltWarehouse, build_warehouse

from customer_mdm.config import Settings


@pytest.fixture(scope="module")
def duckdb_staging(tmp_path_factory: pytest.TempPathFactory) -> BuiltWarehouse:
    home: Path = tmp_path_factory.mktemp("mdm_duckdb")
    return build_warehouse(Settings.from_env({}, home=home, target="duckdb"))


@pytest.fixture(scope="module")
def postgres_staging(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltWarehouse]:
    name = f"t_dbt_staging_{uuid.uuid4().hex[:10]}"
    dsn = pg_server.create_database(name)
    home: Path = tmp_path_factory.mktemp("mdm_postgres")
    try:
        yield build_warehouse(Settings.from_env({}, home=home, target="postgres", pg_dsn=dsn))
    finally:
        if pg_server.is_running():
            pg_server.drop_database(name)
