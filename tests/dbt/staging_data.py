"""Hand-made dirty raw rows for the dbt tests, loaded into a fresh warehouse and built with dbt.

Every value is text, as ingestion writes it, with the dirt the source contract promises: blanks,
full-width spaces and digits, impossible dates, several timestamp layouts, re-exported records,
vocabulary outside the contract. Both warehouses get exactly the same rows (one fixed clock).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from customer_mdm.config import Settings
from customer_mdm.dbt import DbtResult, run_dbt
from customer_mdm.schema import ensure_schema
from customer_mdm.sources import feed
from customer_mdm.warehouse import connect

#: One fixed "now" for the whole run, so both targets get identical lineage timestamps.
NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
INGESTED_1 = NOW - timedelta(hours=2)
INGESTED_2 = NOW - timedelta(hours=1)
#: Source freshness: warn after 1 day, error after 3 days without a new batch.
INGESTED_STALE_WARN = NOW - timedelta(days=2)
INGESTED_STALE_ERROR = NOW - timedelta(days=5)


def _batch(feed_name: str, file_name: str, ingested_at: datetime, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give hand-made rows the lineage columns ingestion would write."""
    folder = feed(feed_name).folder
    out = []
    for number, row in enumerate(rows, start=1):
        out.append(
            {
                **row,
                "_source_file": f"{folder}/{file_name}",
                "_batch_id": f"{feed_name}:{file_name}:{uuid.uuid5(uuid.NAMESPACE_URL, file_name).hex[:12]}",
                "_row_number": number,
                "_ingested_at": ingested_at,
                "_extra": None,
            }
        )
    return out


