"""Alerts: a failed task, a failed daily run, or golden tables that are late.

:class:`MdmAlertNotifier` is an Airflow 3 notifier (``airflow.sdk.BaseNotifier``). It always
writes the alert to the log and, when ``MDM_ALERT_WEBHOOK`` is set, POSTs it as JSON to that URL
(a Slack/Teams/Mattermost incoming webhook, an Alertmanager or any HTTP receiver). It is used

* as every task's ``on_failure_callback`` (``orchestration.default_args``), synchronously, in the
  process that ran the task;
* as ``mdm_daily``'s DAG-level ``on_failure_callback`` (run by the dag-processor);
* as the callback of ``mdm_daily``'s deadline alert (``orchestration.golden_deadline``), awaited in
  the triggerer when the golden tables are not published within ``MDM_GOLDEN_DEADLINE_HOURS`` of
  the scheduled time.

A webhook that is down or answers with an error is logged and never fails the task or hides the
original failure. Imported by the DAG files at parse time: standard library and ``airflow.sdk`` only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

WEBHOOK_ENV = "MDM_ALERT_WEBHOOK"
WEBHOOK_TIMEOUT_SECONDS = 10.0

#: alert kinds (the ``event`` field of the payload)
TASK_FAILED = "task_failed"
RUN_FAILED = "run_failed"
GOLDEN_LATE = "golden_tables_late"


def _get(obj: Any, name: str) -> Any:
    """An attribute of an Airflow object, or a key of the plain dict the triggerer passes."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def build_payload(event: str, context: Mapping[str, Any] | None, message: str | None = None) -> dict[str, Any]:
    """The alert as a JSON-ready dict, from whatever context Airflow passes for this kind of callback."""
    context = context or {}
    ti = context.get("task_instance") or context.get("ti")
    dag_run = context.get("dag_run")
    dag = context.get("dag")
    deadline = context.get("deadline")
    exception = context.get("exception")
    payload: dict[str, Any] = {
        "source": "customer-mdm",
        "event": event,
        "dag_id": _get(ti, "dag_id") or _get(dag_run, "dag_id") or _get(dag, "dag_id"),
        "task_id": _get(ti, "task_id"),
        "run_id": _get(ti, "run_id")
        or _get(dag_run, "run_id")
        or _get(dag_run, "dag_run_id")  # the triggerer passes the REST model of the run
        or context.get("run_id"),
        "try_number": _get(ti, "try_number"),
        "logical_date": _text(_get(dag_run, "logical_date")),
        "error": _text(exception) or _text(context.get("reason")),
        "deadline": _text(_get(deadline, "deadline_time")),
        "message": message,
        "sent_at": datetime.now(UTC).isoformat(),
    }
    if not payload["message"]:
        where = ".".join(str(p) for p in (payload["dag_id"], payload["task_id"]) if p)
        payload["message"] = {
            TASK_FAILED: f"MDM task failed: {where} (run {payload['run_id']}): {payload['error']}",
            RUN_FAILED: f"MDM run failed: {where} (run {payload['run_id']}): {payload['error']}",
            GOLDEN_LATE: (
                f"MDM golden tables late: {where} run {payload['run_id']} had not published "
                f"marts.dim_customer by {payload['deadline']}"
            ),
        }.get(event, f"MDM alert {event}: {where}")
    return payload


def post_json(url: str, payload: Mapping[str, Any], timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> int:
    """POST ``payload`` as JSON; returns the HTTP status. Raises ``OSError`` when it cannot be delivered."""
    body = json.dumps(payload, default=str).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "customer-mdm-alerts"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return int(response.status)


def redact_url(url: str) -> str:
    """A webhook URL as it may be logged: scheme and host only. Incoming-webhook URLs carry their
    credential in the path or query (``/services/T0/B0/XXXX``, ``?token=``), so neither is shown."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "<malformed URL>"
    if not parts.scheme or not host:
        return "<malformed URL>"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/***"


def _reason(exc: BaseException, url: str) -> str:
    """Why a delivery failed, without the URL (a malformed-URL error quotes it)."""
    text = str(getattr(exc, "reason", None) or exc)
    return text.replace(url, redact_url(url)) if url else text


def send_alert(payload: Mapping[str, Any], webhook: str | None = None) -> bool:
    """Log the alert; POST it to the webhook if one is configured. True if it was delivered there."""
    log.error("%s", payload.get("message"), extra={"mdm_alert": dict(payload)})
    url = webhook if webhook is not None else os.environ.get(WEBHOOK_ENV, "").strip()
    if not url:
        return False
    try:
        status = post_json(url, payload)
    except urllib.error.HTTPError as exc:
        log.error("alert webhook %s answered HTTP %s; the alert is only in this log", redact_url(url), exc.code)
        return False
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, a malformed URL
        log.error(
            "alert webhook %s unreachable (%s); the alert is only in this log", redact_url(url), _reason(exc, url)
        )
        return False
    log.info("alert %s delivered to the webhook (HTTP %s)", payload.get("event"), status)
    return True


class MdmAlertNotifier(BaseNotifier):
    """Log an alert and POST it to ``$MDM_ALERT_WEBHOOK`` (see the module docstring).

    ``event`` names the kind of alert (``task_failed``, ``run_failed``, ``golden_tables_late``);
    ``message`` overrides the generated one-line text; ``webhook`` overrides the environment
    (tests). The deadline alert passes only JSON-serialisable keyword arguments, and the triggerer
    adds ``context``.
    """

    def __init__(
        self,
        event: str = TASK_FAILED,
        message: str | None = None,
        webhook: str | None = None,
        context: Any = None,
    ) -> None:
        super().__init__(context=context)
        self.event = event
        self.message = message
        self.webhook = webhook

    def payload(self, context: Mapping[str, Any] | None) -> dict[str, Any]:
        return build_payload(self.event, context, self.message)

    def notify(self, context: Any) -> None:
        send_alert(self.payload(context), self.webhook)

    async def async_notify(self, context: Any) -> None:
        await asyncio.to_thread(send_alert, self.payload(context), self.webhook)
