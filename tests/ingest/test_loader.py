"""Idempotent, crash-safe ingestion into the raw schema, on DuckDB and on a real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from customer_mdm.config import Settings
from customer_mdm.errors import LandingZoneError
from customer_mdm.ingest import ingest_all, ingest_feed
from customer_mdm.ingest.loader import FeedIngestor
from customer_mdm.schema import ensure_schema
from customer_mdm.warehouse import connect

HEADER = "crm_id,name,mobile,email,updated_at"


def write(settings: Settings, rel: str, content: str | bytes) -> Path:
    path = settings.landing / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


def crm_rows(*ids: str) -> str:
    return HEADER + "\n" + "".join(f"{i},王伟,13812345678,a@qq.com,2026-11-20 13:05:00\n" for i in ids)


def counts(settings: Settings, table: str = "raw.crm") -> int:
    with connect(settings) as wh:
        return int(wh.scalar(f"select count(*) from {table}"))


def manifest(settings: Settings) -> list[tuple]:
    with connect(settings) as wh:
        return wh.query(
            "select file_path, status, rows_loaded, rows_quarantined from ops.manifest order by file_path, recorded_at"
        )


def test_every_feed_lands_with_lineage(settings: Settings):
    write(settings, "crm/crm_2026-11-20.csv", crm_rows("C1", "C2"))
    write(settings, "ecommerce/members_20261120T0300.jsonl", '{"member_id": "M1", "phone": "138"}\n')
    write(
        settings,
        "ecommerce/orders_2026-11-20.csv",
        "order_id,member_id,order_ts,amount_cny,status\nO1,M1,2026-11-20T10:00:00+08:00,-5.5,refunded\n",
    )
    write(
        settings,
        "callcenter/tickets_2026-11-20.csv",
        "ticket_id,caller_name,caller_phone,callback_email,city,created_at,channel\nT1,王玮,13812345678,,上海,2026-11-20 10:00:00,phone\n",
    )
    write(
        settings,
        "store_pos/cards_2026-11-20.csv",
        "card_no,name,phone,birthday,store_city,enrolled_at\nK1,李娜,13812345678,03-07,北京,2026-01-01 10:00:00\n",
    )
    write(
        settings,
        "self_service/changes_20261120.jsonl",
        '{"event_id":"E1","source_system":"crm","source_id":"C1","field":"email","new_value":"b@qq.com","submitted_at":"2026-11-20T10:00:00+08:00"}\n',
    )
    write(
        settings,
        "contact_events/events_2026-11-20.csv",
        "channel,value,event,occurred_at\nemail,a@qq.com,bounced,2026-11-20 10:00:00\n",
    )
    write(
        settings,
        "erasure/erasure_2026-11-20.csv",
        "request_id,identifier_type,identifier_value,requested_at\nR1,crm_id,C2,2026-11-20 10:00:00\n",
    )
    results = {r.feed: r for r in ingest_all(settings, "run-1")}
    assert {name: r.rows_loaded for name, r in results.items()} == {
        "crm": 2,
        "ecommerce_members": 1,
        "ecommerce_orders": 1,
        "callcenter": 1,
        "store_pos": 1,
        "self_service": 1,
        "contact_events": 1,
        "erasure": 1,
    }
    with connect(settings) as wh:
        rows = wh.query(
            "select crm_id, _source_file, _batch_id, _row_number, _ingested_at from raw.crm order by crm_id"
        )
    assert [r[0] for r in rows] == ["C1", "C2"]
    assert rows[0][1] == "crm/crm_2026-11-20.csv"
    assert rows[0][2].startswith("crm:crm_2026-11-20.csv:")
    assert [r[3] for r in rows] == [1, 2]
    assert rows[0][4] is not None


def test_rerun_skips_ingested_files_and_new_files_load(settings: Settings):
    write(settings, "crm/crm_2026-11-20.csv", crm_rows("C1", "C2"))
    ingest_all(settings, "run-1")
    again = {r.feed: r for r in ingest_all(settings, "run-2")}
    assert again["crm"].count("skipped") == 1 and again["crm"].rows_loaded == 0
    assert counts(settings) == 2
    write(settings, "crm/crm_2026-11-21.csv", crm_rows("C3"))
    third = {r.feed: r for r in ingest_all(settings, "run-3")}
    assert third["crm"].count("ingested") == 1 and third["crm"].count("skipped") == 1
    assert counts(settings) == 3


def test_changed_file_is_flagged_not_duplicated(settings: Settings):
    path = write(settings, "crm/crm_2026-11-20.csv", crm_rows("C1"))
    ingest_all(settings, "run-1")
    path.write_text(crm_rows("C1", "C2"))
    result = ingest_feed(settings, "crm", "run-2")
    assert result.count("changed") == 1
    assert counts(settings) == 1
    assert manifest(settings) == [
        ("crm/crm_2026-11-20.csv", "ingested", 1, 0),
        ("crm/crm_2026-11-20.csv", "changed", 0, 0),
    ]
    with connect(settings) as wh:
        reasons = wh.query("select reason, kept_at from ops.quarantine where kind = 'file'")
    assert "changed after it was ingested" in reasons[0][0]
    assert Path(reasons[0][1]).read_text() == crm_rows("C1", "C2")
    # flagged once: a third run does not flag it again
    assert ingest_feed(settings, "crm", "run-3").count("skipped") == 1


def test_bad_files_quarantined_rest_of_run_goes_on(settings: Settings):
    write(settings, "crm/crm_2026-11-19.csv", b"")
    write(settings, "crm/crm_2026-11-20.csv", "crm_id,name\nC1,王伟\n")
    write(settings, "crm/crm_2026-11-21.csv", crm_rows("C1", "C2") + "C3,王伟,138")
    write(settings, "crm/readme.txt", "not data")
    write(settings, "crm/crm_2026-11-22.csv.part", "half written")
    write(settings, "ecommerce/orders_2026-11-20.parquet", b"PAR1 broken")
    write(settings, "ecommerce/members_1.jsonl", '{"member_id": "M1"}\n')
    results = {r.feed: r for r in ingest_all(settings, "run-1")}
    crm = results["crm"]
    assert crm.count("quarantined") == 3 and crm.count("ingested") == 1
    assert crm.rows_loaded == 2 and crm.rows_quarantined == 1
    assert results["ecommerce_orders"].count("quarantined") == 1
    assert results["ecommerce_members"].rows_loaded == 1
    with connect(settings) as wh:
        q = wh.query(
            "select source_file, kind, row_number, reason, kept_at from ops.quarantine order by source_file, row_number"
        )
    by_file = {row[0]: row for row in q}
    assert "empty file" in by_file["crm/crm_2026-11-19.csv"][3]
    assert "missing required column" in by_file["crm/crm_2026-11-20.csv"][3]
    assert by_file["crm/crm_2026-11-21.csv"][1:3] == ("row", 3)
    assert "matches no feed" in by_file["crm/readme.txt"][3]
    assert "unreadable Parquet" in by_file["ecommerce/orders_2026-11-20.parquet"][3]
    assert "crm/crm_2026-11-22.csv.part" not in by_file  # in-flight file: left alone
    for row in q:
        if row[1] == "file":
            assert Path(row[4]).exists(), "a quarantined file is kept"
    # nothing is retried once quarantined unless the file changes
    assert all(r.count("quarantined") == 0 for r in ingest_all(settings, "run-2"))


def test_fixed_quarantined_file_is_tried_again(settings: Settings):
    path = write(settings, "crm/crm_2026-11-20.csv", "crm_id,name\nC1,王伟\n")
    ingest_all(settings, "run-1")
    path.write_text(crm_rows("C1"))
    result = ingest_feed(settings, "crm", "run-2")
    assert result.count("ingested") == 1
    assert counts(settings) == 1


def test_crash_mid_file_loses_and_duplicates_nothing(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    write(settings, "crm/crm_2026-11-20.csv", crm_rows("C1", "C2"))
    write(settings, "crm/crm_2026-11-21.csv", crm_rows("C3"))
    with connect(settings) as wh:
        ensure_schema(wh)
    original = FeedIngestor._record
    calls = {"n": 0}

    def crash_on_second_file(self: FeedIngestor, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # rows of the second file are already inserted in the transaction
            raise KeyboardInterrupt("simulated crash")
        original(self, *args, **kwargs)

    monkeypatch.setattr(FeedIngestor, "_record", crash_on_second_file)
    with pytest.raises(KeyboardInterrupt):
        ingest_feed(settings, "crm", "run-1")
    monkeypatch.setattr(FeedIngestor, "_record", original)
    assert counts(settings) == 2  # first file committed, second rolled back
    result = ingest_feed(settings, "crm", "run-2")
    assert (result.count("skipped"), result.count("ingested")) == (1, 1)
    with connect(settings) as wh:
        ids = [r[0] for r in wh.query("select crm_id from raw.crm order by crm_id")]
    assert ids == ["C1", "C2", "C3"]


def test_missing_landing_zone_is_a_clear_error(tmp_path: Path):
    settings = Settings.from_env(env={}, home=tmp_path / "home", landing=tmp_path / "nowhere")
    with pytest.raises(LandingZoneError, match="does not exist"):
        ingest_all(settings, "run-1")


def test_run_summary_lists_feed_results(settings: Settings):
    write(settings, "crm/crm_2026-11-20.csv", crm_rows("C1") + "C2,x\n")
    with connect(settings) as wh:
        ensure_schema(wh)
        result = ingest_feed(settings, "crm", "run-1", wh)
    d = result.to_dict()
    assert (d["files_ingested"], d["rows_loaded"], d["rows_quarantined"]) == (1, 1, 1)
    json.dumps(d)  # serialisable for XCom and ops.run_steps
