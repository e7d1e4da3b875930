"""The run lock: one pipeline run at a time per warehouse.

Two runs that interleave (two ``mdm run``, a manual run beside the scheduler) corrupt each
other's incremental windows, golden ids and publications: on PostgreSQL statement by statement,
on DuckDB between steps (each step opens the file for itself). So every run holds the lock from
its ``start`` to its ``finish``, and a second run is refused at once with a message naming the
holder (``MDM_RUN_LOCK_WAIT=SECONDS`` makes it wait that long first).

The lock is a *lease*, one row of ``ops.run_lock`` in the warehouse itself, so that it holds
across processes and hosts: the Airflow DAG's steps run in separate processes, so its ``start``
task takes the lease for the run id, every step renews it (and refuses to run when another run
holds it), ``finish`` releases it. A lease not renewed for :data:`LEASE` (longer than a task's
execution timeout) expires, so a DAG run killed outright frees the lock by itself. How the
holder's liveness is told, by ``kind``:

``process``  the run's process holds an OS-level lock for the whole run (``mdm run`` and
             :func:`~customer_mdm.pipeline.run_inline`, through :func:`holding`): an exclusive
             ``flock`` on ``<warehouse file>.runlock`` on DuckDB, a session advisory lock on a
             connection kept open for the run on PostgreSQL. Both vanish with the process, so a
             run killed with SIGKILL frees the lock at once.
``pid``      a run started by a direct call of ``start_run`` (no DAG run, no OS lock): free once
             that process is gone (same host) or the lease expired; a process runs its runs one
             after another, so its own earlier lease is superseded.
``lease``    a DAG run (``start`` with a DAG run id): free when ``finish`` released it, when the
             run is recorded as finished, or when the lease expired.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from customer_mdm.config import Settings
from customer_mdm.errors import RunLocked
from customer_mdm.warehouse import Warehouse, connect

LOCK = "pipeline"
#: a lease not renewed for this long is free; steps renew it when they start, and a task's
#: execution_timeout is 2 hours (customer_mdm.orchestration.default_args)
LEASE = timedelta(hours=3)
#: the session advisory lock of a run on PostgreSQL (any constant bigint; "MDMRUN" in ASCII)
ADVISORY_KEY = 0x4D444D52554E
_HOST = socket.gethostname()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class ProcessLock:
    """The OS-level lock a process holds for a whole run (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._fd: int | None = None
        self._con: Any = None

    @property
    def key(self) -> str:
        if self.settings.target == "postgres":
            params = self.settings.pg_params()
            return f"postgres:{params.get('host', '')}:{params.get('port', '')}:{params.get('dbname', '')}"
        return f"duckdb:{self.settings.warehouse_file}"

    def try_acquire(self) -> bool:
        if self.settings.target == "postgres":
            import psycopg

            assert self.settings.pg_dsn is not None
            con = psycopg.connect(self.settings.pg_dsn, autocommit=True)
            row = con.execute("select pg_try_advisory_lock(%s)", [ADVISORY_KEY]).fetchone()
            if row and row[0]:
                self._con = con
                return True
            con.close()
            return False
        import fcntl

        path = self.settings.warehouse_file.with_name(self.settings.warehouse_file.name + ".runlock")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._con is not None:
            with contextlib.suppress(Exception):  # closing the session releases the lock anyway
                self._con.execute("select pg_advisory_unlock(%s)", [ADVISORY_KEY])
            self._con.close()
            self._con = None
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


#: the OS-level locks this process holds: lock key -> (lock, run id)
_HELD: dict[str, tuple[ProcessLock, str]] = {}


def _held_for(settings: Settings) -> str | None:
    held = _HELD.get(ProcessLock(settings).key)
    return held[1] if held else None


def _pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _holder_gone(settings: Settings, wh: Warehouse, row: tuple[Any, ...], run_id: str) -> bool:
    """Whether the lease ``row`` (held by another run) may be taken over."""
    holder, kind, host, pid, _acquired, expires = row
    if holder is None or expires is None or expires < _now():
        return True
    status = wh.scalar("select max(status) from ops.runs where run_id = ?", [holder])
    if status is not None and status != "running":
        return True  # finished, but its release did not happen
    if kind == "lease":
        return False
    same_process = host == _HOST and pid == os.getpid()
    if same_process:  # this process runs its runs one after another
        return _held_for(settings) != holder
    if kind == "pid":
        return host == _HOST and not (pid and _pid_alive(int(pid)))
    # kind process: the holder's OS-level lock is gone with its process
    if _held_for(settings) == run_id:
        return True  # we hold it now
    probe = ProcessLock(settings)
    if probe.try_acquire():
        probe.release()
        return True
    return False


def _refusal(row: tuple[Any, ...]) -> RunLocked:
    holder, kind, host, pid, acquired, expires = row
    who = f"the Airflow DAG run {holder}" if kind == "lease" else f"run {holder} (process {pid} on {host})"
    return RunLocked(
        f"another pipeline run holds the run lock: {who}, since {acquired} UTC (lease until {expires} UTC). "
        "Two runs never interleave: wait for it to finish (`mdm status`), or set MDM_RUN_LOCK_WAIT=SECONDS "
        "to wait for the lock"
    )


def _try_acquire(settings: Settings, run_id: str, kind: str) -> None:
    columns = "run_id, kind, host, pid, acquired_at, expires_at"
    with connect(settings) as wh:
        if not wh.table_exists("ops.run_lock"):
            from customer_mdm.schema import OPS_TABLES, ensure_table

            ensure_table(wh, "ops.run_lock", OPS_TABLES["ops.run_lock"])
        wh.execute("insert into ops.run_lock (lock_name) values (?) on conflict do nothing", [LOCK])
        row = wh.query(f"select {columns} from ops.run_lock where lock_name = ?", [LOCK])[0]
        now = _now()
        if row[0] == run_id:
            wh.execute(
                "update ops.run_lock set expires_at = ? where lock_name = ? and run_id = ?", [now + LEASE, LOCK, run_id]
            )
            return
        if not _holder_gone(settings, wh, row, run_id):
            raise _refusal(row)
        # compare-and-set on the previous holder: of two runs taking a free lock, one wins
        wh.execute(
            "update ops.run_lock set run_id = ?, kind = ?, host = ?, pid = ?, acquired_at = ?, expires_at = ? "
            "where lock_name = ? and coalesce(run_id, '') = ?",
            [run_id, kind, _HOST, os.getpid(), now, now + LEASE, LOCK, row[0] or ""],
        )
        after = wh.query(f"select {columns} from ops.run_lock where lock_name = ?", [LOCK])[0]
        if after[0] != run_id:
            raise _refusal(after)


def _waiting(settings: Settings, attempt: Any) -> Any:
    """Call ``attempt`` until it does not raise RunLocked or ``MDM_RUN_LOCK_WAIT`` has passed."""
    deadline = time.monotonic() + settings.run_lock_wait
    while True:
        try:
            return attempt()
        except RunLocked:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            time.sleep(min(2.0, left))


def acquire(settings: Settings, run_id: str, kind: str = "pid") -> None:
    """Take (or renew) the run lock for ``run_id``; RunLocked when another live run holds it."""
    _waiting(settings, lambda: _try_acquire(settings, run_id, kind))


def renew(settings: Settings, run_id: str) -> None:
    """A step of ``run_id`` is starting: extend its lease, or take the lock if it is free (a step
    run on its own); RunLocked, without waiting, when another run holds it."""
    _try_acquire(settings, run_id, "pid")


def release(settings: Settings, run_id: str) -> None:
    """Free the lock if ``run_id`` holds it (a run's end)."""
    with connect(settings) as wh:
        if wh.table_exists("ops.run_lock"):
            wh.execute(
                "update ops.run_lock set run_id = null, kind = null, host = null, pid = null, expires_at = null "
                "where lock_name = ? and run_id = ?",
                [LOCK, run_id],
            )


def release_at_finish(settings: Settings, run_id: str) -> None:
    """``finish``: release the lease, unless this process holds the run's OS-level lock (then
    :func:`holding` releases both when the whole run, governance outputs included, is over)."""
    if _held_for(settings) != run_id:
        release(settings, run_id)


@contextlib.contextmanager
def holding(settings: Settings, run_id: str) -> Iterator[None]:
    """Hold the run lock for a whole run in this process: the OS-level lock and the lease."""
    lock = ProcessLock(settings)

    def take() -> None:
        if not lock.try_acquire():
            row: tuple[Any, ...] = ("of another process", "process", "?", "?", "?", "?")
            with contextlib.suppress(Exception):  # the holder may have the DuckDB file open
                with connect(settings, read_only=True) as wh:
                    found = wh.query(
                        "select run_id, kind, host, pid, acquired_at, expires_at from ops.run_lock where lock_name = ?",
                        [LOCK],
                    )
                    row = found[0] if found and found[0][0] else row
            raise _refusal(row)

    _waiting(settings, take)
    _HELD[lock.key] = (lock, run_id)
    try:
        acquire(settings, run_id, "process")
        yield
    finally:
        _HELD.pop(lock.key, None)
        try:
            release(settings, run_id)
        finally:
            lock.release()
