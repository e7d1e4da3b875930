"""Backup and restore (``customer_mdm.backup``, ``mdm backup`` / ``mdm restore``).

One small warehouse is built by the real pipeline (module scope) and backed up once; the
snapshot is restored into empty DuckDB and PostgreSQL warehouses and every table compared row
for row with the source. Corrupt snapshots, the second location, retention and the CLI.
"""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from customer_mdm import backup as bk
from customer_mdm.config import Settings
from customer_mdm.errors import ConfigError
from customer_mdm.linkage.step import record_decision
from customer_mdm.pipeline import run_inline
from customer_mdm.warehouse import Warehouse, connect
from mdm_devtools.generate import generate_landing

PEOPLE = 120
KEY = {"MDM_BACKUP_KEY": "test-backup-key-0123456789abcdef"}
SEALER = bk.Sealer(KEY["MDM_BACKUP_KEY"].encode())


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A warehouse built by the daily pipeline, with a steward decision and an audit table."""
    base = tmp_path_factory.mktemp("backup_source")
    generate_landing(base / "landing", PEOPLE, seed=17, days=2)
    settings = Settings.from_env(env={}, home=base / "home", landing=base / "landing")
    run_inline(settings, governance=False)
    with connect(settings) as wh:
        left, right = wh.query("select record_id_l, record_id_r from mdm.review_queue limit 1")[0]
    record_decision(settings, left, right, "no_match", "steward_test", "different people")
    with connect(settings) as wh:  # the pipeline and the steward decision wrote the audit log (a row per golden id)
        golden = wh.query("select count(distinct golden_id) from mdm.xref where record_id in (?, ?)", [left, right])
        assert wh.scalar("select count(*) from audit.golden_changes where action = 'steward_decision'") == golden[0][0]
    return settings


@pytest.fixture(scope="module")
def snapshot(source: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bk.backup(source, tmp_path_factory.mktemp("backups"), env=KEY)


def _empty(tmp_path: Path, name: str, target: str = "duckdb", dsn: str | None = None) -> Settings:
    (tmp_path / "landing").mkdir(exist_ok=True)
    return Settings.from_env(env={}, home=tmp_path / name, landing=tmp_path / "landing", target=target, pg_dsn=dsn)


def _rows(wh: Warehouse, table: str) -> list[tuple[Any, ...]]:
    return sorted(wh.query(f"select * from {table}"), key=repr)


def _assert_same_tables(a: Settings, b: Settings, tables: list[str]) -> None:
    with connect(a) as wa, connect(b) as wb:
        for table in tables:
            assert wa.columns_of(table) == wb.columns_of(table), table
            left, right = _rows(wa, table), _rows(wb, table)
            assert len(left) == len(right), table
            assert left == right, table


# ----------------------------------------------------------------------------- the snapshot
def test_snapshot_holds_every_table_with_counts_checksums_and_schema(source: Settings, snapshot: Path):
    manifest = bk.verify(snapshot, SEALER)
    assert manifest["format_version"] == bk.FORMAT_VERSION
    assert manifest["warehouse"]["target"] == "duckdb"
    assert manifest["platform_version"]
    with connect(source) as wh:
        published = wh.scalar("select run_id from ops.runs")
        assert manifest["source_run_id"] == published
        assert snapshot.name.endswith(f"_{published}")
        expected = [t for t in bk.snapshot_tables() if wh.table_exists(t)]
        assert list(manifest["tables"]) == expected
        for table, info in manifest["tables"].items():
            assert info["rows"] == wh.scalar(f"select count(*) from {table}"), table
            assert info["sha256"] == bk.sha256_file(snapshot / info["file"])
            assert [c["name"] for c in info["columns"]] == wh.columns_of(table)
    for table in ("marts.dim_customer", "marts.customer_xref", "mdm.golden_id_history", "mdm.steward_decisions"):
        assert table in manifest["tables"]
    assert manifest["tables"]["marts.customer_xref"]["kind"] == "table"
    assert manifest["tables"]["mdm.steward_decisions"]["rows"] == 1
    with connect(source) as wh:
        assert manifest["tables"]["audit.golden_changes"]["rows"] == wh.scalar(
            "select count(*) from audit.golden_changes"
        )
    assert "ops.erasure_tombstones" in manifest["absent"] or "ops.erasure_tombstones" in manifest["tables"]
    assert any(name.endswith("current.json.enc") for name in manifest["artifacts"])
    assert not list(snapshot.parent.glob(f"{bk.PARTIAL_PREFIX}*"))


def test_backup_of_a_warehouse_without_golden_tables_is_refused(tmp_path: Path):
    settings = _empty(tmp_path, "empty")
    with pytest.raises(bk.BackupError, match="no golden tables published yet"):
        bk.backup(settings, tmp_path / "b", env=KEY)
    assert not list((tmp_path / "b").iterdir())


# ----------------------------------------------------------------------------- restore
def test_restore_into_an_empty_duckdb_equals_the_source(source: Settings, snapshot: Path, tmp_path: Path):
    target = _empty(tmp_path, "restored")
    result = bk.restore(target, snapshot, env=KEY)
    manifest = bk.verify(snapshot, SEALER)
    assert result.tables == {t: i["rows"] for t, i in manifest["tables"].items()}
    assert result.replaced == []
    _assert_same_tables(source, target, list(manifest["tables"]))
    assert (target.models_dir / "linkage" / "current.json").read_bytes() == (
        source.models_dir / "linkage" / "current.json"
    ).read_bytes()

    with pytest.raises(bk.RestoreRefused, match="--force"):  # tables hold rows now
        bk.restore(target, snapshot, env=KEY)
    with connect(target) as wh:
        wh.execute(
            "delete from marts.dim_customer where golden_id in (select golden_id from marts.dim_customer limit 5)"
        )
        wh.execute("insert into mdm.link_runs (run_id, mode) values ('later_run', 'full')")
        wh.execute("insert into audit.golden_changes (golden_id, reason) values ('G9', 'after the snapshot')")
    forced = bk.restore(target, snapshot, force=True, env=KEY)
    assert "marts.dim_customer" in forced.replaced and "audit.golden_changes" not in forced.replaced
    _assert_same_tables(source, target, [t for t in manifest["tables"] if t not in bk.MERGED_TABLES])
    with connect(source) as wa, connect(target) as wb:  # append-only logs keep what came later
        later = wb.query("select * from audit.golden_changes where golden_id = 'G9'")
        assert len(later) == 1 and "after the snapshot" in later[0]
        assert _rows(wb, "audit.golden_changes") == sorted([*_rows(wa, "audit.golden_changes"), *later], key=repr)


@pytest.mark.postgres
def test_restore_into_postgres_and_back_up_from_it(source: Settings, snapshot: Path, tmp_path: Path, pg_dsn: str):
    pg = _empty(tmp_path, "pg", "postgres", pg_dsn)
    bk.restore(pg, snapshot, env=KEY)
    tables = list(bk.verify(snapshot, SEALER)["tables"])
    _assert_same_tables(source, pg, tables)
    with connect(pg) as wh:  # a view on a restored table keeps working after a forced restore
        wh.execute("create view marts.v_customers as select golden_id from marts.dim_customer")
    bk.restore(pg, snapshot, force=True, env=KEY)
    with connect(pg) as wh:
        assert (
            wh.scalar("select count(*) from marts.v_customers")
            == bk.verify(snapshot, SEALER)["tables"]["marts.dim_customer"]["rows"]
        )

    from_pg = bk.backup(pg, tmp_path / "pg_backups", env=KEY)  # a PostgreSQL snapshot ...
    assert bk.verify(from_pg, SEALER)["warehouse"]["target"] == "postgres"
    again = _empty(tmp_path, "again")
    bk.restore(again, from_pg, env=KEY)  # ... restored into DuckDB equals the original
    _assert_same_tables(source, again, tables)


def test_corrupt_snapshot_is_refused_and_nothing_changes(snapshot: Path, tmp_path: Path):
    broken = tmp_path / snapshot.name
    shutil.copytree(snapshot, broken)
    victim = broken / "marts.customer_xref.parquet.enc"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    target = _empty(tmp_path, "target")
    with pytest.raises(bk.BackupCorrupt, match=r"marts\.customer_xref\.parquet\.enc: sha256"):
        bk.restore(target, broken, env=KEY)
    assert not target.warehouse_file.exists()  # not even opened

    (broken / "mdm.pairs.parquet.enc").unlink()
    with pytest.raises(bk.BackupCorrupt, match=r"mdm\.pairs\.parquet\.enc: missing"):
        bk.verify(broken, SEALER)
    (broken / bk.MANIFEST).write_text('{"format_version": 2, "tab')
    with pytest.raises(bk.BackupCorrupt, match="not an encrypted snapshot file"):
        bk.restore(target, broken, env=KEY)
    assert not target.warehouse_file.exists()


def test_restore_calls_the_privacy_tombstones_hook(snapshot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls: list[Settings] = []
    try:
        from customer_mdm import privacy  # type: ignore[attr-defined,unused-ignore]

        real = getattr(privacy, "apply_tombstones", None)
    except ImportError:
        real = None
    if real is None:  # the privacy module is not there (yet): a recording hook stands in for it
        module = types.ModuleType("customer_mdm.privacy")
        module.apply_tombstones = lambda s: calls.append(s) or {"erased": 0}  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "customer_mdm.privacy", module)
    target = _empty(tmp_path, "hooked")
    result = bk.restore(target, snapshot, env=KEY)
    assert result.tombstones_applied
    if real is None:
        assert calls == [target] and result.tombstones == {"erased": 0}


# ----------------------------------------------------------------------------- copies, retention
def test_second_location_copy_is_verified(source: Settings, tmp_path: Path):
    path = bk.backup(source, tmp_path / "main", copy_dir=tmp_path / "offsite", env=KEY)
    copy = tmp_path / "offsite" / path.name
    assert bk.verify(copy, SEALER) == bk.verify(path, SEALER)
    assert sorted(p.name for p in copy.rglob("*")) == sorted(p.name for p in path.rglob("*"))
    with pytest.raises(bk.BackupError, match="already holds"):
        bk.copy_snapshot(path, tmp_path / "offsite", SEALER)


def test_retention_keeps_the_newest_n(source: Settings, tmp_path: Path):
    env = {
        "MDM_BACKUP_DIR": str(tmp_path / "main"),
        "MDM_BACKUP_COPY_DIR": str(tmp_path / "copy"),
        "MDM_BACKUP_KEEP": "3",
        **KEY,
    }
    made = [bk.backup(source, env=env) for _ in range(5)]
    for directory in (tmp_path / "main", tmp_path / "copy"):
        assert [s.name for s in bk.list_snapshots(directory, SEALER)] == [p.name for p in made[-3:]]
    assert len({p.name for p in made}) == 5  # same second, same run: still distinct names

    with pytest.raises(ConfigError, match="MDM_BACKUP_KEEP"):
        bk.BackupConfig.from_env(source, {"MDM_BACKUP_KEEP": "0"})
    assert bk.BackupConfig.from_env(source, {}).dest == source.home / "backups"
    assert bk.BackupConfig.from_env(source, {}).keep == bk.DEFAULT_KEEP


# ----------------------------------------------------------------------------- command line
def test_cli_backup_list_and_restore(source: Settings, tmp_path: Path):
    from customer_mdm.cli import main

    env = {
        "MDM_HOME": str(source.home),
        "MDM_LANDING": str(source.landing),
        "MDM_BACKUP_DIR": str(tmp_path / "b"),
        **KEY,
    }
    runner = CliRunner()
    made = runner.invoke(main, ["backup"], env=env, catch_exceptions=False)
    assert made.exit_code == 0, made.output
    assert "backup written" in made.output
    listed = runner.invoke(main, ["backup", "--list"], env=env, catch_exceptions=False)
    name = bk.list_snapshots(tmp_path / "b", SEALER)[0].name
    assert name in listed.output

    other = {**env, "MDM_HOME": str(tmp_path / "other")}
    restored = runner.invoke(main, ["restore", name], env=other, catch_exceptions=False)
    assert restored.exit_code == 0, restored.output
    assert "marts.dim_customer" in restored.output
    refused = runner.invoke(main, ["restore", name], env=other, catch_exceptions=False)
    assert refused.exit_code == 2 and "--force" in refused.output
    forced = runner.invoke(main, ["restore", name, "--force"], env=other, catch_exceptions=False)
    assert forced.exit_code == 0 and "(replaced)" in forced.output


def test_backup_step_of_the_dag_records_itself_on_the_published_run(
    source: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from customer_mdm.pipeline import backup_step

    monkeypatch.setenv("MDM_BACKUP_DIR", str(tmp_path / "dag"))
    monkeypatch.setenv("MDM_BACKUP_KEY", KEY["MDM_BACKUP_KEY"])
    details = backup_step(source, "scheduled__2026-12-03T01:00:00+00:00")  # an Airflow run id
    [snap] = bk.list_snapshots(tmp_path / "dag", SEALER)
    assert details["snapshot"] == str(snap.path) and details["rows"] == snap.rows
    with connect(source) as wh:
        published = wh.scalar("select run_id from ops.runs")
        assert (
            wh.scalar("select status from ops.run_steps where run_id = ? and step = 'backup'", [published]) == "success"
        )


# ----------------------------------------------------------------------------- encryption at rest, hostile snapshots
def _copy(snapshot: Path, tmp_path: Path) -> Path:
    broken = tmp_path / "copies" / snapshot.name
    shutil.copytree(snapshot, broken)
    return broken


def _reseal_manifest(snapshot: Path, change: Any, sealer: bk.Sealer = SEALER) -> None:
    """Rewrite a snapshot's manifest as someone holding the key could (the validation must hold)."""
    manifest = json.loads(sealer.read(snapshot, bk.MANIFEST))
    change(manifest)
    sealer.write(snapshot, snapshot.name, bk.MANIFEST, json.dumps(manifest).encode())


