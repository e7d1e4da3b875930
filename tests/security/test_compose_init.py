"""docker/postgres-init.sql run by a real psql on a fresh PostgreSQL cluster, as the postgres image's
entrypoint runs it: the roles exist with the passwords of the environment (NOLOGIN without one),
and the pipeline, connected as mdm_pipeline, can then grant them without any admin connection."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from customer_mdm.config import Settings
from customer_mdm.security import apply
from mdm_devtools.pgserver import LocalPostgres
from mdm_devtools.pytest_fixtures import running_postgres

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    """A cluster of its own: the init script creates cluster-wide roles (airflow, mdm_pipeline)."""
    with running_postgres(tmp_path_factory, "pginit") as server:
        yield server


def test_init_script_creates_databases_and_roles(cluster: LocalPostgres, tmp_path: Path):
    passwords = {
        "AIRFLOW_DB_PASSWORD": secrets.token_urlsafe(12),
        "MDM_PG_PASSWORD": secrets.token_urlsafe(12),
        "MDM_PG_STEWARD_PASSWORD": secrets.token_urlsafe(12),
        "MDM_PG_BI_PASSWORD": "",  # not set: bi_reader stays NOLOGIN
    }
    psql = cluster.bin_dir / "psql"
    connect_args = [str(psql), "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres"]
    connect_args += ["-d", "postgres"]
    env = {**os.environ, **passwords, "PGPASSWORD": cluster.password}
    done = subprocess.run(
        [*connect_args, "-f", str(ROOT / "docker" / "postgres-init.sql")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr

    def dsn(user: str, password: str, db: str = "mdm") -> str:
        return cluster.dsn(db, user=user, password=password)

    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as con:
        roles = dict(
            con.execute(
                "select rolname, rolcanlogin from pg_roles where rolname in "
                "('airflow', 'mdm_pipeline', 'mdm_steward', 'bi_reader')"
            ).fetchall()
        )
        owners = dict(
            con.execute(
                "select datname, pg_get_userbyid(datdba) from pg_database where datname in ('airflow', 'mdm')"
            ).fetchall()
        )
    assert roles == {"airflow": True, "mdm_pipeline": True, "mdm_steward": True, "bi_reader": False}
    assert owners == {"airflow": "airflow", "mdm": "mdm_pipeline"}
    with psycopg.connect(dsn("mdm_steward", passwords["MDM_PG_STEWARD_PASSWORD"])) as con:
        assert con.execute("select current_user").fetchall() == [("mdm_steward",)]
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):  # no CONNECT there
        psycopg.connect(dsn("mdm_steward", passwords["MDM_PG_STEWARD_PASSWORD"], db="airflow")).close()

    # the pipeline (no CREATEROLE, no admin connection) grants the roles on its own warehouse
    settings = Settings.from_env(
        env={},
        home=tmp_path / "home",
        landing=tmp_path,
        target="postgres",
        pg_dsn=dsn("mdm_pipeline", passwords["MDM_PG_PASSWORD"]),
    )
    summary = apply(settings, env={})
    # ... all but the audit log, which only a role that can create its owner role installs
    assert [w for w in summary["warnings"] if "audit log" not in w] == []
    assert summary["connected_as"] == "mdm_pipeline"
    assert summary["roles"] == {
        "mdm_pipeline": "exists",
        "mdm_steward": "exists",
        "bi_reader": "exists",
        "mdm_api": "exists",
    }
    assert "bi" in summary["schemas"] and "marts" in summary["schemas"]
    # what the compose stack's airflow-init does: `mdm roles apply` with the superuser's DSN
    admin = apply(settings, admin_dsn=cluster.dsn("mdm"), env={})
    assert admin["warnings"] == [] and admin["audit_owner"] == "mdm_audit_owner"


def test_roles_without_a_password_are_created_nologin(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path):
    with running_postgres(tmp_path_factory, "pgroles") as server:
        dsn = server.create_database("mdm")
        settings = Settings.from_env(env={}, home=tmp_path / "home", landing=tmp_path, target="postgres", pg_dsn=dsn)
        steward_password = secrets.token_urlsafe(12)
        first = apply(settings, env={"MDM_PG_STEWARD_PASSWORD": steward_password})
        again = apply(settings, env={})  # no variables: nothing changes
        with psycopg.connect(server.dsn("postgres"), autocommit=True) as con:
            logins = dict(con.execute("select rolname, rolcanlogin from pg_roles where rolname like '%_%'").fetchall())
        with psycopg.connect(server.dsn("mdm", user="mdm_steward", password=steward_password)) as con:
            assert con.execute("select current_user").fetchall() == [("mdm_steward",)]
    assert first["roles"] == {
        "mdm_pipeline": "created (nologin)",
        "mdm_steward": "created (login)",
        "bi_reader": "created (nologin)",
        "mdm_api": "created (nologin)",
    }
    assert again["roles"] == {
        "mdm_pipeline": "exists",
        "mdm_steward": "exists",
        "bi_reader": "exists",
        "mdm_api": "exists",
    }
    assert {r: logins[r] for r in ("mdm_pipeline", "mdm_steward", "bi_reader")} == {
        "mdm_pipeline": False,
        "mdm_steward": True,
        "bi_reader": False,
    }
