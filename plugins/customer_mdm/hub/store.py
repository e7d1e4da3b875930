"""The hub store: where the server writes.

DuckDB target: SQLite at ``$MDM_HOME/hub/hub.sqlite`` (WAL, ``synchronous=FULL``, a busy timeout:
several server processes and the pipeline share it). PostgreSQL target: schema ``hub`` in the
warehouse (the ``mdm_api`` role writes only there; ``MDM_HUB_PG_DSN`` overrides the DSN).

On both, tables are named ``hub.<table>`` and SQL uses ``?`` placeholders and portable types
(``text``, ``bigint``); times are ISO-8601 UTC text (:func:`now`), so they compare as text.

Tables are declared in :data:`STORE_TABLES` (name -> column DDL; ``primary key`` / ``unique``
allowed); another module adds its own with :func:`register_table` before :func:`ensure_store`
runs (the console's users and sessions). Every table that holds personal data or a person's
golden id must be listed in :data:`PERSONAL_TABLES` (table -> the columns naming the person), so
that :func:`erase` covers it.

Small API::

    with open_store(settings) as store:
        store.execute("insert into hub.x values (?, ?)", [a, b])
        rows = store.query("select ... from hub.x where k = ?", [k])
        with store.transaction():
            ...
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from customer_mdm.config import Settings

log = logging.getLogger(__name__)

SCHEMA = "hub"

#: the hub's tables: name -> columns (DDL fragments); extended by :func:`register_table`
STORE_TABLES: dict[str, dict[str, str]] = {
    "api_tokens": {
        "name": "text primary key",
        "token_sha256": "text not null unique",
        "scopes": "text not null",  # comma separated
        "created_at": "text not null",
        "revoked_at": "text",
    },
    # self-service changes received over HTTP, kept until a pipeline run takes them
    "self_service_changes": {
        "event_id": "text primary key",  # the client's key (idempotency)
        "golden_id": "text not null",
        "source_system": "text not null",  # the source record the change is filed against
        "source_id": "text not null",
        "field": "text not null",
        "new_value": "text",
        "submitted_at": "text not null",
        "received_at": "text not null",
        "principal": "text not null",
        "body_sha256": "text not null",  # the request body, to tell a retry from a conflicting reuse
        "status": "text not null",  # pending | exporting | taken
        "batch": "text",  # the landing file the pipeline wrote it into
        "taken_at": "text",
    },
    "erasure_requests": {
        "request_id": "text primary key",
        "identifier_type": "text not null",
        "identifier_value": "text",
        "requested_at": "text not null",
        "received_at": "text not null",
        "principal": "text not null",
        "body_sha256": "text not null",
        "status": "text not null",
        "batch": "text",
        "taken_at": "text",
    },
    # who looked at (or changed) whom: one row per call that reads or writes personal data
    "access_log": {
        "at": "text not null",
        "principal": "text not null",  # token:<name> | user:<name>
        "action": "text not null",  # e.g. read, lookup, match, change, export, erasure_request
        "golden_id": "text",  # the person concerned (NULL: a search that found nobody)
        "route": "text not null",  # the route template, never the concrete URL
        "status": "bigint not null",
    },
    # reminders handed to the messaging tool (mdm export reminders): never twice within the interval
    "reminders_sent": {
        "golden_id": "text not null",
        "channel": "text not null",
        "sent_at": "text not null",
        "export_file": "text",
    },
    # incremental runs the server started because intake waited (customer_mdm.hub.intake)
    "run_triggers": {"at": "text not null", "mode": "text not null", "ref": "text"},
}

#: table -> the columns that name a person (golden ids) or hold their personal values
PERSONAL_TABLES: dict[str, tuple[str, ...]] = {
    "self_service_changes": ("golden_id",),
    "access_log": ("golden_id",),
    "reminders_sent": ("golden_id",),
}

_INDEXES = (
    "create index if not exists {s}ix_access_log_golden on {t}access_log (golden_id)",
    "create index if not exists {s}ix_changes_status on {t}self_service_changes (status)",
    "create index if not exists {s}ix_erasure_status on {t}erasure_requests (status)",
    "create index if not exists {s}ix_reminders_golden on {t}reminders_sent (golden_id, channel)",
)


def register_table(name: str, columns: dict[str, str], person_columns: Sequence[str] = ()) -> None:
    """Declare another store table (call at import time, before :func:`ensure_store`).

    ``person_columns``: the columns that name a person (a golden id) or hold personal values:
    :func:`erase` deletes the rows whose column matches an erased golden id."""
    STORE_TABLES[name] = dict(columns)
    if person_columns:
        PERSONAL_TABLES[name] = tuple(person_columns)


def now() -> str:
    """The current UTC time as the store writes it (ISO 8601, microseconds, ``Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def store_path(settings: Settings) -> Path:
    """The SQLite file of the DuckDB target: ``$MDM_HOME/hub/hub.sqlite``."""
    return settings.home / "hub" / "hub.sqlite"


class Store:
    """One connection to the hub store (not shared between threads; cheap to open)."""

    target: str

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> int:
        """Run a statement; returns the number of rows it changed."""
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a select."""
        raise NotImplementedError

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """The first column of the first row (``None`` when there is none)."""
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction, committed (durably) when the block ends, rolled back on an exception."""
        raise NotImplementedError
        yield  # pragma: no cover

    @contextmanager
    def relaxed(self) -> Iterator[None]:
        """Statements whose commit may skip the disk flush (the access log, see
        :func:`record_access`): durable when the server process dies, not on a power loss."""
        yield

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteStore(Store):
    target = "duckdb"

    def __init__(self, path: Path) -> None:
        from customer_mdm.private_files import private_dir

        private_dir(path.parent)  # intake holds personal data: 0700, the database file 0600
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        # isolation_level=None: autocommit unless a transaction is opened explicitly
        self.con = sqlite3.connect(":memory:", timeout=30, isolation_level=None, check_same_thread=False)
        self.con.execute("attach database ? as hub", [str(path)])
        self.con.execute("pragma busy_timeout = 30000")
        self.con.execute("pragma hub.journal_mode = wal")
        self.con.execute("pragma hub.synchronous = full")  # a commit is on disk before the 202
        self.con.execute("pragma hub.secure_delete = on")  # erased rows are overwritten, not just unlinked
        self._depth = 0

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> int:
        cur = self.con.execute(sql, list(params or []))
        return cur.rowcount

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params or [])).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.con.execute("begin immediate")  # take the write lock now: no upgrade deadlock later
        self._depth = 1
        try:
            yield
        except BaseException:
            self.con.execute("rollback")
            raise
        finally:
            self._depth = 0
        self.con.execute("commit")

    @contextmanager
    def relaxed(self) -> Iterator[None]:
        if self._depth:  # inside a transaction: its commit decides
            yield
            return
        # WAL mode: a commit is in the write-ahead log (the OS has it) without an fsync
        self.con.execute("pragma hub.synchronous = normal")
        try:
            yield
        finally:
            self.con.execute("pragma hub.synchronous = full")

    def close(self) -> None:
        self.con.close()


