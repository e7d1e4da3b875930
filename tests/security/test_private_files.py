"""Files with personal data outside the warehouse are private: mode 0600 in 0700 directories
(exports, quarantine copies, report CSVs; backups and key files: tests/test_backup.py,
tests/security/test_keys.py). DuckDB's own file encryption cannot be had: MDM_WAREHOUSE_KEY is refused."""

from __future__ import annotations

import stat
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from customer_mdm.config import Settings
from customer_mdm.csv_export import write_csv
from customer_mdm.errors import ConfigError
from customer_mdm.ingest import ingest_all
from customer_mdm.private_files import copy_private, private_dir
from customer_mdm.warehouse import connect


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_csv_files_are_written_private_even_over_a_readable_file(tmp_path: Path) -> None:
    user_dir_mode = mode(tmp_path)
    out = tmp_path / "new_dir" / "people.csv"
    write_csv(pd.DataFrame({"name": ["王伟"], "phone": ["+8613812345678"]}), out)
    assert mode(out) == 0o600 and mode(out.parent) == 0o700
    assert "王伟" in out.read_text(encoding="utf-8")
    readable = tmp_path / "readable.csv"
    readable.write_text("old\n")
    readable.chmod(0o644)
    write_csv(pd.DataFrame({"x": [1]}), readable)
    assert mode(readable) == 0o600
    assert mode(tmp_path) == user_dir_mode  # a user's existing directory is left as it is


def test_copies_and_directories_are_private(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("a\n")
    source.chmod(0o644)
    dest = copy_private(source, tmp_path / "q" / "feed" / "copy.csv")
    assert mode(dest) == 0o600 and mode(dest.parent) == 0o700 and mode(dest.parent.parent) == 0o700
    assert dest.read_text() == "a\n" and dest.stat().st_mtime_ns == source.stat().st_mtime_ns
    opened = tmp_path / "opened"
    opened.mkdir(mode=0o755)
    private_dir(opened)
    assert mode(opened) == 0o700


def test_state_directories_with_personal_data_are_private(duckdb_settings: Settings) -> None:
    duckdb_settings.ensure_dirs()
    assert mode(duckdb_settings.quarantine_dir) == 0o700
    assert mode(duckdb_settings.reports_dir) == 0o700


def test_quarantine_copies_are_private(duckdb_settings: Settings) -> None:
    path = duckdb_settings.landing / "crm" / "crm_2026-11-20.csv"
    path.parent.mkdir(parents=True)
    path.write_text("crm_id,name,mobile,email,updated_at\nC1,王伟,13812345678,a@qq.com,2026-11-20 13:05:00\n")
    path.chmod(0o644)
    ingest_all(duckdb_settings, "run-1")
    path.write_text(path.read_text() + "C2,李娜,13912345678,b@qq.com,2026-11-20 13:06:00\n")  # changed: kept
    ingest_all(duckdb_settings, "run-2")
    with connect(duckdb_settings) as wh:
        [(kept,)] = wh.query("select kept_at from ops.quarantine where kind = 'file' and kept_at is not null")
    kept_path = Path(kept)
    assert kept_path.is_relative_to(duckdb_settings.quarantine_dir)
    assert mode(kept_path) == 0o600 and mode(kept_path.parent) == 0o700
    assert mode(duckdb_settings.quarantine_dir) == 0o700


def test_export_commands_write_private_files(duckdb_settings: Settings, tmp_path: Path) -> None:
    from customer_mdm.cli import main

    with connect(duckdb_settings) as wh:
        wh.execute("create schema mdm")
        wh.execute(
            "create table mdm.xref as select 'crm' as source, 'C1' as source_id, 'G1' as golden_id, "
            "0.99 as match_probability, 'auto' as assignment, now() as assigned_at_utc"
        )
    env = {"MDM_HOME": str(duckdb_settings.home), "MDM_LANDING": str(duckdb_settings.landing)}
    out = tmp_path / "exports" / "xref.csv"
    result = CliRunner().invoke(main, ["export", "xref", "--out", str(out)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert mode(out) == 0o600 and mode(out.parent) == 0o700


def test_warehouse_key_is_refused_with_what_to_do_instead(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="encrypt the volume"):
        Settings.from_env(env={"MDM_WAREHOUSE_KEY": "secret", "MDM_HOME": str(tmp_path)})


def test_duckdb_cannot_write_an_encrypted_file_offline(tmp_path: Path) -> None:
    """The reason MDM_WAREHOUSE_KEY is refused: DuckDB's built-in crypto is read-only without
    httpfs. If a DuckDB upgrade makes this pass, implement MDM_WAREHOUSE_KEY instead."""
    import duckdb

    con = duckdb.connect()
    with pytest.raises(duckdb.Error, match=r"(?i)httpfs|read-only crypto"):
        con.execute(f"attach '{tmp_path / 'enc.duckdb'}' as enc (encryption_key 'k3y-for-a-test')")
        con.execute("create table enc.t as select 42 as x")
    con.close()


def test_hub_store_and_serving_snapshots_are_private(duckdb_settings: Settings) -> None:
    """The hub's intake store and the serving snapshot files hold personal data: 0600 in 0700."""
    from customer_mdm.hub.serving import SCHEMA, _point_to, _write_snapshot, serving_dir
    from customer_mdm.hub.store import SqliteStore, store_path

    store = SqliteStore(store_path(duckdb_settings))
    store.execute("create table if not exists hub.t (x text)")
    assert mode(store_path(duckdb_settings)) == 0o600 and mode(store_path(duckdb_settings).parent) == 0o700
    with connect(duckdb_settings) as wh:
        wh.execute(f"create schema {SCHEMA}")
        wh.execute(f"create table {SCHEMA}.golden_customer as select 'G1' as golden_id, '王伟' as name")
        snapshot = _write_snapshot(duckdb_settings, wh, "run-1", ["golden_customer"])
    _point_to(duckdb_settings, snapshot)
    assert mode(snapshot) == 0o600 and mode(serving_dir(duckdb_settings)) == 0o700
