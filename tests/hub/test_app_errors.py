"""An unexpected failure is a bare 500 in the contract's shape; neither the answer nor the log
quotes the exception's message (it may hold personal values)."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from customer_mdm.config import Settings
from customer_mdm.hub.app import create_app

SECRET_VALUE = "13812345678"


def test_unhandled_exception_is_a_bare_500_and_logged_without_its_message(
    duckdb_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(duckdb_settings)

    def boom() -> None:
        raise ValueError(f"duplicate key value ({SECRET_VALUE})")

    app.add_api_route("/boom", boom)
    caplog.set_level(logging.DEBUG)
    with TestClient(app) as client:  # raises what would reach the server (and its traceback log)
        r = client.get("/boom")
        assert r.status_code == 500
        assert r.json() == {"error": {"code": "internal", "message": "internal error"}}
        assert client.get("/nowhere").json()["error"]["code"] == "not_found"
        assert client.get("/health").json()["golden_version"] is None  # nothing published yet
    assert "ValueError" in caplog.text
    assert SECRET_VALUE not in caplog.text and SECRET_VALUE not in r.text