class PostgresStore(Store):
    target = "postgres"

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.con = psycopg.connect(dsn, autocommit=True, connect_timeout=10)

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> int:
        cur = self.con.execute(self._sql(sql), list(params or []))  # type: ignore[arg-type]
        return cur.rowcount

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        cur = self.con.execute(self._sql(sql), list(params or []))  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.con.transaction():
            yield

    @contextmanager
    def relaxed(self) -> Iterator[None]:
        # asynchronous commit for this transaction only (the server flushes its WAL shortly after)
        with self.con.transaction():
            self.con.execute("set local synchronous_commit to off")
            yield

    def close(self) -> None:
        self.con.close()


def hub_dsn(settings: Settings) -> str | None:
    """The PostgreSQL DSN the server uses: ``MDM_HUB_PG_DSN`` (the mdm_api role) or the warehouse's."""
    return os.environ.get("MDM_HUB_PG_DSN") or settings.pg_dsn


def open_store(settings: Settings, dsn: str | None = None) -> Store:
    """A new connection to the hub store of ``settings`` (close it, or use ``with``).

    ``dsn`` (PostgreSQL): connect as another role than :func:`hub_dsn` gives (the pipeline)."""
    if settings.target == "postgres":
        chosen = dsn or hub_dsn(settings)
        assert chosen is not None
        return PostgresStore(chosen)
    return SqliteStore(store_path(settings))


_ENSURED: set[tuple[str, str, int]] = set()
_ENSURE_LOCK = threading.Lock()


def ensure_store(settings: Settings, dsn: str | None = None) -> None:
    """Create the store's schema and tables if missing (idempotent; cheap after the first call
    in a process). New columns of a declared table are added, none dropped."""
    import customer_mdm.console.store  # noqa: F401 - CONSOLE's hook: its tables are declared before any ensure

    where = str(store_path(settings)) if settings.target == "duckdb" else str(dsn or hub_dsn(settings))
    key = (settings.target, where, len(STORE_TABLES))
    with _ENSURE_LOCK:
        if key in _ENSURED and (settings.target == "postgres" or store_path(settings).exists()):
            return
        try:
            _create_store(settings, dsn)
        except Exception as exc:
            if type(exc).__name__ != "InsufficientPrivilege":
                raise
            from customer_mdm.errors import MdmError

            raise MdmError(
                "the hub store (schema hub) is missing and this role may not create it: run "
                "`mdm roles apply` (or one pipeline run) as mdm_pipeline first"
            ) from None
        _ENSURED.add(key)


