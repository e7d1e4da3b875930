"""Writes that lose nothing, an incremental run the server starts itself, and a bounded load test
while that run publishes (``slow``; DuckDB and PostgreSQL).

1. A server with the run trigger accepts an erasure request and a self-service change, answers
   202 and is SIGKILLed right after: both are in the store.
2. A second server with the trigger (``MDM_HUB_RUN_AFTER_MINUTES``) sees them waiting and starts
   ``mdm run`` in a child process.
3. Meanwhile four clients read, look up and write against the main server (two workers) until the
   new publication is served, bounded in time: no error, every 202 is in the store, and the main
   server switches to the new publication without a restart.
4. The change reached the golden record through the self_service feed; the erased person is 404.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hubtools import Server

from customer_mdm.config import Settings
from customer_mdm.hub import serving
from customer_mdm.hub.auth import create_token
from customer_mdm.hub.store import open_store, store_path
from customer_mdm.pipeline import run_inline
from customer_mdm.warehouse import connect
from mdm_devtools.generate import generate_landing

pytestmark = pytest.mark.slow

PEOPLE = 120
NEW_MOBILE = "+8613700001234"
LOAD_SECONDS_MAX = 300


@dataclass
class World:
    settings: Settings
    run_id: str
    token: str
    people: list[dict[str, Any]]
    env: dict[str, str]


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp(f"hub_durable_{request.param}")
    landing = base / "landing"
    generate_landing(landing, PEOPLE, seed=23, days=2)
    if request.param == "postgres":
        dsn = request.getfixturevalue("pg_server").create_database(f"t_hubd_{uuid.uuid4().hex[:10]}")
        settings = Settings.from_env(env={}, home=base / "home", landing=landing, target="postgres", pg_dsn=dsn)
    else:
        settings = Settings.from_env(env={}, home=base / "home", landing=landing)
    summary = run_inline(settings, governance=False)
    assert summary["status"] == "success"
    with connect(settings) as wh:
        people = wh.query_df(
            "select golden_id, phone, email from marts.dim_customer where phone like '+861%' "
            "and phone_source_record not like 'callcenter:%' and phone in ("
            "  select r.phone_e164 from intermediate.int_customer_records as r join mdm.xref as x"
            "  on x.source = r.source and x.source_id = r.source_id"
            "  group by r.phone_e164 having count(distinct x.golden_id) = 1"
            ") order by golden_id limit 40"
        ).to_dict("records")
    token = create_token(settings, "load", ["read", "self_service", "privacy"])
    yield World(settings, summary["run_id"], token, people, {"MDM_HUB_RATE_LIMIT": "100000"})


def test_nothing_is_lost_and_the_server_switches_to_the_new_publication(world: World) -> None:
    settings = world.settings
    changed, erased, *others = world.people
    trigger_env = {
        **world.env,
        "MDM_HUB_RUN_AFTER_MINUTES": "0.05",  # three seconds
        "MDM_HUB_TRIGGER_CHECK_SECONDS": "0.5",
        "MDM_HUB_RUN_ARGS": "run --no-airflow --no-governance --quiet",
    }
    main = Server(settings, env=world.env, workers=2).start()
    try:
        # 1. 202 then SIGKILL
        doomed = Server(settings, env=trigger_env).start()
        with doomed.client(world.token) as c:
            r = c.post(
                "/v1/erasure-requests",
                json={"request_id": "dsr-kill", "identifier_type": "mobile", "identifier_value": erased["phone"]},
            )
            assert r.status_code == 202
            r = c.post(
                f"/v1/customers/{changed['golden_id']}/changes",
                json={"event_id": "kill-1", "field": "mobile", "new_value": NEW_MOBILE},
            )
            assert r.status_code == 202
        doomed.kill()
        with open_store(settings) as store:
            assert store.scalar("select status from hub.self_service_changes where event_id = 'kill-1'") == "pending"
            assert store.scalar("select status from hub.erasure_requests where request_id = 'dsr-kill'") == "pending"

        # 2. another server triggers the run; 3. load on the main server meanwhile
        time.sleep(3.2)
        trigger = Server(settings, env=trigger_env).start()
        results: list[tuple[str, int]] = []
        accepted: list[str] = []
        versions: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client(n: int) -> None:
            rnd = random.Random(n)
            with main.client(world.token) as c:
                i = 0
                while not stop.is_set():
                    i += 1
                    person = rnd.choice(others)
                    kind = i % 4
                    if kind == 0:
                        r = c.get(f"/v1/customers/{person['golden_id']}")
                    elif kind == 1:
                        r = c.get("/v1/lookup", params={"mobile": person["phone"]})
                    elif kind == 2:
                        event = f"load-{n}-{i}"
                        r = c.post(
                            f"/v1/customers/{person['golden_id']}/changes",
                            json={"event_id": event, "field": "city", "new_value": "上海市"},
                        )
                        if r.status_code == 202:
                            with lock:
                                accepted.append(event)
                    else:
                        r = c.get("/health")
                        if r.status_code == 200:
                            with lock:
                                versions.append(r.json()["golden_version"])
                    with lock:
                        results.append((str(kind), r.status_code))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + LOAD_SECONDS_MAX
        switched_at = None
        try:
            while time.monotonic() < deadline:
                with lock:
                    latest = versions[-1] if versions else world.run_id
                if latest != world.run_id and switched_at is None:
                    switched_at = time.monotonic()
                if switched_at is not None and time.monotonic() - switched_at > 2:
                    break
                assert trigger.proc is not None and trigger.proc.poll() is None
                time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        trigger.stop()

        bad = [(k, s) for k, s in results if s not in (200, 202)]
        assert not bad, bad[:10]
        assert switched_at is not None, "the main server never served the new publication"
        assert len(results) > 100
        new_version = versions[-1]
        assert new_version != world.run_id
        with open_store(settings) as store:
            stored = {r[0] for r in store.query("select event_id from hub.self_service_changes")}
            assert set(accepted) <= stored  # no lost write
            assert store.scalar("select count(*) from hub.run_triggers where mode = 'embedded'") >= 1
            assert store.scalar("select status from hub.self_service_changes where event_id = 'kill-1'") == "taken"
            row = store.query("select status, identifier_value from hub.erasure_requests where request_id = 'dsr-kill'")
            assert row == [("taken", None)]  # handled, and the identifier no longer kept in clear
            assert store.scalar("select count(*) from hub.access_log where golden_id = ?", [erased["golden_id"]]) == 0

        # 4. through the feeds, the gates and the manifest into the golden record
        with connect(settings) as wh:
            assert wh.scalar("select count(*) from raw.self_service where event_id = 'kill-1'") == 1
            assert (
                wh.scalar(
                    "select count(*) from ops.manifest where file_name like 'hub_changes_%' and status = 'ingested'"
                )
                >= 1
            )
        with main.client(world.token) as c:
            body = c.get(f"/v1/customers/{changed['golden_id']}").json()
            assert body["attributes"]["phone"]["value"] == NEW_MOBILE
            assert body["golden_version"] == new_version
            assert c.get(f"/v1/customers/{erased['golden_id']}").status_code == 404
            assert c.get("/v1/lookup", params={"mobile": erased["phone"]}).json() == {"golden_ids": []}
        assert main.proc is not None and main.proc.poll() is None  # the same process throughout
        if settings.target == "duckdb":  # no serving file, nor the hub store, mentions the erased person
            national = erased["phone"].removeprefix("+86")
            for path in serving.serving_dir(settings).glob("*.duckdb"):
                assert national.encode() not in path.read_bytes(), path.name
            for path in store_path(settings).parent.glob("hub.sqlite*"):
                assert national.encode() not in path.read_bytes(), path.name
        print(f"load: {len(results)} requests, {len(accepted)} writes accepted, switched to {new_version}")
    finally:
        main.stop()
