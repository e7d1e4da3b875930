"""Backup and restore of the golden customer data and the state that keeps golden ids stable.

A *snapshot* is one private directory (0700) ``<UTC timestamp>_<source run id>`` under the
backup directory, holding one Parquet file per table (``<table>.parquet.enc``), the linkage model
files (``models/*.json.enc``), the erasure salt (``erasure_salt.enc``) and ``manifest.json.enc``.

**Every file is encrypted and authenticated** (AES-256-GCM, files mode 0600) under a key derived
from ``MDM_BACKUP_KEY`` / ``MDM_BACKUP_KEY_FILE`` (:mod:`customer_mdm.keys`; on a laptop a key file
created once next to the warehouse). Each file starts with ``MDMSNAP2``, the 16-digit key id and a
random nonce; the snapshot's name and the file's path are authenticated with it, so a file cannot
be altered, swapped between snapshots or renamed. A wrong key is named as such
(:class:`BackupKeyMismatch`), a modified file is :class:`BackupCorrupt`; either way nothing is
touched. No plaintext is ever written to disk. Rotation: :func:`rotate_key` (``mdm backup
--rotate-key``, docs/security.md).

The manifest holds:

``format_version``     this module's snapshot format (:data:`FORMAT_VERSION`)
``name``               the snapshot's directory name (a renamed snapshot is refused)
``key_id``             the backup key's id
``erasure_salt_fingerprint`` the fingerprint of the source warehouse's erasure salt: a restore into
                       a warehouse with another salt is refused (its tombstones would not match)
``platform_version``   the ``customer-mdm`` package version that wrote it
``warehouse``          target (duckdb | postgres) and location (password redacted)
``source_run_id``      the last run that published the golden tables before the snapshot
``tables``             per table: file, rows, bytes, sha256 of the stored file, relation kind and the
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
the newest ``MDM_BACKUP_KEEP`` snapshots (default 14) are kept in each location, by the
timestamp the platform wrote in the directory name; directories that are not snapshots written
under the current key are never deleted.

:func:`restore` trusts nothing in a snapshot it did not authenticate: the manifest is decrypted
and then validated (only the tables the platform backs up, :func:`snapshot_tables`; column names
plain identifiers; column types from the portable list; every file a plain name inside the
snapshot directory), then every checksum is verified (a corrupt or incomplete snapshot is refused with
:class:`BackupCorrupt`, and nothing is changed), refuses to overwrite tables that hold rows
unless ``force``, then writes every table in ONE transaction into the configured warehouse
(existing tables keep their views and grants: rows are replaced, missing columns added). The
append-only logs (:data:`MERGED_TABLES`: ``audit.golden_changes``, ``ops.erasure_tombstones``)
are merged instead: rows written after the snapshot stay.
Finally, when the privacy module provides ``customer_mdm.privacy.apply_tombstones(settings)``,
it is called: erasures recorded after the snapshot was taken must not come back with it.

The erasure salt travels in the snapshot (encrypted): restored into a warehouse without a salt, it
becomes that warehouse's salt (the default key file); a warehouse with another salt is refused.

Environment: ``MDM_BACKUP_DIR`` (default ``$MDM_HOME/backups``), ``MDM_BACKUP_COPY_DIR`` (second
location; none by default), ``MDM_BACKUP_KEEP`` (default 14), ``MDM_BACKUP_KEY`` /
``MDM_BACKUP_KEY_FILE`` (the key), ``MDM_BACKUP_OLD_KEY`` / ``MDM_BACKUP_OLD_KEY_FILE`` (the
previous key, for :func:`rotate_key`).
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

from customer_mdm import keys, plan, privacy
from customer_mdm.config import Settings
from customer_mdm.errors import ConfigError, MdmError
from customer_mdm.warehouse import Warehouse, connect, redact_dsn

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
MANIFEST = "manifest.json.enc"
SALT_FILE = "erasure_salt.enc"
DEFAULT_KEEP = 14
PARTIAL_PREFIX = ".partial-"
MAGIC = b"MDMSNAP2"
_KEY_ID_LEN = 16
_NONCE_LEN = 12
#: what :func:`backup` names a snapshot: ``<UTC timestamp>_<run id>[-n]``
SNAPSHOT_NAME = re.compile(r"^(\d{8}T\d{6}Z)_[A-Za-z0-9_.:+-]+$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_ARTIFACT = re.compile(r"^models/[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}\.json\.enc$")
OLD_KEY = keys.KeySpec("backup_key_old", "MDM_BACKUP_OLD_KEY", "MDM_BACKUP_OLD_KEY_FILE", b"customer-mdm/backup-key/v1")

#: The published golden tables: a snapshot without them is refused (nothing was published yet).
GOLDEN_TABLES = tuple(t.name for t in plan.TABLES if t.backed_up and t.required)
#: Append-only logs: a restore adds the snapshot's rows they lack and never drops newer ones (an
#: erasure tombstone or audit entry written after the snapshot must survive the restore).
MERGED_TABLES = tuple(t.name for t in plan.TABLES if t.backed_up and t.merged)


class BackupError(MdmError):
    """A backup cannot be written."""


class BackupCorrupt(MdmError):
    """A snapshot is incomplete or its files do not match the manifest's checksums."""


