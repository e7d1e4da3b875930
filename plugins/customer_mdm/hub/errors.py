"""The contract's error shape: ``{"error": {"code": "...", "message": "..."}}``.

Routes raise :class:`ApiError`; the handlers in :mod:`customer_mdm.hub.app` turn it (and
FastAPI's own validation and HTTP errors) into that body. Messages never carry a personal
value: they name the field or the problem, not what the client sent.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error answered to the client with ``status`` and the contract's error body.

    ``message`` must not contain personal values (name the field, never echo its value)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def not_found(what: str = "customer") -> ApiError:
    """404 ``not_found`` for an unknown (or erased) resource."""
    return ApiError(404, "not_found", f"no such {what}")


def invalid(field: str, why: str) -> ApiError:
    """422 ``invalid`` naming the field (never its value)."""
    return ApiError(422, "invalid", f"{field}: {why}")
