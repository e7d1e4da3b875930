"""A source that is down (folder missing or unreadable, a file that cannot be read) or a corrupt
file never takes the other sources down; what could not be read is tried again next run.

Unreadable means an OSError from the file system. Tests run as root on CI, where permission bits
do not stop reads, so there the error is injected at the file-system call (PermissionError for
that one path); as another user the real ``chmod 000`` is used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from customer_mdm.config import Settings
from customer_mdm.ingest import ingest_all
from customer_mdm.pipeline import ingest_steps, start_run
from customer_mdm.sources import FEEDS
from customer_mdm.warehouse import connect

CRM = "crm_id,name,mobile,email,updated_at\nC1,王伟,13812345678,a@qq.com,2026-11-20 13:05:00\n"
CARDS = "card_no,name,phone\nS1,李娜,13900000000\n"
MEMBERS = '{"member_id": "M1", "nickname": "wangwei88"}\n'


def _write(settings: Settings, rel: str, content: str | bytes) -> Path:
    path = settings.landing / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _make_unreadable(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        path.chmod(0)
        return
    denied = PermissionError(13, "Permission denied", str(path))
    if path.is_dir():
        real_iterdir = Path.iterdir

        def iterdir(self: Path) -> Iterator[Path]:
            if self == path:
                raise denied
            return real_iterdir(self)

        monkeypatch.setattr(Path, "iterdir", iterdir)
    else:
        real_open = os.open

        def open_(file: object, flags: int, *args: object, **kwargs: object) -> int:
            if Path(str(file)) == path:
                raise denied
            return real_open(file, flags, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "open", open_)  # the loader opens landing files with os.open (O_NOFOLLOW)


def _restore(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    if os.geteuid() != 0:
        path.chmod(0o755 if path.is_dir() else 0o644)


def _raw_counts(settings: Settings) -> dict[str, int]:
    with connect(settings) as wh:
        return {f.name: int(wh.scalar(f"select count(*) from {f.raw_table}")) for f in FEEDS}


def test_an_unreadable_source_folder_fails_its_step_only(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    folder = _write(settings, "crm/crm_2026-11-20.csv", CRM).parent
    _write(settings, "store_pos/cards_2026-11-20.csv", CARDS)
    _write(settings, "ecommerce/members_2026-11-20.jsonl", MEMBERS)
    _write(settings, "callcenter/tickets_2026-11-20.csv", b"\x00\x01PK\x03\x04 not a csv" * 20)  # corrupt
    start_run(settings, "run-1")
    _make_unreadable(folder, monkeypatch)
    failed = ingest_steps(settings, "run-1")
    _restore(folder, monkeypatch)

    assert list(failed) == ["crm"] and "cannot read the crm folder" in failed["crm"]
    counts = _raw_counts(settings)
    assert counts["crm"] == 0 and counts["store_pos"] == 1 and counts["ecommerce_members"] == 1
    with connect(settings) as wh:
        steps = dict(wh.query("select step, status from ops.run_steps where run_id = 'run-1'"))
        reason = wh.scalar("select reason from ops.quarantine where source_file like 'callcenter/%'")
    assert steps["ingest_crm"] == "failed"
    assert all(steps[f"ingest_{f.name}"] == "success" for f in FEEDS if f.name != "crm")
    assert "NUL bytes" in reason  # the corrupt file is quarantined, its feed's step still succeeds

    start_run(settings, "run-2")  # the folder is back: its files are loaded, nothing twice
    assert ingest_steps(settings, "run-2") == {}
    assert _raw_counts(settings) == {**counts, "crm": 1}


def test_missing_source_folders_are_noted_not_errors(duckdb_settings: Settings):
    _write(duckdb_settings, "store_pos/cards_2026-11-20.csv", CARDS)
    results = {r.feed: r for r in ingest_all(duckdb_settings, "run-1")}
    assert results["store_pos"].rows_loaded == 1
    assert "nothing delivered" in results["crm"].notes[0]


def test_an_unreadable_file_is_quarantined_and_tried_again(duckdb_settings: Settings, monkeypatch: pytest.MonkeyPatch):
    settings = duckdb_settings
    bad = _write(settings, "crm/crm_2026-11-20.csv", CRM)
    _write(settings, "crm/crm_2026-11-21.csv", CRM.replace("C1", "C2"))
    _make_unreadable(bad, monkeypatch)
    first = {r.feed: r for r in ingest_all(settings, "run-1")}["crm"]
    _restore(bad, monkeypatch)
    assert first.count("ingested") == 1 and first.count("quarantined") == 1
    with connect(settings) as wh:
        reason = wh.scalar("select reason from ops.quarantine where source_file = 'crm/crm_2026-11-20.csv'")
        assert "cannot read the file" in reason and "tried again" in reason
        assert wh.scalar("select count(*) from ops.manifest where file_name = 'crm_2026-11-20.csv'") == 0

    second = {r.feed: r for r in ingest_all(settings, "run-2")}["crm"]
    assert second.count("ingested") == 1 and second.count("skipped") == 1
    assert _raw_counts(settings)["crm"] == 2
    assert json.dumps(second.to_dict())  # the step details stay serialisable
