"""The compose stack's defaults are safe: no secret from .env.example (or empty) starts it,
PostgreSQL and Flower listen on this host only, Flower asks for a password, PostgreSQL serves TLS
only and every client verifies it (sslmode=verify-full with the CA), and role passwords never
reach the server's statement log."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from customer_mdm.deploy import OPTIONAL_SECRETS, REQUIRED_SECRETS, check_secrets
from customer_mdm.security import scram_verifier
from mdm_devtools.pgserver import LocalPostgres
from tests.deploy.stack import compose, service_environment

ROOT = Path(__file__).resolve().parents[2]
CHECK = "secrets-check"


def _example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def _generated() -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {
        **{name: secrets.token_urlsafe(18) for name in REQUIRED_SECRETS},
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW_API_SECRET_KEY": secrets.token_hex(32),
    }


def test_the_examples_placeholders_do_not_start_the_stack():
    example = _example()
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED_SECRETS and k not in OPTIONAL_SECRETS}
    env |= service_environment(CHECK, example)  # what compose hands the check from a copied .env.example
    env["PYTHONPATH"] = str(ROOT / "plugins")
    done = subprocess.run(
        [sys.executable, "-m", "customer_mdm.deploy", *compose()["services"][CHECK]["command"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    for name in REQUIRED_SECRETS:
        assert name in done.stderr, name
    for value in example.values():
        if len(value) > 6:
            assert value not in done.stderr + done.stdout, "a secret's value is never printed"
    assert check_secrets(_generated()) == []
    too_short = "short"
    weak = _generated() | {"AIRFLOW_JWT_SECRET": too_short, "AIRFLOW_FERNET_KEY": "x-" * 22, "MDM_PG_PASSWORD": ""}
    problems = " ".join(check_secrets(weak))
    assert "AIRFLOW_JWT_SECRET is shorter" in problems and "AIRFLOW_FERNET_KEY is not a Fernet key" in problems
    assert "MDM_PG_PASSWORD is empty" in problems


def test_every_service_waits_for_the_secrets_check():
    services = compose()["services"]

    def needs(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        direct = set(services[name].get("depends_on") or {})
        return direct | {n for d in direct - seen if d in services for n in needs(d, seen | {name})}

    for name in services:
        if name != CHECK:
            assert CHECK in needs(name), f"{name} may start before the secrets are checked"
    assert services[CHECK]["restart"] == "no"
    for name, value in services[CHECK]["environment"].items():
        if name in REQUIRED_SECRETS:
            assert value.startswith(f"${{{name}:?"), name


def test_postgres_and_flower_listen_on_this_host_only_and_flower_asks_for_a_password():
    services = compose()["services"]
    for name in ("postgres", "flower"):
        for port in services[name]["ports"]:
            bind = service_environment_free_substitute(port)
            assert bind.startswith("127.0.0.1:"), (name, port)
    flower = services["flower"]
    assert flower["environment"]["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"] == "${FLOWER_BASIC_AUTH:-}"
    assert "check-secrets --require FLOWER_BASIC_AUTH &&" in flower["command"][-1]
    assert check_secrets({**_generated()}, require=("FLOWER_BASIC_AUTH",)) == ["FLOWER_BASIC_AUTH is empty"]


def service_environment_free_substitute(value: str) -> str:
    from tests.deploy.stack import substitute

    return substitute(value, {})


def test_postgres_serves_tls_only_and_every_client_verifies_it():
    services = compose()["services"]
    command = " ".join(services["postgres"]["command"])
    assert "ssl=on" in command and "hba_file=/etc/postgresql/pg_hba.conf" in command
    hba = [
        line.split()
        for line in (ROOT / "docker" / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {line[0] for line in hba} == {"local", "hostssl"}, "no plain host line: TCP without TLS is refused"
    assert services["postgres"]["depends_on"]["pg-tls"] == {"condition": "service_completed_successfully"}
    assert "init" in services["pg-tls"]["command"] and services["pg-tls"]["entrypoint"][-1] == "customer_mdm.tls"
    dsns = {}
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"postgres(ql)?(\+\w+)?://", str(value)):
                dsns[f"{name}.{key}"] = str(value)
    assert len(dsns) >= 5
    for where, dsn in dsns.items():
        assert dsn.endswith("?sslmode=verify-full&sslrootcert=/opt/tls/ca.crt"), where
    for name, service in services.items():  # the CA's and the server's keys stay with pg-tls and postgres
        volumes = [str(v).split(":")[0] for v in service.get("volumes", [])]
        if "pg-tls-ca" in volumes:
            assert name == "pg-tls", name
        if "pg-tls-server" in volumes:
            assert name in ("pg-tls", "postgres"), name


@pytest.mark.postgres
def test_role_passwords_never_reach_the_server_log(pg_server: LocalPostgres, pg_dsn: str, tmp_path: Path):
    from customer_mdm.security import PASSWORD_ENV, PIPELINE_ROLE, ensure_roles
    from customer_mdm.warehouse import PostgresWarehouse

    password = secrets.token_urlsafe(18)
    offset = pg_server.log_file.stat().st_size
    wh = PostgresWarehouse(pg_dsn)
    try:
        wh.execute("set log_statement = 'all'")  # the worst case: every statement logged
        summary: dict = {"warnings": [], "roles": {}, "connected_as": "postgres"}
        ensure_roles(wh, {PASSWORD_ENV[PIPELINE_ROLE]: password}, summary)
    finally:
        wh.close()
    with open(pg_server.log_file, "rb") as log:
        log.seek(offset)
        logged = log.read().decode(errors="replace")
    assert "SCRAM-SHA-256$4096:" in logged and password not in logged
    login = re.sub(r"//[^@]+@", f"//{PIPELINE_ROLE}:{password}@", pg_dsn, count=1)
    with psycopg.connect(login) as con:  # the verifier is the password's
        assert con.execute("select current_user").fetchall() == [(PIPELINE_ROLE,)]
    assert scram_verifier("pw", salt=b"0" * 16) == scram_verifier("pw", salt=b"0" * 16)
