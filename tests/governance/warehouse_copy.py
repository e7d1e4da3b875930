"""Copy built tables from one warehouse into another (DuckDB -> PostgreSQL) with their column types.

The governance models and the scorecard only read the golden, intermediate and order tables.
Instead of running the whole pipeline a second time on PostgreSQL (a minute of dbt), the
PostgreSQL tests copy those tables from the DuckDB build and then build the governance models
and the scorecard on PostgreSQL: the same inputs on both warehouses, so the outputs must match.
"""

from __future__ import annotations

import re

from customer_mdm.warehouse import Warehouse

#: the tables the governance models and the scorecard read
GOVERNANCE_INPUTS = (
    "intermediate.int_customer_records",
    "intermediate.int_contact_events",
    "intermediate.int_self_service_changes",
    "marts.fct_orders",
    "marts.dim_customer",  # published: what the scorecard reads
    "marts.customer_xref",
    "golden_build.dim_customer",  # what dbt's ref('dim_customer') names (write-audit-publish)
    "golden_build.customer_xref",
    "ops.source_freshness",  # the daily run's freshness check (timeliness, sources_fresh)
)

_SIMPLE = {
    "VARCHAR": "text",
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "BOOLEAN": "boolean",
    "TIMESTAMP": "timestamp",
    "DATE": "date",
    "DOUBLE": "double precision",
    "FLOAT": "real",
    "HUGEINT": "numeric(38, 0)",
}


def postgres_type(duckdb_type: str) -> str:
    decimal = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", duckdb_type)
    if decimal:
        return f"numeric({decimal.group(1)}, {decimal.group(2)})"
    return _SIMPLE[duckdb_type]


def copy_tables(source: Warehouse, target: Warehouse, tables: tuple[str, ...] = GOVERNANCE_INPUTS) -> dict[str, int]:
    """Create each table on ``target`` (dropping an old copy) and copy every row from ``source``."""
    copied = {}
    for table in tables:
        schema, name = table.split(".")
        cols = source.query(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, name],
        )
        target.execute(f"create schema if not exists {schema}")
        target.execute(f"drop table if exists {table}")
        ddl = ", ".join(f'"{c}" {postgres_type(t)}' for c, t in cols)
        target.execute(f"create table {table} ({ddl})")
        df = source.query_df(f"select * from {table}")
        copied[table] = target.insert_df(table, df)
    return copied
