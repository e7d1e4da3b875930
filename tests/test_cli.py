"""The command line's clear errors and its non-Airflow commands."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from customer_mdm.cli import main


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)


def test_missing_landing_dir_is_a_clear_error(tmp_path: Path):
    result = invoke("--home", str(tmp_path / "h"), "run", "--landing", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "does not exist" in result.output and "mdm generate" in result.output


def test_unknown_target_is_a_clear_error(tmp_path: Path):
    (tmp_path / "landing").mkdir()
    result = invoke("--home", str(tmp_path / "h"), "--target", "oracle", "run", "--landing", str(tmp_path / "landing"))
    assert result.exit_code == 2
    assert "unknown warehouse target 'oracle'" in result.output


def test_postgres_without_dsn_is_a_clear_error(tmp_path: Path):
    (tmp_path / "landing").mkdir()
    result = invoke("--home", str(tmp_path / "h"), "--target", "postgres", "status")
    assert result.exit_code == 2
    assert "MDM_PG_DSN" in result.output


def test_unreachable_postgres_is_a_clear_error(tmp_path: Path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "landing").mkdir()
    result = invoke(
        "--home",
        str(tmp_path / "h"),
        "--target",
        "postgres",
        "run",
        "--landing",
        str(tmp_path / "landing"),
        env={"MDM_PG_DSN": f"postgresql://mdm:secret@127.0.0.1:{port}/mdm"},
    )
    assert result.exit_code == 2
    assert "cannot reach PostgreSQL" in result.output
    assert "secret" not in result.output  # the password is never echoed


def test_status_before_any_run(tmp_path: Path):
    result = invoke("--home", str(tmp_path / "h"), "status")
    assert result.exit_code == 0
    assert "no runs yet" in result.output


def test_ingest_and_quarantine_commands(tmp_path: Path):
    landing = tmp_path / "landing"
    (landing / "crm").mkdir(parents=True)
    (landing / "crm" / "crm_2026-11-20.csv").write_text(
        "crm_id,name,mobile,email,updated_at\nC1,王伟,138,a@b.c,x\n,no id,1,2,3\n"
    )
    (landing / "crm" / "crm_2026-11-21.csv").write_text("")
    env = {"MDM_LANDING": str(landing)}
    result = invoke("--home", str(tmp_path / "h"), "ingest", env=env)
    assert result.exit_code == 0, result.output
    assert "crm                files new=1 skipped=0 quarantined=1 rows=1 rows quarantined=1" in result.output
    listing = invoke("--home", str(tmp_path / "h"), "quarantine", env=env)
    assert "crm/crm_2026-11-21.csv: empty file" in listing.output
    assert "crm/crm_2026-11-20.csv row 2: empty crm_id" in listing.output
