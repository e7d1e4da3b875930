"""Fixtures for the governance tests: one small warehouse built by the real pipeline (DuckDB),
and a PostgreSQL copy of its inputs on which the governance models and the scorecard are built
again, with an explicit ``as_of``.

Session scoped: generating the landing zone and running the pipeline once costs most of this
folder's runtime; every test reads the same build.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from governance_build import PAST_AS_OF, PEOPLE, SEED, Built, build_governance
from warehouse_copy import copy_tables

from customer_mdm.config import Settings
from customer_mdm.governance import read_history, record_scorecard
from customer_mdm.pipeline import run_inline
from customer_mdm.warehouse import connect
from mdm_devtools.generate import generate_landing


@pytest.fixture(scope="session")
def gov(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The daily pipeline run once on DuckDB, then the governance models built as the
    mdm_governance DAG's dbt step does (the scorecard runs are the tests' own)."""
    base = tmp_path_factory.mktemp("governance")
    landing = base / "landing"
    generate_landing(landing, PEOPLE, seed=SEED, days=2)
    settings = Settings.from_env(env={}, home=base / "home", landing=landing)
    run_inline(settings, governance=False)
    build_governance(settings)
    return Built(settings, landing)


@pytest.fixture(scope="session")
def gov_pg(gov: Built, pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The governance models and their inputs on a real PostgreSQL, built with as_of = PAST_AS_OF."""
    name = f"t_governance_{uuid.uuid4().hex[:10]}"
    dsn = pg_server.create_database(name)
    settings = Settings.from_env(
        env={}, home=tmp_path_factory.mktemp("governance_pg"), landing=gov.landing, target="postgres", pg_dsn=dsn
    )
    try:
        with connect(gov.settings, read_only=True) as source, connect(settings) as target:
            copy_tables(source, target)
        build_governance(settings, as_of=PAST_AS_OF)
        yield Built(settings, gov.landing)
    finally:
        if pg_server.is_running():
            pg_server.drop_database(name)


@pytest.fixture(scope="session")
def history(gov: Built) -> pd.DataFrame:
    """Two scorecard runs recorded on the DuckDB build (the second twice, as a retried task would)."""
    record_scorecard(gov.settings, "run_1")
    record_scorecard(gov.settings, "run_2")
    record_scorecard(gov.settings, "run_2")
    return read_history(gov.settings)
