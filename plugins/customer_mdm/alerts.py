"""Alerts: a failed task, a failed daily run, golden tables that are late, a source feed that is stale.

:class:`MdmAlertNotifier` is an Airflow 3 notifier (``airflow.sdk.BaseNotifier``). It always
writes the alert to the log and delivers it to every channel configured in the environment
(``.env``):

* ``MDM_ALERT_WEBHOOK``: the alert as JSON plus a Slack-compatible ``text`` (Slack, Mattermost,
  Teams workflows, Alertmanager or any HTTP receiver);
* ``MDM_ALERT_WECOM_WEBHOOK``: a WeCom (企业微信) group robot, ``{"msgtype": "text", ...}``;
* ``MDM_ALERT_DINGTALK_WEBHOOK`` (+ ``MDM_ALERT_DINGTALK_SECRET`` when the robot is signed): a
  DingTalk (钉钉) group robot; the signature goes into the ``timestamp`` and ``sign`` query parameters;
* ``MDM_ALERT_EMAIL_TO`` (comma-separated): e-mail through Airflow's SMTP provider, on the Airflow
  connection ``MDM_ALERT_SMTP_CONN_ID`` (default ``smtp_default``; UI, secrets backend or
  ``AIRFLOW_CONN_SMTP_DEFAULT``).

It is used

* as every task's ``on_failure_callback`` (``orchestration.default_args``), synchronously, in the
  process that ran the task;
* as ``mdm_daily``'s DAG-level ``on_failure_callback`` (run by the dag-processor);
* as the callback of ``mdm_daily``'s deadline alert (``orchestration.golden_deadline``), awaited in
  the triggerer when the golden tables are not published within ``MDM_GOLDEN_DEADLINE_HOURS`` of
  the scheduled time;
* by the source-freshness step (``customer_mdm.freshness``) when a feed has stopped.

A channel that is down or answers with an error (WeCom and DingTalk answer HTTP 200 with a
non-zero ``errcode``) is logged by its name, never by its URL, secret or recipients, and never
fails the task or hides the original failure. Imported by the DAG files at parse time: standard
library only; ``airflow.sdk`` when the notifier class is first used, the SMTP provider when an
e-mail is sent.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

WEBHOOK_ENV = "MDM_ALERT_WEBHOOK"
WECOM_ENV = "MDM_ALERT_WECOM_WEBHOOK"
DINGTALK_ENV = "MDM_ALERT_DINGTALK_WEBHOOK"
DINGTALK_SECRET_ENV = "MDM_ALERT_DINGTALK_SECRET"
EMAIL_TO_ENV = "MDM_ALERT_EMAIL_TO"
SMTP_CONN_ENV = "MDM_ALERT_SMTP_CONN_ID"
DEFAULT_SMTP_CONN_ID = "smtp_default"
WEBHOOK_TIMEOUT_SECONDS = 10.0
#: WeCom robot text messages are limited to 2048 bytes of UTF-8
WECOM_TEXT_LIMIT = 2048
CHANNEL_NAMES = {
    "webhook": "webhook",
    "wecom": "WeCom robot",
    "dingtalk": "DingTalk robot",
    "email": "e-mail",
}

#: alert kinds (the ``event`` field of the payload)
TASK_FAILED = "task_failed"
RUN_FAILED = "run_failed"
GOLDEN_LATE = "golden_tables_late"
SOURCE_STALE = "source_stale"
#: the label chat channels show before the message (the teams reading them read Chinese)
EVENT_LABELS = {
    TASK_FAILED: "任务失败 task failed",
    RUN_FAILED: "运行失败 run failed",
    GOLDEN_LATE: "黄金表延迟 golden tables late",
    SOURCE_STALE: "数据源停更 source stale",
}


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


def alert_text(payload: Mapping[str, Any]) -> str:
    """The one-line text every chat channel shows: a Chinese and English label, then the message."""
    label = EVENT_LABELS.get(str(payload.get("event")), "告警 alert")
    return f"【MDM {label}】{payload.get('message') or ''}"


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", errors="ignore") + "..."


def dingtalk_signed_url(url: str, secret: str, timestamp_ms: int | None = None) -> str:
    """DingTalk's signing: ``timestamp`` (ms) and ``sign`` = urlencode(base64(HMAC-SHA256(secret,
    f"{timestamp}\n{secret}"))) appended to the robot URL's query."""
    timestamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest))
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


