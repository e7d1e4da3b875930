"""The read side of the hub: schema ``serving``, rebuilt at every publication.

:data:`SERVING_TABLES` names every serving table and the select (over the warehouse's marts,
``mdm``, intermediate and governance tables) that builds it, in build order (a later entry may
read an earlier ``serving.*`` table). The hub's own entries are here; MATCH adds
``customer_mdm.hub.matching.MATCH_TABLES`` and CONSOLE ``customer_mdm.console.CONSOLE_TABLES``,
merged by :func:`serving_tables`.

Rule for contributors: every serving table that holds personal data carries a ``golden_id``
column (golden ids of people may also sit in ``other_golden_id`` / ``merged_into``):
:func:`scrub` removes an erased person by those columns.

:func:`refresh` (called by the pipeline's publish step and after the governance models):

* PostgreSQL: the tables are built in schema ``serving_build``, granted to ``mdm_api`` and
  swapped for ``serving`` in one transaction; the server reads ``serving.*`` live.
* DuckDB: the tables are built in schema ``serving`` of the warehouse, then copied into a new,
  immutable file ``$MDM_HOME/serving/<run_id>-<n>.duckdb`` (and dropped from the warehouse); the pointer file
  ``$MDM_HOME/serving/CURRENT`` is then replaced atomically (temp file + ``os.replace``). Only the
  current and the previous snapshot are kept. The server never opens the warehouse file.

:class:`ServingReader` (one per server process) opens the current snapshot read-only and
switches to a new one when the pointer changes, without a restart.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from customer_mdm.config import Settings

log = logging.getLogger(__name__)

SCHEMA = "serving"
BUILD_SCHEMA = "serving_build"
POINTER = "CURRENT"
#: columns by which :func:`scrub` finds an erased person's rows in any serving table
PERSON_ID_COLUMNS = ("golden_id", "other_golden_id", "merged_into")

#: the hub's own serving tables: name -> select over the warehouse (build order)
SERVING_TABLES: dict[str, str] = {
    "golden_customer": "select * from marts.dim_customer",
    "customer_xref": (
        "select record_id, source, source_id, golden_id, match_probability, assignment, assigned_at_utc from mdm.xref"
    ),
    "golden_registry": "select golden_id, status, merged_into from mdm.golden_registry",
    "golden_id_history": "select * from mdm.golden_id_history",
    "source_records": (
        "select x.golden_id, r.* from intermediate.int_customer_records as r "
        "inner join mdm.xref as x on x.source = r.source and x.source_id = r.source_id"
    ),
    "orders": (
        "select x.golden_id, o.* from marts.fct_orders as o "
        "inner join mdm.xref as x on x.source = 'ecommerce' and x.source_id = o.member_id"
    ),
    "self_service_changes": (
        "select x.golden_id, c.* from intermediate.int_self_service_changes as c "
        "inner join mdm.xref as x on x.source = c.source_system and x.source_id = c.source_record_id"
    ),
    "survivorship_rules": "select * from reference.ref_survivorship_rules",
    "field_freshness": "select * from governance.governance_field_freshness",
}

#: tables a refresh may find missing (built by a later step, e.g. governance after publish):
#: they are created empty-less (skipped) and the reader treats them as holding no rows
OPTIONAL_TABLES = {"field_freshness", "orders", "self_service_changes", "match_tombstones"}


#: indexes of the serving tables (point reads of the API and the console: a golden id, a record
#: id, a phone or e-mail), created after a build on both targets and in every DuckDB snapshot
SERVING_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "golden_customer": (("golden_id",), ("phone",), ("email",)),
    "customer_xref": (("golden_id",), ("source", "source_id"), ("record_id",)),
    "golden_registry": (("golden_id",), ("merged_into",)),
    "source_records": (("golden_id",), ("phone_e164",), ("email",)),
    "golden_id_history": (("golden_id",), ("other_golden_id",)),
    "orders": (("golden_id",),),
    "self_service_changes": (("golden_id",),),
    "field_freshness": (("golden_id",),),
}


def create_indexes(
    execute: Callable[[str], Any], schema: str, tables: Sequence[str], columns: Callable[[str], Sequence[str]]
) -> int:
    """``create index`` for :data:`SERVING_INDEXES` on the tables of ``schema`` (``schema`` may be
    ``catalog.schema``) that exist and have the columns (``columns(table)``); returns how many
    were created."""
    made = 0
    for table, keys in SERVING_INDEXES.items():
        if table not in tables:
            continue
        present = set(columns(table))
        for cols in keys:
            if not set(cols) <= present:
                continue
            name = f"ix_{table}_{'_'.join(cols)}"
            execute(f"create index {name} on {schema}.{_ident(table)} ({', '.join(_ident(c) for c in cols)})")
            made += 1
    return made


def _console_indexes(execute: Callable[[str], Any], schema: str, tables: Sequence[str]) -> None:
    """PostgreSQL: CONSOLE's ``CONSOLE_INDEXES`` (on DuckDB those tables are read through zone
    maps: they are written in golden-id or key order)."""
    try:
        from customer_mdm.console import CONSOLE_INDEXES  # type: ignore[attr-defined]
    except ImportError:
        return
    for table, keys in CONSOLE_INDEXES.items():
        if table in tables:
            for cols in keys:
                name = f"ix_{table}_{'_'.join(cols)}"
                execute(f"create index {name} on {schema}.{_ident(table)} ({', '.join(_ident(c) for c in cols)})")


def serving_tables() -> dict[str, str]:
    """Every serving table: the hub's, MATCH's ``MATCH_TABLES`` and CONSOLE's ``CONSOLE_TABLES``."""
    tables = dict(SERVING_TABLES)
    try:
        from customer_mdm.hub.matching import MATCH_TABLES  # type: ignore[attr-defined]

        tables.update(MATCH_TABLES)
    except ImportError:
        pass
    try:
        from customer_mdm.console import CONSOLE_TABLES  # type: ignore[attr-defined]

        tables.update(CONSOLE_TABLES)
    except ImportError:
        pass
    return tables


