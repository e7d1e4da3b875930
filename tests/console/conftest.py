"""Console test helpers: a real `mdm serve` on a free loopback port, users added with
`mdm user add` (password on stdin), chromium through Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from customer_mdm.config import Settings

PASSWORD = "correct horse battery"  # pragma: allowlist secret (the test users' password)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def mdm(
    settings: Settings, *args: str, stdin: str | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings.env()}
    return subprocess.run(
        [sys.executable, "-m", "customer_mdm.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def add_user(settings: Settings, name: str, role: str, language: str = "en") -> None:
    done = mdm(settings, "user", "add", name, "--role", role, "--language", language, stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr[-2000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(settings: Settings, env: dict[str, str] | None = None) -> Iterator[str]:
    """`mdm serve` on a free loopback port (``env``: more environment); yields its base URL."""
    port = free_port()
    env = {**os.environ, **settings.env(), **(env or {})}
    log = open(settings.home / "serve.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "customer_mdm.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "mdm serve did not start:\n" + Path(settings.home / "serve.log").read_text()[-3000:]
                )
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def sign_in(client: httpx.Client, base: str, name: str, password: str = PASSWORD) -> httpx.Response:
    return client.post(f"{base}/console/login", data={"username": name, "password": password})


def ensure_review_pairs(settings: Settings, wanted: int = 3) -> int:
    """The link step queues only the pairs whose review could change a decision, so a small
    generated warehouse may have none. Queue ``wanted`` pairs of real records as the link step
    would (two golden customers of one name, probability inside the review band), then republish
    the serving tables. Returns how many pairs the queue holds."""
    from customer_mdm.hub import serving
    from customer_mdm.warehouse import connect

    with connect(settings) as wh:
        have = int(wh.scalar("select count(*) from mdm.review_queue") or 0)
        if have < wanted:
            pairs = wh.query(
                "with r as (select x.record_id, x.golden_id, c.name_sorted_key from mdm.xref as x "
                "join intermediate.int_customer_records as c on c.source = x.source and c.source_id = x.source_id "
                "where c.name_sorted_key is not null) "
                "select min(a.record_id), b.record_id, a.golden_id, b.golden_id from r as a join r as b "
                "on a.name_sorted_key = b.name_sorted_key and a.golden_id < b.golden_id "
                "group by b.record_id, a.golden_id, b.golden_id order by 1, 2 limit ?",
                [wanted - have],
            )
            if len(pairs) < wanted - have:  # no shared names: any two customers
                pairs += wh.query(
                    "select min(a.record_id), min(b.record_id), a.golden_id, b.golden_id from mdm.xref as a "
                    "join mdm.xref as b on a.golden_id < b.golden_id group by a.golden_id, b.golden_id "
                    "order by 3, 4 limit ?",
                    [wanted - have - len(pairs)],
                )
            run_id = wh.scalar("select max(run_id) from mdm.link_runs")
            for left, right, gl, gr in pairs:
                wh.execute(
                    "insert into mdm.review_queue (record_id_l, record_id_r, match_probability, golden_id_l, "
                    "golden_id_r, queued_at, run_id) values (?, ?, 0.5, ?, ?, current_timestamp, ?)",
                    [
                        min(left, right),
                        max(left, right),
                        gl if left < right else gr,
                        gr if left < right else gl,
                        run_id,
                    ],
                )
        total = int(wh.scalar("select count(*) from mdm.review_queue") or 0)
    if total > have:
        serving.refresh(settings, str(run_id))
    return total
