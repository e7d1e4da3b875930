"""The quality-drop alert: a dimension whose headline metric got worse by more than the
threshold since the previous scorecard is sent through the existing notifier; lower-is-better
metrics (uniqueness) count a rise; nothing is sent for small changes."""

from __future__ import annotations

from datetime import datetime

from customer_mdm.config import Settings
from customer_mdm.console.alerts import QUALITY_DROPPED, check_quality_drop
from customer_mdm.warehouse import connect


def _card(settings: Settings, rows: list[tuple[str, datetime, str, str, float]]) -> None:
    settings.ensure_dirs()
    with connect(settings) as wh:
        wh.execute("create schema if not exists governance")
        wh.execute(
            "create table governance.scorecard_history (run_id text, measured_at timestamp, scope text, "
            "dimension text, metric text, value double precision, numerator bigint, denominator bigint)"
        )
        for run_id, at, dim, metric, value in rows:
            wh.execute(
                "insert into governance.scorecard_history values (?, ?, 'overall', ?, ?, ?, 0, 0)",
                [run_id, at, dim, metric, value],
            )


def test_a_drop_past_the_threshold_alerts_once_per_dimension(settings: Settings) -> None:
    t1, t2 = datetime(2026, 12, 1), datetime(2026, 12, 2)
    _card(
        settings,
        [
            ("r1", t1, "completeness", "key_fields", 0.95),
            ("r2", t2, "completeness", "key_fields", 0.80),  # dropped 0.15
            ("r1", t1, "validity", "all_checked", 0.99),
            ("r2", t2, "validity", "all_checked", 0.97),  # 0.02: within the threshold
            ("r1", t1, "uniqueness", "duplicate_rate_before_linkage", 0.10),
            ("r2", t2, "uniqueness", "duplicate_rate_before_linkage", 0.30),  # lower is better: worse
        ],
    )
    sent = check_quality_drop(settings, "r2", drop=0.05)  # through customer_mdm.alerts.send_alert
    assert sorted(a["dimension"] for a in sent) == ["completeness", "uniqueness"]
    assert all(a["event"] == QUALITY_DROPPED and a["run_id"] == "r2" for a in sent)
    message = next(a["message"] for a in sent if a["dimension"] == "completeness")
    assert "completeness (key_fields) went from 0.950 to 0.800" in message
    assert check_quality_drop(settings, "r2", drop=0.5) == []
