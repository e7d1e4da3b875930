"""Source freshness on schedule: ``dbt source freshness`` in every daily run, a policy for stale feeds.

Every source of the dbt project has a ``loaded_at_field`` (``_ingested_at``, when the platform
loaded the rows) and ``warn_after`` / ``error_after`` thresholds. A feed that stops delivering
keeps its old rows, so everything downstream still builds; without this check the only sign is a
governance ``as_of`` that quietly stops moving. The daily run's ``source_freshness`` step runs
dbt's check after ingestion and

* records one row per source table in ``ops.source_freshness`` (status, newest load, age; no
  personal data), which the scorecard reads (timeliness, ``sources_fresh``);
* alerts (``customer_mdm.alerts``, event ``source_stale``) when a table is past ``warn_after``;
* applies the policy ``MDM_FRESHNESS_POLICY`` (or the DAG run's ``freshness_policy`` param):
  ``warn`` (default) alerts and goes on; ``fail`` also fails the step when a table is past
  ``error_after`` or could not be checked, so the run ends failed (after the golden tables were
  published from what did arrive, as when a feed is down); ``off`` skips the check.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from customer_mdm.config import Settings
from customer_mdm.errors import ConfigError, MdmError

log = logging.getLogger(__name__)

POLICY_ENV = "MDM_FRESHNESS_POLICY"
POLICIES = ("warn", "fail", "off")
TABLE = "ops.source_freshness"  # its columns: customer_mdm.schema.OPS_TABLES
#: dbt statuses of a table that is not fresh
STALE = ("warn", "error", "runtime error")


class SourcesStale(MdmError):
    """A source feed is past its ``error_after`` threshold and the policy is ``fail``."""


def freshness_policy(override: str | None = None) -> str:
    """The policy: ``override`` (a DAG run's param) or ``MDM_FRESHNESS_POLICY`` (default ``warn``)."""
    raw = (override or os.environ.get(POLICY_ENV) or "warn").strip().lower()
    if raw not in POLICIES:
        raise ConfigError(f"{POLICY_ENV} must be one of {', '.join(POLICIES)}, not {raw!r}")
    return raw


@dataclass(frozen=True)
class SourceFreshness:
    source_name: str
    table_name: str
    status: str
    max_loaded_at: datetime | None
    age_seconds: float | None
    warn_after: str | None
    error_after: str | None

    @property
    def name(self) -> str:
        return f"{self.source_name}.{self.table_name}"

    def describe(self) -> str:
        if self.status == "runtime error":
            return f"{self.name} could not be checked"
        if self.max_loaded_at is None or self.age_seconds is None:
            return f"{self.name} has never been loaded"
        limit = self.error_after if self.status == "error" else self.warn_after
        return (
            f"{self.name} last loaded {self.max_loaded_at:%Y-%m-%d %H:%M} UTC, "
            f"{self.age_seconds / 3600:.1f} h ago ({self.status}: older than {limit})"
        )


def _period(criterion: dict[str, Any] | None) -> str | None:
    if not criterion or criterion.get("count") is None:
        return None
    count, period = criterion["count"], criterion.get("period") or ""
    return f"{count} {period}{'s' if count != 1 else ''}"


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    parsed = parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    return None if parsed.year < 1900 else parsed  # dbt reports an empty table as year 1


def read_sources_json(path: Path) -> list[SourceFreshness]:
    """The per-table results of ``dbt source freshness`` (its ``sources.json``)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for node in data.get("results", []):
        parts = str(node.get("unique_id", "")).split(".")  # source.<project>.<source>.<table>
        criteria = node.get("criteria") or {}
        max_loaded = _timestamp(node.get("max_loaded_at"))
        age = node.get("max_loaded_at_time_ago_in_s")
        out.append(
            SourceFreshness(
                source_name=parts[-2] if len(parts) >= 2 else "",
                table_name=parts[-1],
                status=str(node.get("status")),
                max_loaded_at=max_loaded,
                age_seconds=float(age) if age is not None and max_loaded is not None else None,
                warn_after=_period(criteria.get("warn_after")),
                error_after=_period(criteria.get("error_after")),
            )
        )
    return sorted(out, key=lambda s: s.name)


def check_freshness(settings: Settings) -> list[SourceFreshness]:
    """Run ``dbt source freshness`` and return its per-table results (never raises on stale sources)."""
    from customer_mdm.dbt import DbtFailed, run_dbt

    result = run_dbt(settings, "source freshness", check=False)
    path = settings.dbt_state_dir / "target" / "sources.json"
    if not path.exists():
        raise DbtFailed("dbt source freshness produced no results:\n  " + "\n  ".join(result.failures))
    return read_sources_json(path)


def record(settings: Settings, run_id: str, results: list[SourceFreshness]) -> None:
    """Replace this run's rows of ``ops.source_freshness``."""
    from customer_mdm.schema import OPS_TABLES, ensure_table
    from customer_mdm.warehouse import connect

    columns = OPS_TABLES[TABLE]
    checked_at = datetime.now(UTC).replace(tzinfo=None)
    with connect(settings) as wh:
        ensure_table(wh, TABLE, columns)
        wh.execute(f"delete from {TABLE} where run_id = ?", [run_id])
        for r in results:
            wh.execute(
                f"insert into {TABLE} ({', '.join(columns)}) values ({', '.join('?' for _ in columns)})",
                [
                    run_id,
                    r.source_name,
                    r.table_name,
                    r.status,
                    r.max_loaded_at,
                    r.age_seconds,
                    r.warn_after,
                    r.error_after,
                    checked_at,
                ],
            )


def alert_stale(run_id: str, stale: list[SourceFreshness], policy: str) -> None:
    """One ``source_stale`` alert naming every stale table (source and table names only)."""
    from customer_mdm.alerts import SOURCE_STALE, build_payload, send_alert

    message = f"MDM source feeds stale (run {run_id}, policy {policy}): " + "; ".join(s.describe() for s in stale)
    payload = build_payload(SOURCE_STALE, {"run_id": run_id}, message)
    payload["dag_id"] = payload["dag_id"] or "mdm_daily"
    payload["sources"] = [
        {"source": s.name, "status": s.status, "max_loaded_at": s.max_loaded_at, "age_seconds": s.age_seconds}
        for s in stale
    ]
    send_alert(payload)


def freshness_check(settings: Settings, run_id: str, policy: str | None = None) -> dict[str, Any]:
    """Check, record, alert and apply the policy; the step's details. Raises :class:`SourcesStale`
    under ``fail`` when a table is past ``error_after`` or could not be checked."""
    policy = freshness_policy(policy)
    if policy == "off":
        return {"policy": policy, "checked": 0}
    results = check_freshness(settings)
    record(settings, run_id, results)
    stale = [r for r in results if r.status in STALE]
    details: dict[str, Any] = {
        "policy": policy,
        "checked": len(results),
        "counts": {status: sum(r.status == status for r in results) for status in sorted({r.status for r in results})},
        "stale": [s.describe() for s in stale],
    }
    if stale:
        log.warning("%d source table(s) stale: %s", len(stale), "; ".join(details["stale"]))
        alert_stale(run_id, stale, policy)
    failing = [r for r in stale if r.status != "warn"]
    if policy == "fail" and failing:
        raise SourcesStale(
            "source feeds past their error_after threshold (MDM_FRESHNESS_POLICY=fail): "
            + "; ".join(s.describe() for s in failing)
        )
    return details
