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
    assert "does not exist" in result.output and "mdm-dev generate" in result.output


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


def test_version():
    from customer_mdm import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"mdm {__version__}"


def _commands(group, path=()):
    import click

    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def test_every_option_has_help_and_numbers_are_bounded():
    import click

    assert all(p.help for p in main.params if isinstance(p, click.Option))
    for path, command in _commands(main):
        assert command.help, f"mdm {' '.join(path)} has no help"
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            assert param.help, f"mdm {' '.join(path)} {param.opts[0]} has no help"
            assert not isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType)) or isinstance(
                param.type, (click.IntRange, click.FloatRange)
            ), f"mdm {' '.join(path)} {param.opts[0]} takes an unbounded number"


def test_numbers_out_of_range_are_refused(tmp_path: Path):
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "h"), "status", "--limit", "0"], env={})
    assert result.exit_code == 2 and "--limit" in result.output and "1<=x<=100000" in result.output


def test_quarantine_before_any_run_answers_like_status(tmp_path: Path):
    home = tmp_path / "h"
    result = invoke("--home", str(home), "quarantine")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("nothing quarantined yet: no warehouse at") and "run `mdm run`" in result.output
    assert not (home / "warehouse.duckdb").exists(), "asking must not create a warehouse"
