"""The warehouse's secrets (customer_mdm.keys): the erasure salt's fingerprint is kept in the
warehouse, a mismatch or a missing salt stops with ConfigError instead of silently minting a new
salt; key files are created once, atomically, privately. On DuckDB and PostgreSQL."""

from __future__ import annotations

import shutil
import stat
import threading
from pathlib import Path

import pytest

from customer_mdm import keys
from customer_mdm.config import Settings
from customer_mdm.errors import ConfigError
from customer_mdm.privacy import erasure_salt, pseudonym, salt_file
from customer_mdm.warehouse import connect


@pytest.fixture(autouse=True)
def _no_configured_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MDM_ERASURE_SALT", "MDM_ERASURE_SALT_FILE", "MDM_BACKUP_KEY", "MDM_BACKUP_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    keys.forget_verified()


def test_the_salts_fingerprint_is_stored_in_the_warehouse_not_the_salt(settings: Settings) -> None:
    salt = erasure_salt(settings)
    with connect(settings) as wh:
        rows = wh.query(f"select name, fingerprint from {keys.FINGERPRINTS}")
    assert rows == [("erasure_salt", keys.fingerprint(keys.ERASURE_SALT, salt))]
    assert salt.decode() not in repr(rows)
    erasure_salt(settings)  # checked again: still one row
    with connect(settings) as wh:
        assert wh.scalar(f"select count(*) from {keys.FINGERPRINTS}") == 1


def test_another_salt_against_the_same_warehouse_stops_with_what_to_do(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed = pseudonym(settings, "email", "a@example.com")
    monkeypatch.setenv("MDM_ERASURE_SALT", "a-salt-from-another-installation")
    with pytest.raises(ConfigError, match="MDM_ERASURE_SALT_FILE") as err:
        pseudonym(settings, "email", "a@example.com")
    assert "a-salt-from-another-installation" not in str(err.value)
    monkeypatch.setenv("MDM_ERASURE_SALT_FILE", str(salt_file(settings)))  # the right one, from its file
    monkeypatch.delenv("MDM_ERASURE_SALT")
    assert pseudonym(settings, "email", "a@example.com") == hashed


def test_a_new_home_against_the_same_warehouse_never_mints_a_new_salt(settings: Settings, tmp_path: Path) -> None:
    """The reported hole: a new MDM_HOME against the same PostgreSQL made a new salt silently."""
    erasure_salt(settings)
    if settings.target == "postgres":
        other = Settings.from_env(
            env={}, home=tmp_path / "new_home", landing=settings.landing, target="postgres", pg_dsn=settings.pg_dsn
        )
    else:  # the same DuckDB file, its key file lost
        shutil.rmtree(keys.secrets_dir(settings))
        other = settings
    with pytest.raises(ConfigError, match="none is configured here"):
        erasure_salt(other)
    assert not salt_file(other).exists()


def test_salt_from_a_key_file(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "run_secrets" / "mdm_erasure_salt"
    secret.parent.mkdir()
    secret.write_text("  a-salt-kept-in-a-docker-secret\n")
    monkeypatch.setenv("MDM_ERASURE_SALT_FILE", str(secret))
    assert erasure_salt(settings) == b"a-salt-kept-in-a-docker-secret"
    assert not (keys.secrets_dir(settings) / "erasure_salt").exists()
    monkeypatch.setenv("MDM_ERASURE_SALT_FILE", str(tmp_path / "missing"))
    keys.forget_verified()
    with pytest.raises(ConfigError, match="does not exist"):
        erasure_salt(settings)


def test_key_files_are_created_once_atomically_and_privately(duckdb_settings: Settings) -> None:
    results: list[bytes | None] = []
    barrier = threading.Barrier(8)

    def first_use() -> None:
        barrier.wait()
        results.append(keys.load(duckdb_settings, keys.BACKUP_KEY))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1 and len(results[0] or b"") == 64
    path = keys.key_file(duckdb_settings, keys.BACKUP_KEY)
    assert path.parent == duckdb_settings.warehouse_file.parent / "secrets"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not [p for p in path.parent.iterdir() if p != path]  # no temporary files left


def test_a_short_backup_key_is_refused(duckdb_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="too short"):
        keys.backup_secret(duckdb_settings, {"MDM_BACKUP_KEY": "short"})
    assert keys.key_id(b"x" * 32) != keys.key_id(b"y" * 32) and len(keys.key_id(b"x" * 32)) == 16


@pytest.mark.postgres
def test_a_role_without_ops_neither_checks_nor_mints_a_salt(pg_dsn: str, tmp_path: Path) -> None:
    """A steward's session (no access to schema ops) uses the configured salt; without one it
    stops instead of making its own (its audit pseudonyms would match nothing)."""
    import secrets

    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    pipeline = Settings.from_env(env={}, home=tmp_path / "pipeline", landing=tmp_path, target="postgres", pg_dsn=pg_dsn)
    salt = erasure_salt(pipeline)
    role, password = f"keys_test_{secrets.token_hex(4)}", secrets.token_hex(12)
    with connect(pipeline) as wh:
        wh.execute(f"create role {role} login password '{password}'")  # pragma: allowlist secret
        wh.execute(f"revoke create on database {conninfo_to_dict(pg_dsn)['dbname']} from public")
        wh.execute("revoke create on schema public from public")
    try:
        dsn = make_conninfo(pg_dsn, user=role, password=password)
        steward = Settings.from_env(env={}, home=tmp_path / "pipeline", landing=tmp_path, target="postgres", pg_dsn=dsn)
        assert erasure_salt(steward) == salt  # the shared salt file: used, not re-recorded
        elsewhere = Settings.from_env(env={}, home=tmp_path / "laptop", landing=tmp_path, target="postgres", pg_dsn=dsn)
        with pytest.raises(ConfigError, match="none is configured here"):
            erasure_salt(elsewhere)
        assert not salt_file(elsewhere).exists()
    finally:
        with connect(pipeline) as wh:
            wh.execute(f"drop role {role}")
