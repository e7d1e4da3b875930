"""Tables the platform owns outside dbt: raw landing tables and the ``ops`` bookkeeping.

``raw.<feed>``      every contract column as text + lineage columns (see ``sources.LINEAGE_COLUMNS``)
``ops.manifest``    one row per landing file version seen: ingested, quarantined or changed
``ops.quarantine``  rejected files and rows, with the reason and the raw record
``ops.runs``        one row per pipeline run with its JSON summary
``ops.run_steps``   one row per step (task) of a run
``ops.run_lock``    the run lock's lease: which run holds it, until when (``customer_mdm.runlock``)
``ops.dbt_window``  per dbt layer (staging, build, golden): ``since``, the newest ``_ingested_at``
                    of the layer's inputs at its previous successful build (NULL: full rebuild);
                    written before dbt runs, read by the dbt project (scoped staging tests,
                    incremental golden models)
``ops.dbt_state``   per dbt layer: the build fingerprint and watermark of its last successful build
``ops.erasure_state``  the last successful erasure step: from when on records are checked against
                    the erasure tombstones (no personal data)
``ops.source_freshness``  per run and source table: ``dbt source freshness``'s status, newest load
                    and age (``customer_mdm.freshness``); no personal data

The dbt project reads ``ops.dbt_window`` and ``mdm.golden_dirty`` (the golden ids the link step
marks for rebuilding): :func:`ensure_dbt_tables` creates them before any dbt command.

All statements are idempotent and portable between DuckDB and PostgreSQL.
"""

from __future__ import annotations

from customer_mdm.plan import FEEDS, GOLDEN_DIRTY, Feed
from customer_mdm.warehouse import Warehouse

SCHEMAS = ("raw", "ops")

_LINEAGE_DDL = {
    "_source_file": "text",
    "_batch_id": "text",
    "_row_number": "bigint",
    "_ingested_at": "timestamp",
    "_extra": "text",
}

OPS_TABLES: dict[str, dict[str, str]] = {
    "ops.manifest": {
        "feed": "text",
        "file_path": "text",
        "file_name": "text",
        "size_bytes": "bigint",
        "sha256": "text",
        "batch_id": "text",
        "status": "text",  # ingested | quarantined | changed
        "encoding": "text",
        "rows_loaded": "bigint",
        "rows_quarantined": "bigint",
        "reason": "text",
        "run_id": "text",
        "recorded_at": "timestamp",
        # rows of the file deleted since by an erasure (customer_mdm.privacy): the raw gate
        # expects rows_loaded - rows_erased rows of the batch in raw
        "rows_erased": "bigint",
    },
    "ops.quarantine": {
        "run_id": "text",
        "feed": "text",
        "source_file": "text",
        "batch_id": "text",
        "kind": "text",  # file | row
        "row_number": "bigint",
        "reason": "text",
        "raw_record": "text",
        "kept_at": "text",  # where a quarantined file's copy is kept
        "quarantined_at": "timestamp",
    },
    "ops.runs": {
        "run_id": "text",
        "dag_run_id": "text",
        "target": "text",
        "landing": "text",
        "status": "text",  # running | success | failed
        "started_at": "timestamp",
        "finished_at": "timestamp",
        "summary": "text",
    },
    "ops.run_steps": {
        "run_id": "text",
        "step": "text",
        "status": "text",
        "started_at": "timestamp",
        "finished_at": "timestamp",
        "details": "text",
    },
    "ops.run_lock": {
        "lock_name": "text primary key",  # one row: 'pipeline'
        "run_id": "text",  # the run holding the lock; NULL when free
        "kind": "text",  # process (a process holds the OS/session lock for the run) | lease (an Airflow run)
        "host": "text",
        "pid": "integer",
        "acquired_at": "timestamp",
        "expires_at": "timestamp",  # renewed at every step; past it the lock is free
    },
    "ops.dbt_window": {
        "layer": "text",  # staging | build | golden
        "since": "timestamp",  # NULL: the layer is rebuilt in full
        "run_id": "text",
        "written_at": "timestamp",
    },
    "ops.dbt_state": {
        "layer": "text",
        "fingerprint": "text",  # customer_mdm.dbt.build_fingerprint of the last successful build
        "watermark": "timestamp",  # newest _ingested_at of the layer's inputs it has built
        "mode": "text",  # full | incremental
        "reason": "text",
        "run_id": "text",
        "built_at": "timestamp",
    },
    "ops.erasure_state": {
        # one row: the last successful erasure step (customer_mdm.pipeline.erasure_step); records
        # ingested from checked_from on are checked against the tombstones by the next run's
        "run_id": "text",
        "checked_from": "timestamp",  # that step's start
        "previous_checked_from": "timestamp",  # where that step started checking (for its retry)
        "written_at": "timestamp",
    },
    "ops.source_freshness": {
        "run_id": "text",
        "source_name": "text",
        "table_name": "text",
        "status": "text",  # pass | warn | error | runtime error
        "max_loaded_at": "timestamp",
        "age_seconds": "double precision",
        "warn_after": "text",
        "error_after": "text",
        "checked_at": "timestamp",
    },
}


def raw_columns(feed: Feed) -> dict[str, str]:
    cols = {c: "text" for c in feed.columns}
    cols.update(_LINEAGE_DDL)
    return cols


def ensure_table(wh: Warehouse, table: str, columns: dict[str, str]) -> None:
    """Create ``schema.table`` (and its schema) if missing; add columns it lacks, never drop one."""
    wh.execute(f"create schema if not exists {table.split('.')[0]}")
    body = ", ".join(f"{name} {typ}" for name, typ in columns.items())
    wh.execute(f"create table if not exists {table} ({body})")
    existing = set(wh.columns_of(table))
    for name, typ in columns.items():
        if name not in existing:  # a feed gained a column: evolve the table, never drop
            wh.execute(f"alter table {table} add column {name} {typ}")


def ensure_feed_table(wh: Warehouse, feed: Feed) -> None:
    ensure_table(wh, feed.raw_table, raw_columns(feed))


def ensure_schema(wh: Warehouse) -> None:
    """Create every schema and table the ingestion layer writes to."""
    for schema in SCHEMAS:
        wh.execute(f"create schema if not exists {schema}")
    for table, columns in OPS_TABLES.items():
        ensure_table(wh, table, columns)
    for feed in FEEDS:
        ensure_table(wh, feed.raw_table, raw_columns(feed))


def ensure_dbt_tables(wh: Warehouse) -> None:
    """Create the tables the dbt project reads besides its sources' landing tables."""
    for table in ("ops.dbt_window", "ops.dbt_state"):
        ensure_table(wh, table, OPS_TABLES[table])
    ensure_table(wh, "mdm.golden_dirty", GOLDEN_DIRTY)
