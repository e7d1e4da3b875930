"""docker-compose.yml names the production components and reads every secret from the environment
(no Docker engine here: the file is parsed and checked)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_of_the_stack():
    services = compose()["services"]
    assert {
        "postgres",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    } <= set(services)
    assert services["postgres"]["image"].startswith("postgres:")
    assert {"redis", "airflow-worker"} <= {name for name, s in services.items() if "celery" in s.get("profiles", [])}
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "postgres"):
        assert "healthcheck" in services[name], name
    assert services["airflow-scheduler"]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_airflow_services_share_settings_and_mount_the_project():
    services = compose()["services"]
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"].startswith("${AIRFLOW__CORE__EXECUTOR:-LocalExecutor")
        assert env["MDM_TARGET"] == "postgres"
        tls = "?sslmode=verify-full&sslrootcert=/opt/tls/ca.crt"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow" + tls)
        assert env["MDM_PG_DSN"].endswith("@postgres:5432/mdm" + tls), "warehouse and metadata are separate databases"
        mounts = {v.removesuffix(":ro").rsplit(":", 1)[1] for v in services[name]["volumes"]}
        assert {"/opt/customer-mdm/dags", "/opt/customer-mdm/dbt_project", "/opt/landing"} <= mounts


def test_no_secret_in_the_repository():
    lines = [
        line for line in (ROOT / "docker-compose.yml").read_text().splitlines() if not line.strip().startswith("#")
    ]
    for line in lines:
        if re.search(r"PASSWORD|password", line) and "PASSWORDS_FILE:" not in line:  # a path, not a secret
            assert "${" in line, f"a password that does not come from the environment: {line}"
    example = (ROOT / ".env.example").read_text()
    assert "change-me" in example
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    init = (ROOT / "docker" / "postgres-init.sql").read_text()
    assert "AIRFLOW_DB_PASSWORD" in init and "create database airflow" in init and "create database mdm" in init


def test_image_installs_the_pinned_package():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile
    assert "-c /opt/customer-mdm/constraints.txt" in dockerfile
    pinned = dict(
        line.split("==")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert pinned["apache-airflow"] == "3.3.2"


def test_the_smoke_test_starts_what_the_compose_file_runs():
    """tests/deploy/test_production_smoke.py starts AIRFLOW_COMPONENTS with the compose environment:
    every long-running Airflow service of the default profile must be among them."""
    from tests.deploy.stack import AIRFLOW_COMPONENTS, INIT_SERVICE, service_command, service_environment

    services = compose()["services"]
    default_airflow = {
        name
        for name, s in services.items()
        if s.get("image") == "customer-mdm-airflow:latest"
        and not s.get("profiles")
        and name != INIT_SERVICE
        and s.get("restart") != "no"  # one-off services: secrets-check, pg-tls
    }
    assert default_airflow == set(AIRFLOW_COMPONENTS)
    variables = {line.split("=", 1)[0]: "x" for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line}
    variables = {k.lstrip("# ").strip(): v for k, v in variables.items()}
    envs = [service_environment(name, variables) for name in AIRFLOW_COMPONENTS]
    assert all(env == envs[0] for env in envs), "one configuration for every component"
    commands = {name: service_command(name, variables) for name in AIRFLOW_COMPONENTS}
    assert commands == {
        "airflow-apiserver": ["airflow", "api-server"],
        "airflow-scheduler": ["airflow", "scheduler"],
        "airflow-dag-processor": ["airflow", "dag-processor"],
        "airflow-triggerer": ["airflow", "triggerer"],
    }
    init = service_command(INIT_SERVICE, variables)
    assert init[:2] == ["/bin/bash", "-c"]
    assert "airflow db migrate" in init[2] and "python -m customer_mdm.deploy airflow-admin" in init[2]


def test_every_required_variable_is_documented_in_env_example():
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", text))
    referenced = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))
    documented = {
        line.lstrip("# ").split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line
    }
    assert {"AIRFLOW_DB_PASSWORD", "MDM_PG_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET"} <= required
    assert referenced <= documented, referenced - documented


def test_images_and_drivers_match_what_the_smoke_test_runs():
    import importlib.util
    import subprocess

    from mdm_devtools.pgserver import find_postgres_bin_dir

    services = compose()["services"]
    out = subprocess.run([str(find_postgres_bin_dir() / "postgres"), "--version"], capture_output=True, text=True)
    local_major = re.search(r"\(PostgreSQL\)\s+(\d+)", out.stdout).group(1)
    assert services["postgres"]["image"] == f"postgres:{local_major}", "the smoke test's server is the same major"
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"].startswith("postgresql+psycopg://")
    assert importlib.util.find_spec("psycopg2") and importlib.util.find_spec("psycopg"), "both pinned drivers"
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("simple_auth_manager.SimpleAuthManager")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "${AIRFLOW_ADMIN_USER:-admin}:admin"
    assert env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "True"
    assert env["MDM_ALERT_WEBHOOK"] == "${MDM_ALERT_WEBHOOK:-}"
    assert "/api/v2/monitor/health" in " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    for name in ("airflow-worker", "flower", "airflow-init", "airflow-triggerer"):
        assert services[name]["image"] == "customer-mdm-airflow:latest", name
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile", name
    assert services["airflow-worker"]["command"] == "celery worker"
    assert services["flower"]["profiles"] == ["flower"] and services["flower"]["command"][-1].endswith(
        "exec airflow celery flower"
    )
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    assert services["airflow-scheduler"]["depends_on"]["redis"] == {"condition": "service_healthy", "required": False}


def test_the_lineage_profile_runs_marquez_and_the_stack_points_at_it():
    services = compose()["services"]
    lineage = {name for name, s in services.items() if "lineage" in s.get("profiles", [])}
    assert lineage == {"marquez-db", "marquez", "marquez-web"}
    for name in lineage:
        assert "healthcheck" in services[name], name
    assert services["marquez"]["depends_on"]["marquez-db"]["condition"] == "service_healthy"
    assert "ports" not in services["marquez-db"], "the lineage database is reached on the compose network only"
    env = services["airflow-scheduler"]["environment"]
    assert env["OPENLINEAGE_URL"] == "${OPENLINEAGE_URL:-}", "off unless .env points at a backend"
    assert "OPENLINEAGE_URL=http://marquez:5000" in (ROOT / ".env.example").read_text()
