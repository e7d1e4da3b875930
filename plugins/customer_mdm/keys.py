"""The platform's secrets: the erasure salt and the backup key, and their fingerprints in the warehouse.

Secrets belong with the warehouse's other secrets (its passwords), not with a working directory.
Each is read, in this order, from

1. the environment: ``MDM_ERASURE_SALT`` / ``MDM_BACKUP_KEY`` (the text is the secret);
2. a key file named by the environment: ``MDM_ERASURE_SALT_FILE`` / ``MDM_BACKUP_KEY_FILE``
   (a Docker or Kubernetes secret; surrounding white space is ignored);
3. the default key file ``erasure_salt`` / ``backup_key`` in the private directory ``secrets/``
   next to the DuckDB warehouse file (PostgreSQL: ``$MDM_HOME/secrets``). When it does not exist
   it is created once, atomically (``O_CREAT | O_EXCL``, mode 0600, directory 0700), with 32
   random bytes: the laptop case. Back it up with the warehouse.

**Fingerprints.** The erasure salt decides every tombstone's hash: a different salt silently
stops old tombstones from matching, so erased people could come back. At first use the salt's
*fingerprint* (an HMAC-SHA256 of a fixed label under the salt; never the salt itself) is stored in
the warehouse, table ``ops.key_fingerprints`` (``name``, ``fingerprint``, ``recorded_at``). Every
later use compares: a salt whose fingerprint differs stops with :class:`~customer_mdm.errors.ConfigError`
saying what to do; a warehouse that has a fingerprint but no salt configured never gets a new one.

:func:`golden_id_key` derives the key of golden ids (``customer_mdm.linkage.ids``) from the salt:
golden ids cannot be recomputed from a record id without it.

The backup key (``MDM_BACKUP_KEY``) is any text of at least 16 characters (``openssl rand
-hex 32`` makes a good one); AES-256-GCM keys are derived from it with HKDF-SHA256
(:func:`backup_cipher_key`). Its *key id* (:func:`key_id`) names it in snapshots and error
messages.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from customer_mdm.config import Settings
from customer_mdm.errors import ConfigError

if TYPE_CHECKING:
    from customer_mdm.warehouse import Warehouse

log = logging.getLogger(__name__)

FINGERPRINTS = "ops.key_fingerprints"
FINGERPRINT_COLUMNS: dict[str, str] = {"name": "text", "fingerprint": "text", "recorded_at": "timestamp"}
MIN_SECRET_CHARS = 16


@dataclass(frozen=True)
class KeySpec:
    name: str  # file name and ops.key_fingerprints.name
    env: str
    file_env: str
    label: bytes  # HMAC label of the fingerprint


ERASURE_SALT = KeySpec("erasure_salt", "MDM_ERASURE_SALT", "MDM_ERASURE_SALT_FILE", b"customer-mdm/erasure-salt/v1")
BACKUP_KEY = KeySpec("backup_key", "MDM_BACKUP_KEY", "MDM_BACKUP_KEY_FILE", b"customer-mdm/backup-key/v1")

_VERIFIED: set[tuple[str, str, str]] = set()  # (key name, warehouse, fingerprint) checked in this process
_LOCK = threading.Lock()


# ----------------------------------------------------------------------------- files
def secrets_dir(settings: Settings) -> Path:
    """The default directory of key files: ``secrets/`` next to the DuckDB file; on PostgreSQL
    ``$MDM_HOME/secrets`` (configure the secrets through the environment there)."""
    if settings.target == "duckdb":
        return settings.warehouse_file.parent / "secrets"
    return settings.home / "secrets"


def key_file(settings: Settings, spec: KeySpec, env: Mapping[str, str] | None = None) -> Path:
    """The file that holds (or will hold) the secret: ``<spec.file_env>`` or the default file."""
    env = os.environ if env is None else env
    configured = env.get(spec.file_env)
    if configured:
        return Path(configured).expanduser()
    return secrets_dir(settings) / spec.name


def _create_once(path: Path, secret: bytes | None = None) -> bool:
    """Write ``secret`` (default: 32 new random bytes as hex) to ``path`` unless it exists; True
    when this call created it. ``O_EXCL`` makes concurrent first uses agree: one wins, the others
    read its file."""
    from customer_mdm.private_files import private_dir

    private_dir(path.parent, narrow=path.parent.name == "secrets")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        os.write(fd, (secret or secrets.token_hex(32).encode("ascii")) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def install(settings: Settings, spec: KeySpec, secret: bytes, env: Mapping[str, str] | None = None) -> bool:
    """Write ``secret`` to the default key file when no secret is configured (a restore brings
    the source warehouse's salt); True when it was written."""
    env = os.environ if env is None else env
    if env.get(spec.env) or env.get(spec.file_env):
        return False
    return _create_once(key_file(settings, spec, env), secret)


def _read_file(path: Path, spec: KeySpec) -> bytes:
    """The secret in ``path``; a file that is empty or still being written (a concurrent first
    use) is read again for a moment."""
    for _ in range(50):
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError as exc:
            raise ConfigError(f"{spec.file_env} names {path}, which does not exist") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"the {spec.name} file {path} cannot be read: {exc}") from exc
        if text:
            return text.encode("utf-8")
        threading.Event().wait(0.02)
    raise ConfigError(f"the {spec.name} file {path} is empty: put the secret in it, or remove it to create a new one")