def serving_dir(settings: Settings) -> Path:
    """Where the DuckDB serving snapshots and their pointer live: ``$MDM_HOME/serving``."""
    return settings.home / "serving"


def _ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a safe serving table name: {name!r}")
    return name


# ----------------------------------------------------------------------------- refresh (writer side)
def refresh(settings: Settings, run_id: str) -> dict[str, Any]:
    """Rebuild the serving tables from the published warehouse and make them current.

    Called by the publish step (and after the governance models). Returns a summary: the
    tables built with their row counts, the snapshot file (DuckDB) and the tables skipped
    because their source is not built yet.

    PostgreSQL: built in ``serving_build``, indexed, then swapped for ``serving`` in one
    transaction. DuckDB: written straight into a new snapshot file attached to the warehouse
    connection (one write of every row, no copy of personal data left in the warehouse), indexed,
    closed, then made current by the pointer swap."""
    from customer_mdm.warehouse import connect

    tables = serving_tables()
    published_at = datetime.now(UTC).replace(tzinfo=None)
    with connect(settings) as wh:
        if settings.target == "postgres":
            wh.execute(f"drop schema if exists {BUILD_SCHEMA} cascade")
            wh.execute(f"create schema {BUILD_SCHEMA}")
            built, skipped = _build(settings, wh, BUILD_SCHEMA, tables, run_id, published_at)
            create_indexes(wh.execute, BUILD_SCHEMA, list(built), lambda t: _columns(wh, BUILD_SCHEMA, t))
            _console_indexes(wh.execute, BUILD_SCHEMA, list(built))
            _swap_postgres(wh)
            return {"tables": built, "skipped": skipped, "schema": SCHEMA}
        wh.execute(f"drop schema if exists {SCHEMA} cascade")  # a build of an older layout, if any
        built, skipped = {}, []

        def fill(target: str) -> list[str]:
            nonlocal built, skipped
            built, skipped = _build(settings, wh, target, tables, run_id, published_at)
            return [*built, "meta"]

        path = _into_snapshot(settings, wh, run_id, fill)
    _point_to(settings, path)
    return {"tables": built, "skipped": skipped, "snapshot": str(path)}


