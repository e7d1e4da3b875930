"""The hub's part of the right to erasure, called once from customer_mdm.privacy.erase_pending.

Removes the erased persons from the hub store (:func:`customer_mdm.hub.store.erase`: intake,
access log, reminders, and any table another module registered as personal) and from the
serving tables and files (:func:`customer_mdm.hub.serving.scrub`: on DuckDB a new snapshot
without them replaces every older snapshot file at once, so the server answers 404 for them
before the run publishes again).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from customer_mdm.config import Settings


def erase_persons(settings: Settings, persons: Iterable[Any], entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``persons``: privacy's resolved persons (``.golden_ids``); ``entries``: the requests
    (``raw_value`` / ``value``: the identifier as sent and normalised). Returns rows removed."""
    from customer_mdm.console import store as _console  # noqa: F401 - CONSOLE's hook: registers its personal tables
    from customer_mdm.hub import serving, store

    golden_ids = sorted({str(g) for p in persons for g in getattr(p, "golden_ids", ())})
    identifiers = sorted({str(e[k]) for e in entries for k in ("raw_value", "value") if e.get(k)})
    return {
        "store": store.erase(settings, golden_ids, identifiers),
        "serving": serving.scrub(settings, golden_ids),
    }
