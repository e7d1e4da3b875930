"""The console in a real browser (Debian's chromium driven by Playwright) against `mdm serve`:
sign in, decide review pairs with the keyboard, correct an attribute, run the pipeline, see the
corrected value and its audit row; a governance user sees masked values only. Screenshots of
the main pages are saved (to ``$MDM_SCREENSHOTS_DIR`` when set: docs/screenshots)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from customer_mdm.config import Settings
from customer_mdm.warehouse import connect
from mdm_devtools.generate import generate_landing
from tests.console.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    add_user,
    ensure_review_pairs,
    mdm,
    served,
    sign_in,
)

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():  # pragma: no cover - .ci/run installs it
    pytest.skip("chromium is not installed", allow_module_level=True)

CORRECTED = "更正测试"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str, Path]]:
    tmp = tmp_path_factory.mktemp("console_browser")
    settings = Settings.from_env(env={}, home=tmp / "home", landing=tmp / "landing")
    generate_landing(settings.landing, 300, seed=11, days=2)
    first = mdm(settings, "run", "--no-airflow", "--quiet", "--json")
    assert first.returncode == 0, first.stderr[-4000:]
    assert json.loads(first.stdout)["status"] == "success"
    ensure_review_pairs(settings)
    add_user(settings, "alice", "steward", "en")
    add_user(settings, "gina", "governance", "zh")
    shots = Path(os.environ.get("MDM_SCREENSHOTS_DIR") or tmp / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with served(settings) as base:
        yield settings, base, shots


@pytest.fixture(scope="module")
def browser(console: Any) -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _page(browser: Any, base: str, name: str) -> Any:
    page = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US").new_page()
    page.goto(base + "/console/login")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_load_state()
    return page


def _shot(page: Any, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"))


def _current(page: Any) -> tuple[str, str]:
    return (
        page.input_value('#decide input[name="record_id_l"]'),
        page.input_value('#decide input[name="record_id_r"]'),
    )


def _store_actions(settings: Settings) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(str(settings.home / "hub" / "hub.sqlite"))
    try:
        return con.execute(
            "select kind, actor, status, record_id_l, record_id_r, value from console_actions order by created_at"
        ).fetchall()
    finally:
        con.close()


def test_steward_decides_corrects_and_the_next_run_applies_it(console: Any, browser: Any) -> None:
    settings, base, shots = console
    page = _page(browser, base, "alice")
    assert page.url.endswith("/console/review")
    assert page.locator("#pair").count() == 1
    assert page.locator("table.waterfall tr").count() >= 3  # prior, comparisons, total
    page_text = page.inner_text("main")
    assert "nan" not in page_text.split() and "NaT" not in page_text
    _shot(page, shots, "review-en")

    # decide two pairs with the keyboard: m = match, n = no match
    decided = []
    for key in ("m", "n"):
        left = page.input_value('#decide input[name="record_id_l"]')
        right = page.input_value('#decide input[name="record_id_r"]')
        decided.append((left, right, "match" if key == "m" else "no_match"))
        with page.expect_navigation():
            page.keyboard.press(key)
        assert "Decision recorded" in page.inner_text(".flash")
        assert page.locator("#pair").count() == 0 or _current(page) != (left, right)
    # s skips (with a note, kept in the action log) to the next pair
    skipped = _current(page)
    page.fill("#note", "ask the store")
    page.locator("#note").blur()
    with page.expect_navigation():
        page.keyboard.press("s")
    assert page.locator("#pair").count() == 0 or _current(page) != skipped
    assert [a[:3] for a in _store_actions(settings) if a[0] == "skip"] == [("skip", "user:alice", "logged")]
    pending = [a for a in _store_actions(settings) if a[0] == "decision"]
    assert [(a[3], a[4], a[5]) for a in pending] == decided
    assert all(a[1] == "user:alice" and a[2] == "pending" for a in pending)

    # customer 360: search by golden id, correct the name
    with connect(settings, read_only=True) as wh:
        golden_id, old_name = wh.query(
            "select golden_id, name from marts.dim_customer where name is not null and source_record_count > 1 "
            "order by golden_id limit 1"
        )[0]
    page.goto(base + "/console/customers")
    page.fill("#q", golden_id)
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    page.click(f'#results a[href="/console/customers/{golden_id}"]')
    page.wait_for_load_state()
    assert page.inner_text("#golden-id").startswith(golden_id)
    name_row = page.locator('#golden tr[data-attribute="name"]')
    assert old_name in name_row.inner_text()
    page.select_option("#attribute", "name")
    page.fill("#value", CORRECTED)
    with page.expect_navigation():
        page.click("#correct-submit")
    assert "Saved" in page.inner_text(".flash")
    assert "pending until the next run" in page.inner_text("#pending")
    _shot(page, shots, "customer-en")

    # the next run applies the decisions and the correction; the page shows it without a restart
    second = mdm(settings, "run", "--no-airflow", "--quiet", "--json", "--no-governance")
    assert second.returncode == 0, second.stderr[-4000:]
    page.reload()
    name_row = page.locator('#golden tr[data-attribute="name"]')
    assert CORRECTED in name_row.inner_text() and "steward" in name_row.inner_text()
    audit = page.inner_text("#audit")
    assert "user:alice" in audit and "steward_correction" in audit
    assert "applied" in page.inner_text("#pending")
    assert all(a[2] == "applied" for a in _store_actions(settings) if a[0] in ("decision", "correction"))
    with connect(settings, read_only=True) as wh:
        assert wh.scalar("select name from marts.dim_customer where golden_id = ?", [golden_id]) == CORRECTED
        stored = wh.query("select record_id_l, record_id_r, decision, decided_by from mdm.steward_decisions")
    assert {(min(a, b), max(a, b), d) for a, b, d in decided} <= {tuple(s[:3]) for s in stored}
    assert {s[3] for s in stored} == {"user:alice"}

    # a third run keeps the steward's value (it survives reruns)
    third = mdm(settings, "run", "--no-airflow", "--quiet", "--json", "--no-governance")
    assert third.returncode == 0, third.stderr[-4000:]
    with connect(settings, read_only=True) as wh:
        assert wh.scalar("select name from marts.dim_customer where golden_id = ?", [golden_id]) == CORRECTED

    # the same pages in Chinese (per user)
    page.click("#lang")
    page.wait_for_load_state()
    assert "黄金记录" in page.inner_text("main")
    _shot(page, shots, "customer-zh")
    page.goto(base + "/console/review")
    _shot(page, shots, "review-zh")
    page.click("#lang")  # back to English
    page.wait_for_load_state()
    page.goto(base + "/console/worklist")
    assert page.locator("#worklist tr").count() > 1
    _shot(page, shots, "worklist-en")
    page.context.close()


def test_governance_user_sees_masked_values_only(console: Any, browser: Any) -> None:
    settings, base, shots = console
    with connect(settings, read_only=True) as wh:
        golden_id, name, phone, email = wh.query(
            "select golden_id, name, phone, email from marts.dim_customer "
            "where name is not null and phone is not null and email is not null order by golden_id limit 1"
        )[0]
        raw = [
            r
            for row in wh.query(
                "select r.name_std, r.phone_e164, r.email, r.source_id from intermediate.int_customer_records as r "
                "join mdm.xref as x on x.source = r.source and x.source_id = r.source_id where x.golden_id = ?",
                [golden_id],
            )
            for r in row
            if r
        ]
    page = _page(browser, base, "gina")
    assert page.url.endswith("/console/governance")
    assert "您的角色只能看到脱敏数据" in page.inner_text("main")  # gina reads Chinese
    _shot(page, shots, "governance-zh")
    page.goto(f"{base}/console/customers/{golden_id}")
    html = page.content()
    for value in {name, phone, email, *raw}:
        assert value not in html
    text = page.inner_text("#golden")
    assert f"{name[0]}**" in text
    assert re.search(r"\+86\d{3}\*{4}\d{4}", text)
    assert f"{email[0]}***@" in text
    # searching by a phone finds the customer, still masked
    page.goto(f"{base}/console/customers?q={phone.replace('+', '%2B')}")
    results = page.inner_text("#results")
    assert golden_id in results and phone not in results and name not in results
    page.context.close()


def test_review_list_prints_empty_values_as_empty(console: Any) -> None:
    settings, _, _ = console
    listed = mdm(settings, "review", "list", "--limit", "50")
    assert listed.returncode == 0, listed.stderr[-2000:]
    words = listed.stdout.split()
    assert "nan" not in words and "NaT" not in words and "None" not in words


def test_worklist_is_a_week_of_work_people_can_assign_and_export(console: Any) -> None:
    settings, base, _ = console
    with connect(settings, read_only=True) as wh:
        fields, customers = wh.query(
            "select count(*), count(distinct golden_id) from governance.reverification_worklist"
        )[0]
    with httpx.Client(base_url=base) as client:
        sign_in(client, base, "alice")
        page = client.get("/console/worklist").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        week = re.findall(r'name="golden_id" value="(G[0-9A-F]+)"', page)
        # one item per customer, at most a week's capacity, fewer than the stale fields
        assert 0 < len(week) <= min(150, customers) and len(week) == len(set(week)) and fields > len(week)
        first, second = week[0], week[1]
        formula = '=HYPERLINK("http://x","y")'
        for gid, status in ((first, "done"), (second, "in_progress")):
            r = client.post(
                "/console/worklist/update",
                data={"golden_id": gid, "status": status, "assignee": "alice", "note": formula, "csrf_token": token},
            )
            assert r.status_code == 303
        week_after = re.findall(r'name="golden_id" value="(G[0-9A-F]+)"', client.get("/console/worklist").text)
        assert first not in week_after and second in week_after  # done leaves the week's view
        mine = client.get("/console/worklist", params={"view": "all", "assignee": "alice"}).text
        assert set(re.findall(r'name="golden_id" value="(G[0-9A-F]+)"', mine)) == {first, second}
        vip = client.get("/console/worklist", params={"view": "all", "tier": "vip"}).text
        assert re.findall(r"<td>(vip|regular|prospect)</td>", vip) and set(
            re.findall(r"<td>(vip|regular|prospect)</td>", vip)
        ) == {"vip"}
        exported = client.get("/console/worklist", params={"view": "all", "assignee": "alice", "fmt": "csv"})
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert {r["golden_id"] for r in rows} == {first, second}
        assert all(r["note"] == "'" + formula for r in rows)  # CSV injection neutralised
        # an item whose cause is gone (the customer is no longer in the worklist) closes itself
        r = client.post(
            "/console/worklist/update",
            data={"golden_id": "G000000000000", "status": "in_progress", "assignee": "bob", "csrf_token": token},
        )
        assert r.status_code == 303
        page = client.get("/console/worklist").text
        assert "G000000000000" in page and "closed" in page
        con = sqlite3.connect(str(settings.home / "hub" / "hub.sqlite"))
        try:
            status = con.execute("select status from console_worklist where golden_id = 'G000000000000'").fetchall()
        finally:
            con.close()
        assert status == [("closed",)]