#: the catalog name of the snapshot file being written (DuckDB)
_SNAPSHOT_CATALOG = "mdm_snapshot"


def _build(
    settings: Settings, wh: Any, target: str, tables: dict[str, str], run_id: str, published_at: datetime
) -> tuple[dict[str, int], list[str]]:
    """Create every serving table (and ``meta``) in ``target`` (a schema, or ``catalog.schema``);
    a select that reads another serving table reads it from ``target``."""
    built: dict[str, int] = {}
    skipped: list[str] = []
    if "match_records" in tables:  # the records' contact evidence, as the link step reads it
        from customer_mdm.linkage.records import prepare_evidence

        prepare_evidence(wh)
    for name, select in tables.items():
        sql = select.replace(f"{SCHEMA}.", f"{target}.") if target != SCHEMA else select
        try:
            wh.execute(f"create table {target}.{_ident(name)} as {sql}")
        except Exception as exc:
            if name in OPTIONAL_TABLES:
                # the source is built by a later step (governance): the reader answers without it
                log.info("serving table %s skipped: its source is not built yet (%s)", name, type(exc).__name__)
                skipped.append(name)
                continue
            raise
        built[name] = int(wh.scalar(f"select count(*) from {target}.{name}") or 0)
    wh.execute(
        f"create table {target}.meta (run_id text, published_at timestamp, golden_customers bigint, "
        "erased_at timestamp)"
    )
    wh.execute(
        f"insert into {target}.meta values (?, ?, ?, null)",
        [run_id, published_at, built.get("golden_customer", 0)],
    )
    return built, skipped


def _swap_postgres(wh: Any) -> None:
    from customer_mdm.security import API_ROLE

    role_exists = bool(wh.scalar("select count(*) from pg_roles where rolname = ?", [API_ROLE]))
    with wh.transaction():
        if role_exists:
            wh.execute(f"grant usage on schema {BUILD_SCHEMA} to {API_ROLE}")
            wh.execute(f"grant select on all tables in schema {BUILD_SCHEMA} to {API_ROLE}")
        wh.execute(f"drop schema if exists {SCHEMA} cascade")
        wh.execute(f"alter schema {BUILD_SCHEMA} rename to {SCHEMA}")


def _snapshot_path(settings: Settings, run_id: str) -> tuple[Path, Path]:
    """A new snapshot's final path and the path it is written at (0700 folder: personal data)."""
    from customer_mdm.private_files import private_dir

    folder = private_dir(serving_dir(settings))
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
    path = folder / f"{stem}-{time.time_ns()}.duckdb"
    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    return path, tmp


def _into_snapshot(settings: Settings, wh: Any, run_id: str, fill: Callable[[str], list[str]]) -> Path:
    """A new snapshot file: attached to the warehouse connection, ``fill(schema)`` creates its
    tables in ``schema`` (``catalog.serving``) and returns the names to index; then indexed,
    detached, made private (0600) and moved to its final name, which is returned."""
    path, tmp = _snapshot_path(settings, run_id)
    wh.execute(f"attach '{tmp}' as {_SNAPSHOT_CATALOG}")
    try:
        target = f"{_SNAPSHOT_CATALOG}.{SCHEMA}"
        wh.execute(f"create schema {target}")
        names = fill(target)
        create_indexes(wh.execute, target, names, lambda t: _columns(wh, SCHEMA, t, catalog=_SNAPSHOT_CATALOG))
    finally:
        wh.execute(f"detach {_SNAPSHOT_CATALOG}")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def _write_snapshot(settings: Settings, wh: Any, run_id: str, names: list[str]) -> Path:
    """A snapshot file holding copies of the warehouse's ``serving.<names>`` tables (serving
    tables made by hand, e.g. by a test; :func:`refresh` writes its snapshot directly)."""

    def copy(target: str) -> list[str]:
        for name in names:
            wh.execute(f"create table {target}.{_ident(name)} as select * from {SCHEMA}.{name}")
        return names

    return _into_snapshot(settings, wh, run_id, copy)