class BackupKeyMismatch(BackupCorrupt):
    """A snapshot was written under another backup key than the one configured."""


class RestoreRefused(MdmError):
    """A restore would overwrite data (without ``force``) or cannot be done."""


# ----------------------------------------------------------------------------- encryption
class Sealer:
    """AES-256-GCM under a backup key: :meth:`seal` and :meth:`open` one file of a snapshot."""

    def __init__(self, secret: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.key_id = keys.key_id(secret)
        self._aead = AESGCM(keys.backup_cipher_key(secret))

    @classmethod
    def from_env(cls, settings: Settings, env: Mapping[str, str] | None = None, *, create: bool = False) -> Sealer:
        return cls(keys.backup_secret(settings, env, create=create))

    def _header(self) -> bytes:
        return MAGIC + self.key_id.encode("ascii")

    @staticmethod
    def _aad(header: bytes, snapshot: str, rel: str) -> bytes:
        return header + b"\x1f" + snapshot.encode("utf-8") + b"\x1f" + rel.encode("utf-8")

    def seal(self, snapshot: str, rel: str, data: bytes) -> bytes:
        header = self._header()
        nonce = os.urandom(_NONCE_LEN)
        return header + nonce + self._aead.encrypt(nonce, data, self._aad(header, snapshot, rel))

    def written_with(self, blob: bytes) -> str | None:
        """The key id a sealed file names (None: not a sealed file)."""
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + _KEY_ID_LEN + _NONCE_LEN + 16:
            return None
        return blob[len(MAGIC) : len(MAGIC) + _KEY_ID_LEN].decode("ascii", "replace")

    def open(self, snapshot: str, rel: str, blob: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        written = self.written_with(blob)
        if written is None:
            raise BackupCorrupt(f"{snapshot}/{rel} is not an encrypted snapshot file (format {FORMAT_VERSION})")
        if written != self.key_id:
            raise BackupKeyMismatch(
                f"{snapshot}/{rel} was written under backup key {written}; the configured MDM_BACKUP_KEY is key "
                f"{self.key_id}. Set MDM_BACKUP_KEY (or MDM_BACKUP_KEY_FILE) to the key the snapshot was written with"
            )
        header_len = len(MAGIC) + _KEY_ID_LEN
        header, nonce, body = (
            blob[:header_len],
            blob[header_len : header_len + _NONCE_LEN],
            blob[header_len + _NONCE_LEN :],
        )
        try:
            return self._aead.decrypt(nonce, body, self._aad(header, snapshot, rel))
        except InvalidTag as exc:
            raise BackupCorrupt(
                f"{snapshot}/{rel} fails authentication: it was modified, truncated, renamed or moved from another "
                "snapshot; nothing was restored"
            ) from exc

    def read(self, snapshot: Path, rel: str) -> bytes:
        return self.open(snapshot.name, rel, _safe_path(snapshot, rel).read_bytes())

    def write(self, snapshot: Path, name: str, rel: str, data: bytes) -> Path:
        """Write ``data`` sealed to ``snapshot/rel`` (mode 0600) for the snapshot called ``name``."""
        path = snapshot / rel
        _write_private(path, self.seal(name, rel, data))
        return path


def _write_private(path: Path, data: bytes) -> None:
    from customer_mdm.private_files import write_private

    write_private(path, data)


def _safe_path(snapshot: Path, rel: str) -> Path:
    """``snapshot/rel`` when ``rel`` is a plain relative path inside the snapshot (no ``..``, not
    absolute, no symbolic link on the way); else :class:`BackupCorrupt`."""
    parts = Path(rel).parts
    if (
        not rel
        or Path(rel).is_absolute()
        or "\\" in rel
        or any(p in ("", ".", "..") or p.startswith(".") for p in parts)
        or len(parts) > 2
    ):
        raise BackupCorrupt(f"the manifest names a file outside the snapshot directory: {rel!r}")
    path = snapshot / rel
    current = snapshot
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise BackupCorrupt(f"{rel!r} in the snapshot is a symbolic link; refusing to follow it")
    return path


def snapshot_tables() -> tuple[str, ...]:
    """Every table a snapshot holds when present (``customer_mdm.plan.TABLES``, backed up): golden
    tables, the ``mdm.*`` linkage state (steward decisions and golden id history included), then
    the append-only privacy/audit logs."""
    return plan.backed_up_tables()


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


def _q(name: str) -> str:
    """A column name as a quoted SQL identifier (it was validated as a plain identifier)."""
    if not _IDENT.match(name):
        raise BackupCorrupt(f"{name!r} is not a column name the platform writes")
    return f'"{name}"'


def _select(table: str, columns: list[dict[str, str]]) -> str:
    exprs = []
    for col in columns:
        quoted = _q(col["name"])
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
    return redact_dsn(settings.pg_dsn or "")


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
    return f"{table}.parquet.enc"


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
        if path.is_dir() and not path.is_symlink() and path.stat().st_mtime < limit:
            shutil.rmtree(path, ignore_errors=True)


def _entry(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


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
    """Write an encrypted snapshot of the golden tables and the linkage state; return its directory.

    ``dest``, ``copy_dir`` and ``keep`` default to ``MDM_BACKUP_DIR`` (``$MDM_HOME/backups``),
    ``MDM_BACKUP_COPY_DIR`` (none) and ``MDM_BACKUP_KEEP`` (14), the key to ``MDM_BACKUP_KEY`` /
    ``MDM_BACKUP_KEY_FILE``, all read from ``env``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from customer_mdm.private_files import private_dir

    config = BackupConfig.from_env(settings, env)
    dest = (dest or config.dest).expanduser().resolve()
    copy_dir = copy_dir if copy_dir is not None else config.copy_dir
    keep = keep if keep is not None else config.keep
    sealer = Sealer.from_env(settings, env, create=True)
    salt = keys.erasure_salt(settings)  # checks the warehouse's salt fingerprint first
    private_dir(dest)
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
        label = re.sub(r"[^A-Za-z0-9_.:+-]", "_", run_id or "no_run")
        name = _unique_dir(dest, f"{created.strftime('%Y%m%dT%H%M%SZ')}_{label}")
        partial = dest / f"{PARTIAL_PREFIX}{name}"
        private_dir(partial)
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
                buffer = pa.BufferOutputStream()
                pq.write_table(data, buffer, compression="zstd")
                path = sealer.write(partial, name, _file_name(table), buffer.getvalue().to_pybytes())
                tables[table] = {
                    "file": path.name,
                    "rows": data.num_rows,
                    **_entry(path),
                    "kind": kind,
                    "columns": columns,
                }
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise

    artifacts = {}
    for source in _model_files(settings):
        rel = f"models/{source.name}.enc"
        path = sealer.write(partial, name, rel, source.read_bytes())
        artifacts[rel] = {"restore_to": "models/linkage", **_entry(path)}
    salt_path = sealer.write(partial, name, SALT_FILE, salt)
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "platform_version": _platform_version(),
        "created_at": created.isoformat(),
        "key_id": sealer.key_id,
        "erasure_salt_fingerprint": keys.fingerprint(keys.ERASURE_SALT, salt),
        "warehouse": {"target": settings.target, "location": _location(settings)},
        "source_run_id": run_id,
        "tables": tables,
        "absent": absent,
        "artifacts": artifacts,
        "salt": {"file": SALT_FILE, **_entry(salt_path)},
    }
    sealer.write(partial, name, MANIFEST, _manifest_bytes(manifest))
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
        copy_snapshot(final, copy_dir, sealer)
        prune(copy_dir, keep, sealer)
    prune(dest, keep, sealer)
    return final


def _manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _fsync_dir(path: Path) -> None:
    for item in path.rglob("*"):
        if item.is_file():
            with item.open("rb") as fh:
                os.fsync(fh.fileno())


def copy_snapshot(snapshot: Path, copy_dir: Path, sealer: Sealer) -> Path:
    """Copy a snapshot to a second location and verify every file there against the manifest."""
    from customer_mdm.private_files import private_dir

    copy_dir = private_dir(copy_dir.expanduser().resolve())
    _clear_stale_partials(copy_dir)
    target = copy_dir / snapshot.name
    if target.exists():
        raise BackupError(f"the copy location already holds {target}; refusing to overwrite it")
    partial = copy_dir / f"{PARTIAL_PREFIX}{snapshot.name}"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(snapshot, partial)  # modes (0700 / 0600) are copied too
    try:
        verify(partial, sealer, name=snapshot.name)
    except BackupCorrupt as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise BackupError(f"the copy of {snapshot.name} in {copy_dir} does not verify: {exc}") from exc
    _fsync_dir(partial)
    partial.rename(target)
    log.info("backup copy %s verified", target)
    return target


# ----------------------------------------------------------------------------- manifest, listing, retention
_PORTABLE_TYPES = frozenset({*_PORTABLE.values(), "numeric"})


def _valid_type(portable: Any) -> bool:
    if not isinstance(portable, str):
        return False
    decimal = _DECIMAL.match(portable)
    if decimal:
        return 0 < int(decimal.group(1)) <= 1000 and int(decimal.group(2)) <= int(decimal.group(1))
    return portable in _PORTABLE_TYPES


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_sha(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def _validate_manifest(manifest: Any, name: str) -> dict[str, Any]:
    """The manifest when everything in it is something this platform writes; else BackupCorrupt.
    Nothing from it reaches SQL or a file path before this check."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("tables"), dict):
        raise BackupCorrupt(f"{name} has no snapshot manifest (no tables)")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BackupCorrupt(f"{name} has snapshot format {version!r}; this platform reads format {FORMAT_VERSION}")
    problems: list[str] = []
    if manifest.get("name") != name:
        problems.append(f"it names the snapshot {manifest.get('name')!r}, the directory is {name!r}")
    allowed = set(snapshot_tables())
    for table, info in manifest["tables"].items():
        if table not in allowed:
            problems.append(f"table {table!r} is not one the platform backs up")
            continue
        if not isinstance(info, dict) or info.get("file") != _file_name(table):
            problems.append(f"{table}: the file must be {_file_name(table)}")
            continue
        if info.get("kind") not in ("table", "view"):
            problems.append(f"{table}: relation kind {info.get('kind')!r}")
        if not (_is_count(info.get("rows")) and _is_count(info.get("bytes")) and _is_sha(info.get("sha256"))):
            problems.append(f"{table}: rows, bytes or sha256 missing or malformed")
        columns = info.get("columns")
        if not isinstance(columns, list) or not columns:
            problems.append(f"{table}: no columns")
            continue
        for col in columns:
            if not isinstance(col, dict) or not isinstance(col.get("name"), str) or not _IDENT.match(col["name"]):
                problems.append(f"{table}: column name {str(col)[:80]!r} is not a plain identifier")
            elif not _valid_type(col.get("type")):
                problems.append(f"{table}.{col['name']}: type {str(col.get('type'))[:40]!r} is not a portable type")
        if isinstance(columns, list) and len(
            {str(c.get("name")).lower() for c in columns if isinstance(c, dict)}
        ) < len(columns):
            problems.append(f"{table}: duplicate column names")
    artifacts = manifest.get("artifacts", {})
    if not isinstance(artifacts, dict):
        problems.append("artifacts is not a mapping")
    else:
        for rel, info in artifacts.items():
            if not isinstance(rel, str) or not _ARTIFACT.match(rel):
                problems.append(f"artifact {str(rel)[:80]!r} is not a model file inside the snapshot")
            elif not isinstance(info, dict) or not (_is_count(info.get("bytes")) and _is_sha(info.get("sha256"))):
                problems.append(f"artifact {rel}: bytes or sha256 missing or malformed")
    salt = manifest.get("salt")
    if not isinstance(salt, dict) or salt.get("file") != SALT_FILE or not _is_sha(salt.get("sha256")):
        problems.append(f"the salt entry must name {SALT_FILE} with its sha256")
    if not _is_sha(manifest.get("erasure_salt_fingerprint")):
        problems.append("no erasure salt fingerprint")
    absent = manifest.get("absent", [])
    if not isinstance(absent, list) or any(not isinstance(a, str) for a in absent):
        problems.append("absent is not a list of table names")
    if problems:
        raise BackupCorrupt(f"snapshot {name} has a manifest this platform does not accept: " + "; ".join(problems))
    return manifest


def _read_manifest(snapshot: Path, sealer: Sealer, name: str | None = None) -> dict[str, Any]:
    """Decrypt, authenticate and validate a snapshot's manifest (``name``: the snapshot's name
    when its directory is a partial copy)."""
    name = name or snapshot.name
    path = snapshot / MANIFEST
    if not path.is_file() or path.is_symlink():
        if (snapshot / "manifest.json").is_file():
            raise BackupCorrupt(
                f"{name} is an unencrypted snapshot (format 1): this platform restores only encrypted, "
                "authenticated snapshots. Restore it with the platform version that wrote it, then take a new backup"
            )
        raise BackupCorrupt(f"{snapshot} is not a snapshot: {MANIFEST} is missing")
    text = sealer.open(name, MANIFEST, path.read_bytes())
    try:
        manifest = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BackupCorrupt(f"{path} cannot be read: {exc}") from exc
    return _validate_manifest(manifest, name)


def _timestamp_key(path: Path) -> tuple[str, int, str]:
    """Sort key of a snapshot directory: the timestamp the platform wrote in its name, then the
    number ``_unique_dir`` appended for snapshots of the same second and run."""
    match = SNAPSHOT_NAME.match(path.name)
    stamp = match.group(1) if match else ""
    suffix = re.search(r"-(\d+)$", path.name)
    return stamp, int(suffix.group(1)) if suffix else 1, path.name


def list_snapshots(directory: Path, sealer: Sealer) -> list[Snapshot]:
    """The snapshots in ``directory`` whose manifest authenticates under ``sealer``'s key, oldest
    first by the timestamp in their directory name (others are skipped with a warning)."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        if not path.is_dir() or path.is_symlink() or not SNAPSHOT_NAME.match(path.name):
            continue
        try:
            found.append(Snapshot(path, _read_manifest(path, sealer)))
        except BackupCorrupt as exc:
            log.warning("skipping %s: %s", path.name, exc)
    return sorted(found, key=lambda s: _timestamp_key(s.path))


def prune(directory: Path, keep: int, sealer: Sealer) -> list[Path]:
    """Delete all but the newest ``keep`` snapshots (by the timestamp in their names); only
    snapshots that authenticate under the current key count, nothing else is deleted."""
    if keep < 1:
        raise ConfigError(f"keep must be >= 1, not {keep}")
    snapshots = list_snapshots(directory, sealer)
    removed = [s.path for s in snapshots[: max(0, len(snapshots) - keep)]]
    for path in removed:
        shutil.rmtree(path)
        log.info("retention: removed snapshot %s", path)
    return removed


def _entries(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every file of a snapshot but the manifest: relative path -> its manifest entry."""
    entries = {info["file"]: info for info in manifest["tables"].values()}
    entries.update(manifest.get("artifacts", {}))
    entries[manifest["salt"]["file"]] = manifest["salt"]
    return entries


def verify(snapshot: Path, sealer: Sealer, name: str | None = None) -> dict[str, Any]:
    """Authenticate the manifest and check every file of the snapshot against it; return the
    manifest or raise :class:`BackupCorrupt` naming every problem."""
    manifest = _read_manifest(snapshot, sealer, name)
    problems = []
    for rel, info in _entries(manifest).items():
        path = _safe_path(snapshot, rel)
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
    if SNAPSHOT_NAME.match(str(snapshot)):
        for base in (config.dest, config.copy_dir):
            if base is not None and (base / str(snapshot)).is_dir():
                return (base / str(snapshot)).resolve()
    raise RestoreRefused(f"no snapshot {snapshot}: not a directory, nor a snapshot name in {config.dest}")


# ----------------------------------------------------------------------------- key rotation
def rotate_key(
    settings: Settings, old: Sealer, new: Sealer, directories: list[Path] | None = None
) -> dict[str, list[str]]:
    """Re-encrypt every snapshot written under ``old`` with ``new`` in the backup directory and its
    copy location (or ``directories``). Each snapshot is verified under the old key, written
    re-encrypted next to it, then swapped in; snapshots already under the new key are left as
    they are. Returns ``{"rotated": [...], "current": [...], "skipped": [...]}``."""
    if directories is None:
        config = BackupConfig.from_env(settings)
        directories = [d for d in (config.dest, config.copy_dir) if d is not None]
    done: dict[str, list[str]] = {"rotated": [], "current": [], "skipped": []}
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir(), key=_timestamp_key):
            if not path.is_dir() or path.is_symlink() or not SNAPSHOT_NAME.match(path.name):
                continue
            blob = (path / MANIFEST).read_bytes() if (path / MANIFEST).is_file() else b""
            written = new.written_with(blob)
            if written == new.key_id:
                done["current"].append(str(path))
                continue
            if written != old.key_id:
                log.warning("key rotation: %s is under neither key (%s); left as it is", path.name, written)
                done["skipped"].append(str(path))
                continue
            _rotate_one(path, old, new)
            done["rotated"].append(str(path))
    return done


def _rotate_one(path: Path, old: Sealer, new: Sealer) -> None:
    from customer_mdm.private_files import private_dir

    manifest = verify(path, old)
    name = path.name
    partial = path.parent / f"{PARTIAL_PREFIX}rotate-{name}"
    shutil.rmtree(partial, ignore_errors=True)
    private_dir(partial)
    try:
        for rel, info in _entries(manifest).items():
            written = new.write(partial, name, rel, old.read(path, rel))
            info.update(_entry(written))
        manifest["key_id"] = new.key_id
        new.write(partial, name, MANIFEST, _manifest_bytes(manifest))
        verify(partial, new, name=name)
        _fsync_dir(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    retired = path.parent / f"{PARTIAL_PREFIX}old-{name}"
    path.rename(retired)
    partial.rename(path)
    shutil.rmtree(retired)
    log.info("key rotation: %s re-encrypted under key %s", name, new.key_id)


# ----------------------------------------------------------------------------- restore
@dataclass
class RestoreResult:
    snapshot: Path
    tables: dict[str, int] = field(default_factory=dict)
    replaced: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    tombstones: Any = None  # what privacy.apply_tombstones returned; None when it is not available
    tombstones_applied: bool = False
    salt_installed: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": str(self.snapshot),
            "tables": self.tables,
            "replaced": self.replaced,
            "artifacts": self.artifacts,
            "tombstones_applied": self.tombstones_applied,
            "tombstones": self.tombstones,
            "salt_installed": self.salt_installed,
            "seconds": self.seconds,
        }


def _row_count(wh: Warehouse, table: str) -> int:
    return int(wh.scalar(f"select count(*) from {table}") or 0)


def _write_table(wh: Warehouse, table: str, columns: list[dict[str, str]], data: pa.Table, merge: bool = False) -> None:
    """Replace ``table``'s rows with the snapshot's (creating it when missing); with ``merge`` add
    only the snapshot rows it does not hold (append-only logs: newer rows are kept). ``table`` is
    one of :func:`snapshot_tables` and the columns were validated (:func:`_validate_manifest`)."""
    if table not in snapshot_tables():
        raise RestoreRefused(f"{table!r} is not a table the platform restores")
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
            wh.execute(f"alter table {table} add column {_q(c['name'])} {_ddl_type(c['type'], wh.target)}")
    if not merge:
        wh.execute(f"delete from {table}")
        _insert(wh, table, columns, data)
        return
    staging = f"{schema}._mdm_restore_{table.split('.')[1]}"
    wh.execute(f"drop table if exists {staging}")
    _create(wh, staging, columns)
    _insert(wh, staging, columns, data)
    names = ", ".join(_q(c["name"]) for c in columns)
    wh.execute(f"insert into {table} ({names}) select {names} from {staging} except select {names} from {table}")
    wh.execute(f"drop table {staging}")


def _create(wh: Warehouse, table: str, columns: list[dict[str, str]]) -> None:
    body = ", ".join(f"{_q(c['name'])} {_ddl_type(_checked_type(c['type']), wh.target)}" for c in columns)
    wh.execute(f"create table {table} ({body})")


def _checked_type(portable: str) -> str:
    if not _valid_type(portable):
        raise BackupCorrupt(f"{portable!r} is not a portable column type")
    return portable


def _insert(wh: Warehouse, table: str, columns: list[dict[str, str]], data: pa.Table) -> None:
    if data.num_rows == 0:
        return
    names = ", ".join(_q(c["name"]) for c in columns)
    if wh.target == "duckdb":
        casts = ", ".join(f"cast({_q(c['name'])} as {_ddl_type(_checked_type(c['type']), 'duckdb')})" for c in columns)
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


def _read_tables(path: Path, manifest: dict[str, Any], sealer: Sealer) -> dict[str, pa.Table]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = {}
    for table, info in manifest["tables"].items():
        raw = sealer.read(path, info["file"])
        try:
            data[table] = pq.read_table(pa.BufferReader(raw))
        except Exception as exc:  # authenticated, so the writer itself produced a bad file
            raise BackupCorrupt(f"{info['file']} cannot be read as Parquet: {exc}") from exc
        if data[table].num_rows != int(info["rows"]):
            raise BackupCorrupt(f"{table}: {data[table].num_rows} rows in the file, the manifest says {info['rows']}")
        if data[table].column_names != [c["name"] for c in info["columns"]]:
            raise BackupCorrupt(f"{table}: the file's columns differ from the manifest's")
    return data


def _check_salt(settings: Settings, salt: bytes, manifest: dict[str, Any]) -> bool:
    """Refuse a restore whose tombstones and pseudonyms were made with another salt than the
    target's. A target without a salt (and without a fingerprint) adopts the snapshot's in its
    default key file; True when it did."""
    wanted = manifest["erasure_salt_fingerprint"]
    if keys.fingerprint(keys.ERASURE_SALT, salt) != wanted:
        raise BackupCorrupt("the snapshot's erasure salt does not match its fingerprint")
    configured = keys.load(settings, keys.ERASURE_SALT, create=False)
    installed = False
    if configured is None:
        installed = keys.install(settings, keys.ERASURE_SALT, salt)
        configured = keys.load(settings, keys.ERASURE_SALT, create=False)
    if configured is None or keys.fingerprint(keys.ERASURE_SALT, configured) != wanted:
        raise RestoreRefused(
            f"the snapshot was taken from a warehouse with another erasure salt (fingerprint {wanted[:12]}...) than "
            f"the one configured here: its tombstones and pseudonyms would not match. Set MDM_ERASURE_SALT or "
            "MDM_ERASURE_SALT_FILE to the source warehouse's salt, or restore into that warehouse"
        )
    keys.erasure_salt(settings)  # the target warehouse's fingerprint must agree too (recorded when new)
    return installed


def restore(
    settings: Settings, snapshot: Path | str, *, force: bool = False, env: Mapping[str, str] | None = None
) -> RestoreResult:
    """Restore a snapshot into the configured warehouse (see the module docstring)."""
    started = time.perf_counter()
    path = resolve_snapshot(settings, snapshot, env)
    sealer = Sealer.from_env(settings, env, create=False)
    manifest = verify(path, sealer)  # before anything is touched
    result = RestoreResult(path)
    data = _read_tables(path, manifest, sealer)
    salt = sealer.read(path, manifest["salt"]["file"])
    artifacts = {rel: sealer.read(path, rel) for rel in manifest.get("artifacts", {})}
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
    result.salt_installed = _check_salt(settings, salt, manifest)
    with connect(settings) as wh, wh.transaction():
        for table, info in manifest["tables"].items():
            _write_table(wh, table, info["columns"], data[table], merge=table in MERGED_TABLES)
            result.tables[table] = data[table].num_rows
    result.replaced = occupied
    result.artifacts = _restore_artifacts(settings, artifacts, force)
    # erasures done after the snapshot are re-applied to its restored rows
    result.tombstones_applied, result.tombstones = True, privacy.apply_tombstones(settings)
    result.seconds = round(time.perf_counter() - started, 2)
    log.info("restored %s: %s", path, json.dumps(result.tables))
    return result


def _restore_artifacts(settings: Settings, artifacts: dict[str, bytes], force: bool) -> list[str]:
    """Put the linkage model files back when the target home has no model (or ``force``)."""
    from customer_mdm.linkage.model import CURRENT_FILE
    from customer_mdm.linkage.training import model_dir
    from customer_mdm.private_files import write_private

    target = model_dir(settings)
    if not artifacts or ((target / CURRENT_FILE).exists() and not force):
        return []
    restored = []
    for rel, content in artifacts.items():
        name = Path(rel).name.removesuffix(".enc")  # validated: models/<plain name>.json.enc
        write_private(target / name, content)
        restored.append(str(target / name))
    return restored