def load(
    settings: Settings, spec: KeySpec, env: Mapping[str, str] | None = None, *, create: bool = True
) -> bytes | None:
    """The secret ``spec`` from the environment, its key file or the default key file (created
    once when ``create``); None when there is none and ``create`` is false."""
    env = os.environ if env is None else env
    value = env.get(spec.env)
    if value is not None and value.strip():
        return value.strip().encode("utf-8")
    path = key_file(settings, spec, env)
    if env.get(spec.file_env):
        return _read_file(path, spec)
    if not path.exists():
        if not create:
            return None
        if _create_once(path):
            log.warning(
                "created a new %s in %s: back it up with the warehouse (or set %s / %s)",
                spec.name,
                path,
                spec.env,
                spec.file_env,
            )
    return _read_file(path, spec)


# ----------------------------------------------------------------------------- fingerprints
def fingerprint(spec: KeySpec, secret: bytes) -> str:
    """An HMAC-SHA256 of the spec's fixed label under ``secret``: identifies it, reveals nothing."""
    return hmac.new(secret, spec.label, hashlib.sha256).hexdigest()


def key_id(secret: bytes) -> str:
    """Sixteen hex digits naming a backup key (an HMAC of a label under it, not the key)."""
    return fingerprint(BACKUP_KEY, secret)[:16]


def _warehouse_name(settings: Settings) -> str:
    if settings.target == "duckdb":
        return f"duckdb:{settings.warehouse_file}"
    return f"postgres:{settings.pg_dsn}"


def _stored(wh: Warehouse, name: str) -> str | None:
    if not wh.table_exists(FINGERPRINTS):
        return None
    rows = wh.query(f"select fingerprint from {FINGERPRINTS} where name = ? order by recorded_at limit 1", [name])
    return str(rows[0][0]) if rows else None


def _mismatch(settings: Settings, spec: KeySpec) -> ConfigError:
    return ConfigError(
        f"the {spec.name} configured here does not match the one this {settings.target} warehouse was set up "
        f"with (its fingerprint in {FINGERPRINTS} differs): tombstones and pseudonyms would silently stop "
        f"matching. Set {spec.env} or {spec.file_env} to the warehouse's {spec.name} (the file {spec.name} of "
        f"the installation that set it up, or your secret store), then run again. Never delete the row in "
        f"{FINGERPRINTS} to get past this"
    )


def check_fingerprint(settings: Settings, wh: Warehouse, spec: KeySpec, secret: bytes, *, record: bool = True) -> None:
    """Compare ``secret`` with the fingerprint stored in the warehouse; store it when there is
    none (and ``record``). Raises :class:`ConfigError` on a mismatch."""
    from customer_mdm.schema import ensure_table

    mine = fingerprint(spec, secret)
    stored = _stored(wh, spec.name)
    if stored is None and record and not _may_record(wh):
        # a role that sees no ops schema (a steward's review session): it cannot check; the
        # pipeline's runs do, and a run with another salt stops before anything is written
        log.info("%s: this role cannot read %s; the pipeline checks the fingerprint", spec.name, FINGERPRINTS)
        return
    if stored is None and record:
        ensure_table(wh, FINGERPRINTS, FINGERPRINT_COLUMNS)
        wh.execute(
            f"insert into {FINGERPRINTS} (name, fingerprint, recorded_at) values (?, ?, ?)",
            [spec.name, mine, datetime.now(UTC).replace(tzinfo=None)],
        )
        stored = _stored(wh, spec.name)  # a concurrent first use may have won: the oldest row counts
    if stored is not None and not hmac.compare_digest(stored, mine):
        raise _mismatch(settings, spec)


def _may_record(wh: Warehouse) -> bool:
    """Whether this connection may create the fingerprint table (PostgreSQL: CREATE on schema ops,
    or on the database when ops does not exist yet); DuckDB: always."""
    if wh.target != "postgres":
        return True
    return bool(
        wh.scalar(
            "select coalesce((select has_schema_privilege(oid, 'CREATE') from pg_namespace where nspname = 'ops'), "
            "has_database_privilege(current_database(), 'CREATE'))"
        )
    )