def _point_to(settings: Settings, snapshot: Path) -> None:
    """Make ``snapshot`` current (atomic pointer swap) and delete all but it and the previous one."""
    folder = serving_dir(settings)
    pointer = folder / POINTER
    previous = pointer.read_text().strip() if pointer.exists() else None
    tmp = folder / f".{POINTER}.{os.getpid()}.tmp"
    tmp.write_text(snapshot.name)
    os.replace(tmp, pointer)
    keep = {snapshot.name, previous}
    for old in folder.glob("*.duckdb"):
        if old.name not in keep:
            old.unlink(missing_ok=True)


def current_snapshot(settings: Settings) -> Path | None:
    """The DuckDB snapshot file the pointer names (``None`` before the first publication)."""
    pointer = serving_dir(settings) / POINTER
    try:
        name = pointer.read_text().strip()
    except FileNotFoundError:
        return None
    return serving_dir(settings) / name if name else None


# ----------------------------------------------------------------------------- erasure
def scrub(settings: Settings, golden_ids: Sequence[str]) -> dict[str, int]:
    """Remove erased persons from every serving table and file (customer_mdm.privacy's erasure).

    PostgreSQL: deletes their rows from ``serving.*``. DuckDB: writes a new snapshot without them
    from the current one, points at it and deletes every other snapshot file (the previous one
    held the person too). Returns rows removed per table."""
    ids = sorted({str(g) for g in golden_ids if g})
    removed: dict[str, int] = {}
    if not ids:
        return removed
    if settings.target == "postgres":
        from customer_mdm.warehouse import connect

        with connect(settings) as wh, wh.transaction():
            if not wh.scalar("select count(*) from information_schema.schemata where schema_name = ?", [SCHEMA]):
                return removed
            for table in _person_tables(wh, SCHEMA):
                removed[table] = _delete_person_rows(wh, f"{SCHEMA}.{table}", ids, _columns(wh, SCHEMA, table))
            if "erased_at" in _columns(wh, SCHEMA, "meta"):
                # a new serving version: servers drop what they derived from the old one (lookup
                # index, matcher) and rebuild it without the erased persons
                wh.execute(f"update {SCHEMA}.meta set erased_at = ?", [datetime.now(UTC).replace(tzinfo=None)])
        return removed
    import duckdb

    current = current_snapshot(settings)
    if current is None or not current.exists():
        return removed
    folder = serving_dir(settings)
    path = folder / f"{current.stem.rsplit('-', 1)[0]}-{time.time_ns()}.duckdb"
    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        con.execute(f"attach '{current}' as old_snapshot (read_only)")
        names = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_catalog = 'old_snapshot' "
                "and table_schema = ?",
                [SCHEMA],
            ).fetchall()
        ]
        con.execute(f"create schema {SCHEMA}")
        snap = _DuckCon(con)
        marks = ", ".join("?" for _ in ids)
        for name in names:
            # copy without the erased persons' rows: deleting after the copy would leave their
            # values in the file's freed blocks
            cols = [c for c in PERSON_ID_COLUMNS if c in _columns(snap, SCHEMA, name, catalog="old_snapshot")]
            source = f"old_snapshot.{SCHEMA}.{_ident(name)}"
            if not cols:
                con.execute(f"create table {SCHEMA}.{name} as select * from {source}")
                continue
            keep = " and ".join(f"({c} is null or {c} not in ({marks}))" for c in cols)
            params = [i for _ in cols for i in ids]
            before = int(snap.scalar(f"select count(*) from {source}") or 0)
            con.execute(f"create table {SCHEMA}.{name} as select * from {source} where {keep}", params)
            removed[name] = before - int(snap.scalar(f"select count(*) from {SCHEMA}.{name}") or 0)
        create_indexes(con.execute, SCHEMA, names, lambda t: _columns(snap, SCHEMA, t, catalog="old_snapshot"))
        con.execute("detach old_snapshot")
    finally:
        con.close()
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    pointer_tmp = folder / f".{POINTER}.{os.getpid()}.tmp"
    pointer_tmp.write_text(path.name)
    os.replace(pointer_tmp, folder / POINTER)
    for old in folder.glob("*.duckdb"):
        if old.name != path.name:
            old.unlink(missing_ok=True)
    return removed


