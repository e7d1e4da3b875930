"""Backup and restore of the golden customer data and the state that keeps golden ids stable.

A *snapshot* is one directory ``<UTC timestamp>_<source run id>`` under the backup directory,
holding one Parquet file per table and ``manifest.json``:

``format_version``     this module's snapshot format (:data:`FORMAT_VERSION`)
``platform_version``   the ``customer-mdm`` package version that wrote it
``warehouse``          target (duckdb | postgres) and location (password redacted)
``source_run_id``      the last run that published the golden tables before the snapshot
``tables``             per table: file, rows, bytes, sha256 of the file, relation kind and the
                       columns with their portable types (text, bigint, timestamp, numeric(p,s) ...)
``absent``             optional tables that did not exist in the warehouse
``artifacts``          the linkage model files (``$MDM_HOME/models/linkage/*.json``), with sha256

What is saved (:func:`snapshot_tables`): the published golden tables (``marts.dim_customer``,
``marts.customer_xref``), every ``mdm.*`` linkage table (record state, pairs, xref, golden id
registry and history, review queue, steward decisions, dirty ids, link runs: what the next run
needs to keep golden ids stable) and, when they exist, ``audit.golden_changes`` and
``ops.erasure_tombstones``. Every table is read in ONE read transaction (DuckDB: a transaction,
PostgreSQL: ``repeatable read, read only``), so the snapshot is consistent even while other
sessions write.

The snapshot is written to ``<dir>/.partial-<name>`` and renamed when complete: a crash never
leaves something that looks like a snapshot. A second copy (``MDM_BACKUP_COPY_DIR``) is copied
the same way and verified file by file against the manifest's checksums. After each backup only
the newest ``MDM_BACKUP_KEEP`` snapshots (default 14) are kept in each location.

:func:`restore` verifies every checksum first (a corrupt or incomplete snapshot is refused with
:class:`BackupCorrupt`, and nothing is changed), refuses to overwrite tables that hold rows
unless ``force``, then writes every table in ONE transaction into the configured warehouse
(existing tables keep their views and grants: rows are replaced, missing columns added). The
append-only logs (:data:`MERGED_TABLES`: ``audit.golden_changes``, ``ops.erasure_tombstones``)
are merged instead: rows written after the snapshot stay.
Finally, when the privacy module provides ``customer_mdm.privacy.apply_tombstones(settings)``,
it is called: erasures recorded after the snapshot was taken must not come back with it.

Environment: ``MDM_BACKUP_DIR`` (default ``$MDM_HOME/backups``), ``MDM_BACKUP_COPY_DIR`` (second
location; none by default), ``MDM_BACKUP_KEEP`` (default 14).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from customer_mdm.config import Settings
from customer_mdm.errors import ConfigError, MdmError
from customer_mdm.warehouse import Warehouse, connect

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DEFAULT_KEEP = 14
PARTIAL_PREFIX = ".partial-"

#: The published golden tables: a snapshot without them is refused (nothing was published yet).
GOLDEN_TABLES = ("marts.dim_customer", "marts.customer_xref")
#: Tables other parts of the platform may or may not have created (privacy / audit).
OPTIONAL_TABLES = ("audit.golden_changes", "ops.erasure_tombstones")
#: Append-only logs: a restore adds the snapshot's rows they lack and never drops newer ones (an
#: erasure tombstone or audit entry written after the snapshot must survive the restore).
MERGED_TABLES = OPTIONAL_TABLES


class BackupError(MdmError):
    """A backup cannot be written."""


class BackupCorrupt(MdmError):
    """A snapshot is incomplete or its files do not match the manifest's checksums."""


class RestoreRefused(MdmError):
    """A restore would overwrite data (without ``force``) or cannot be done."""


