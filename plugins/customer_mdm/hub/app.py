"""The hub's FastAPI application: :func:`create_app` (used by ``mdm serve``, the tests and the
console's ``mount``).

Everything that matters lives outside the process (the hub store, the serving snapshot or
schema), so any number of workers or replicas give the same answers. The only per-process state
is the rate-limit window (:mod:`customer_mdm.hub.auth`) and the open serving connection.

Logging: one line per request with the method, the route *template* (``/v1/customers/{golden_id}``,
never the concrete path or query string, which may hold personal values), the status, the time
taken and the token's name. uvicorn's own access log is switched off for that reason.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from customer_mdm.config import Settings
from customer_mdm.hub.errors import ApiError
from customer_mdm.hub.store import Store

log = logging.getLogger("customer_mdm.hub")

#: largest request body accepted (bytes); larger is 413. Env ``MDM_HUB_MAX_BODY``.
DEFAULT_MAX_BODY = 64 * 1024

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    422: "invalid",
    429: "rate_limited",
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The contract's error body ``{"error": {"code": ..., "message": ...}}`` with ``status``."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


class BodyLimit:
    """Pure ASGI middleware: a request body over ``limit`` bytes is answered 413 before the route
    reads it (by ``Content-Length``, and by counting when the body is streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(scope, receive, send)
                    return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, "body_too_large", f"request body larger than {self.limit} bytes")
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class CatchAll:
    """Pure ASGI middleware: an unhandled exception becomes a bare 500 in the contract's shape and
    one log line with its class. (Starlette's outer error middleware would re-raise it to the
    server, which logs the traceback and its message: those may quote personal values.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - answered and logged without its message
            route = getattr(scope.get("route"), "path", None) or "(unrouted)"
            log.error("hub %s %s failed: %s", scope.get("method"), route, type(exc).__name__)
            if not started:
                await error_response(500, "internal", "internal error")(scope, receive, send)


class RequestLog:
    """Pure ASGI middleware: one log line per request with the method, the route template, the
    status, the time taken and the token's name (no concrete path, no query string). Pure ASGI
    rather than ``@app.middleware``: no extra task and stream per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "hub %s %s %s %.1fms %s",
                    scope.get("method"),
                    getattr(scope.get("route"), "path", None) or "(unrouted)",
                    status,
                    (time.perf_counter() - started) * 1000,
                    (scope.get("state") or {}).get("principal", "-"),
                )


def _route_template(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or "(unrouted)"


class Warmer:
    """Builds the match and lookup indexes of the current serving version in a background thread:
    at start-up (so that no request waits for the build of a 1M-record index, tens of seconds)
    and whenever a new publication appears (checked every ``MDM_HUB_WARM_SECONDS``, default 2;
    ``0`` turns warming off: indexes are then built by the first request that needs them).
    ``ready`` is set once the first version is warm (``GET /health`` reports it). A request that
    arrives while a version is being built waits for it (it never gets the previous publication's
    answers: an erasure makes a new version too)."""

    def __init__(self, reader: Any, interval: float) -> None:
        self.reader = reader
        self.interval = interval
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._built: str | None = None

    @classmethod
    def from_env(cls, reader: Any) -> Warmer:
        raw = os.environ.get("MDM_HUB_WARM_SECONDS")
        try:
            interval = 2.0 if raw is None or not raw.strip() else float(raw)
        except ValueError:
            raise ValueError("MDM_HUB_WARM_SECONDS must be a number of seconds (0: no warming)") from None
        return cls(reader, max(interval, 0.0))

    def start(self) -> None:
        if self.interval <= 0:
            self.ready.set()
            return
        self._thread = threading.Thread(target=self._run, name="hub-warmer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def warm_once(self) -> bool:
        """Build what the current version needs; True when it is warm."""
        from customer_mdm.hub.lookup import lookup_index
        from customer_mdm.hub.matching import MatcherUnavailable, get_matcher

        version = self.reader.version()
        if version is None:
            return False  # nothing published yet
        if version == self._built:
            return True
        try:
            lookup_index(self.reader)
            get_matcher(self.reader)._model()  # the index and the model's blocking keys
        except MatcherUnavailable:
            pass  # no trained model yet: lookups are warm, matching answers 503 as before
        self._built = version
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.warm_once():
                    self.ready.set()
            except Exception as exc:  # noqa: BLE001 - warming is an optimisation; requests build on demand
                log.warning("hub warm-up failed: %s", type(exc).__name__)
                self.ready.set()
            self._stop.wait(self.interval)


def create_app(settings: Settings) -> FastAPI:
    """The hub application for ``settings``: ``GET /health``, the ``/v1`` API, the console.

    Errors answer with the contract's body; unhandled exceptions are 500 with no detail (the log
    gets the exception's class and the route template, not its message, which may quote data)."""
    from customer_mdm.hub import serving
    from customer_mdm.hub.auth import RateLimiter
    from customer_mdm.hub.intake import RunTrigger
    from customer_mdm.hub.store import ensure_store

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.trigger.start()  # the background check for changes waiting too long
        app.state.warmer.start()  # the match and lookup indexes, built before requests need them
        try:
            yield
        finally:
            app.state.warmer.stop()
            app.state.trigger.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="customer-mdm hub",
        version="1",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.reader = serving.ServingReader(settings)
    app.state.limiter = RateLimiter.from_env()
    app.state.trigger = RunTrigger.from_env(settings)
    app.state.warmer = Warmer.from_env(app.state.reader)
    app.state.stores = threading.local()
    ensure_store(settings)
    max_body = int(os.environ.get("MDM_HUB_MAX_BODY") or DEFAULT_MAX_BODY)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the message names the field and pydantic's reason; never the input value
        first = exc.errors()[0] if exc.errors() else {}
        field = _field_name(first.get("loc", ()))
        # pydantic's msg states the rule ("Input should be 'mobile', 'email', ..."), not the input
        reason = str(first.get("msg") or first.get("type") or "invalid")
        if first.get("type") == "json_invalid":
            return error_response(400, "bad_request", "the body is not valid JSON")
        return error_response(422, "invalid", f"{field}: {reason}")

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.error("hub %s %s failed: %s", request.method, _route_template(request), type(exc).__name__)
        return error_response(500, "internal", "internal error")

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness, the published golden version this process serves and whether its match and
        lookup indexes are built (``ready``)."""
        status = app.state.reader.status()
        return {"status": "ok", **status, "ready": app.state.warmer.ready.is_set()}

    from customer_mdm.hub import api

    app.include_router(api.router)
    from customer_mdm.console import mount as mount_console  # CONSOLE's hook

    mount_console(app, settings)

    app.add_middleware(RequestLog)
    app.add_middleware(BodyLimit, limit=max_body)
    app.add_middleware(CatchAll)  # outermost of ours: nothing reaches the server's traceback log
    return app


def thread_store(app: FastAPI) -> Store:
    """This thread's connection to the hub store (opened on first use; FastAPI's thread pool
    threads live as long as the server)."""
    local = app.state.stores
    store = getattr(local, "store", None)
    if store is None:
        from customer_mdm.hub.store import open_store

        store = local.store = open_store(app.state.settings)
    return store  # type: ignore[no-any-return]


def app_from_env() -> FastAPI:
    """uvicorn factory for ``mdm serve --workers N`` (each worker builds its app from the environment)."""
    if not logging.getLogger().handlers:  # a worker process: log like `mdm` does
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(Settings.from_env())
