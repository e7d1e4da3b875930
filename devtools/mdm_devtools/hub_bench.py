"""The hub part of ``make bench``: ``mdm serve`` on loopback after the full run, 4 clients.

Figures (printed beside the pipeline's):

- ``POST /v1/match`` latency p50 / p99 and requests per second with ``clients`` concurrent
  keep-alive clients for ``seconds``, after a warm-up (every worker builds the match and lookup
  indexes of the publication at start-up: the seconds until all say ``ready`` are
  ``warmup_s``), cycling through the bodies of the accuracy phase; ``match_first_seen``: the
  latency of the accuracy phase (one client, inputs no worker has standardised yet: the
  pipeline's standardisers dominate it);
- ``GET /v1/lookup?mobile=`` p99 the same way (the numbers the platform reads as valid), and
  ``GET /v1/customers/{id}`` p99 over the golden ids of the people of the accuracy phase;
- accuracy on **call-centre style records of people who exist**: the generator's own people
  (rebuilt from the landing zone's seed) rendered the way the generator renders a call-centre
  ticket -- homophone names, 王先生, pinyin, traditional characters; the number they call from
  (their mobile, the household head's mobile, a landline); a callback e-mail; the city as they
  say it -- and sent as a form would: the share whose top candidate is one of that person's
  golden ids (``existing_top1``) and whose answer is ``match`` as well (``existing_match``),
  over ``sample`` people (2,000: a share near 97 % then has a standard error of about 0.4
  points; the load phases use the first ``load_sample``);
- **made-up people** (the generator's people of another seed, rendered the same way): the
  share answered ``no_match`` (``made_up_no_match``);
- ``console``: the console's page timings on the same server (mdm_devtools.console_bench).

The personal values of the generated people never leave this process but as HTTP bodies on
loopback; nothing is logged.
"""

from __future__ import annotations

import inspect
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from customer_mdm.config import Settings

#: the call-centre's rendering probabilities (mdm_devtools.generate._callcenter)
_PHONE_KINDS = [0.62, 0.04, 0.3, 0.015, 0.025]
_PHONE_FORMATS = [0.85, 0.03, 0.03, 0.02, 0.02, 0.03, 0.01, 0.01]
_CITY_STYLES = [0.45, 0.35, 0.05, 0.15]


def _people(seed: int, people: int, days: int) -> tuple[Any, Any]:
    """The generator's people of ``seed`` (the same draw generate_landing makes first) and its clock."""
    from mdm_devtools import generate as g

    start = inspect.signature(g.generate_landing).parameters["start"].default
    rng = np.random.Generator(np.random.PCG64(seed))
    clock = g._Clock(start, days)
    return g._make_people(rng, people, clock), clock


def call_centre_payloads(P: Any, clock: Any, persons: np.ndarray, seed: int) -> list[dict[str, str]]:
    """Form bodies for ``persons`` (indices into ``P``) rendered like call-centre tickets."""
    from mdm_devtools import generate as g

    rng = np.random.Generator(np.random.PCG64(seed))
    n = len(persons)
    u = rng.random((n, 8))
    t = np.full(n, clock.last, dtype=np.int64)
    name = g._render_name(P, persons, u[:, 0], u[:, 1], g._NAME_P["callcenter"])
    phone, _, _ = g._render_phone(P, persons, t, u[:, 2], u[:, 3], _PHONE_KINDS, _PHONE_FORMATS)
    channel = g._pick(u[:, 4], [0.7, 0.2, 0.1])
    email, _, _ = g._render_email(P, persons, np.where(channel == 2, 0.0, u[:, 5]), u[:, 6], 0.25)
    city = g._city_variant(g._ref().dist_city[P.dist_at(persons, t)], u[:, 7], _CITY_STYLES)
    out = []
    for k in range(n):
        body = {"name": str(name[k]), "mobile": str(phone[k]), "email": str(email[k]), "city": str(city[k])}
        body = {f: v for f, v in body.items() if v.strip()}
        if not any(f in body for f in ("name", "mobile", "email")):
            body["name"] = str(P.name[persons[k]])
        out.append(body)
    return out