def snapshot_tables() -> tuple[str, ...]:
    """Every table a snapshot holds when present: golden tables, the ``mdm.*`` linkage state
    (``customer_mdm.linkage.step.TABLES``: steward decisions and golden id history included),
    then the optional privacy/audit tables."""
    from customer_mdm.linkage.step import TABLES

    return (*GOLDEN_TABLES, *TABLES, *OPTIONAL_TABLES)


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class BackupConfig:
    dest: Path
    copy_dir: Path | None = None
    keep: int = DEFAULT_KEEP

    @classmethod
    def from_env(cls, settings: Settings, env: Mapping[str, str] | None = None) -> BackupConfig:
        env = os.environ if env is None else env
        dest = Path(env.get("MDM_BACKUP_DIR") or settings.home / "backups").expanduser().resolve()
        copy = env.get("MDM_BACKUP_COPY_DIR")
        raw_keep = env.get("MDM_BACKUP_KEEP") or str(DEFAULT_KEEP)
        try:
            keep = int(raw_keep)
        except ValueError:
            keep = 0
        if keep < 1:
            raise ConfigError(f"MDM_BACKUP_KEEP must be a whole number >= 1, not {raw_keep!r}")
        return cls(dest=dest, copy_dir=Path(copy).expanduser().resolve() if copy else None, keep=keep)


# ----------------------------------------------------------------------------- portable types
_DECIMAL = re.compile(r"^(?:decimal|numeric)\s*\((\d+)\s*,\s*(\d+)\)$", re.I)

_PORTABLE = {
    "varchar": "text",
    "text": "text",
    "character varying": "text",
    "character": "text",
    "bigint": "bigint",
    "integer": "integer",
    "int": "integer",
    "smallint": "smallint",
    "double": "double precision",
    "double precision": "double precision",
    "float": "real",
    "real": "real",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "timestamptz": "timestamptz",
    "hugeint": "numeric(38,0)",
}


def portable_type(data_type: str, precision: Any = None, scale: Any = None) -> str:
    """A column type both warehouses understand, from information_schema's ``data_type``.
    Types without an equivalent (lists, JSON, intervals) are kept as text."""
    name = data_type.strip().lower()
    decimal = _DECIMAL.match(name)
    if decimal:
        return f"numeric({decimal.group(1)},{decimal.group(2)})"
    if name == "numeric":  # PostgreSQL: precision and scale come in their own columns
        return f"numeric({precision},{scale})" if precision is not None and scale is not None else "numeric"
    return _PORTABLE.get(name, "text")


