"""Every alert channel against a real local server: the generic webhook's Slack-compatible `text`,
WeCom (企业微信) and DingTalk (钉钉) robots with their JSON formats, DingTalk's signature, e-mail
through Airflow's SMTP provider; robots' error codes; no URL, secret or recipient in the logs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from types import SimpleNamespace

import pytest

from customer_mdm.alerts import (
    DINGTALK_ENV,
    DINGTALK_SECRET_ENV,
    EMAIL_TO_ENV,
    SMTP_CONN_ENV,
    TASK_FAILED,
    WEBHOOK_ENV,
    WECOM_ENV,
    WECOM_TEXT_LIMIT,
    Channel,
    MdmAlertNotifier,
    build_payload,
    channels_from_env,
    send_alert,
)
from mdm_devtools.receivers import HttpReceiver, SmtpReceiver

WECOM_KEY = "wecom-key-" + "9f8e7d6c"
DINGTALK_ACCESS = "ding-access-" + "1a2b3c4d"
DINGTALK_SECRET = "SEC" + "0123456789abcdef"
RECIPIENT = "mdm-oncall@example.invalid"
ALL_ENV = (WEBHOOK_ENV, WECOM_ENV, DINGTALK_ENV, DINGTALK_SECRET_ENV, EMAIL_TO_ENV, SMTP_CONN_ENV)


@pytest.fixture(autouse=True)
def no_channels(monkeypatch):
    for name in ALL_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def robot():
    with HttpReceiver(answer={"errcode": 0, "errmsg": "ok"}) as receiver:
        yield receiver


def context() -> dict:
    ti = SimpleNamespace(dag_id="mdm_daily", task_id="publish", run_id="scheduled__2026-12-04T03:00", try_number=1)
    return {"task_instance": ti, "exception": RuntimeError("golden suite failed"), "run_id": ti.run_id}


def logged(caplog) -> str:
    return "\n".join(f"{r.getMessage()} {getattr(r, 'mdm_alert', '')}" for r in caplog.records)


def test_wecom_robot_gets_its_text_message(robot, monkeypatch, caplog):
    monkeypatch.setenv(WECOM_ENV, f"{robot.url}/cgi-bin/webhook/send?key={WECOM_KEY}")
    with caplog.at_level(logging.INFO, logger="customer_mdm.alerts"):
        MdmAlertNotifier(TASK_FAILED)(context())
    (request,) = robot.requests
    assert request.path == "/cgi-bin/webhook/send" and request.query == {"key": WECOM_KEY}
    body = request.json
    assert body["msgtype"] == "text" and set(body) == {"msgtype", "text"}
    assert body["text"]["content"].startswith("【MDM 任务失败 task failed】MDM task failed: mdm_daily.publish")
    assert "golden suite failed" in body["text"]["content"]
    assert "delivered to the WeCom robot" in caplog.text
    assert WECOM_KEY not in logged(caplog)


def test_wecom_text_is_cut_to_its_byte_limit(robot):
    payload = build_payload(TASK_FAILED, context(), message="数据" * 2000)  # 12 000 bytes of UTF-8
    assert send_alert(payload, channels=[Channel("wecom", f"{robot.url}/send?key={WECOM_KEY}")]) == {
        "WeCom robot": True
    }
    content = robot.bodies[0]["text"]["content"]
    assert len(content.encode("utf-8")) <= WECOM_TEXT_LIMIT and content.endswith("...")


def test_a_robot_error_code_is_a_failed_delivery(robot, caplog):
    robot.answer = {"errcode": 93000, "errmsg": "invalid webhook url"}
    payload = build_payload(TASK_FAILED, context())
    with caplog.at_level(logging.INFO, logger="customer_mdm.alerts"):
        result = send_alert(payload, channels=[Channel("wecom", f"{robot.url}/send?key={WECOM_KEY}")])
    assert result == {"WeCom robot": False}
    assert "WeCom robot answered errcode 93000" in caplog.text and "delivered" not in caplog.text
    assert WECOM_KEY not in logged(caplog)


def test_dingtalk_robot_is_signed_with_its_secret(robot, monkeypatch, caplog):
    monkeypatch.setenv(DINGTALK_ENV, f"{robot.url}/robot/send?access_token={DINGTALK_ACCESS}")
    monkeypatch.setenv(DINGTALK_SECRET_ENV, DINGTALK_SECRET)
    with caplog.at_level(logging.INFO, logger="customer_mdm.alerts"):
        MdmAlertNotifier(TASK_FAILED)(context())
    (request,) = robot.requests
    assert request.path == "/robot/send" and request.query["access_token"] == DINGTALK_ACCESS
    timestamp = request.query["timestamp"]
    assert abs(int(timestamp) - time.time() * 1000) < 60_000, "milliseconds, within DingTalk's hour"
    expected = hmac.new(DINGTALK_SECRET.encode(), f"{timestamp}\n{DINGTALK_SECRET}".encode(), hashlib.sha256)
    assert request.query["sign"] == base64.b64encode(expected.digest()).decode(), "parse_qsl undid the urlencode"
    body = request.json
    assert body["msgtype"] == "text" and "mdm_daily.publish" in body["text"]["content"]
    assert body["at"] == {"isAtAll": False}
    text = logged(caplog)
    assert DINGTALK_ACCESS not in text and DINGTALK_SECRET not in text


def test_dingtalk_without_a_secret_is_not_signed(robot, monkeypatch):
    monkeypatch.setenv(DINGTALK_ENV, f"{robot.url}/robot/send?access_token={DINGTALK_ACCESS}")
    MdmAlertNotifier(TASK_FAILED)(context())
    assert robot.requests[0].query == {"access_token": DINGTALK_ACCESS}


def test_email_goes_through_airflows_smtp_provider(monkeypatch, caplog):
    with SmtpReceiver() as smtp:
        connection = {
            "conn_type": "smtp",
            "host": smtp.host,
            "port": smtp.port,
            "extra": {"from_email": "mdm-alerts@example.invalid", "disable_ssl": True, "disable_tls": True},
        }
        monkeypatch.setenv("AIRFLOW_CONN_MDM_ALERT_MAIL", json.dumps(connection))
        monkeypatch.setenv(SMTP_CONN_ENV, "mdm_alert_mail")
        monkeypatch.setenv(EMAIL_TO_ENV, f"{RECIPIENT}, second@example.invalid")
        with caplog.at_level(logging.INFO, logger="customer_mdm.alerts"):
            MdmAlertNotifier(TASK_FAILED)(context())
    (sender, recipients, message), *rest = smtp.messages
    assert not rest
    assert sender == "mdm-alerts@example.invalid"
    assert recipients == [RECIPIENT, "second@example.invalid"]
    assert str(message["Subject"]).startswith("【MDM 任务失败 task failed】MDM task failed")
    html = message.get_body(("html",)).get_content()
    assert "mdm_daily" in html and "golden suite failed" in html and "scheduled__2026-12-04T03:00" in html
    assert "delivered to the e-mail" in caplog.text
    assert RECIPIENT not in logged(caplog)


def test_every_configured_channel_gets_the_alert(robot, monkeypatch):
    monkeypatch.setenv(WEBHOOK_ENV, f"{robot.url}/slack")
    monkeypatch.setenv(WECOM_ENV, f"{robot.url}/wecom?key={WECOM_KEY}")
    monkeypatch.setenv(DINGTALK_ENV, f"{robot.url}/dingtalk?access_token={DINGTALK_ACCESS}")
    assert [c.kind for c in channels_from_env()] == ["webhook", "wecom", "dingtalk"]
    assert WECOM_KEY not in repr(channels_from_env()), "a channel's repr names no URL"
    result = send_alert(build_payload(TASK_FAILED, context()))
    assert result == {"webhook": True, "WeCom robot": True, "DingTalk robot": True}
    by_path = {r.path: r.json for r in robot.requests}
    assert by_path["/slack"]["text"] == by_path["/wecom"]["text"]["content"] == by_path["/dingtalk"]["text"]["content"]
    assert by_path["/slack"]["event"] == TASK_FAILED, "the generic webhook keeps the structured fields"


def test_unreachable_channels_log_no_url_secret_or_recipient(monkeypatch, caplog):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv(WECOM_ENV, f"wecom-{WECOM_KEY}://nowhere/send?key={WECOM_KEY}")  # urllib: unknown url type
    monkeypatch.setenv(DINGTALK_ENV, f"{dead}/robot/send?access_token={DINGTALK_ACCESS}")
    monkeypatch.setenv(DINGTALK_SECRET_ENV, DINGTALK_SECRET)
    monkeypatch.setenv(EMAIL_TO_ENV, RECIPIENT)
    monkeypatch.setenv(SMTP_CONN_ENV, "mdm_no_such_connection")
    with caplog.at_level(logging.INFO, logger="customer_mdm.alerts"):
        result = send_alert(build_payload(TASK_FAILED, context()))
    assert result == {"WeCom robot": False, "DingTalk robot": False, "e-mail": False}
    text = logged(caplog)
    assert "WeCom robot unreachable" in text and "DingTalk robot unreachable" in text and "e-mail unreachable" in text
    for secret in (WECOM_KEY, DINGTALK_ACCESS, DINGTALK_SECRET, RECIPIENT):
        assert secret not in text, "a secret or recipient reached the log"
