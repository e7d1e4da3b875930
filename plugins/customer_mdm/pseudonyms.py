"""Pseudonyms: salted SHA-256 digests of normalised identifiers.

Erasure tombstones (:mod:`customer_mdm.privacy`), the audit log (:mod:`customer_mdm.audit`), the
hub's matcher and the steward console key people by them, never by the identifier itself. The
salt is the installation's (:mod:`customer_mdm.keys`). A module of its own so that the audit log
and erasure, which use each other's outputs, do not import each other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from customer_mdm import keys
from customer_mdm.config import Settings
from customer_mdm.privacy_search import normalise

__all__ = ["erasure_salt", "hasher", "pseudonym", "salt_file"]


def salt_file(settings: Settings) -> Path:
    """The file that holds the salt when ``MDM_ERASURE_SALT`` is not set: ``MDM_ERASURE_SALT_FILE``,
    else ``secrets/erasure_salt`` next to the DuckDB file (PostgreSQL: ``$MDM_HOME/secrets``)."""
    return keys.key_file(settings, keys.ERASURE_SALT)


def erasure_salt(settings: Settings) -> bytes:
    """The warehouse's salt (:mod:`customer_mdm.keys`): ``MDM_ERASURE_SALT``, ``MDM_ERASURE_SALT_FILE``
    or the default key file (created once, mode 0600, for a warehouse without a salt yet). Its
    fingerprint is kept in the warehouse: a different salt stops with ConfigError instead of
    silently making old tombstones unmatchable."""
    return keys.erasure_salt(settings)


def hasher(settings: Settings) -> Any:
    """A digest function (kind, normalised value) -> pseudonym, the salt read once."""
    salt = erasure_salt(settings)

    def digest(kind: str, value: str) -> str:
        return hashlib.sha256(salt + b"\x1f" + kind.encode() + b"\x1f" + value.encode("utf-8")).hexdigest()

    return digest


def pseudonym(settings: Settings, kind: str, value: str) -> str:
    """Salted SHA-256 of a normalised identifier (``kind``: phone = E.164, email = lower-cased,
    record = ``source:source_id``; audit fields use their field name)."""
    return str(hasher(settings)(kind, normalise(kind, value)))
