"""The alert notifier against a real HTTP server: task failure (sync, as Airflow's failure callback
calls it) and the deadline alert (async, through Airflow's own CallbackTrigger as the triggerer runs it)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from customer_mdm.alerts import GOLDEN_LATE, TASK_FAILED, WEBHOOK_ENV, MdmAlertNotifier
from customer_mdm.orchestration import golden_deadline
from mdm_devtools.receivers import HttpReceiver


@dataclass
class Webhook:
    """The generic webhook's view of a :class:`HttpReceiver` (the JSON bodies and content types)."""

    receiver: HttpReceiver
    url: str

    @property
    def received(self) -> list[dict]:
        return self.receiver.bodies

    @property
    def content_types(self) -> list[str]:
        return [r.headers["Content-Type"] for r in self.receiver.requests]

    @property
    def status(self) -> int:
        return self.receiver.status

    @status.setter
    def status(self, value: int) -> None:
        self.receiver.status = value


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with HttpReceiver() as receiver:
        yield Webhook(receiver, f"{receiver.url}/hooks/mdm")


def failed_task_context() -> dict:
    ti = SimpleNamespace(dag_id="mdm_daily", task_id="link", run_id="scheduled__2026-12-03T03:00", try_number=3)
    return {"task_instance": ti, "ti": ti, "exception": RuntimeError("warehouse unreachable"), "run_id": ti.run_id}


def test_task_failure_is_logged_and_posted_to_the_webhook(webhook, monkeypatch, caplog):
    monkeypatch.setenv(WEBHOOK_ENV, webhook.url)
    with caplog.at_level(logging.ERROR, logger="customer_mdm.alerts"):
        MdmAlertNotifier(TASK_FAILED)(failed_task_context())  # how Airflow calls an on_failure_callback

    assert len(webhook.received) == 1
    alert = webhook.received[0]
    assert webhook.content_types == ["application/json; charset=utf-8"]
    assert alert["text"].startswith("【MDM 任务失败 task failed】MDM task failed: mdm_daily.link"), "Slack shows `text`"
    assert alert["event"] == "task_failed" and alert["source"] == "customer-mdm"
    assert (alert["dag_id"], alert["task_id"], alert["try_number"]) == ("mdm_daily", "link", 3)
    assert alert["run_id"] == "scheduled__2026-12-03T03:00"
    assert alert["error"] == "warehouse unreachable"
    assert "mdm_daily.link" in alert["message"] and "warehouse unreachable" in alert["message"]
    assert any("MDM task failed: mdm_daily.link" in r.getMessage() for r in caplog.records)


def test_without_a_webhook_the_alert_is_only_logged(webhook, monkeypatch, caplog):
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    with caplog.at_level(logging.ERROR, logger="customer_mdm.alerts"):
        MdmAlertNotifier(TASK_FAILED)(failed_task_context())
    assert webhook.received == []
    assert any("MDM task failed" in r.getMessage() for r in caplog.records)


def test_a_broken_webhook_never_hides_the_failure(webhook, monkeypatch, caplog):
    webhook.status = 500
    monkeypatch.setenv(WEBHOOK_ENV, webhook.url)
    with caplog.at_level(logging.ERROR, logger="customer_mdm.alerts"):
        MdmAlertNotifier(TASK_FAILED)(failed_task_context())  # does not raise
    assert len(webhook.received) == 1
    assert any("answered HTTP 500" in r.getMessage() for r in caplog.records)

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    monkeypatch.setenv(WEBHOOK_ENV, dead)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="customer_mdm.alerts"):
        MdmAlertNotifier(TASK_FAILED)(failed_task_context())
    messages = [r.getMessage() for r in caplog.records]
    assert any("MDM task failed" in m for m in messages), "the alert itself is still logged"
    assert any("unreachable" in m for m in messages)


def test_deadline_alert_runs_through_airflows_callback_trigger(webhook, monkeypatch):
    """The triggerer imports the callback path, passes the kwargs plus a context and awaits it."""
    from airflow.models.callback import CallbackState
    from airflow.triggers.callback import CallbackTrigger

    monkeypatch.setenv(WEBHOOK_ENV, webhook.url)
    monkeypatch.delenv("MDM_GOLDEN_DEADLINE_HOURS", raising=False)
    deadline = golden_deadline()
    assert deadline is not None
    callback = deadline.callback
    context = {  # what the scheduler hands the triggerer (Deadline.handle_miss)
        "dag_run": {"dag_id": "mdm_daily", "dag_run_id": "scheduled__2026-12-03T03:00", "logical_date": "x"},
        "deadline": {"id": "d1", "deadline_time": "2026-12-03T01:00:00+00:00"},
    }
    trigger = CallbackTrigger(callback.path, {**callback.kwargs, "context": context})

    async def events() -> list:
        return [event async for event in trigger.run()]

    states = [e.payload["state"] for e in asyncio.run(events())]
    assert states == [CallbackState.RUNNING, CallbackState.SUCCESS]
    assert len(webhook.received) == 1
    alert = webhook.received[0]
    assert alert["event"] == GOLDEN_LATE
    assert alert["dag_id"] == "mdm_daily" and alert["run_id"] == "scheduled__2026-12-03T03:00"
    assert alert["deadline"] == "2026-12-03T01:00:00+00:00"
    assert "marts.dim_customer" in alert["message"]


def test_the_webhook_url_never_reaches_the_log(webhook, monkeypatch, caplog):
    # incoming-webhook URLs carry their credential in the path or the query
    token = "T0KEN-in-the-path-9f8e7d"  # pragma: allowlist secret
    webhook.status = 403
    monkeypatch.setenv(WEBHOOK_ENV, f"{webhook.url}services/{token}?key={token}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/{token}"
    with caplog.at_level(logging.DEBUG, logger="customer_mdm.alerts"):
        MdmAlertNotifier(TASK_FAILED)(failed_task_context())
        monkeypatch.setenv(WEBHOOK_ENV, dead)
        MdmAlertNotifier(TASK_FAILED)(failed_task_context())
        monkeypatch.setenv(WEBHOOK_ENV, f"htp:/{token}")  # malformed: its error quotes the URL
        MdmAlertNotifier(TASK_FAILED)(failed_task_context())
    messages = [r.getMessage() for r in caplog.records]
    assert any("answered HTTP 403" in m for m in messages) and any("unreachable" in m for m in messages)
    assert not [m for m in messages if token in m]


def test_sending_an_alert_leaves_the_process_logging_alone() -> None:
    """Importing airflow.sdk replaces the root logger's handlers (stdout): a process that only
    sends an alert (a stale feed during `mdm run --no-airflow`) keeps its log on stderr."""
    import subprocess
    import sys

    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
        "from customer_mdm.alerts import build_payload, send_alert\n"
        "send_alert(build_payload('source_stale', None, 'feed x is stale'), channels=[])\n"
        "logging.getLogger('customer_mdm.pipeline').info('after the alert')\n"
        "print('airflow.sdk' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "False"
    assert "after the alert" in done.stderr
