"""Erasure holds everywhere (issue 14), on DuckDB and on a real PostgreSQL.

One small landing zone per warehouse, built once per module:

1. run 1 (governance outputs too) with a request for ``crm_id C7777777`` that matches nobody yet;
   a steward note on another pair quotes the person's phone; ``mdm privacy check`` finds the
   person; a backup is taken;
2. run 2 erases the person by ``crm_id`` while the CRM delivers C7777777 (the record the early
   request names), a header-less CRM file starting with the person's row, and the first run's
   erasure file again under a new name;
3. the raw gate as ``mdm run --full`` runs it (every batch): its row counts hold after the erasure;
4. ``mdm restore --force`` of the backup taken before the erasure: the person stays erased.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from customer_mdm import backup as bk
from customer_mdm.config import Settings
from customer_mdm.linkage.step import record_decision
from customer_mdm.pipeline import run_inline
from customer_mdm.privacy_search import Hits, check
from customer_mdm.warehouse import connect
from mdm_devtools.generate import generate_landing

pytestmark = pytest.mark.slow

PEOPLE = 40
EARLY = "C7777777"  # named by a request before any export carries it


@dataclass
class World:
    settings: Settings
    crm_id: str
    golden_id: str
    identifiers: list[tuple[str, str]]
    before: Hits
    after_erasure: Hits
    after_restore: Hits
    runs: list[dict[str, Any]] = field(default_factory=list)
    restored: Any = None
    state: dict[str, Any] = field(default_factory=dict)


def _write(path: Path, header: list[str] | None, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        if header:
            w.writerow(header)
        w.writerows(rows)


def _crm_rows(landing: Path) -> pd.DataFrame:
    frames = []
    for path in sorted((landing / "crm").glob("*.csv")):
        for enc in ("utf-8-sig", "gb18030"):
            try:
                frames.append(pd.read_csv(path, dtype=str, encoding=enc, keep_default_na=False))
                break
            except UnicodeDecodeError:
                continue
    return pd.concat(frames, ignore_index=True)


def _pick(settings: Settings) -> tuple[str, str, str, str]:
    """A CRM customer whose mobile and e-mail no other person's record carries: crm_id, golden
    id, the mobile (E.164) and the e-mail as standardised."""
    with connect(settings) as wh:
        recs = wh.query_df(
            "select r.source, r.source_id, r.phone_e164, r.phone_kind, r.email, x.golden_id "
            "from intermediate.int_customer_records as r join mdm.xref as x "
            "on x.source = r.source and x.source_id = r.source_id"
        )
    crm = recs[(recs["source"] == "crm") & (recs["phone_kind"] == "mobile") & recs["email"].notna()]
    for row in crm.sort_values("source_id").itertuples():
        others = recs[recs["golden_id"] != row.golden_id]
        if row.phone_e164 in set(others["phone_e164"]) or row.email in set(others["email"]):
            continue
        return str(row.source_id), str(row.golden_id), str(row.phone_e164), str(row.email)
    raise AssertionError("no suitable CRM customer in the generated data")


def _retention(settings: Settings) -> dict[str, Any]:
    """The retention policy at a date when the least recently updated golden ids (no order since)
    are one year old: flagged on the first pass, erased on a pass after the grace period."""
    from customer_mdm.privacy import _expired, apply_retention

    with connect(settings) as wh:
        seen = [t for (t,) in wh.query("select distinct last_updated_at_utc from marts.dim_customer order by 1")]
        expired = pd.DataFrame()
        for last in seen:
            cutoff = last + timedelta(seconds=1)
            expired = _expired(wh, cutoff)
            if not expired.empty:
                break
        kept = wh.scalar("select count(*) from marts.dim_customer") - len(expired)
    assert not expired.empty
    policy = replace(settings, retention_years=1.0, retention_grace_days=30)
    now = cutoff + timedelta(days=365.25)
    first = apply_retention(policy, "retention-1", now=now)
    off = apply_retention(settings, "retention-0", now=now + timedelta(days=40))
    second = apply_retention(policy, "retention-2", now=now + timedelta(days=31))
    with connect(settings) as wh:
        return {
            "expired": set(expired["golden_id"]),
            "first": first,
            "off": off,
            "second": second,
            "kept": kept,
            "dim": set(wh.query_df("select golden_id from marts.dim_customer")["golden_id"]),
            "requests": wh.query_df("select * from ops.erasure_requests where identifier_type = 'retention'"),
            "stones": wh.query_df("select * from ops.erasure_tombstones where request_id like 'retention-%'"),
            "audit": wh.query_df("select * from audit.golden_changes where actor like 'retention-%'"),
        }


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp(f"holds_{request.param}")
    landing = tmp / "landing"
    generate_landing(landing, PEOPLE, seed=31, days=2)
    early = landing / "erasure" / "erasure_2026-11-25.csv"
    _write(
        early,
        ["request_id", "identifier_type", "identifier_value", "requested_at"],
        [["EH-0", "crm_id", EARLY, "2026-11-25 09:00:00"]],
    )
    db_name = None
    if request.param == "postgres":
        server = request.getfixturevalue("pg_server")
        db_name = f"t_holds_{tmp.name[-12:].replace('-', '_')}"
        settings = Settings.from_env(
            env={}, home=tmp / "home", landing=landing, target="postgres", pg_dsn=server.create_database(db_name)
        )
    else:
        settings = Settings.from_env(env={}, home=tmp / "home", landing=landing)
    yield make_world(settings, tmp)
    if db_name is not None:
        request.getfixturevalue("pg_server").drop_database(db_name)


def make_world(settings: Settings, tmp: Path) -> World:
    landing = settings.landing
    first = run_inline(settings, governance=True)
    crm_id, golden_id, mobile, email = _pick(settings)
    national = mobile.removeprefix("+86")
    identifiers = [("crm_id", crm_id), ("mobile", mobile), ("email", email)]
    with connect(settings) as wh:
        left, right = wh.query(
            "select min(record_id), max(record_id) from mdm.xref where golden_id <> ? and source = 'crm'", [golden_id]
        )[0]
    # a steward's free-text note on another pair quotes the person's phone, formatted
    record_decision(
        settings, left, right, "no_match", "steward.li", f"rang {national[:3]}-{national[3:7]}-{national[7:]}"
    )
    before = check(settings, identifiers)
    snapshot = bk.backup(settings, tmp / "backups", env={})

    # run 2: the erasure by crm_id; the early request's record arrives; a header-less CRM file
    # whose first row is the person's; the first erasure file delivered again
    crm = _crm_rows(landing)
    mine = crm[crm["crm_id"] == crm_id].iloc[[0]]
    header = list(crm.columns)
    early_row = dict.fromkeys(header, "")
    early_row.update(
        crm_id=EARLY,
        name="司马晚到",
        mobile="13322224444",
        email="late.arrival@example.cn",
        created_at="2026-11-26 08:00:00",
        updated_at="2026-11-26 08:00:00",
    )
    _write(landing / "crm" / "crm_2026-11-26.csv", header, [[early_row[h] for h in header]])
    _write(landing / "crm" / "crm_2026-11-27.csv", None, mine[header].values.tolist())
    _write(
        landing / "erasure" / "erasure_2026-11-26.csv",
        ["request_id", "identifier_type", "identifier_value", "requested_at"],
        [["EH-1", "crm_id", crm_id, "2026-11-26 10:00:00"], ["EH-0", "crm_id", EARLY, "2026-11-25 09:00:00"]],
    )
    second = run_inline(settings, governance=False)
    after_erasure = check(settings, identifiers)
    with connect(settings) as wh:
        state = {
            "early_raw": wh.scalar("select count(*) from raw.crm where trim(crm_id) = ?", [EARLY]),
            "early_xref": wh.scalar("select count(*) from marts.customer_xref where source_id = ?", [EARLY]),
            "requests_in_raw": wh.scalar("select count(*) from raw.erasure"),
            "headerless": wh.query_df("select reason from ops.manifest where file_name = 'crm_2026-11-27.csv'"),
        }
    # what `mdm run --full` revalidates first: every raw batch against the manifest
    from customer_mdm.quality.gates import validate_layer

    state["raw_gate"] = validate_layer(settings, "raw", "full-raw-gate")
    restored = bk.restore(settings, snapshot, force=True, env={})
    after_restore = check(settings, identifiers)
    state["retention"] = _retention(settings)
    return World(
        settings,
        crm_id,
        golden_id,
        identifiers,
        before,
        after_erasure,
        after_restore,
        [first, second],
        restored,
        state,
    )


def test_the_check_finds_the_person_before_the_erasure(world: World) -> None:
    places = world.before.places
    for place in ("raw.crm.crm_id", "marts.customer_xref.record_id", "marts.dim_customer.email"):
        assert places.get(place, 0) >= 1, place
    assert places.get("mdm.steward_decisions.note") == 1
    assert any(p.startswith("file:") for p in places), "no report file names the person"


def test_erasure_leaves_no_trace_in_tables_or_files(world: World) -> None:
    step = world.runs[1]["steps"]["erasure"]
    assert {r["request_id"]: r["status"] for r in step["requests"]}["EH-1"] == "erased"
    assert world.after_erasure.places == {}, world.after_erasure.places


def test_a_request_before_its_record_blocks_the_record(world: World) -> None:
    first = {r["request_id"]: r["status"] for r in world.runs[0]["steps"]["erasure"]["requests"]}
    assert first["EH-0"] == "not_found"
    assert world.state["early_raw"] == 0 and world.state["early_xref"] == 0
    assert world.runs[1]["steps"]["erasure"]["tombstone_rows_deleted"].get("raw.crm", 0) >= 1
    with connect(world.settings) as wh:
        assert wh.scalar("select count(*) from marts.customer_xref where source_id = ?", [EARLY]) == 0


def test_redelivered_requests_and_headerless_files_keep_no_identifier(world: World) -> None:
    assert world.state["requests_in_raw"] == 0  # handled requests, and EH-0 delivered again
    reasons = world.state["headerless"]["reason"].tolist()
    assert reasons and all("header has" in r and world.crm_id not in r for r in reasons)


def test_full_rebuild_after_an_erasure_passes_the_raw_gate(world: World) -> None:
    gate = world.state["raw_gate"]
    assert gate.success and gate.since is None, gate.message()
    assert any(e.dataset == "manifest_row_counts" for e in gate.expectations)
    with connect(world.settings) as wh:
        erased = wh.scalar("select sum(rows_erased) from ops.manifest where feed = 'crm'")
    assert erased and erased >= 1


def test_a_manifest_count_still_catches_a_lost_row(world: World) -> None:
    from customer_mdm.quality.gates import validate_layer

    with connect(world.settings) as wh:
        wh.execute(
            "update ops.manifest set rows_loaded = rows_loaded + 1 where file_name = ("
            "select min(file_name) from ops.manifest where feed = 'crm' and status = 'ingested')"
        )
    try:
        result = validate_layer(world.settings, "raw", "lost-row-check", assets=["crm"])
        assert [f.dataset for f in result.blocking_failures] == ["manifest_row_counts"], result.message()
    finally:
        with connect(world.settings) as wh:
            wh.execute(
                "update ops.manifest set rows_loaded = rows_loaded - 1 where file_name = ("
                "select min(file_name) from ops.manifest where feed = 'crm' and status = 'ingested')"
            )


def test_restore_of_an_older_backup_keeps_the_person_erased(world: World) -> None:
    assert world.restored.tombstones_applied
    deleted = world.restored.tombstones["rows_deleted"]
    for table in ("marts.customer_xref", "marts.dim_customer", "mdm.xref"):
        assert deleted.get(table, 0) >= 1, table
    assert world.after_restore.places == {}, world.after_restore.places
    with connect(world.settings) as wh:
        for table in ("marts.dim_customer", "marts.customer_xref", "bi.dim_customer", "bi.customer_xref"):
            assert wh.scalar(f"select count(*) from {table} where golden_id = ?", [world.golden_id]) == 0, table
        assert wh.scalar("select count(*) from mdm.xref where source_id = ?", [world.crm_id]) == 0


def test_privacy_check_cli(world: World) -> None:
    from customer_mdm.cli import main

    env = {
        "MDM_HOME": str(world.settings.home),
        "MDM_TARGET": world.settings.target,
        "MDM_PG_DSN": world.settings.pg_dsn or "",
    }
    args = ["privacy", "check", *(f"{t}={v}" for t, v in world.identifiers)]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    assert "0 hit(s)" in result.output
    with connect(world.settings) as wh:  # someone still there: found, exit code 1, value not printed
        crm_id = wh.scalar("select min(source_id) from marts.customer_xref where source = 'crm'")
    result = CliRunner().invoke(main, ["privacy", "check", f"crm_id={crm_id}"], env=env)
    assert result.exit_code == 1 and "marts.customer_xref.record_id" in result.output
    assert crm_id not in result.output
    result = CliRunner().invoke(main, ["privacy", "check", "passport=E123"], env=env)
    assert result.exit_code != 0 and "unknown identifier type" in result.output


def test_retention_flags_then_erases_with_tombstones_and_audit(world: World) -> None:
    r = world.state["retention"]
    assert world.runs[1]["steps"]["erasure"]["retention"] == {"enabled": False}  # off by default
    assert r["off"] == {"enabled": False}
    assert r["first"]["flagged"] == len(r["expired"]) and r["first"]["erased"] == 0
    assert r["second"]["erased"] == len(r["expired"])
    assert not r["expired"] & r["dim"]  # erased from the golden table
    requests = r["requests"]
    assert set(requests["request_id"]) == {f"retention-{g}" for g in r["expired"]}
    assert set(requests["status"]) == {"erased"}
    assert set(r["stones"]["request_id"]) == set(requests["request_id"])
    assert "request" in set(r["stones"]["identifier_kind"])  # the first record (others as record, phone, email)
    assert len(r["stones"]) >= len(requests)
    # the audit rows keep who/when/what; the erased ids themselves are pseudonymised (forget_golden_ids)
    from customer_mdm.privacy import pseudonym

    aliases = {pseudonym(world.settings, "golden_id", g) for g in r["expired"]}
    assert set(r["audit"]["golden_id"]) >= aliases and set(r["audit"]["action"]) == {"erasure"}
    assert not set(r["audit"]["golden_id"]) & r["expired"]