def _pid(person: int, people: int) -> str:
    """The generator's person id of index ``person``."""
    return f"P{person + 1:0{max(7, len(str(people)))}d}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000 if values else 0.0


def _load(
    base_url: str, token: str, requests: list[tuple[str, str, Any]], clients: int, seconds: float
) -> dict[str, Any]:
    """``clients`` threads, each a keep-alive client, cycling through ``requests`` for ``seconds``."""
    import httpx

    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = time.perf_counter() + seconds

    def worker(k: int) -> None:
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            i = k
            while time.perf_counter() < stop:
                method, path, body = requests[i % len(requests)]
                t0 = time.perf_counter()
                r = c.post(path, json=body) if method == "POST" else c.get(path, params=body)
                latencies[k].append(time.perf_counter() - t0)
                errors[k] += r.status_code != 200
                i += clients

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - started
    flat = [x for lat in latencies for x in lat]
    return {
        "requests": len(flat),
        "errors": sum(errors),
        "p50_ms": round(_percentile(flat, 50), 2),
        "p99_ms": round(_percentile(flat, 99), 2),
        "per_second": round(len(flat) / wall, 1) if wall else 0.0,
    }


def bench_hub(
    settings: Settings,
    landing: Path,
    seed: int,
    people: int,
    days: int = 3,
    clients: int = 4,
    seconds: float = 20.0,
    sample: int = 2000,
    workers: int = 2,
    load_sample: int = 400,
) -> dict[str, Any]:
    """Serve the published warehouse of ``settings`` and measure match-on-entry (module docstring)."""
    import httpx

    from customer_mdm.hub import serving
    from customer_mdm.hub.auth import create_token
    from customer_mdm.hub.standardise import standard_mobile
    from customer_mdm.warehouse import connect

    if settings.target == "duckdb" and serving.current_snapshot(settings) is None:
        serving.refresh(settings, "bench")
    token = create_token(settings, f"bench-{time.time_ns()}", ["match", "read"])

    # who is who: person -> golden ids (the generator's truth joined with the cross-reference)
    truth = pd.read_csv(landing / "_truth" / "truth.csv", dtype=str)
    with connect(settings) as wh:
        xref = wh.query_df("select source, source_id, golden_id from mdm.xref")
    joined = truth.merge(xref, on=["source", "source_id"], how="inner")
    golden_of = joined.groupby("person_id")["golden_id"].agg(set).to_dict()
    P, clock = _people(seed, people, days)
    rng = np.random.default_rng(seed + 1)
    known = np.array(sorted(golden_of))
    chosen = rng.choice(len(known), size=min(sample, len(known)), replace=False)
    persons = np.array([int(known[i][1:]) - 1 for i in chosen], dtype=np.int64)
    existing = call_centre_payloads(P, clock, persons, seed + 2)
    P2, clock2 = _people(seed + 7919, sample, days)
    made_up = call_centre_payloads(P2, clock2, np.arange(sample, dtype=np.int64), seed + 3)

    port = _free_port()
    env = {
        **os.environ,
        **settings.env(),
        "MDM_HUB_RATE_LIMIT": "1000000",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    cmd = [sys.executable, "-m", "customer_mdm.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers)]
    server = subprocess.Popen(  # our own CLI, on loopback
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    base_url = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"workers": workers, "clients": clients}
    try:
        deadline = time.time() + 180
        while True:
            try:
                if httpx.get(base_url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError("mdm serve did not come up for the hub bench")
            time.sleep(0.3)
        headers = {"Authorization": f"Bearer {token}"}
        t0 = time.perf_counter()
        # every worker builds its indexes in the background at start-up (hub.app.Warmer): wait
        # until 20 answers in a row, each on a new connection (any worker), say ``ready``
        in_a_row = 0
        while in_a_row < 20:
            ready = httpx.get(base_url + "/health", timeout=600).json().get("ready")
            in_a_row = in_a_row + 1 if ready else 0
            if not ready:
                if time.perf_counter() - t0 > 900:
                    raise RuntimeError("the hub's indexes were not built within 15 minutes")
                time.sleep(0.5)
        result["warmup_s"] = round(time.perf_counter() - t0, 2)
        with httpx.Client(base_url=base_url, headers=headers, timeout=600) as c:
            for body in existing[: workers * 4]:
                c.post("/v1/match", json=body)

        # accuracy (one request each, sequential)
        top1 = matched = no_match = 0
        cold: list[float] = []  # one client, inputs the server has not standardised before
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as c:
            for person, body in zip(persons, existing, strict=True):
                t1 = time.perf_counter()
                answer = c.post("/v1/match", json=body).json()
                cold.append(time.perf_counter() - t1)
                cands = answer.get("candidates") or []
                if cands and cands[0]["golden_id"] in golden_of.get(_pid(person, people), set()):
                    top1 += 1
                    matched += answer.get("decision") == "match"
            for body in made_up:
                no_match += c.post("/v1/match", json=body).json().get("decision") == "no_match"
        result["accuracy"] = {
            "existing": len(existing),
            "existing_top1": round(top1 / len(existing), 4),
            "existing_match": round(matched / len(existing), 4),
            "made_up": len(made_up),
            "made_up_no_match": round(no_match / len(made_up), 4),
        }
        result["match_first_seen"] = {
            "p50_ms": round(_percentile(cold, 50), 2),
            "p99_ms": round(_percentile(cold, 99), 2),
        }

        # the load phases cycle through the first ``load_sample`` people of each kind (the
        # accuracy phase's larger sample only narrows the accuracy figures' sampling error)
        bodies = [
            ("POST", "/v1/match", b)
            for pair in zip(existing[:load_sample], made_up[:load_sample], strict=True)
            for b in pair
        ]
        result["match"] = _load(base_url, token, bodies, clients, seconds)
        # lookups of numbers the platform reads as valid (an invalid one is a 422, not a lookup)
        mobiles = [
            ("GET", "/v1/lookup", {"mobile": b["mobile"]})
            for b in existing[:load_sample]
            if "mobile" in b and standard_mobile(b["mobile"]) is not None
        ]
        result["lookup"] = _load(base_url, token, mobiles, clients, seconds / 2)
        reads = [
            ("GET", f"/v1/customers/{g}", None)
            for p in persons[:load_sample]
            for g in sorted(golden_of[_pid(p, people)])
        ]
        result["customer"] = _load(base_url, token, reads, clients, seconds / 2)
        result["console"] = _console(settings, base_url, seed)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server we started (its own session)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    return result


def _console(settings: Settings, base_url: str, seed: int) -> dict[str, Any]:
    """The console's page timings on the same server (mdm_devtools.console_bench)."""
    from mdm_devtools.console_bench import bench_console

    try:
        return bench_console(settings, base_url, seed=seed)
    except Exception as exc:  # noqa: BLE001 - the match figures still count
        import logging

        logging.getLogger(__name__).warning("console bench failed: %s", type(exc).__name__)
        return {"error": type(exc).__name__}


def render_hub(rows: list[tuple[int, dict[str, Any]]]) -> str:
    """The hub table: one row per size (source records, figures)."""
    head = [
        "source records",
        "match p50 ms",
        "match p99 ms",
        "first-seen p50 ms",
        "match req/s",
        "lookup p99 ms",
        "customer p99 ms",
        "existing top-1",
        "existing match",
        "made-up no_match",
        "errors",
        "warm-up s",
    ]
    lines = ["hub (mdm serve on loopback)", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for records, h in rows:
        if not h or "match" not in h:
            lines.append(f"| {records:,} | " + " | ".join(["-"] * (len(head) - 1)) + " |")
            continue
        m, lk, acc = h["match"], h["lookup"], h["accuracy"]
        cells = [
            f"{records:,}",
            f"{m['p50_ms']:.1f}",
            f"{m['p99_ms']:.1f}",
            f"{h.get('match_first_seen', {}).get('p50_ms', 0):.1f}",
            f"{m['per_second']:.0f}",
            f"{lk['p99_ms']:.1f}",
            f"{h.get('customer', {}).get('p99_ms', 0):.1f}",
            f"{acc['existing_top1']:.3f}",
            f"{acc['existing_match']:.3f}",
            f"{acc['made_up_no_match']:.3f}",
            str(m["errors"] + lk["errors"] + h.get("customer", {}).get("errors", 0)),
            f"{h.get('warmup_s', 0):.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