class _DuckCon:
    def __init__(self, con: Any) -> None:
        self.con = con

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params) if params is not None else None).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self.con.execute(sql, list(params) if params is not None else None)


def _columns(wh: Any, schema: str, table: str, catalog: str | None = None) -> list[str]:
    sql = "select column_name from information_schema.columns where table_schema = ? and table_name = ?"
    params = [schema, table]
    if catalog:  # DuckDB: an attached file
        sql += " and table_catalog = ?"
        params.append(catalog)
    return [r[0] for r in wh.query(sql, params)]


def _person_tables(wh: Any, schema: str) -> list[str]:
    rows = wh.query(
        "select distinct table_name from information_schema.columns "
        "where table_schema = ? and column_name in (?, ?, ?)",
        [schema, *PERSON_ID_COLUMNS],
    )
    return sorted(r[0] for r in rows)


def _delete_person_rows(wh: Any, table: str, ids: list[str], columns: list[str]) -> int:
    marks = ", ".join("?" for _ in ids)
    cols = [c for c in PERSON_ID_COLUMNS if c in columns]
    where = " or ".join(f"{c} in ({marks})" for c in cols)
    params = [i for _ in cols for i in ids]
    count = int(wh.scalar(f"select count(*) from {table} where {where}", params) or 0)
    if count:
        wh.execute(f"delete from {table} where {where}", params)
    return count


