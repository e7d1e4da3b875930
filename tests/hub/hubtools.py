"""Helpers for the hub tests: a generated, published warehouse and ``mdm serve`` as a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from customer_mdm.config import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mdm(settings: Settings, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    """Run the ``mdm`` CLI of this checkout in a child process; returns stdout."""
    full_env = {**os.environ, **settings.env(), **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "customer_mdm.cli", *args], env=full_env, capture_output=True, text=True, timeout=600
    )
    if check and done.returncode != 0:
        raise AssertionError(f"mdm {args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


@dataclass
class Server:
    """``mdm serve`` in a child process on a free loopback port."""

    settings: Settings
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> Server:
        self.log = self.settings.home / f"serve-{self.port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings.env(), **self.env}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "customer_mdm.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mdm serve exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"mdm serve did not answer in {timeout}s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the server's process group (uvicorn and its workers): no shutdown, no flush."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The contract's error object of a response (asserting its shape)."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    return body["error"]  # type: ignore[no-any-return]