def _arrow_type(portable: str) -> pa.DataType:
    import pyarrow as pa

    decimal = _DECIMAL.match(portable)
    if decimal:
        return pa.decimal128(int(decimal.group(1)), int(decimal.group(2)))
    return {
        "text": pa.string(),
        "bigint": pa.int64(),
        "integer": pa.int32(),
        "smallint": pa.int16(),
        "double precision": pa.float64(),
        "real": pa.float32(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us"),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "numeric": pa.string(),  # unconstrained numeric: exact digits as text
    }[portable]


def _ddl_type(portable: str, target: str) -> str:
    if portable == "numeric" and target == "duckdb":
        return "decimal(38,10)"
    return portable


# ----------------------------------------------------------------------------- reading
def _relation_kind(wh: Warehouse, table: str) -> str | None:
    schema, name = table.split(".")
    rows = wh.query(
        "select table_type from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
    )
    if not rows:
        return None
    return "view" if "VIEW" in str(rows[0][0]).upper() else "table"


def _columns(wh: Warehouse, table: str) -> list[dict[str, str]]:
    schema, name = table.split(".")
    rows = wh.query(
        "select column_name, data_type, numeric_precision, numeric_scale from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, name],
    )
    return [{"name": str(c), "type": portable_type(str(t), p, s)} for c, t, p, s in rows]


def _select(table: str, columns: list[dict[str, str]]) -> str:
    exprs = []
    for col in columns:
        quoted = f'"{col["name"]}"'
        if col["type"] in ("text", "numeric"):  # unknown types are kept as their text form
            exprs.append(f"cast({quoted} as text) as {quoted}")
        else:
            exprs.append(quoted)
    return f"select {', '.join(exprs)} from {table}"


def _read_table(wh: Warehouse, table: str, columns: list[dict[str, str]]) -> pa.Table:
    import pyarrow as pa

    schema = pa.schema([(c["name"], _arrow_type(c["type"])) for c in columns])
    sql = _select(table, columns)
    if wh.target == "duckdb":
        return wh.con.sql(sql).to_arrow_table().cast(schema)  # type: ignore[attr-defined]
    batches = []
    with wh.con.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(sql)
        while rows := cur.fetchmany(50_000):
            arrays = [pa.array([r[i] for r in rows], type=schema.field(i).type) for i in range(len(columns))]
            batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
    return pa.Table.from_batches(batches, schema=schema)


@contextmanager
def _snapshot_read(wh: Warehouse) -> Iterator[None]:
    """One consistent read transaction over every table."""
    if wh.target == "duckdb":
        wh.execute("begin transaction")
        try:
            yield
        finally:
            wh.execute("rollback")
        return
    with wh.con.transaction():  # type: ignore[attr-defined]
        wh.execute("set transaction isolation level repeatable read, read only")
        yield


def _source_run_id(wh: Warehouse) -> str | None:
    """The last run that published the golden tables."""
    if wh.table_exists("ops.publications"):
        rows = wh.query(
            "select run_id from ops.publications where status = 'published' and run_id is not null "
            "order by published_at desc limit 1"
        )
        if rows:
            return str(rows[0][0])
    if wh.table_exists("ops.run_steps"):
        rows = wh.query(
            "select run_id from ops.run_steps where step = 'publish' and status = 'success' "
            "order by finished_at desc limit 1"
        )
        if rows:
            return str(rows[0][0])
    return None


def _location(settings: Settings) -> str:
    if settings.target == "duckdb":
        return str(settings.warehouse_file)
    from customer_mdm.warehouse import _redact

    return _redact(settings.pg_dsn or "")


def _platform_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("customer-mdm")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
        return "unknown"


# ----------------------------------------------------------------------------- files
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _file_name(table: str) -> str:
    return f"{table}.parquet"


def _model_files(settings: Settings) -> list[Path]:
    from customer_mdm.linkage.training import model_dir

    directory = model_dir(settings)
    return sorted(p for p in directory.glob("*.json") if p.is_file()) if directory.is_dir() else []


def _unique_dir(parent: Path, name: str) -> str:
    candidate, n = name, 1
    while (parent / candidate).exists() or (parent / f"{PARTIAL_PREFIX}{candidate}").exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def _clear_stale_partials(parent: Path, older_than: timedelta = timedelta(hours=6)) -> None:
    """Remove what crashed backups left (``.partial-*``), when old enough not to be a running one."""
    limit = time.time() - older_than.total_seconds()
    for path in parent.glob(f"{PARTIAL_PREFIX}*"):
        if path.is_dir() and path.stat().st_mtime < limit:
            shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------------- backup
@dataclass
class Snapshot:
    path: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def created_at(self) -> str:
        return str(self.manifest.get("created_at", ""))

    @property
    def rows(self) -> int:
        return sum(int(t["rows"]) for t in self.manifest.get("tables", {}).values())

    @property
    def bytes(self) -> int:
        return sum(int(t["bytes"]) for t in self.manifest.get("tables", {}).values())


def backup(
    settings: Settings,
    dest: Path | None = None,
    *,
    copy_dir: Path | None = None,
    keep: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Write a snapshot of the golden tables and the linkage state; return its directory.

    ``dest``, ``copy_dir`` and ``keep`` default to ``MDM_BACKUP_DIR`` (``$MDM_HOME/backups``),
    ``MDM_BACKUP_COPY_DIR`` (none) and ``MDM_BACKUP_KEEP`` (14), read from ``env``.
    """
    import pyarrow.parquet as pq

    config = BackupConfig.from_env(settings, env)
    dest = (dest or config.dest).expanduser().resolve()
    copy_dir = copy_dir if copy_dir is not None else config.copy_dir
    keep = keep if keep is not None else config.keep
    dest.mkdir(parents=True, exist_ok=True)
    _clear_stale_partials(dest)
    started = time.perf_counter()
    created = datetime.now(UTC)

    with connect(settings) as wh, _snapshot_read(wh):
        missing = [t for t in GOLDEN_TABLES if _relation_kind(wh, t) is None]
        if missing:
            raise BackupError(
                f"nothing to back up: {', '.join(missing)} does not exist in the {settings.target} warehouse "
                "(no golden tables published yet: run the pipeline first, `mdm run`)"
            )
        run_id = _source_run_id(wh)
        name = _unique_dir(dest, f"{created.strftime('%Y%m%dT%H%M%SZ')}_{run_id or 'no_run'}")
        partial = dest / f"{PARTIAL_PREFIX}{name}"
        partial.mkdir()
        tables: dict[str, Any] = {}
        absent: list[str] = []
        try:
            for table in snapshot_tables():
                kind = _relation_kind(wh, table)
                if kind is None:
                    absent.append(table)
                    continue
                columns = _columns(wh, table)
                data = _read_table(wh, table, columns)
                path = partial / _file_name(table)
                pq.write_table(data, path, compression="zstd")
                tables[table] = {
                    "file": path.name,
                    "rows": data.num_rows,
                    "bytes": path.stat().st_size,
                    "sha256": sha256_file(path),
                    "kind": kind,
                    "columns": columns,
                }
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise

    artifacts = {}
    models = partial / "models"
    for source in _model_files(settings):
        models.mkdir(exist_ok=True)
        shutil.copy2(source, models / source.name)
        artifacts[f"models/{source.name}"] = {
            "restore_to": "models/linkage",
            "bytes": source.stat().st_size,
            "sha256": sha256_file(models / source.name),
        }
    manifest = {
        "format_version": FORMAT_VERSION,
        "platform_version": _platform_version(),
        "created_at": created.isoformat(),
        "warehouse": {"target": settings.target, "location": _location(settings)},
        "source_run_id": run_id,
        "tables": tables,
        "absent": absent,
        "artifacts": artifacts,
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    _fsync_dir(partial)
    final = dest / name
    partial.rename(final)
    log.info(
        "backup %s: %d tables, %d rows in %.1fs%s",
        final,
        len(tables),
        sum(t["rows"] for t in tables.values()),
        time.perf_counter() - started,
        f" (absent: {', '.join(absent)})" if absent else "",
    )
    if copy_dir is not None:
        copy_snapshot(final, copy_dir)
        prune(copy_dir, keep)
    prune(dest, keep)
    return final


def _fsync_dir(path: Path) -> None:
    for item in path.rglob("*"):
        if item.is_file():
            with item.open("rb") as fh:
                os.fsync(fh.fileno())


def copy_snapshot(snapshot: Path, copy_dir: Path) -> Path:
    """Copy a snapshot to a second location and verify every file there against the manifest."""
    copy_dir = copy_dir.expanduser().resolve()
    copy_dir.mkdir(parents=True, exist_ok=True)
    _clear_stale_partials(copy_dir)
    target = copy_dir / snapshot.name
    if target.exists():
        raise BackupError(f"the copy location already holds {target}; refusing to overwrite it")
    partial = copy_dir / f"{PARTIAL_PREFIX}{snapshot.name}"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(snapshot, partial)
    try:
        verify(partial)
    except BackupCorrupt as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise BackupError(f"the copy of {snapshot.name} in {copy_dir} does not verify: {exc}") from exc
    _fsync_dir(partial)
    partial.rename(target)
    log.info("backup copy %s verified", target)
    return target


# ----------------------------------------------------------------------------- listing, retention
def _read_manifest(snapshot: Path) -> dict[str, Any]:
    path = snapshot / MANIFEST
    if not path.is_file():
        raise BackupCorrupt(f"{snapshot} is not a snapshot: {MANIFEST} is missing")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BackupCorrupt(f"{path} cannot be read: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("tables"), dict):
        raise BackupCorrupt(f"{path} is not a snapshot manifest (no tables)")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BackupCorrupt(
            f"{snapshot.name} has snapshot format {version!r}; this platform reads format {FORMAT_VERSION}"
        )
    return manifest


def list_snapshots(directory: Path) -> list[Snapshot]:
    """The snapshots in ``directory``, oldest first (unreadable manifests are skipped with a warning)."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        if not path.is_dir() or path.name.startswith("."):
            continue
        try:
            found.append(Snapshot(path, _read_manifest(path)))
        except BackupCorrupt as exc:
            log.warning("skipping %s: %s", path, exc)
    return sorted(found, key=lambda s: (s.created_at, s.name))


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` snapshots; return the deleted directories."""
    if keep < 1:
        raise ConfigError(f"keep must be >= 1, not {keep}")
    snapshots = list_snapshots(directory)
    removed = [s.path for s in snapshots[: max(0, len(snapshots) - keep)]]
    for path in removed:
        shutil.rmtree(path)
        log.info("retention: removed snapshot %s", path)
    return removed


def verify(snapshot: Path) -> dict[str, Any]:
    """Check every file of a snapshot against the manifest; return the manifest or raise
    :class:`BackupCorrupt` naming every problem."""
    manifest = _read_manifest(snapshot)
    problems = []
    entries = {name: info for name, info in manifest["tables"].items()}
    entries.update({path: info for path, info in manifest.get("artifacts", {}).items()})
    for key, info in entries.items():
        rel = info.get("file", key) if key in manifest["tables"] else key
        path = snapshot / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        size = path.stat().st_size
        if size != info.get("bytes"):
            problems.append(f"{rel}: {size} bytes, the manifest says {info.get('bytes')}")
            continue
        digest = sha256_file(path)
        if digest != info.get("sha256"):
            problems.append(f"{rel}: sha256 {digest[:12]}..., the manifest says {str(info.get('sha256'))[:12]}...")
    if problems:
        raise BackupCorrupt(f"snapshot {snapshot} is corrupt or incomplete: " + "; ".join(problems))
    return manifest


def resolve_snapshot(settings: Settings, snapshot: Path | str, env: Mapping[str, str] | None = None) -> Path:
    """A snapshot path, or the name of one in the backup directory (or its copy location)."""
    path = Path(snapshot).expanduser()
    if path.is_dir():
        return path.resolve()
    config = BackupConfig.from_env(settings, env)
    for base in (config.dest, config.copy_dir):
        if base is not None and (base / str(snapshot)).is_dir():
            return (base / str(snapshot)).resolve()
    raise RestoreRefused(f"no snapshot {snapshot}: not a directory, nor a snapshot name in {config.dest}")


# ----------------------------------------------------------------------------- restore
@dataclass
class RestoreResult:
    snapshot: Path
    tables: dict[str, int] = field(default_factory=dict)
    replaced: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    tombstones: Any = None  # what privacy.apply_tombstones returned; None when it is not available
    tombstones_applied: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": str(self.snapshot),
            "tables": self.tables,
            "replaced": self.replaced,
            "artifacts": self.artifacts,
            "tombstones_applied": self.tombstones_applied,
            "tombstones": self.tombstones,
            "seconds": self.seconds,
        }


def _row_count(wh: Warehouse, table: str) -> int:
    return int(wh.scalar(f"select count(*) from {table}") or 0)


def _write_table(wh: Warehouse, table: str, columns: list[dict[str, str]], data: pa.Table, merge: bool = False) -> None:
    """Replace ``table``'s rows with the snapshot's (creating it when missing); with ``merge`` add
    only the snapshot rows it does not hold (append-only logs: newer rows are kept)."""
    schema = table.split(".")[0]
    wh.execute(f"create schema if not exists {schema}")
    kind = _relation_kind(wh, table)
    if kind == "view":
        raise RestoreRefused(f"{table} is a view in the target warehouse; drop it or restore elsewhere")
    if kind is None:
        _create(wh, table, columns)
        _insert(wh, table, columns, data)
        return
    existing = set(wh.columns_of(table))  # keep the table (its views, grants, indexes)
    for c in columns:
        if c["name"] not in existing:
            wh.execute(f'alter table {table} add column "{c["name"]}" {_ddl_type(c["type"], wh.target)}')
    if not merge:
        wh.execute(f"delete from {table}")
        _insert(wh, table, columns, data)
        return
    staging = f"{schema}._mdm_restore_{table.split('.')[1]}"
    wh.execute(f"drop table if exists {staging}")
    _create(wh, staging, columns)
    _insert(wh, staging, columns, data)
    names = ", ".join(f'"{c["name"]}"' for c in columns)
    wh.execute(f"insert into {table} ({names}) select {names} from {staging} except select {names} from {table}")
    wh.execute(f"drop table {staging}")


def _create(wh: Warehouse, table: str, columns: list[dict[str, str]]) -> None:
    body = ", ".join(f'"{c["name"]}" {_ddl_type(c["type"], wh.target)}' for c in columns)
    wh.execute(f"create table {table} ({body})")


def _insert(wh: Warehouse, table: str, columns: list[dict[str, str]], data: pa.Table) -> None:
    if data.num_rows == 0:
        return
    names = ", ".join(f'"{c["name"]}"' for c in columns)
    if wh.target == "duckdb":
        casts = ", ".join(f'cast("{c["name"]}" as {_ddl_type(c["type"], "duckdb")})' for c in columns)
        con = wh.con  # type: ignore[attr-defined]
        con.register("_mdm_restore", data)
        try:
            con.execute(f"insert into {table} ({names}) select {casts} from _mdm_restore")
        finally:
            con.unregister("_mdm_restore")
        return
    with wh.con.cursor() as cur, cur.copy(f"copy {table} ({names}) from stdin") as copy:  # type: ignore[attr-defined]
        for batch in data.to_batches(max_chunksize=50_000):
            cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            for row in zip(*cols, strict=True):
                copy.write_row(row)


def apply_tombstones_if_available(settings: Settings) -> tuple[bool, Any]:
    """Call ``customer_mdm.privacy.apply_tombstones(settings)`` when the privacy module provides
    it (erasures done after a snapshot must be re-applied to its restored rows)."""
    try:
        from customer_mdm import privacy  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        log.info("no customer_mdm.privacy module: no erasure tombstones to re-apply")
        return False, None
    apply = getattr(privacy, "apply_tombstones", None)
    if apply is None:
        log.info("customer_mdm.privacy has no apply_tombstones: no erasure tombstones re-applied")
        return False, None
    return True, apply(settings)


def restore(
    settings: Settings, snapshot: Path | str, *, force: bool = False, env: Mapping[str, str] | None = None
) -> RestoreResult:
    """Restore a snapshot into the configured warehouse (see the module docstring)."""
    import pyarrow.parquet as pq

    started = time.perf_counter()
    path = resolve_snapshot(settings, snapshot, env)
    manifest = verify(path)  # before anything is touched
    result = RestoreResult(path)
    data = {}
    for table, info in manifest["tables"].items():
        try:
            data[table] = pq.read_table(path / info["file"])
        except Exception as exc:  # checksums matched, so the writer itself produced a bad file
            raise BackupCorrupt(f"{path / info['file']} cannot be read as Parquet: {exc}") from exc
        if data[table].num_rows != int(info["rows"]):
            raise BackupCorrupt(f"{table}: {data[table].num_rows} rows in the file, the manifest says {info['rows']}")
    settings.ensure_dirs()
    with connect(settings) as wh:
        occupied = [
            t for t in data if t not in MERGED_TABLES and _relation_kind(wh, t) == "table" and _row_count(wh, t) > 0
        ]
        if occupied and not force:
            raise RestoreRefused(
                f"the {settings.target} warehouse already holds rows in {', '.join(occupied)}; "
                "restore into an empty warehouse, or pass --force to replace them"
            )
        with wh.transaction():
            for table, info in manifest["tables"].items():
                _write_table(wh, table, info["columns"], data[table], merge=table in MERGED_TABLES)
                result.tables[table] = data[table].num_rows
    result.replaced = occupied
    result.artifacts = _restore_artifacts(settings, path, manifest, force)
    result.tombstones_applied, result.tombstones = apply_tombstones_if_available(settings)
    result.seconds = round(time.perf_counter() - started, 2)
    log.info("restored %s: %s", path, json.dumps(result.tables))
    return result


def _restore_artifacts(settings: Settings, snapshot: Path, manifest: dict[str, Any], force: bool) -> list[str]:
    """Put the linkage model files back when the target home has no model (or ``force``)."""
    from customer_mdm.linkage.model import CURRENT_FILE
    from customer_mdm.linkage.training import model_dir

    artifacts = manifest.get("artifacts", {})
    target = model_dir(settings)
    if not artifacts or ((target / CURRENT_FILE).exists() and not force):
        return []
    target.mkdir(parents=True, exist_ok=True)
    restored = []
    for rel in artifacts:
        shutil.copy2(snapshot / rel, target / Path(rel).name)
        restored.append(str(target / Path(rel).name))
    return restored