def crm_row(crm_id: str, updated_at: str | None, **values: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {c: None for c in feed("crm").columns}
    row.update(
        crm_id=crm_id,
        name="张三",
        mobile="13800000000",
        email="a@example.com",
        created_at="2026-01-05 09:00:00",
        updated_at=updated_at,
    )
    row.update(values)
    return row


def dirty_raw_rows() -> dict[str, list[dict[str, Any]]]:
    """Raw rows per feed, as text, with the dirt the contract promises."""
    crm_1 = [
        crm_row(
            " C001 ",
            "2026-11-19 10:00:00",
            name="  王\u3000伟 ",
            gender="男",
            birth_date="1990/3/7",
            mobile="+86 138 1234 5678",
            email=" Wang.Wei@QQ.con ",
            province="沪",
            city="上海市",
            district="闵行区",
            address="莘庄镇1号",
            company="上海某某有限公司",
            customer_type="个人",
            tier="VIP",
            consent_marketing="是",
        ),
        crm_row("C002", "yesterday", created_at="2026-02-30 10:00:00"),  # garbage and a day that does not exist
        crm_row("C003", "2026/3/7 9:05"),  # slashes, one-digit month/day/hour, no seconds
        crm_row("C004", "", created_at="\u3000", name="\u3000", email=""),  # blanks -> NULL
    ]
    crm_2 = [
        crm_row("C001", "2026-11-20 13:05:00", name="王伟"),  # newer version of C001
        crm_row("C002", "2026-11-20 08:00:00"),  # the first version had no usable time: this one wins
        crm_row("C003", "2026/3/7 9:05"),  # same update time: the later ingestion wins
        crm_row("C005", "2026-13-45 99:00:00", created_at="2026-11-20T13:05:00"),  # impossible; 'T' separator
        crm_row("C006", "2026-11-20 24:00:00", created_at="2024-02-29 23:59:59"),  # hour 24; a real leap day
    ]
    members_1 = [
        {
            "member_id": "M001",
            "nickname": "wangwei88",
            "real_name": None,
            "phone": "138-1234-5678",
            "email": "WW@163.cm",
            "shipping_address": "沪闵行区莘庄镇1号",
            "registered_at": "2026-11-20T13:05:00+08:00",
            "last_login_at": "1763600000123",
        },
        {
            "member_id": "M002",
            "nickname": "x",
            "real_name": "李娜",
            "phone": None,
            "email": None,
            "shipping_address": None,
            "registered_at": "2026-11-20T05:05:00Z",
            "last_login_at": "not-a-number",
        },
        {
            "member_id": "M003",
            "nickname": None,
            "real_name": None,
            "phone": None,
            "email": None,
            "shipping_address": None,
            "registered_at": "2026-11-20T00:30:00-05:00",
            "last_login_at": "",
        },
        {
            "member_id": "M004",
            "nickname": None,
            "real_name": None,
            "phone": None,
            "email": None,
            "shipping_address": None,
            "registered_at": "2026-11-20 13:05:00",
            "last_login_at": "1763600000123.0",
        },
        {
            "member_id": "M005",
            "nickname": None,
            "real_name": None,
            "phone": None,
            "email": None,
            "shipping_address": None,
            "registered_at": "2026-11-20T13:05:00.123456789+0530",
            "last_login_at": "2026-11-20T13:05+08",
        },
        {
            "member_id": "M006",
            "nickname": None,
            "real_name": None,
            "phone": None,
            "email": None,
            "shipping_address": None,
            "registered_at": "2026-02-29T10:00:00+08:00",
            "last_login_at": "garbage",
        },
    ]
    members_2 = [
        {
            "member_id": "M001",
            "nickname": "wangwei88",
            "real_name": "王伟",
            "phone": "13812345678",
            "email": "ww@163.com",
            "shipping_address": "上海闵行区莘庄镇1号",
            "registered_at": "2026-11-20T13:05:00+08:00",
            "last_login_at": "1763690000000",
        },
    ]
    orders_1 = [
        {
            "order_id": "O1",
            "member_id": "M001",
            "order_ts": "2026-11-20T13:05:00+08:00",
            "amount_cny": "199.90",
            "status": "paid",
        },
        {
            "order_id": "O2",
            "member_id": "M001",
            "order_ts": "2026-11-21T01:00:00Z",
            "amount_cny": "-99.50",
            "status": " REFUNDED ",
        },
        {
            "order_id": "O3",
            "member_id": "M002",
            "order_ts": "2026-11-20",
            "amount_cny": "12.345",
            "status": "shipped",
        },  # not in the contract's vocabulary: a warning, not a failure
        {"order_id": "O4", "member_id": "M002", "order_ts": "bad", "amount_cny": "abc", "status": "cancelled"},
        {"order_id": "O5", "member_id": "M002", "order_ts": None, "amount_cny": "1,234.00", "status": "paid"},
        {"order_id": "O6", "member_id": "M003", "order_ts": None, "amount_cny": "+.5", "status": "paid"},
        {"order_id": "O7", "member_id": "M003", "order_ts": None, "amount_cny": "-0.005", "status": "paid"},
    ]
    orders_2 = [
        {
            "order_id": "O1",
            "member_id": "M001",
            "order_ts": "2026-11-20T13:05:00+08:00",
            "amount_cny": "-199.90",
            "status": "refunded",
        },  # same order time, later export: the new status is the current one
    ]
    tickets = [
        {
            "ticket_id": "T1",
            "caller_name": "王玮",
            "caller_phone": "１３８１２３４５６７８",
            "callback_email": None,
            "city": "上海",
            "created_at": "2026-11-20 13:05:00",
            "channel": "WeChat",
        },
        {
            "ticket_id": "T2",
            "caller_name": "程静",
            "caller_phone": "021-61234567",
            "callback_email": "cj@qq.com",
            "city": "Shanghai",
            "created_at": "2026-11-20 25:00:00",
            "channel": "fax",
        },
    ]
    cards = [
        {
            "card_no": "S1",
            "name": "刘洋",
            "phone": "13900001111",
            "birthday": "03-07",
            "store_city": "广州",
            "enrolled_at": "2025-06-01 10:00:00",
        },
        {
            "card_no": "S2",
            "name": "张伟",
            "phone": None,
            "birthday": "1988-07-03",
            "store_city": None,
            "enrolled_at": "20250601",
        },
    ]
    changes = [
        {
            "event_id": "E1",
            "source_system": "crm",
            "source_id": "C001",
            "field": "mobile",
            "new_value": "13900001111",
            "submitted_at": "2026-11-20T13:05:00+08:00",
        },
        {
            "event_id": "E2",
            "source_system": "ecommerce",
            "source_id": "M001",
            "field": "email",
            "new_value": " ww@163.com ",
            "submitted_at": "2026-11-20 13:05:00",
        },
        {
            "event_id": "E3",
            "source_system": "CRM",
            "source_id": "C002",
            "field": "Phone",
            "new_value": "x",
            "submitted_at": "1763600000123",
        },
    ]
    events_row = {
        "channel": "email",
        "value": "ww@163.cm",
        "event": "bounced",
        "occurred_at": "2026-11-20T10:00:00+08:00",
    }
    events_1 = [
        events_row,
        {"channel": "phone", "value": "13812345678", "event": "verified", "occurred_at": "2026-11-20 10:00:00"},
    ]
    events_2 = [
        dict(events_row),  # the same event re-exported
        {"channel": "sms", "value": "13812345678", "event": "opted_out", "occurred_at": "later"},
    ]
    erasure = [
        {
            "request_id": "R1",
            "identifier_type": "mobile",
            "identifier_value": "13812345678",
            "requested_at": "2026-11-20 13:05:00",
        },
        {
            "request_id": "R2",
            "identifier_type": "Card_No",
            "identifier_value": "S1",
            "requested_at": "2026-11-20T05:05:00Z",
        },
    ]
    return {
        "crm": _batch("crm", "crm_2026-11-19.csv", INGESTED_1, crm_1)
        + _batch("crm", "crm_2026-11-20.csv", INGESTED_2, crm_2),
        "ecommerce_members": _batch("ecommerce_members", "members_20261119T0300.jsonl", INGESTED_1, members_1)
        + _batch("ecommerce_members", "members_20261120T0300.jsonl", INGESTED_2, members_2),
        "ecommerce_orders": _batch("ecommerce_orders", "orders_20261119.csv", INGESTED_1, orders_1)
        + _batch("ecommerce_orders", "orders_20261120.csv", INGESTED_2, orders_2),
        "callcenter": _batch("callcenter", "callcenter_2026-11-20.csv", INGESTED_1, tickets),
        "store_pos": _batch("store_pos", "store_pos_2026-11-20.csv", INGESTED_STALE_WARN, cards),
        "self_service": _batch("self_service", "changes_2026-11-20.jsonl", INGESTED_1, changes),
        "contact_events": _batch("contact_events", "events_2026-11-19.csv", INGESTED_1, events_1)
        + _batch("contact_events", "events_2026-11-20.csv", INGESTED_2, events_2),
        "erasure": _batch("erasure", "erasure_2026-11-20.csv", INGESTED_STALE_ERROR, erasure),
    }


def load_raw(settings: Settings, rows: dict[str, list[dict[str, Any]]]) -> None:
    import pandas as pd

    with connect(settings) as wh:
        ensure_schema(wh)
        for feed_name, records in rows.items():
            f = feed(feed_name)
            columns = [*f.columns, "_source_file", "_batch_id", "_row_number", "_ingested_at", "_extra"]
            df = pd.DataFrame.from_records(records, columns=columns)
            df["_row_number"] = df["_row_number"].astype("int64")
            wh.insert_df(f.raw_table, df)


@dataclass
class BuiltWarehouse:
    settings: Settings
    build: DbtResult

    def columns(self, model: str) -> list[str]:
        with connect(self.settings) as wh:
            return wh.columns_of(f"staging.{model}")

    def rows(self, model: str) -> list[dict[str, Any]]:
        """Every row of a staging model as dicts of Python values (Decimal, datetime, bool ...),
        sorted by record_key in Python (the two warehouses collate text differently)."""
        assert re.fullmatch(r"stg_\w+", model)
        with connect(self.settings) as wh:
            columns = wh.columns_of(f"staging.{model}")
            records = wh.query(f"select {', '.join(columns)} from staging.{model}")
        return sorted((dict(zip(columns, r, strict=True)) for r in records), key=lambda r: r["record_key"])

    def by_id(self, model: str, latest_only: bool = False) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows(model):
            if latest_only and not row["is_latest"]:
                continue
            out.setdefault(row["source_id"], []).append(row)
        return out


#: The staging layer: its models with their data tests, and the cross-database macro test.
#: (Later layers of the project are built by their own tests.)
STAGING_SELECTION = ["--select", "path:models/staging", "path:tests/assert_cross_db_macros.sql"]


def build_warehouse(settings: Settings) -> BuiltWarehouse:
    load_raw(settings, dirty_raw_rows())
    return BuiltWarehouse(settings, run_dbt(settings, "build", extra_args=STAGING_SELECTION))
