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
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow")
        assert env["MDM_PG_DSN"].endswith("@postgres:5432/mdm"), "warehouse and metadata are separate databases"
        mounts = {v.removesuffix(":ro").rsplit(":", 1)[1] for v in services[name]["volumes"]}
        assert {"/opt/customer-mdm/dags", "/opt/customer-mdm/dbt_project", "/opt/landing"} <= mounts


def test_no_secret_in_the_repository():
    lines = [
        line for line in (ROOT / "docker-compose.yml").read_text().splitlines() if not line.strip().startswith("#")
    ]
    for line in lines:
        if re.search(r"PASSWORD|password", line):
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
