"""Standardisation: pure, vectorised standardisers over the distinct raw values of a column.

The standardisers are imported lazily (pypinyin's phrase dictionary alone takes ~0.5 s to load),
so importing this package or its ``step`` module stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "standardize_phones": "customer_mdm.standardize.phones",
    "standardize_names": "customer_mdm.standardize.names",
    "standardize_birth_dates": "customer_mdm.standardize.dates",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