# ----------------------------------------------------------------------------- reader (server side)
class ServingReader:
    """The server's read access to the serving tables (one per process, thread-safe).

    DuckDB: the current snapshot, opened read-only; every call first checks the pointer (a
    ``stat``) and switches to a newer snapshot without a restart. PostgreSQL: ``serving.*`` live,
    through ``MDM_HUB_PG_DSN`` (the ``mdm_api`` role in production) or else the warehouse DSN.

    SQL uses ``?`` placeholders on both targets and names tables ``serving.<name>``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pointer_stamp: tuple[int, int] | None = None
        self._db: Any = None  # DuckDB: the open snapshot connection
        self._version: str | None = None  # snapshot file name / PostgreSQL: meta run id
        self._cache: dict[str, tuple[str | None, Any]] = {}
        self._pg_dsn = os.environ.get("MDM_HUB_PG_DSN") or settings.pg_dsn

    # ------------------------------------------------------------------ connections
    def _duck_current(self) -> Any:
        pointer = serving_dir(self.settings) / POINTER
        try:
            st = pointer.stat()
            stamp = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp != self._pointer_stamp or self._db is None:
            with self._lock:
                if stamp != self._pointer_stamp or self._db is None:
                    self._open_duck(stamp)
        return self._db

    def _open_duck(self, stamp: tuple[int, int] | None) -> None:
        import duckdb

        path = current_snapshot(self.settings)
        if path is None:
            self._db, self._version, self._pointer_stamp = None, None, stamp
            return
        try:
            db = duckdb.connect(str(path), read_only=True)
        except (duckdb.IOException, FileNotFoundError):
            # superseded and deleted between reading the pointer and opening: read it again
            path = current_snapshot(self.settings)
            if path is None:
                return
            db = duckdb.connect(str(path), read_only=True)
        self._db, self._version, self._pointer_stamp = db, path.name, stamp  # the old one closes when unused

    def _pg(self) -> Any:
        con = getattr(self._local, "pg", None)
        if con is None or con.closed:
            import psycopg

            assert self._pg_dsn is not None
            con = psycopg.connect(self._pg_dsn, autocommit=True, connect_timeout=10)
            con.execute("set timezone to 'UTC'")
            self._local.pg = con
        return con

    @contextmanager
    def cursor(self) -> Iterator[Any]:
        """A DB-API cursor on the current serving data (DuckDB: a cursor of the current snapshot;
        PostgreSQL: this thread's connection). ``None`` on DuckDB before the first publication."""
        if self.settings.target == "postgres":
            with self._pg().cursor() as cur:
                yield cur
            return
        db = self._duck_current()
        if db is None:
            yield None
            return
        cur = db.cursor()
        try:
            yield cur
        finally:
            cur.close()

    # ------------------------------------------------------------------ queries
    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` over the current serving tables (empty before the first publication or
        when a table the query needs is not built)."""
        return self._run(sql, params)[1]

    def query_dicts(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Like :meth:`query`, each row a dict keyed by column name."""
        cols, rows = self._run(sql, params)
        return [dict(zip(cols, row, strict=True)) for row in rows]

    def _run(self, sql: str, params: Sequence[Any] | None) -> tuple[list[str], list[tuple[Any, ...]]]:
        if self.settings.target == "postgres":
            import psycopg

            text = sql.replace("%", "%%").replace("?", "%s") if params is not None else sql
            for attempt in (1, 2):
                try:
                    cur = self._pg().execute(text, params)  # type: ignore[arg-type]
                    cols = [d.name for d in cur.description or []]
                    return cols, cur.fetchall() if cur.description else []
                except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
                    if attempt == 2:  # no publication yet (or a table not built)
                        return [], []
                    time.sleep(0.05)  # a publication swapped the schema under us: once more
            return [], []
        import duckdb

        with self.cursor() as cur:
            if cur is None:
                return [], []
            try:
                cur.execute(sql, list(params) if params is not None else None)
            except duckdb.CatalogException:
                return [], []
            cols = [d[0] for d in cur.description or []]
            return cols, cur.fetchall()

    def version(self) -> str | None:
        """An identifier of the serving data now read (the snapshot / the published run id)."""
        if self.settings.target == "postgres":
            rows = self.query("select * from serving.meta")  # erased_at: an erasure scrubbed it
            return "@".join(str(v) for v in rows[0]) if rows else None
        self._duck_current()
        return self._version

    def status(self) -> dict[str, Any]:
        """``golden_version`` (run id of the published golden tables) and ``golden_customers``
        (read once per serving version)."""

        def read(reader: ServingReader) -> dict[str, Any]:
            rows = reader.query("select run_id, golden_customers from serving.meta")
            if not rows:
                return {"golden_version": None, "golden_customers": 0}
            return {"golden_version": rows[0][0], "golden_customers": int(rows[0][1] or 0)}

        if self.version() is None:
            return read(self)
        return dict(self.cached("customer_mdm.hub.serving.status", read))

    def cached(self, key: str, build: Callable[[ServingReader], Any]) -> Any:
        """An object derived from the serving data (a matcher, an index), built once per serving
        version: ``build(reader)`` runs again after a new publication, without a restart."""
        version = self.version()
        hit = self._cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == version:
                return hit[1]
            value = build(self)
            self._cache[key] = (version, value)
            return value


def publish_summary(settings: Settings) -> Mapping[str, Any]:
    """What a fresh reader sees: ``{"golden_version", "golden_customers"}`` (CLI, tests)."""
    return ServingReader(settings).status()
