"""API tokens, scopes and the per-token rate limit.

A token is ``mdm_`` + 32 random bytes (URL-safe base64); only its sha256 is stored
(``hub.api_tokens``), with its name and scopes. ``mdm api-token create`` prints it once.

Rate limit: a token bucket per token *per server process* (``MDM_HUB_RATE_LIMIT`` requests per
second, default 1000, burst ``MDM_HUB_RATE_BURST``, default twice the rate). With N workers or
replicas a token may make up to N times the rate; put a shared limit in the front proxy when
that matters (docs/hub.md).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from customer_mdm.config import Settings
from customer_mdm.errors import MdmError
from customer_mdm.hub.errors import ApiError
from customer_mdm.hub.store import SCHEMA, Store, ensure_store, now, open_store

SCOPES = ("match", "read", "self_service", "privacy", "steward")
TOKEN_PREFIX = "mdm_"


@dataclass(frozen=True)
class Principal:
    """The caller of a request: the token's name and scopes."""

    name: str
    scopes: frozenset[str]

    @property
    def label(self) -> str:
        """How audit and access-log rows name the caller: ``token:<name>``."""
        return f"token:{self.name}"


def token_hash(token: str) -> str:
    """sha256 (hex) of a token: what the store keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_scopes(text: str) -> list[str]:
    """``match,read`` -> ``["match", "read"]``; an unknown scope is an MdmError naming it."""
    scopes = sorted({s.strip() for s in text.split(",") if s.strip()})
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise MdmError(f"unknown or no scopes {unknown}: choose from {', '.join(SCOPES)}")
    return scopes


def create_token(settings: Settings, name: str, scopes: list[str]) -> str:
    """Create (or re-issue, when revoked) token ``name`` with ``scopes``; returns the token (shown once)."""
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise MdmError("token name: use 1-64 letters, digits, '-', '_' or '.'")
    scopes = parse_scopes(",".join(scopes))
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    ensure_store(settings)
    with open_store(settings) as store, store.transaction():
        row = store.query(f"select revoked_at from {SCHEMA}.api_tokens where name = ?", [name])
        if row and row[0][0] is None:
            raise MdmError(f"token {name!r} exists: revoke it first (mdm api-token revoke {name})")
        store.execute(f"delete from {SCHEMA}.api_tokens where name = ?", [name])
        store.execute(
            f"insert into {SCHEMA}.api_tokens (name, token_sha256, scopes, created_at) values (?, ?, ?, ?)",
            [name, token_hash(token), ",".join(scopes), now()],
        )
    return token


def revoke_token(settings: Settings, name: str) -> bool:
    """Revoke token ``name`` (effective on the next request); False when there is no active one."""
    ensure_store(settings)
    with open_store(settings) as store:
        changed = store.execute(
            f"update {SCHEMA}.api_tokens set revoked_at = ? where name = ? and revoked_at is null", [now(), name]
        )
    return bool(changed)


def list_tokens(settings: Settings) -> list[dict[str, str | None]]:
    """Every token: name, scopes, created_at, revoked_at (never the hash)."""
    ensure_store(settings)
    with open_store(settings) as store:
        rows = store.query(f"select name, scopes, created_at, revoked_at from {SCHEMA}.api_tokens order by name")
    return [{"name": r[0], "scopes": r[1], "created_at": r[2], "revoked_at": r[3]} for r in rows]


def principal_for(store: Store, token: str) -> Principal | None:
    """The active token's principal, or None."""
    rows = store.query(
        f"select name, scopes from {SCHEMA}.api_tokens where token_sha256 = ? and revoked_at is null",
        [token_hash(token)],
    )
    if not rows:
        return None
    return Principal(str(rows[0][0]), frozenset(str(rows[0][1]).split(",")))


class RateLimiter:
    """Token buckets per principal name, in this process (see the module docstring)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> RateLimiter:
        rate = float(os.environ.get("MDM_HUB_RATE_LIMIT") or 1000)
        burst = float(os.environ.get("MDM_HUB_RATE_BURST") or 2 * rate)
        return cls(rate, burst)

    def allow(self, key: str) -> tuple[bool, float]:
        """(allowed, seconds until the next request would be allowed)."""
        t = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, t))
            tokens = min(self.burst, tokens + (t - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, t)
                return True, 0.0
            self._buckets[key] = (tokens, t)
            return False, (1 - tokens) / self.rate


def require(scope: str) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the request's principal, which must hold ``scope``.

    401 without a valid ``Authorization: Bearer`` token, 403 without the scope, 429 over the rate."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope}")

    def dependency(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "missing bearer token", {"WWW-Authenticate": "Bearer"})
        from customer_mdm.hub.app import thread_store

        principal = principal_for(thread_store(request.app), token.strip())
        if principal is None:
            raise ApiError(401, "unauthorized", "invalid or revoked token", {"WWW-Authenticate": "Bearer"})
        request.state.principal = principal.label
        allowed, wait = request.app.state.limiter.allow(principal.name)
        if not allowed:
            raise ApiError(429, "rate_limited", "too many requests for this token", {"Retry-After": str(int(wait) + 1)})
        if scope not in principal.scopes:
            raise ApiError(403, "forbidden", f"the token lacks scope {scope}")
        return principal

    return dependency
