"""Tiny warehouses for the quality-gate tests, built with plain SQL on DuckDB and PostgreSQL.

The golden helpers build ``intermediate.int_customer_records`` and the golden tables of a schema
(``golden_build`` for the build under audit, ``marts`` for what BI tools read).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd

from customer_mdm.config import Settings
from customer_mdm.schema import ensure_schema
from customer_mdm.warehouse import Warehouse, connect

NOW = datetime(2026, 11, 23, 3, 0, 0)

RECORD_COLUMNS = {
    "record_key": "text",
    "source": "text",
    "source_id": "text",
    "name_std": "text",
    "phone_e164": "text",
    "email": "text",
    "gender": "text",
    "province": "text",
    "birth_date": "date",
    "_source_file": "text",
    "_batch_id": "text",
    "_row_number": "bigint",
    "_ingested_at": "timestamp",
}
DIM_COLUMNS = {
    "golden_id": "text",
    "name": "text",
    "birth_date": "date",
    "phone": "text",
    "source_record_count": "bigint",
}
XREF_COLUMNS = {
    "record_id": "text",
    "source": "text",
    "source_id": "text",
    "golden_id": "text",
    "match_probability": "double precision",
    "assignment": "text",
    "assigned_at_utc": "timestamp",
}


def create_table(wh: Warehouse, table: str, columns: dict[str, str], rows: Sequence[dict[str, Any]] = ()) -> None:
    wh.execute(f"create schema if not exists {table.split('.')[0]}")
    wh.execute(f"drop table if exists {table}")
    wh.execute(f"create table {table} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
    insert(wh, table, rows)


def insert(wh: Warehouse, table: str, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        wh.insert_df(table, pd.DataFrame(list(rows)))


def record(n: int, source: str = "crm", **overrides: Any) -> dict[str, Any]:
    """A clean standardised person record (``int_customer_records`` row)."""
    row = {
        "record_key": f"{source}:b1:{n}",
        "source": source,
        "source_id": f"{source[0].upper()}{n}",
        "name_std": "王伟",
        "phone_e164": f"+86138{n:08d}",
        "email": f"user{n}@qq.com",
        "gender": "M" if n % 2 else "F",
        "province": "上海市",
        "birth_date": date(1980, 1, 1 + n % 28),
        "_source_file": f"{source}/{source}_2026-11-22.csv",
        "_batch_id": f"{source}:{source}_2026-11-22.csv:abc",
        "_row_number": n,
        "_ingested_at": NOW,
    }
    row.update(overrides)
    return row


def golden_rows(people: int, prefix: str = "G") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A consistent golden build: ``people`` golden ids, each with one CRM record (crm:C<n>)."""
    dim = [
        {
            "golden_id": f"{prefix}{n}",
            "name": "王伟",
            "birth_date": date(1980, 1, 1 + n % 28),
            "phone": None,
            "source_record_count": 1,
        }
        for n in range(1, people + 1)
    ]
    xref = [
        {
            "record_id": f"crm:C{n}",
            "source": "crm",
            "source_id": f"C{n}",
            "golden_id": f"{prefix}{n}",
            "match_probability": None,
            "assignment": "new",
            "assigned_at_utc": NOW,
        }
        for n in range(1, people + 1)
    ]
    return dim, xref


def build_golden(
    settings: Settings, schema: str, dim: Sequence[dict[str, Any]], xref: Sequence[dict[str, Any]]
) -> None:
    with connect(settings) as wh:
        create_table(wh, f"{schema}.dim_customer", DIM_COLUMNS, dim)
        create_table(wh, f"{schema}.customer_xref", XREF_COLUMNS, xref)


def build_records(settings: Settings, rows: Sequence[dict[str, Any]]) -> None:
    with connect(settings) as wh:
        ensure_schema(wh)  # ops.* (quarantine, manifest) like a pipeline run's start step
        create_table(wh, "intermediate.int_customer_records", RECORD_COLUMNS, rows)


def query(settings: Settings, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    with connect(settings) as wh:
        return wh.query(sql, params)


def quarantine(settings: Settings, run_id: str) -> list[tuple[Any, ...]]:
    """This run's gx quarantine rows: (feed, batch_id, row_number, reason, raw_record)."""
    return query(
        settings,
        "select feed, batch_id, row_number, reason, raw_record from ops.quarantine "
        "where run_id = ? and kind = 'gx' order by reason, raw_record",
        [run_id],
    )
