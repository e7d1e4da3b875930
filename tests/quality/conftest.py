"""Fixtures of the quality-gate tests (helpers: ``quality_data``).

``settings`` (tests/conftest.py) runs a test on DuckDB and on PostgreSQL; ``pg_settings`` is for
the PostgreSQL-only tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from customer_mdm.config import Settings


@pytest.fixture
def pg_settings(tmp_path: Path, pg_dsn: str) -> Settings:
    landing = tmp_path / "landing"
    landing.mkdir()
    return Settings.from_env(env={}, home=tmp_path / "home", landing=landing, target="postgres", pg_dsn=pg_dsn)
