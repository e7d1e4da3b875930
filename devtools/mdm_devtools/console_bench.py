"""The console part of ``make bench``: page timings of ``/console`` as a signed-in steward sees them.

Run against a served, published warehouse (the hub bench's ``mdm serve``,
mdm_devtools.hub_bench): a steward is created through ``mdm user add`` (a generated
password on stdin, never printed), signs in over HTTP with a keep-alive client holding the
session cookie, and times each page from the request to the last byte of the response (server
rendering plus loopback, as the browser's client sees it), one request at a time:

- ``review``: the review queue's first page (the most consequential pair, its waterfall);
- ``search_name`` / ``search_phone`` / ``search_golden_id``: customer search by a golden
  customer's name, mobile (national digits, as a steward types it) and golden id;
- ``customer``: the customer 360 page of sampled golden ids, the largest clusters first.

The values searched for are sampled from the serving tables the server reads and never leave
this process but as request URLs on loopback (``mdm serve`` has no access log; the ``httpx``
logger is held at WARNING while the pages are fetched); figures only are returned. Each kind
first gets :data:`WARMUP` requests that are not counted. The user is signed out and disabled
afterwards.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from customer_mdm.config import Settings

log = logging.getLogger(__name__)

#: page kinds, in the order they are measured and printed
PAGES = ("review", "search_name", "search_phone", "search_golden_id", "customer")
#: requests per page kind not counted (the first render of a template, cold caches)
WARMUP = 2
#: of the customer pages: how many are the largest clusters (the rest random golden ids)
BIG_CLUSTERS = 10


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return round(float(np.percentile(np.asarray(values), q)) * 1000, 1) if values else 0.0


def _figures(latencies: list[float], errors: int) -> dict[str, Any]:
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": _percentile(latencies, 50),
        "p95_ms": _percentile(latencies, 95),
        "max_ms": round(max(latencies) * 1000, 1) if latencies else 0.0,
    }


def sample_values(settings: Settings, n: int, seed: int = 42) -> dict[str, Any]:
    """Real values to search for and golden ids to open, from the serving tables: ``n`` golden
    customers picked by a seeded hash (names and mobiles of those that have them) and the
    :data:`BIG_CLUSTERS` golden ids with the most source records."""
    from customer_mdm.hub.serving import ServingReader

    rd = ServingReader(settings)
    picked = rd.query(
        "select golden_id, name, phone from serving.golden_customer "
        f"order by md5(golden_id || '{int(seed)}') limit {int(n)}"
    )
    big = rd.query(
        "select golden_id, source_record_count from serving.golden_customer "
        f"order by source_record_count desc, golden_id limit {min(BIG_CLUSTERS, int(n))}"
    )
    phones = []
    for _, _, phone in picked:
        digits = re.sub(r"\D", "", str(phone or ""))
        if len(digits) >= 11:
            phones.append(digits[-11:])  # the national number, as a steward types it
    big_ids = [str(g) for g, _ in big]
    return {
        "golden_ids": [str(g) for g, _, _ in picked],
        "names": [str(name) for _, name, _ in picked if name],
        "phones": phones,
        "customers": (big_ids + [str(g) for g, _, _ in picked if str(g) not in big_ids])[: int(n)],
        "largest_cluster": int(big[0][1] or 0) if big else 0,
    }


def add_bench_user(settings: Settings) -> tuple[str, str]:
    """A steward created by ``mdm user add`` (password on stdin): (name, password)."""
    name = f"bench-{time.time_ns()}"
    password = secrets.token_urlsafe(24)
    env = {**os.environ, **settings.env(), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(  # our own CLI
        [sys.executable, "-m", "customer_mdm.cli", "user", "add", name, "--role", "steward"],
        input=password + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"mdm user add failed with exit code {done.returncode}")
    return name, password


def _disable_user(settings: Settings, name: str) -> None:
    from customer_mdm.console.store import connect_store, t

    with connect_store(settings) as store:
        store.execute(f"update {t('console_users')} set disabled = 1 where name = ?", [name])
        store.execute(f"delete from {t('console_sessions')} where user_name = ?", [name])


@contextmanager
def _quiet_httpx() -> Iterator[None]:
    """httpx logs each request's URL at INFO: the search URLs carry personal values."""
    logger = logging.getLogger("httpx")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def bench_console(settings: Settings, base_url: str, requests: int = 50, seed: int = 42) -> dict[str, Any]:
    """Time the console pages of the server at ``base_url`` (module docstring): per page kind
    ``{"requests", "errors", "p50_ms", "p95_ms", "max_ms"}``, plus ``largest_cluster`` (source
    records of the biggest customer opened)."""
    import httpx

    values = sample_values(settings, requests, seed)
    name, password = add_bench_user(settings)
    result: dict[str, Any] = {"requests_per_page": requests, "largest_cluster": values["largest_cluster"]}
    try:
        with _quiet_httpx(), httpx.Client(base_url=base_url, timeout=120) as client:
            signed = client.post("/console/login", data={"username": name, "password": password})
            if signed.status_code != 303 or "mdm_console" not in client.cookies:
                raise RuntimeError(f"console sign-in failed with status {signed.status_code}")

            def timed(urls: list[tuple[str, dict[str, str] | None]]) -> dict[str, Any]:
                latencies: list[float] = []
                errors = 0
                for k, (path, params) in enumerate(urls[:WARMUP] + urls):
                    t0 = time.perf_counter()
                    r = client.get(path, params=params)  # the whole body is read
                    if k >= WARMUP:
                        latencies.append(time.perf_counter() - t0)
                        errors += r.status_code != 200
                return _figures(latencies, errors)

            def search(vals: list[str]) -> list[tuple[str, dict[str, str] | None]]:
                return [("/console/customers", {"q": v}) for v in _cycle(vals, requests)]

            pages: dict[str, Callable[[], list[tuple[str, dict[str, str] | None]]]] = {
                "review": lambda: [("/console/review", None)] * requests,
                "search_name": lambda: search(values["names"]),
                "search_phone": lambda: search(values["phones"]),
                "search_golden_id": lambda: search(values["golden_ids"]),
                "customer": lambda: [(f"/console/customers/{g}", None) for g in _cycle(values["customers"], requests)],
            }
            for kind in PAGES:
                urls = pages[kind]()
                result[kind] = timed(urls) if urls else {"requests": 0, "errors": 0}
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/actions").text)
            if csrf:
                client.post("/console/logout", data={"csrf_token": csrf.group(1)})
    finally:
        _disable_user(settings, name)
    return result


def _cycle(values: list[str], n: int) -> list[str]:
    return [values[i % len(values)] for i in range(n)] if values else []


def render_console(rows: list[tuple[int, dict[str, Any]]]) -> str:
    """The console table: one row per size and page kind (source records, figures)."""
    head = ["source records", "page", "requests", "p50 ms", "p95 ms", "max ms", "errors"]
    lines = [
        "console (mdm serve on loopback, one signed-in steward, full responses, sequential)",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for records, c in rows:
        if not c or "review" not in c:
            lines.append(f"| {records:,} | " + " | ".join(["-"] * (len(head) - 1)) + " |")
            continue
        for kind in PAGES:
            f = c.get(kind) or {}
            label = kind
            if kind == "customer" and c.get("largest_cluster"):
                label = f"customer (largest {c['largest_cluster']} records)"
            lines.append(
                f"| {records:,} | {label} | {f.get('requests', 0)} | {f.get('p50_ms', 0):.1f} "
                f"| {f.get('p95_ms', 0):.1f} | {f.get('max_ms', 0):.1f} | {f.get('errors', 0)} |"
            )
    return "\n".join(lines)