def _create_store(settings: Settings, dsn: str | None) -> None:
    """Create the schema (PostgreSQL), the missing tables, columns and indexes."""
    with open_store(settings, dsn) as store:
        if settings.target == "postgres" and not store.scalar(
            "select count(*) from information_schema.schemata where schema_name = ?", [SCHEMA]
        ):
            store.execute(f"create schema if not exists {SCHEMA}")
        for name, columns in STORE_TABLES.items():
            existing = _columns(store, name)
            if not existing:  # (create ... if not exists needs CREATE on the schema even when it exists)
                body = ", ".join(f"{col} {ddl}" for col, ddl in columns.items())
                store.execute(f"create table if not exists {SCHEMA}.{name} ({body})")
                existing = _columns(store, name)
            for col, ddl in columns.items():
                if col not in existing:
                    plain = ddl.replace("primary key", "").replace("not null", "").replace("unique", "")
                    store.execute(f"alter table {SCHEMA}.{name} add column {col} {plain}")
        for statement in _INDEXES:
            if settings.target == "postgres":
                index = statement.split(" on ")[0].rsplit(" ", 1)[-1].format(s="")
                if store.scalar(
                    "select count(*) from pg_indexes where schemaname = ? and indexname = ?", [SCHEMA, index]
                ):
                    continue
                store.execute(statement.format(s="", t=f"{SCHEMA}."))
            else:
                store.execute(statement.format(s=f"{SCHEMA}.", t=""))


def _columns(store: Store, table: str) -> set[str]:
    if store.target == "postgres":
        rows = store.query(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
            [SCHEMA, table],
        )
        return {r[0] for r in rows}
    return {r[1] for r in store.query(f"pragma {SCHEMA}.table_info({table})")}


def record_access(
    store: Store, principal: str, action: str, route: str, status: int, golden_ids: Sequence[str | None] = (None,)
) -> None:
    """Append to ``hub.access_log``: who (``token:<name>``) read or wrote whose data, by which route.

    The row is committed before the answer leaves, without waiting for the disk flush
    (``MDM_HUB_ACCESS_LOG_SYNC=normal``, the default: SQLite ``synchronous=NORMAL`` in WAL mode,
    PostgreSQL ``synchronous_commit=off``): it survives a killed server, but a power loss may
    lose the last rows (a flush per read would cost more than the read; docs/hub.md).
    ``MDM_HUB_ACCESS_LOG_SYNC=full`` flushes every row like the intake writes."""
    at = now()
    ids = list(golden_ids or (None,))
    relaxed = (os.environ.get("MDM_HUB_ACCESS_LOG_SYNC") or "normal").strip().lower() != "full"
    with store.relaxed() if relaxed else contextlib.nullcontext():
        # one statement: one commit however many people the call concerned
        store.execute(
            f"insert into {SCHEMA}.access_log (at, principal, action, golden_id, route, status) values "
            + ", ".join("(?, ?, ?, ?, ?, ?)" for _ in ids),
            [v for gid in ids for v in (at, principal, action, gid, route, status)],
        )


def erase(settings: Settings, golden_ids: Sequence[str], identifiers: Sequence[str] = ()) -> dict[str, int]:
    """Remove erased persons from the hub store (customer_mdm.privacy's erasure).

    Deletes every row of :data:`PERSONAL_TABLES` naming one of ``golden_ids``; erasure requests
    received over HTTP keep their row (the proof the request was handled) but lose the
    identifier value once taken by a run; ``identifiers`` (the erased mobile / e-mail / ids)
    also blank any not-yet-taken self-service change whose new value is one of them.
    Returns rows changed per table. Does nothing when the store does not exist yet."""
    ids = sorted({str(g) for g in golden_ids if g})
    changed: dict[str, int] = {}
    if settings.target == "duckdb" and not store_path(settings).exists():
        return changed
    ensure_store(settings)
    with open_store(settings) as store, store.transaction():
        if ids:
            marks = ", ".join("?" for _ in ids)
            for table, columns in PERSONAL_TABLES.items():
                where = " or ".join(f"{c} in ({marks})" for c in columns)
                changed[table] = store.execute(
                    f"delete from {SCHEMA}.{table} where {where}", [i for _ in columns for i in ids]
                )
        changed["erasure_requests"] = store.execute(
            f"update {SCHEMA}.erasure_requests set identifier_value = null "
            "where status = 'taken' and identifier_value is not null"
        )
        values = sorted({str(v) for v in identifiers if v})
        if values:
            marks = ", ".join("?" for _ in values)
            changed["self_service_changes_values"] = store.execute(
                f"delete from {SCHEMA}.self_service_changes where new_value in ({marks})", values
            )
    if settings.target == "duckdb":  # the write-ahead log still holds the deleted rows' pages: empty it
        with open_store(settings) as store:
            store.query(f"pragma {SCHEMA}.wal_checkpoint(truncate)")
    return changed
