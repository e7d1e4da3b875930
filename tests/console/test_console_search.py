"""Customer search by key (``serving.console_search``): a name's prefix, the pinyin, a phone's
tail and the e-mail find the customer with one lookup each, on DuckDB and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from customer_mdm.config import Settings
from customer_mdm.console.routes import _search
from customer_mdm.console.tables import CONSOLE_TABLES, NAME_PREFIX_MAX
from customer_mdm.hub import serving
from customer_mdm.warehouse import connect

LONG_NAME = "Alexandra Konstantinopoulou"  # longer than NAME_PREFIX_MAX
#: golden_id, name, name_pinyin, phone, email (made-up values)
CUSTOMERS = [
    ("G000000000001", "王小明", "wangxiaoming", "+8613800138000", "xm.wang@example.com"),
    ("G000000000002", "王小红", "wangxiaohong", "+8613911112222", None),
    ("G000000000003", "李雷", "lilei", None, "lilei@example.org"),
    ("G000000000004", LONG_NAME, None, "+8618612345678", None),
    ("G000000000005", "Alexandra Konstantin", None, None, None),
]


def build_serving(settings: Settings, customers: list[tuple[Any, ...]] = CUSTOMERS) -> serving.ServingReader:
    """A serving layer of ``customers`` only (golden_customer, console_search, their source
    records and one review pair) written the way a publication writes it: a snapshot file on
    DuckDB, schema ``serving`` of the warehouse on PostgreSQL."""
    with connect(settings) as wh:
        wh.execute("drop schema if exists serving cascade")
        wh.execute("create schema serving")
        wh.execute(
            "create table serving.golden_customer (golden_id text, name text, name_pinyin text, phone text, "
            "email text, province text, city text, tier text, source_record_count bigint, phone_status text, "
            "email_status text, consent_marketing boolean, consent_marketing_source text, "
            "consent_marketing_at timestamp)"
        )
        wh.execute(
            "create table serving.source_records (golden_id text, source text, source_id text, name_std text, "
            "phone_e164 text, email text)"
        )
        for k, row in enumerate(customers):
            wh.execute(
                "insert into serving.golden_customer values "
                "(?, ?, ?, ?, ?, null, null, 'regular', 2, null, null, null, null, null)",
                list(row),
            )
            for source in ("crm", "callcenter"):
                wh.execute(
                    "insert into serving.source_records values (?, ?, ?, ?, ?, ?)",
                    [row[0], source, f"S{k:05d}", row[1], row[3], row[4]],
                )
        wh.execute(f"create table serving.console_search as {CONSOLE_TABLES['console_search']}")
        wh.execute(
            "create table serving.console_review as select 'crm:S00000' as record_id_l, "
            "'callcenter:S00001' as record_id_r, 0.5 as match_probability, 0.1 as match_weight, "
            f"'{customers[0][0]}' as golden_id, '{customers[1][0]}' as other_golden_id, "
            "1 as consequence_rank"
        )
        names = ["golden_customer", "source_records", "console_search", "console_review"]
        if settings.target == "duckdb":  # the server reads a snapshot file, never the warehouse
            snapshot = serving._write_snapshot(settings, wh, "search", names)
            wh.execute("drop schema serving cascade")
    if settings.target == "duckdb":
        serving._point_to(settings, snapshot)
    return serving.ServingReader(settings)


@pytest.fixture
def reader(settings: Settings) -> serving.ServingReader:
    assert len(LONG_NAME) > NAME_PREFIX_MAX
    return build_serving(settings)


#: query -> the golden ids found
CASES = [
    ("王小明", ["G000000000001"]),  # the whole name
    ("王小", ["G000000000001", "G000000000002"]),  # a prefix
    ("王", ["G000000000001", "G000000000002"]),
    ("WangXiaoHong", ["G000000000002"]),  # the pinyin, any case
    ("wangxiao", []),  # pinyin matches whole, not as a prefix
    ("13800138000", ["G000000000001"]),  # the national number
    ("+86 139 1111 2222", ["G000000000002"]),  # with the country code and spaces
    ("1234 5678", ["G000000000004"]),  # the phone's last 8 digits
    ("XM.Wang@Example.com", ["G000000000001"]),  # the e-mail, any case
    (LONG_NAME, ["G000000000004"]),  # longer than the keys: the name itself decides
    (LONG_NAME[: NAME_PREFIX_MAX + 3], ["G000000000004", "G000000000005"]),
    ("Alexandra Konstantino", ["G000000000004"]),
    ("G000000000003", ["G000000000003"]),  # a golden id
    ("赵", []),
    ("nobody@example.com", []),
]


def test_search_by_key(reader: serving.ServingReader) -> None:
    for k, (query, expected) in enumerate(CASES):
        assert [r["golden_id"] for r in _search(reader, query)] == expected, f"case {k}"


def test_erasure_scrubs_the_search_keys_and_keeps_the_snapshot_indexes(tmp_path: Path) -> None:
    import duckdb

    settings = Settings.from_env(env={}, home=tmp_path / "home", landing=tmp_path / "landing", target="duckdb")
    settings.home.mkdir(parents=True)
    reader = build_serving(settings)
    erased = CUSTOMERS[0][0]
    assert [r["golden_id"] for r in _search(reader, "13800138000")] == [erased]
    removed = serving.scrub(settings, [erased])
    assert removed["console_search"] > 0 and removed["source_records"] == 2
    assert _search(reader, "13800138000") == [] and _search(reader, "xm.wang@example.com") == []
    assert [r["golden_id"] for r in _search(reader, "王")] == ["G000000000002"]
    snapshot = serving.current_snapshot(settings)
    assert snapshot is not None
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        indexed = {r[0] for r in con.execute("select table_name from duckdb_indexes()").fetchall()}
    finally:
        con.close()
    assert {"golden_customer", "source_records"} <= indexed
