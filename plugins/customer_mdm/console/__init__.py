"""The steward and governance console under ``/console`` of ``mdm serve`` (issue 16).

Server-rendered pages (Jinja2, autoescape, one base layout), forms that work without
JavaScript (a small vendored script adds keyboard shortcuts), English and Simplified Chinese
per user. Modules:

``auth``       users (scrypt), sessions and CSRF in the hub store, lockout, masking by role
``store``      the console's hub-store tables (users, sessions, actions, worklist states)
``tables``     the console's serving tables (:data:`CONSOLE_TABLES`)
``routes``     the pages: review queue, customer 360, steward actions, worklist, governance
``apply``      the pipeline side: queued actions applied at the start of the link step
``waterfall``  a pair's match-weight waterfall from the linkage model
``alerts``     quality trends and the quality-drop alert
``cli``        ``mdm user add``
"""

from __future__ import annotations

from typing import Any

from customer_mdm.console.tables import CONSOLE_INDEXES, CONSOLE_OPTIONAL, CONSOLE_TABLES
from customer_mdm.hub import serving as _serving

# the governance tables are built after the publication: a refresh before them skips them
_serving.OPTIONAL_TABLES.update(CONSOLE_OPTIONAL)

__all__ = ["CONSOLE_INDEXES", "CONSOLE_OPTIONAL", "CONSOLE_TABLES", "mount"]


def mount(app: Any, settings: Any) -> None:
    """Add the console's routes and static files to the hub application."""
    from pathlib import Path

    from fastapi import Request
    from fastapi.responses import RedirectResponse
    from fastapi.staticfiles import StaticFiles

    from customer_mdm.console.routes import SignInRequired, router

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> RedirectResponse:
        return RedirectResponse("/console/login", 303)

    app.mount("/console/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="console-static")
    app.include_router(router)