def test_snapshot_files_are_encrypted_and_private(source: Settings, snapshot: Path):
    import stat

    with connect(source) as wh:
        golden_id = wh.scalar("select golden_id from marts.dim_customer order by golden_id limit 1")
        record = wh.scalar("select source_id from marts.customer_xref order by source_id limit 1")
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o700
    assert stat.S_IMODE(snapshot.parent.stat().st_mode) == 0o700
    files = [p for p in snapshot.rglob("*") if p.is_file()]
    assert files and {p.name for p in files} >= {bk.MANIFEST, bk.SALT_FILE, "marts.dim_customer.parquet.enc"}
    for path in files:
        data = path.read_bytes()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
        assert data.startswith(bk.MAGIC), path.name
        assert b"PAR1" not in data[:64] and str(golden_id).encode() not in data and str(record).encode() not in data


def test_wrong_key_and_tampered_files_are_refused_before_anything_is_touched(snapshot: Path, tmp_path: Path):
    target = _empty(tmp_path, "target")
    other_key = {"MDM_BACKUP_KEY": "another-backup-key-fedcba9876543210"}
    with pytest.raises(bk.BackupKeyMismatch, match="written under backup key"):
        bk.restore(target, snapshot, env=other_key)
    with pytest.raises(ConfigError, match="does not exist"):
        bk.restore(target, snapshot, env={"MDM_BACKUP_KEY_FILE": str(tmp_path / "missing")})

    broken = _copy(snapshot, tmp_path)
    manifest = bytearray((broken / bk.MANIFEST).read_bytes())
    manifest[-5] ^= 0x01  # one bit of the sealed manifest
    (broken / bk.MANIFEST).write_bytes(bytes(manifest))
    with pytest.raises(bk.BackupCorrupt, match="fails authentication"):
        bk.restore(target, broken, env=KEY)

    renamed = tmp_path / "copies" / "20990101T000000Z_renamed"
    shutil.copytree(snapshot, renamed)
    with pytest.raises(bk.BackupCorrupt, match="fails authentication"):
        bk.restore(target, renamed, env=KEY)

    swapped = _copy(snapshot, tmp_path / "swap")  # a file moved between tables of the same snapshot
    shutil.copy(swapped / "mdm.pairs.parquet.enc", swapped / "marts.dim_customer.parquet.enc")
    _reseal_manifest(
        swapped,
        lambda m: m["tables"]["marts.dim_customer"].update(
            bytes=(swapped / "marts.dim_customer.parquet.enc").stat().st_size,
            sha256=bk.sha256_file(swapped / "marts.dim_customer.parquet.enc"),
        ),
    )
    with pytest.raises(bk.BackupCorrupt, match="fails authentication"):
        bk.restore(target, swapped, env=KEY)
    assert not target.warehouse_file.exists()  # not even opened


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (  # SQL in a table key
            lambda m: m["tables"].__setitem__(
                "marts.dim_customer (x int); drop table ops.runs; --",
                m["tables"]["marts.dim_customer"],
            ),
            "not one the platform backs up",
        ),
        (  # SQL in a column name
            lambda m: m["tables"]["marts.dim_customer"]["columns"][0].update(name='x" int); drop table ops.runs; --'),
            "not a plain identifier",
        ),
        (  # SQL in a column type
            lambda m: m["tables"]["marts.dim_customer"]["columns"][0].update(type="text); drop table ops.runs; --"),
            "not a portable type",
        ),
        (lambda m: m["tables"]["marts.dim_customer"].update(file="../../etc/passwd"), "the file must be"),
        (lambda m: m["tables"]["marts.dim_customer"].update(file="/etc/passwd"), "the file must be"),
        (
            lambda m: m["artifacts"].__setitem__("models/../../../outside.json.enc", {"bytes": 1, "sha256": "0" * 64}),
            "not a model file inside the snapshot",
        ),
        (
            lambda m: m["artifacts"].__setitem__("/etc/cron.d/x.json.enc", {"bytes": 1, "sha256": "0" * 64}),
            "not a model file inside the snapshot",
        ),
    ],
    ids=["table_key", "column_name", "column_type", "dotdot_file", "absolute_file", "dotdot_artifact", "abs_artifact"],
)
def test_a_hostile_manifest_is_refused(snapshot: Path, tmp_path: Path, change: Any, complaint: str):
    broken = _copy(snapshot, tmp_path)
    _reseal_manifest(broken, change)
    target = _empty(tmp_path, "target")
    with pytest.raises(bk.BackupCorrupt, match=complaint):
        bk.restore(target, broken, env=KEY)
    assert not target.warehouse_file.exists()
    assert not (tmp_path / "outside.json").exists()


