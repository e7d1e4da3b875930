"""The console on PostgreSQL: the server reads `serving.*` live and writes the hub store as the
`mdm_api` role; a correction made in the console is applied by the next run and wins
survivorship; pages render from the PostgreSQL serving tables; a governance user sees masks."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from customer_mdm.config import Settings
from customer_mdm.pipeline import run_inline
from customer_mdm.security import API_ROLE, PASSWORD_ENV, apply
from customer_mdm.warehouse import connect
from mdm_devtools.generate import generate_landing
from tests.console.conftest import add_user, ensure_review_pairs, served, sign_in

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def pg_console(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    base = tmp_path_factory.mktemp("console_pg")
    generate_landing(base / "landing", 150, seed=31, days=2)
    name = f"t_console_{uuid.uuid4().hex[:10]}"
    dsn = pg_server.create_database(name)
    settings = Settings.from_env(env={}, home=base / "home", landing=base / "landing", target="postgres", pg_dsn=dsn)
    password = secrets.token_urlsafe(18)
    apply(settings, env={PASSWORD_ENV[API_ROLE]: password})
    assert run_inline(settings, governance=True)["status"] == "success"
    ensure_review_pairs(settings)
    add_user(settings, "alice", "steward")
    add_user(settings, "gina", "governance")
    api_dsn = pg_server.dsn(name, user=API_ROLE, password=password)
    with served(settings, env={"MDM_HUB_PG_DSN": api_dsn}) as url:
        yield settings, url


def test_console_on_postgres_as_mdm_api(pg_console: tuple[Settings, str]) -> None:
    settings, url = pg_console
    with connect(settings) as wh:
        golden_id, name, phone = wh.query(
            "select golden_id, name, phone from marts.dim_customer "
            "where name is not null and phone is not null order by golden_id limit 1"
        )[0]
        record = wh.query("select min(record_id) from mdm.xref where golden_id = ?", [golden_id])[0][0]
    with httpx.Client(base_url=url) as alice:
        sign_in(alice, url, "alice")
        review = alice.get("/console/review")
        assert review.status_code == 200 and 'id="pair"' in review.text and "waterfall" in review.text
        page = alice.get(f"/console/customers/{golden_id}")
        assert page.status_code == 200 and name in page.text
        worklist = alice.get("/console/worklist")
        assert worklist.status_code == 200 and 'name="golden_id"' in worklist.text
        assert alice.get("/console/governance").status_code == 200
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        saved = alice.post(
            f"/console/customers/{golden_id}/correct",
            data={"attribute": "name", "value": "更正测试", "record_id": record, "csrf_token": token},
        )
        assert saved.status_code == 303
    assert run_inline(settings, governance=False)["status"] == "success"
    with connect(settings) as wh:
        assert wh.scalar("select name from marts.dim_customer where golden_id = ?", [golden_id]) == "更正测试"
        assert (
            wh.scalar(
                "select actor from audit.golden_changes where action = 'steward_correction' and golden_id = ?",
                [golden_id],
            )
            == "user:alice"
        )
    with httpx.Client(base_url=url) as gina:
        sign_in(gina, url, "gina")
        masked = gina.get(f"/console/customers/{golden_id}").text
        assert "更**" in masked and phone not in masked and "更正测试" not in masked
