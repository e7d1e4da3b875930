"""The incremental link says explicitly when a full run is needed (a typed Fallback, not a dict)."""

from __future__ import annotations

from datetime import datetime

from customer_mdm.config import Settings
from customer_mdm.linkage.step import Fallback, _link_incremental, _read_delta, ensure_tables
from customer_mdm.warehouse import connect


def test_no_state_and_another_model_fall_back_to_a_full_run(duckdb_settings: Settings) -> None:
    with connect(duckdb_settings) as wh:
        ensure_tables(wh)
        assert _read_delta(wh, "v1") == Fallback("no linkage state yet")
        outcome = _link_incremental(duckdb_settings, wh, None, "v1", "run-1", datetime(2026, 12, 1), b"k")
        assert outcome == Fallback("no linkage state yet")
        wh.execute(
            "insert into mdm.link_state (record_id, content_hash, first_seen_at, model_version, scored_at) "
            "values ('crm:1', 'h', current_timestamp, 'v0', current_timestamp)"
        )
        assert _read_delta(wh, "v1") == Fallback("new model v1: every record is rescored")