def test_a_symlinked_snapshot_file_is_not_followed(snapshot: Path, tmp_path: Path):
    broken = _copy(snapshot, tmp_path)
    victim = broken / "mdm.pairs.parquet.enc"
    (tmp_path / "elsewhere").write_bytes(victim.read_bytes())
    victim.unlink()
    victim.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(bk.BackupCorrupt, match="symbolic link"):
        bk.verify(broken, SEALER)


def test_retention_goes_by_directory_name_and_deletes_only_snapshots(source: Settings, tmp_path: Path):
    main = tmp_path / "main"
    made = [bk.backup(source, main, keep=10, env=KEY) for _ in range(3)]
    # the oldest claims to be from the future: retention must not believe its manifest
    _reseal_manifest(made[0], lambda m: m.update(created_at="2999-01-01T00:00:00+00:00"))
    (main / "not_a_snapshot").mkdir()
    fake = main / "20000101T000000Z_forged"  # named like a snapshot, not written under the key
    fake.mkdir()
    (fake / bk.MANIFEST).write_bytes(b"MDMSNAP2" + b"0" * 100)
    removed = bk.prune(main, 2, SEALER)
    assert removed == [made[0]]
    assert [s.name for s in bk.list_snapshots(main, SEALER)] == [p.name for p in made[1:]]
    assert (main / "not_a_snapshot").is_dir() and fake.is_dir()


