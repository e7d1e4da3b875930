"""Quality trends for the governance page, and an alert when a dimension drops.

After each scorecard (pipeline ``scorecard_step``), :func:`check_quality_drop` compares each
dimension's headline metric (overall scope) with the previous run's; a drop of more than
``MDM_QUALITY_ALERT_DROP`` (default 0.05, in share points; lower-is-better metrics count a rise)
sends an alert through the existing notifier (:func:`customer_mdm.alerts.send_alert`: the log,
and the webhook ``MDM_ALERT_WEBHOOK`` when set). No personal data is in the scorecard or the
alert.
"""

from __future__ import annotations

import os
from typing import Any

from customer_mdm.config import Settings

DROP_ENV = "MDM_QUALITY_ALERT_DROP"
DEFAULT_DROP = 0.05
QUALITY_DROPPED = "quality_dropped"


def _headlines() -> dict[str, tuple[str, bool]]:
    """dimension -> (headline metric, higher is better)."""
    from customer_mdm.governance.scorecard import METRICS

    return {m.dimension: (m.name, m.higher_is_better) for m in METRICS if m.headline}


def dimension_trends(rd: Any, runs: int = 10) -> list[dict[str, Any]]:
    """Per dimension: the headline metric's values over the last ``runs`` scorecards (oldest first)."""
    out = []
    for dim, (metric, higher) in _headlines().items():
        found = rd.query(
            "select run_id, measured_at, value from serving.console_scorecard "
            "where scope = 'overall' and dimension = ? and metric = ? order by measured_at desc limit ?",
            [dim, metric, runs],
        )
        values = [(str(r[0]), r[1], float(r[2])) for r in reversed(found) if r[2] is not None]
        out.append({"dimension": dim, "metric": metric, "higher_is_better": higher, "values": values})
    return out


def check_quality_drop(settings: Settings, run_id: str, drop: float | None = None) -> list[dict[str, Any]]:
    """Alert for every dimension whose headline got worse by more than ``drop`` since the
    previous scorecard; returns the alerts sent."""
    from customer_mdm.alerts import build_payload, send_alert
    from customer_mdm.warehouse import connect

    limit = drop if drop is not None else float(os.environ.get(DROP_ENV) or DEFAULT_DROP)
    sent: list[dict[str, Any]] = []
    with connect(settings, read_only=True) as wh:
        if not wh.table_exists("governance.scorecard_history"):
            return sent
        for dim, (metric, higher) in _headlines().items():
            found = wh.query(
                "select run_id, max(value) from governance.scorecard_history "
                "where scope = 'overall' and dimension = ? and metric = ? "
                "group by run_id order by max(measured_at) desc limit 2",
                [dim, metric],
            )
            if len(found) < 2 or found[0][1] is None or found[1][1] is None:
                continue
            now_v, before = float(found[0][1]), float(found[1][1])
            worse = (before - now_v) if higher else (now_v - before)
            if worse > limit:
                payload = build_payload(
                    QUALITY_DROPPED,
                    {"run_id": run_id},
                    f"MDM quality: {dim} ({metric}) went from {before:.3f} to {now_v:.3f} "
                    f"in run {run_id} (threshold {limit:.3f})",
                )
                payload.update({"dimension": dim, "metric": metric, "previous": before, "current": now_v})
                send_alert(payload)
                sent.append(payload)
    return sent