def warehouse_secret(settings: Settings, spec: KeySpec, env: Mapping[str, str] | None = None) -> bytes:
    """A secret bound to the warehouse (the erasure salt): loaded as :func:`load` does, but a new
    default file is never created for a warehouse that already has a fingerprint, and the
    fingerprint is checked (recorded at first use) once per process and warehouse."""
    secret = load(settings, spec, env, create=False)
    if secret is not None:
        key = (spec.name, _warehouse_name(settings), fingerprint(spec, secret))
        with _LOCK:
            if key in _VERIFIED:
                return secret
    wh, writable = _open(settings)
    with wh:
        if secret is None:
            if _stored(wh, spec.name) is not None or not _may_record(wh):
                raise ConfigError(
                    f"this {settings.target} warehouse was set up with an {spec.name} (or this role may not set "
                    f"one up), but none is configured here (no {spec.env}, no {spec.file_env}, no "
                    f"{key_file(settings, spec, env)}). Set "
                    f"{spec.env} or {spec.file_env} to the warehouse's {spec.name}; a new one would let "
                    "erased people come back"
                )
            secret = load(settings, spec, env, create=True)
            assert secret is not None
        check_fingerprint(settings, wh, spec, secret, record=writable)
    with _LOCK:
        _VERIFIED.add((spec.name, _warehouse_name(settings), fingerprint(spec, secret)))
    return secret


def _open(settings: Settings) -> tuple[Warehouse, bool]:
    """A connection for the fingerprint check. A DuckDB file another connection of this process
    holds read-only can only be opened read-only again (then nothing is recorded)."""
    from customer_mdm.warehouse import connect

    try:
        return connect(settings), True
    except Exception as exc:  # duckdb.ConnectionException: the file is open with another configuration
        if settings.target != "duckdb" or "different configuration" not in str(exc):
            raise
        return connect(settings, read_only=True), False


def forget_verified() -> None:
    """Check fingerprints again at next use (tests, a restore that replaced the warehouse)."""
    with _LOCK:
        _VERIFIED.clear()


# ----------------------------------------------------------------------------- derived keys
def erasure_salt(settings: Settings, env: Mapping[str, str] | None = None) -> bytes:
    return warehouse_secret(settings, ERASURE_SALT, env)


def golden_id_key(settings: Settings) -> bytes:
    """The HMAC key of new golden ids, derived from the erasure salt (a warehouse secret)."""
    return hmac.new(erasure_salt(settings), b"customer-mdm/golden-id/v1", hashlib.sha256).digest()


def backup_secret(
    settings: Settings, env: Mapping[str, str] | None = None, *, create: bool = True, spec: KeySpec = BACKUP_KEY
) -> bytes:
    """The backup key's text (``MDM_BACKUP_KEY``, ``MDM_BACKUP_KEY_FILE`` or the default file)."""
    secret = load(settings, spec, env, create=create)
    if secret is None:
        raise ConfigError(
            f"no backup key: set {spec.env} or {spec.file_env} (the key the snapshots were written with), "
            f"or put it in {key_file(settings, spec, env)}"
        )
    if len(secret) < MIN_SECRET_CHARS:
        raise ConfigError(
            f"the backup key is too short ({len(secret)} characters): use at least {MIN_SECRET_CHARS} random "
            "characters, e.g. the output of `python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return secret


def backup_cipher_key(secret: bytes) -> bytes:
    """The AES-256 key derived from a backup key's text (HKDF-SHA256)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"customer-mdm/backup/aes-256-gcm/v1").derive(
        secret
    )


def refuse_warehouse_key(env: Mapping[str, str] | None = None) -> None:
    """``MDM_WAREHOUSE_KEY`` cannot be honoured: DuckDB 2.0 writes encrypted files only with the
    httpfs extension (its built-in crypto module is read-only), which cannot be installed offline
    for the pinned version. Refuse it rather than leave the file in clear while the user thinks
    it is encrypted (docs/security.md: encrypt the volume)."""
    env = os.environ if env is None else env
    if env.get("MDM_WAREHOUSE_KEY"):
        raise ConfigError(
            "MDM_WAREHOUSE_KEY is set, but the warehouse file cannot be encrypted by this platform: DuckDB 2.0 "
            "writes encrypted files only with its httpfs extension, which is not available for the pinned "
            "version. Unset MDM_WAREHOUSE_KEY and encrypt the volume that holds MDM_HOME instead (LUKS, "
            "fscrypt; see docs/security.md)"
        )