def test_restore_into_a_warehouse_with_another_salt_is_refused(
    snapshot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    target = _empty(tmp_path, "salted")
    monkeypatch.setenv("MDM_ERASURE_SALT", "the-target-warehouses-own-salt")
    with pytest.raises(bk.RestoreRefused, match="another erasure salt"):
        bk.restore(target, snapshot, env=KEY)
    with connect(target) as wh:
        assert not wh.table_exists("marts.dim_customer")


def test_restore_into_a_new_home_adopts_the_snapshots_salt(source: Settings, snapshot: Path, tmp_path: Path):
    from customer_mdm import keys
    from customer_mdm.privacy import pseudonym

    target = _empty(tmp_path, "fresh")
    result = bk.restore(target, snapshot, env=KEY)
    assert result.salt_installed
    assert keys.load(target, keys.ERASURE_SALT, create=False) == keys.load(source, keys.ERASURE_SALT, create=False)
    assert pseudonym(target, "record", "crm:C1") == pseudonym(source, "record", "crm:C1")


def test_key_rotation_reencrypts_the_retained_snapshots(source: Settings, tmp_path: Path):
    from customer_mdm.cli import main

    first = bk.backup(source, tmp_path / "b", env=KEY)
    new_key = "the-new-backup-key-000000000000000"
    env = {
        "MDM_HOME": str(source.home),
        "MDM_LANDING": str(source.landing),
        "MDM_BACKUP_DIR": str(tmp_path / "b"),
        "MDM_BACKUP_OLD_KEY": KEY["MDM_BACKUP_KEY"],
        "MDM_BACKUP_KEY": new_key,
    }
    out = CliRunner().invoke(main, ["backup", "--rotate-key"], env=env, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "1 snapshot(s) re-encrypted" in out.output
    new = bk.Sealer(new_key.encode())
    assert bk.verify(first, new)["key_id"] == new.key_id
    with pytest.raises(bk.BackupKeyMismatch):
        bk.verify(first, SEALER)
    again = CliRunner().invoke(main, ["backup", "--rotate-key"], env=env, catch_exceptions=False)
    assert "0 snapshot(s) re-encrypted, 1 already under the new key" in again.output
    restored = bk.restore(_empty(tmp_path, "rotated"), first, env={"MDM_BACKUP_KEY": new_key})
    assert restored.tables["marts.dim_customer"] > 0
