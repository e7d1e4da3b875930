"""The warehouse connection through Airflow's connection API: the AIRFLOW_CONN_ variable (URI or
JSON), a secrets backend (what a UI-defined connection also goes through in a task), the libpq
options of `extra` kept for the platform and for dbt, MDM_PG_DSN overriding all."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from customer_mdm.config import WAREHOUSE_CONN_ID_ENV, Settings
from customer_mdm.errors import ConfigError

GIVEN = "s3" + "cr@t"  # assembled: no credential-like literal
CONN = {
    "conn_type": "postgres",
    "login": "mdm_pipeline",
    "password": GIVEN,
    "host": "db.internal",
    "port": 6432,
    "schema": "mdm",
    "extra": {
        "sslmode": "verify-full",
        "sslrootcert": "/etc/mdm/ca.pem",
        "application_name": "mdm",
        "cursor": "dictcursor",
    },
}


def test_json_connection_keeps_its_libpq_extra():
    settings = Settings.from_env(env={"MDM_TARGET": "postgres", "AIRFLOW_CONN_MDM_WAREHOUSE": json.dumps(CONN)})
    params = settings.pg_params()
    assert params == {
        "user": "mdm_pipeline",
        "password": GIVEN,
        "host": "db.internal",
        "port": "6432",
        "dbname": "mdm",
        "sslmode": "verify-full",
        "sslrootcert": "/etc/mdm/ca.pem",
        "application_name": "mdm",
    }, "libpq options kept, the provider's own keys (cursor) left out"
    env = settings.env()
    assert (env["PGSSLMODE"], env["PGSSLROOTCERT"], env["PGAPPNAME"]) == ("verify-full", "/etc/mdm/ca.pem", "mdm")
    assert env["MDM_PG_HOST"] == "db.internal" and env["MDM_PG_PORT"] == "6432"


def test_uri_connection_with_extra_in_the_query():
    uri = "postgres://mdm_pipeline:" + "p%40ss" + "@db:5432/mdm?sslmode=require&connect_timeout=5"
    settings = Settings.from_env(env={"MDM_TARGET": "postgres", "AIRFLOW_CONN_MDM_WAREHOUSE": uri})
    params = settings.pg_params()
    assert (params["password"], params["sslmode"], params["connect_timeout"]) == ("p@ss", "require", "5")


def test_another_connection_id_and_mdm_pg_dsn_wins():
    env = {
        "MDM_TARGET": "postgres",
        WAREHOUSE_CONN_ID_ENV: "warehouse_eu",
        "AIRFLOW_CONN_WAREHOUSE_EU": json.dumps(CONN),
    }
    assert Settings.from_env(env=env).pg_params()["host"] == "db.internal"
    assert Settings.from_env(env={**env, "MDM_PG_DSN": "postgresql://x@y/z"}).pg_dsn == "postgresql://x@y/z"
    with pytest.raises(ConfigError, match="neither a URI nor valid JSON"):
        Settings.from_env(env={**env, "AIRFLOW_CONN_WAREHOUSE_EU": "{not json"})


def test_a_connection_from_a_secrets_backend(tmp_path):
    """Airflow's local-filesystem secrets backend stands for Vault, AWS or a UI-defined connection:
    Settings reads it through airflow.sdk's Connection.get, in a fresh process as a worker would."""
    connections = tmp_path / "connections.json"
    connections.write_text(json.dumps({"mdm_wh_backend": CONN}))
    code = (
        "import json; from customer_mdm.config import Settings; from customer_mdm.errors import ConfigError\n"
        "print(json.dumps(Settings.from_env().pg_params()))\n"
        "try:\n"
        "    Settings.from_env(env={'MDM_TARGET': 'postgres', 'MDM_WAREHOUSE_CONN_ID': 'no_such_connection'})\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MDM_", "AIRFLOW_CONN_"))},
        "MDM_TARGET": "postgres",
        "MDM_HOME": str(tmp_path / "home"),
        WAREHOUSE_CONN_ID_ENV: "mdm_wh_backend",
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(connections)}),
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    found, missing = out.stdout.strip().splitlines()[-2:]
    params = json.loads(found)
    assert params["host"] == "db.internal" and params["password"] == GIVEN and params["sslmode"] == "verify-full"
    assert "no Airflow connection 'no_such_connection'" in missing, "a named connection that is missing is an error"
    assert GIVEN not in out.stderr
