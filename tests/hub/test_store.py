"""The hub store and the intake hand-over on both warehouses (``settings``: DuckDB and PostgreSQL)."""

from __future__ import annotations

import csv
import json

import pytest

from customer_mdm.config import Settings
from customer_mdm.hub import store as hub_store
from customer_mdm.hub.auth import create_token, list_tokens, principal_for, revoke_token
from customer_mdm.hub.intake import pending_age_minutes, take_pending
from customer_mdm.hub.store import ensure_store, erase, now, open_store, record_access


def _change(store: hub_store.Store, event_id: str, golden_id: str, value: str = "13800000001") -> None:
    store.execute(
        "insert into hub.self_service_changes (event_id, golden_id, source_system, source_id, field, new_value, "
        "submitted_at, received_at, principal, body_sha256, status) values (?, ?, 'crm', ?, 'mobile', ?, "
        "'2026-12-01T00:00:00+00:00', ?, 'token:t', 'x', 'pending')",
        [event_id, golden_id, f"C{event_id}", value, now()],
    )


def test_tokens_are_stored_hashed_and_revocable(settings: Settings) -> None:
    token = create_token(settings, "crm-form", ["read", "match"])
    with open_store(settings) as store:
        principal = principal_for(store, token)
        assert principal is not None and principal.scopes == {"read", "match"}
        assert token not in json.dumps(store.query("select * from hub.api_tokens"))
    assert revoke_token(settings, "crm-form") and not revoke_token(settings, "crm-form")
    with open_store(settings) as store:
        assert principal_for(store, token) is None
    assert list_tokens(settings)[0]["revoked_at"]
    again = create_token(settings, "crm-form", ["read"])  # re-issued after revocation
    with open_store(settings) as store:
        assert principal_for(store, again) is not None and principal_for(store, token) is None


def test_intake_becomes_feed_files_once_even_after_a_crash(settings: Settings) -> None:
    ensure_store(settings)
    with open_store(settings) as store:
        _change(store, "e1", "G1")
        _change(store, "e2", "G2")
        store.execute(
            "insert into hub.erasure_requests (request_id, identifier_type, identifier_value, requested_at, "
            "received_at, principal, body_sha256, status) values ('r1', 'mobile', '13900000017', "
            "'2026-12-01T00:00:00+00:00', ?, 'token:t', 'x', 'pending')",
            [now()],
        )
        # a run that died after marking a batch 'exporting' and before writing its file
        _change(store, "e0", "G0")
        store.execute(
            "update hub.self_service_changes set status = 'exporting', batch = ? where event_id = 'e0'",
            ["hub_changes_20261201T000000000000.jsonl"],
        )
    assert pending_age_minutes(settings) is not None
    summary = take_pending(settings, "run_1")
    files = sorted((settings.landing / "self_service").glob("hub_changes_*.jsonl"))
    assert [f.name for f in files] == sorted(summary["self_service_changes"]["files"])
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert sorted(line["event_id"] for line in lines) == ["e0", "e1", "e2"]
    assert set(lines[0]) == {"event_id", "source_system", "source_id", "field", "new_value", "submitted_at"}
    (erasure_file,) = (settings.landing / "erasure").glob("hub_erasure_*.csv")
    rows = list(csv.DictReader(erasure_file.open(encoding="utf-8")))
    assert rows == [
        {
            "request_id": "r1",
            "identifier_type": "mobile",
            "identifier_value": "13900000017",
            "requested_at": "2026-12-01T00:00:00+00:00",
        }
    ]
    assert take_pending(settings, "run_2") == {
        "self_service_changes": {"files": [], "rows": 0},
        "erasure_requests": {"files": [], "rows": 0},
    }
    assert pending_age_minutes(settings) is None
    with open_store(settings) as store:
        assert {r[0] for r in store.query("select status from hub.self_service_changes")} == {"taken"}


def test_erase_covers_every_personal_store_table(settings: Settings) -> None:
    hub_store.register_table("test_notes", {"golden_id": "text", "note": "text"}, person_columns=("golden_id",))
    try:
        ensure_store(settings)
        with open_store(settings) as store:
            _change(store, "e1", "G_ERASED", "13700000009")
            _change(store, "e2", "G_KEPT")
            _change(store, "e3", "G_OTHER", "13700000009")  # a pending change carrying the erased number
            record_access(store, "token:t", "read", "/v1/customers/{golden_id}", 200, ["G_ERASED", "G_KEPT"])
            store.execute(
                "insert into hub.reminders_sent (golden_id, channel, sent_at) values ('G_ERASED', 'sms', ?), "
                "('G_KEPT', 'sms', ?)",
                [now(), now()],
            )
            store.execute("insert into hub.test_notes values ('G_ERASED', 'x'), ('G_KEPT', 'y')")
        removed = erase(settings, ["G_ERASED"], ["13700000009"])
        assert removed["access_log"] == 1 and removed["reminders_sent"] == 1 and removed["test_notes"] == 1
        with open_store(settings) as store:
            for table in ("self_service_changes", "access_log", "reminders_sent", "test_notes"):
                assert store.scalar(f"select count(*) from hub.{table} where golden_id = 'G_ERASED'") == 0
                assert store.scalar(f"select count(*) from hub.{table} where golden_id = 'G_KEPT'") == 1
            assert store.scalar("select count(*) from hub.self_service_changes where new_value = '13700000009'") == 0
    finally:
        hub_store.STORE_TABLES.pop("test_notes", None)
        hub_store.PERSONAL_TABLES.pop("test_notes", None)


@pytest.mark.parametrize("scopes", ["", "read,owner"])
def test_unknown_scopes_are_refused(duckdb_settings: Settings, scopes: str) -> None:
    from customer_mdm.errors import MdmError

    with pytest.raises(MdmError, match="scopes"):
        create_token(duckdb_settings, "x", scopes.split(","))
