"""The dbt staging layer, built for real on DuckDB and on PostgreSQL from dirty hand-made raw rows.

Each target is built once per module (``dbt build``: the staging tables + every data test, including
``tests/assert_cross_db_macros.sql`` which pins the cross-database macros on that target).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest
from staging_data import BuiltWarehouse, dirty_raw_rows

from customer_mdm.config import Settings
from customer_mdm.dbt import run_dbt
from customer_mdm.sources import FEEDS

#: feed -> its staging model, as the plan declares them
MODELS = {f.name: f.staging_model for f in FEEDS}
SOURCE_LITERAL = {
    "crm": "crm",
    "ecommerce_members": "ecommerce",
    "ecommerce_orders": "ecommerce",
    "callcenter": "callcenter",
    "store_pos": "store_pos",
    "self_service": "self_service",
    "contact_events": "contact_events",
    "erasure": "erasure",
}
LINEAGE = ("_source_file", "_batch_id", "_row_number", "_ingested_at")


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def only(rows: list[dict]) -> dict:
    assert len(rows) == 1, rows
    return rows[0]


# --------------------------------------------------------------------------- the build itself
def test_every_feed_has_a_staging_model() -> None:
    staging = Settings.from_env(env={}).dbt_project_dir / "models" / "staging"
    for f in FEEDS:
        assert (staging / f"{f.staging_model}.sql").is_file(), f.name


def test_build_passes_and_dirty_vocabularies_only_warn(duckdb_staging: BuiltWarehouse) -> None:
    result = duckdb_staging.build
    assert result.success, result.failures
    assert result.counts.get("success") == len(MODELS)  # the staging tables (incremental models)
    assert not {"error", "fail", "runtime error", "skipped"} & set(result.counts)
    # 'shipped' status, 'fax' channel, 'Phone' field, 'sms' channel: warnings, not failures
    assert result.counts.get("warn", 0) >= 4


def test_rows_and_lineage_are_kept(duckdb_staging: BuiltWarehouse) -> None:
    raw = dirty_raw_rows()
    for feed_name, model in MODELS.items():
        rows = duckdb_staging.rows(model)
        assert len(rows) == len(raw[feed_name]), model
        expected = sorted(tuple(r[c] for c in LINEAGE) for r in raw[feed_name])
        assert sorted(tuple(r[c] for c in LINEAGE) for r in rows) == expected, model
        for row in rows:
            assert row["source"] == SOURCE_LITERAL[feed_name]
            assert row["record_key"] == f"{row['source']}:{row['_batch_id']}:{row['_row_number']}"
            assert "_extra" not in row


def test_text_is_cleaned_not_standardised(duckdb_staging: BuiltWarehouse) -> None:
    c001 = duckdb_staging.by_id("stg_crm__customers")["C001"]  # raw id was ' C001 '
    first = next(r for r in c001 if r["_source_file"].endswith("11-19.csv"))
    assert first["name_raw"] == "王 伟"  # full-width space -> space, trimmed
    assert first["email_raw"] == "Wang.Wei@QQ.con"  # trimmed, case and typo kept for later layers
    assert first["phone_raw"] == "+86 138 1234 5678"
    assert first["birth_date_raw"] == "1990/3/7"
    assert first["province_raw"] == "沪"
    c004 = only(duckdb_staging.by_id("stg_crm__customers")["C004"])
    assert c004["name_raw"] is None and c004["email_raw"] is None  # blank / U+3000 only -> NULL
    assert c004["updated_at_raw"] is None and c004["created_at_raw"] is None
    ticket = only(duckdb_staging.by_id("stg_callcenter__tickets")["T1"])
    assert ticket["phone_raw"] == "１３８１２３４５６７８"  # full-width digits are for the intermediate layer
    assert ticket["channel"] == "wechat"  # vocabulary codes are lower-cased


def test_local_times_are_typed_and_shifted_to_utc(duckdb_staging: BuiltWarehouse) -> None:
    latest = duckdb_staging.by_id("stg_crm__customers", latest_only=True)
    c001 = only(latest["C001"])
    assert c001["updated_at_local"] == ts("2026-11-20 13:05:00")
    assert c001["updated_at_utc"] == ts("2026-11-20 05:05:00")  # Asia/Shanghai = UTC+8
    assert c001["created_at_utc"] == ts("2026-01-05 01:00:00")
    c003 = only(latest["C003"])
    assert c003["updated_at_local"] == ts("2026-03-07 09:05:00")  # '2026/3/7 9:05'
    c005 = only(latest["C005"])
    assert c005["created_at_local"] == ts("2026-11-20 13:05:00")  # 'T' separator
    c006 = only(latest["C006"])
    assert c006["created_at_utc"] == ts("2024-02-29 15:59:59")  # a real leap day
    store = duckdb_staging.by_id("stg_store_pos__cards")
    assert only(store["S1"])["enrolled_at_utc"] == ts("2025-06-01 02:00:00")
    assert only(store["S1"])["birth_date_raw"] == "03-07"


def test_bad_timestamps_become_null_not_errors(duckdb_staging: BuiltWarehouse) -> None:
    crm = duckdb_staging.by_id("stg_crm__customers")
    first_c002 = next(r for r in crm["C002"] if not r["is_latest"])
    assert first_c002["updated_at_raw"] == "yesterday" and first_c002["updated_at_local"] is None
    assert first_c002["created_at_raw"] == "2026-02-30 10:00:00" and first_c002["created_at_local"] is None
    assert only(crm["C005"])["updated_at_local"] is None  # 2026-13-45 99:00:00
    assert only(crm["C006"])["updated_at_utc"] is None  # hour 24
    assert only(duckdb_staging.by_id("stg_callcenter__tickets")["T2"])["created_at_utc"] is None
    assert only(duckdb_staging.by_id("stg_store_pos__cards")["S2"])["enrolled_at_local"] is None  # 20250601
    members = duckdb_staging.by_id("stg_ecommerce__members")
    assert only(members["M006"])["registered_at_utc"] is None  # 2026-02-29 does not exist
    assert only(members["M006"])["last_login_at_utc"] is None
    assert only(members["M002"])["last_login_at_utc"] is None  # not-a-number
    orders = duckdb_staging.by_id("stg_ecommerce__orders")
    assert only(orders["O4"])["ordered_at_utc"] is None


def test_iso8601_offsets_and_epoch_milliseconds_to_utc(duckdb_staging: BuiltWarehouse) -> None:
    members = duckdb_staging.by_id("stg_ecommerce__members", latest_only=True)
    assert only(members["M001"])["registered_at_utc"] == ts("2026-11-20 05:05:00")  # +08:00
    assert only(members["M002"])["registered_at_utc"] == ts("2026-11-20 05:05:00")  # Z
    assert only(members["M003"])["registered_at_utc"] == ts("2026-11-20 05:30:00")  # -05:00
    assert only(members["M004"])["registered_at_utc"] == ts("2026-11-20 05:05:00")  # no offset: +08:00
    m005 = only(members["M005"])
    assert m005["registered_at_utc"] == ts("2026-11-20 07:35:00.123456")  # +0530, nanoseconds cut
    assert m005["last_login_at_utc"] == ts("2026-11-20 05:05:00")  # an ISO value where epoch ms was due
    assert only(members["M001"])["last_login_at_utc"] == ts("2025-11-21 01:53:20")  # 1763690000000
    all_members = duckdb_staging.by_id("stg_ecommerce__members")
    old_m001 = next(r for r in all_members["M001"] if not r["is_latest"])
    assert old_m001["last_login_at_utc"] == ts("2025-11-20 00:53:20.123")  # 1763600000123
    assert only(members["M004"])["last_login_at_utc"] == ts("2025-11-20 00:53:20.123")  # '....123.0'
    orders = duckdb_staging.by_id("stg_ecommerce__orders", latest_only=True)
    assert only(orders["O2"])["ordered_at_utc"] == ts("2026-11-21 01:00:00")
    assert only(orders["O3"])["ordered_at_utc"] == ts("2026-11-19 16:00:00")  # a bare date, local midnight
    changes = duckdb_staging.by_id("stg_self_service__changes")
    assert only(changes["E1"])["submitted_at_utc"] == ts("2026-11-20 05:05:00")
    assert only(changes["E2"])["submitted_at_utc"] == ts("2026-11-20 05:05:00")  # local, no offset
    assert only(changes["E3"])["submitted_at_utc"] == ts("2025-11-20 00:53:20.123")  # epoch ms
    erasure = duckdb_staging.by_id("stg_erasure__requests")
    assert only(erasure["R1"])["requested_at_utc"] == ts("2026-11-20 05:05:00")
    assert only(erasure["R2"])["requested_at_utc"] == ts("2026-11-20 05:05:00")


def test_amounts_are_numeric_18_2(duckdb_staging: BuiltWarehouse) -> None:
    orders = duckdb_staging.by_id("stg_ecommerce__orders")
    amount = {k: [r["amount_cny"] for r in v] for k, v in orders.items()}
    assert sorted(amount["O1"]) == [Decimal("-199.90"), Decimal("199.90")]
    assert amount["O2"] == [Decimal("-99.50")]  # refunds are negative
    assert amount["O3"] == [Decimal("12.35")]  # rounded half away from zero
    assert amount["O7"] == [Decimal("-0.01")]
    assert amount["O6"] == [Decimal("0.50")]  # '+.5'
    assert amount["O4"] == [None] and amount["O5"] == [None]  # 'abc', '1,234.00'
    assert only(orders["O5"])["amount_cny_raw"] == "1,234.00"
    assert all(isinstance(a, Decimal) for values in amount.values() for a in values if a is not None)
    assert only(orders["O2"])["status"] == "refunded"  # ' REFUNDED '


def test_is_latest_picks_the_current_version(duckdb_staging: BuiltWarehouse) -> None:
    for model in MODELS.values():
        key = "event_key" if model == "stg_contact_events__events" else "source_id"
        counts: dict[str, int] = {}
        for row in duckdb_staging.rows(model):
            counts.setdefault(row[key], 0)
            counts[row[key]] += bool(row["is_latest"])
        assert set(counts.values()) == {1}, model
    latest = duckdb_staging.by_id("stg_crm__customers", latest_only=True)
    assert only(latest["C001"])["name_raw"] == "王伟"  # the newer updated_at
    assert only(latest["C002"])["_source_file"] == "crm/crm_2026-11-20.csv"  # unparseable time loses
    assert only(latest["C003"])["_source_file"] == "crm/crm_2026-11-20.csv"  # tie: later ingestion
    members = duckdb_staging.by_id("stg_ecommerce__members", latest_only=True)
    assert only(members["M001"])["name_raw"] == "王伟"  # the export with the later login
    orders = duckdb_staging.by_id("stg_ecommerce__orders", latest_only=True)
    assert only(orders["O1"])["status"] == "refunded"  # same order time: later batch
    events = duckdb_staging.rows("stg_contact_events__events")
    bounced = [r for r in events if r["event"] == "bounced"]
    assert len(bounced) == 2 and sum(r["is_latest"] for r in bounced) == 1  # re-exported event
    assert len({r["source_id"] for r in events}) == len(events)  # lineage key
    assert only([r for r in bounced if r["is_latest"]])["_source_file"] == "contact_events/events_2026-11-20.csv"


def test_vocabularies_are_lower_cased_and_dirty_codes_kept(duckdb_staging: BuiltWarehouse) -> None:
    changes = duckdb_staging.by_id("stg_self_service__changes")
    e3 = only(changes["E3"])
    assert (e3["source_system"], e3["source_record_id"], e3["field"]) == ("crm", "C002", "phone")
    assert only(changes["E2"])["new_value_raw"] == "ww@163.com"
    erasure = duckdb_staging.by_id("stg_erasure__requests")
    assert only(erasure["R2"])["identifier_type"] == "card_no"
    channels = {r["channel"] for r in duckdb_staging.rows("stg_contact_events__events")}
    assert channels == {"email", "phone", "sms"}  # 'sms' stays visible (and warns)


def test_source_freshness_warns_on_stale_feeds(duckdb_staging: BuiltWarehouse) -> None:
    """Past warn_after warns; erasure requests (last batch 5 days ago) have no freshness policy:
    handled requests are erased. Errors past error_after: tests/test_freshness.py."""
    result = run_dbt(duckdb_staging.settings, "source freshness", check=False)
    assert result.success, result.failures
    sources = json.loads((duckdb_staging.settings.dbt_state_dir / "target" / "sources.json").read_text())
    status = {r["unique_id"].rsplit(".", 1)[-1]: r["status"] for r in sources["results"]}
    assert "erasure" not in status
    assert status.pop("store_pos") == "warn"  # 2 days ago
    assert set(status.values()) == {"pass"} and len(status) == len(MODELS) - 2


# --------------------------------------------------------------------------- PostgreSQL
@pytest.mark.postgres
def test_postgres_build_passes(postgres_staging: BuiltWarehouse) -> None:
    result = postgres_staging.build
    assert result.success, result.failures
    assert result.counts.get("success") == len(MODELS)
    assert not {"error", "fail", "runtime error", "skipped"} & set(result.counts)
    assert result.counts.get("warn", 0) >= 4


@pytest.mark.postgres
def test_postgres_and_duckdb_give_identical_staging_rows(
    duckdb_staging: BuiltWarehouse, postgres_staging: BuiltWarehouse
) -> None:
    assert postgres_staging.build.counts == duckdb_staging.build.counts
    for model in MODELS.values():
        assert postgres_staging.columns(model) == duckdb_staging.columns(model), model
        pg_rows = postgres_staging.rows(model)
        duck_rows = duckdb_staging.rows(model)
        assert len(pg_rows) == len(duck_rows), model
        for pg_row, duck_row in zip(pg_rows, duck_rows, strict=True):
            assert pg_row == duck_row, model
            for column, value in pg_row.items():  # same Python types, not only equal values
                assert type(value) is type(duck_row[column]), (model, column, value, duck_row[column])