@dataclass(frozen=True)
class Channel:
    """One place alerts go. ``kind`` is ``webhook`` (JSON + Slack-compatible ``text``), ``wecom``,
    ``dingtalk`` or ``email``; ``target`` the URL or the recipients; ``secret`` DingTalk's signing
    secret or the SMTP connection id. Its ``repr`` names the kind only: never the URL or secret."""

    kind: str
    target: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return CHANNEL_NAMES[self.kind]

    def body(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """What this channel's receiver expects."""
        text = alert_text(payload)
        if self.kind == "wecom":
            return {"msgtype": "text", "text": {"content": _truncate_utf8(text, WECOM_TEXT_LIMIT)}}
        if self.kind == "dingtalk":
            return {"msgtype": "text", "text": {"content": text}, "at": {"isAtAll": False}}
        return {**payload, "text": text}

    def url(self) -> str:
        if self.kind == "dingtalk" and self.secret:
            return dingtalk_signed_url(self.target, self.secret)
        return self.target


def channels_from_env(env: Mapping[str, str] | None = None) -> list[Channel]:
    """The channels configured in the environment (``.env``), in a fixed order."""
    env = os.environ if env is None else env

    def get(name: str) -> str:
        return (env.get(name) or "").strip()

    channels = []
    if get(WEBHOOK_ENV):
        channels.append(Channel("webhook", get(WEBHOOK_ENV)))
    if get(WECOM_ENV):
        channels.append(Channel("wecom", get(WECOM_ENV)))
    if get(DINGTALK_ENV):
        channels.append(Channel("dingtalk", get(DINGTALK_ENV), get(DINGTALK_SECRET_ENV) or None))
    if get(EMAIL_TO_ENV):
        channels.append(Channel("email", get(EMAIL_TO_ENV), get(SMTP_CONN_ENV) or DEFAULT_SMTP_CONN_ID))
    return channels


def _redacted(text: object, channel: Channel) -> str:
    """A message with the channel's URL, query, secret and recipients blanked out."""
    out = str(text)
    secrets = [channel.target, channel.secret or "", urllib.parse.urlsplit(channel.target).query]
    secrets += channel.target.replace(";", ",").split(",")
    for secret in sorted((s.strip() for s in secrets if s.strip()), key=len, reverse=True):
        out = out.replace(secret, "***")
    return out


def _describe(exc: BaseException, channel: Channel) -> str:
    """Why a delivery failed, without the URL, token or recipients that exception texts often carry
    (urllib's "unknown url type: ...", SMTP's refused-recipients dict): the exception type plus
    the OS error, the SMTP reply code or an Airflow message (redacted)."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    detail = getattr(exc, "smtp_code", None) or getattr(exc, "strerror", None)
    if detail is None and type(exc).__module__.startswith("airflow"):
        detail = _redacted(exc, channel)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def post_json(url: str, payload: Mapping[str, Any], timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> tuple[int, bytes]:
    """POST ``payload`` as JSON; returns the HTTP status and the answer's body (at most 64 KiB).
    Raises ``OSError`` when it cannot be delivered."""
    body = json.dumps(payload, default=str, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "customer-mdm-alerts"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return int(response.status), response.read(65536)


def _robot_error(answer: bytes) -> int | None:
    """WeCom and DingTalk answer HTTP 200 with ``{"errcode": N, ...}``: a non-zero code is a failure."""
    try:
        code = json.loads(answer or b"{}").get("errcode", 0)
    except (ValueError, AttributeError):
        return None
    return int(code) if code else None


def send_email(channel: Channel, payload: Mapping[str, Any]) -> None:
    """Send the alert through Airflow's SMTP provider (the connection ``channel.secret``)."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    text = alert_text(payload)
    rows = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in payload.items()
        if v is not None and k != "message"
    )
    content = f"<p>{html.escape(str(payload.get('message') or ''))}</p><table>{rows}</table>"
    recipients = [r.strip() for r in channel.target.replace(";", ",").split(",") if r.strip()]
    with SmtpHook(smtp_conn_id=channel.secret or DEFAULT_SMTP_CONN_ID) as hook:
        hook.send_email_smtp(to=recipients, subject=_truncate_utf8(text, 200), html_content=content)


def deliver(channel: Channel, payload: Mapping[str, Any]) -> bool:
    """Deliver to one channel; logs (by channel name only) and returns False when it failed."""
    try:
        if channel.kind == "email":
            send_email(channel, payload)
            status = 250
        else:
            status, answer = post_json(channel.url(), channel.body(payload))
            errcode = _robot_error(answer) if channel.kind in ("wecom", "dingtalk") else None
            if errcode is not None:
                log.error("alert %s answered errcode %s; the alert is only in this log", channel.name, errcode)
                return False
    except urllib.error.HTTPError as exc:
        log.error("alert %s answered HTTP %s; the alert is only in this log", channel.name, exc.code)
        return False
    except Exception as exc:  # noqa: BLE001  (refused, timeouts, bad URL, SMTP errors: never hide the alert)
        log.error("alert %s unreachable (%s); the alert is only in this log", channel.name, _describe(exc, channel))
        return False
    log.info("alert %s delivered to the %s (status %s)", payload.get("event"), channel.name, status)
    return True


def send_alert(
    payload: Mapping[str, Any], webhook: str | None = None, channels: list[Channel] | None = None
) -> dict[str, bool]:
    """Log the alert and deliver it to every configured channel; returns ``{channel name: delivered}``.

    ``channels`` defaults to :func:`channels_from_env`; ``webhook`` (tests, callers) replaces them
    with one generic JSON webhook. URLs, secrets and recipients are never logged.
    """
    log.error("%s", payload.get("message"), extra={"mdm_alert": dict(payload)})
    if channels is None:
        channels = [Channel("webhook", webhook)] if webhook else channels_from_env()
    return {channel.name: deliver(channel, payload) for channel in channels}


def _notifier_class() -> type:
    """:class:`MdmAlertNotifier`, defined on first use: importing ``airflow.sdk`` replaces the
    root logger's handlers (Airflow's logging on stdout), which must not happen to a process that
    only sends an alert (``mdm run --no-airflow``, whose log is on stderr and JSON on stdout)."""
    from airflow.sdk import BaseNotifier

    class MdmAlertNotifier(BaseNotifier):
        """Log an alert and deliver it to the configured channels (see the module docstring).

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

    MdmAlertNotifier.__module__ = __name__
    MdmAlertNotifier.__qualname__ = "MdmAlertNotifier"
    return MdmAlertNotifier


def __getattr__(name: str) -> Any:  # PEP 562: ``from customer_mdm.alerts import MdmAlertNotifier``
    if name == "MdmAlertNotifier":
        cls = _notifier_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
