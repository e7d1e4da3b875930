"""Sign-in, lockout, sessions and CSRF of the console, over HTTP against a running `mdm serve`."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from customer_mdm.config import Settings
from customer_mdm.console.auth import MAX_FAILURES
from tests.console.conftest import PASSWORD, add_user, mdm, served, sign_in


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    tmp = tmp_path_factory.mktemp("console_http")
    (tmp / "landing").mkdir()
    settings = Settings.from_env(env={}, home=tmp / "home", landing=tmp / "landing")
    settings.home.mkdir(parents=True)
    for name, role in (("alice", "steward"), ("gina", "governance"), ("lock.me", "steward")):
        add_user(settings, name, role)
    with served(settings) as base:
        yield settings, base


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def _actions(settings: Settings) -> list[tuple[str, str, str]]:
    con = sqlite3.connect(str(settings.home / "hub" / "hub.sqlite"))
    try:
        return con.execute("select kind, actor, status from console_actions order by created_at").fetchall()
    finally:
        con.close()


def test_pages_need_sign_in(server: tuple[Settings, str]) -> None:
    _, base = server
    for path in ("/console/review", "/console/customers", "/console/worklist", "/console/governance"):
        r = httpx.get(base + path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/console/login", path


def test_user_add_reads_the_password_from_stdin_and_rejects_short_ones(server: tuple[Settings, str]) -> None:
    settings, _ = server
    short = mdm(settings, "user", "add", "bob", "--role", "steward", stdin="short\n")
    assert short.returncode != 0 and "10 characters" in short.stderr
    bad_role = mdm(settings, "user", "add", "bob", "--role", "root", stdin=PASSWORD + "\n")
    assert bad_role.returncode != 0


def test_session_cookie_and_stored_hash(server: tuple[Settings, str]) -> None:
    settings, base = server
    with httpx.Client() as client:
        r = sign_in(client, base, "alice")
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        session_id = client.cookies["mdm_console"]
        raw = (settings.home / "hub" / "hub.sqlite").read_bytes()
        for wal in Path(settings.home / "hub").glob("hub.sqlite-wal"):
            raw += wal.read_bytes()
        assert session_id.encode() not in raw  # only its hash is stored
        assert client.get(base + "/console/actions").status_code == 200


def test_lockout_after_repeated_failures(server: tuple[Settings, str]) -> None:
    _, base = server
    with httpx.Client() as client:
        for _ in range(MAX_FAILURES - 1):
            assert sign_in(client, base, "lock.me", "wrong password!").status_code == 401
        assert sign_in(client, base, "lock.me", "wrong password!").status_code == 423
        # locked: even the right password is refused, and nothing is signed in
        locked = sign_in(client, base, "lock.me")
        assert locked.status_code == 423 and "locked" in locked.text
        assert "mdm_console" not in client.cookies
        # other users are not affected
        assert sign_in(client, base, "alice").status_code == 303


def test_every_post_needs_the_session_csrf_token(server: tuple[Settings, str]) -> None:
    settings, base = server
    form = {"record_id_l": "crm:C1", "record_id_r": "crm:C2", "decision": "match", "rank": "1"}
    with httpx.Client() as alice, httpx.Client() as other:
        sign_in(alice, base, "alice")
        sign_in(other, base, "alice")
        token = _csrf(alice.get(base + "/console/actions").text)
        before = len(_actions(settings))
        assert alice.post(base + "/console/review/decide", data=form).status_code == 403
        forged = {**form, "csrf_token": "forged"}  # pragma: allowlist secret
        assert alice.post(base + "/console/review/decide", data=forged).status_code == 403
        # another session's token is not this session's
        other_token = _csrf(other.get(base + "/console/actions").text)
        assert other_token != token
        assert alice.post(base + "/console/review/decide", data={**form, "csrf_token": other_token}).status_code == 403
        assert alice.post(base + "/console/logout", data={}).status_code == 403
        assert len(_actions(settings)) == before
        ok = alice.post(base + "/console/review/decide", data={**form, "csrf_token": token})
        assert ok.status_code == 303
        assert _actions(settings)[-1] == ("decision", "user:alice", "pending")


def test_governance_role_may_not_act_and_sign_out_ends_the_session(server: tuple[Settings, str]) -> None:
    settings, base = server
    with httpx.Client() as gina:
        sign_in(gina, base, "gina")
        token = _csrf(gina.get(base + "/console/governance").text)
        before = len(_actions(settings))
        r = gina.post(
            base + "/console/customers/G1/correct",
            data={"attribute": "name", "value": "x", "record_id": "crm:C1", "csrf_token": token},
        )
        assert r.status_code == 403 and len(_actions(settings)) == before
        assert gina.get(base + "/console/review").status_code == 403
        session_id = gina.cookies["mdm_console"]
        assert gina.post(base + "/console/logout", data={"csrf_token": token}).status_code == 303
    # the old cookie is worthless: the session is gone from the store
    stale = httpx.get(base + "/console/governance", cookies={"mdm_console": session_id}, follow_redirects=False)
    assert stale.status_code == 303 and stale.headers["location"] == "/console/login"


def test_governance_serves_the_dbt_docs_site_and_nothing_beside_it(server: tuple[Settings, str]) -> None:
    """The dbt docs site (regenerated after each publication) is served behind sign-in; a path
    that leaves its folder is not."""
    settings, base = server
    site = settings.dbt_docs_dir
    site.mkdir(parents=True, exist_ok=True)
    (site / "index.html").write_text("<html><body>dbt docs</body></html>", encoding="utf-8")
    (site / "manifest.json").write_text('{"nodes": {}}', encoding="utf-8")
    assert httpx.get(base + "/console/governance/file/dbt/index.html", follow_redirects=False).status_code == 303
    with httpx.Client() as gina:
        sign_in(gina, base, "gina")
        assert "governance/file/dbt/index.html" in gina.get(base + "/console/governance").text
        page = gina.get(base + "/console/governance/file/dbt/index.html")
        assert page.status_code == 200 and "dbt docs" in page.text
        assert gina.get(base + "/console/governance/file/dbt/manifest.json").json() == {"nodes": {}}
        assert gina.get(base + "/console/governance/file/dbt/../../hub/hub.sqlite").status_code == 404
        assert gina.get(base + "/console/governance/file/dbt/%2e%2e/%2e%2e/hub/hub.sqlite").status_code == 404
