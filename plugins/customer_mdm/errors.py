"""Exceptions a user can act on. Each message says what went wrong and what to do."""

from __future__ import annotations


class MdmError(Exception):
    """Base class for every error the platform raises on purpose."""


class ConfigError(MdmError):
    """The configuration (environment variables, paths, target) is invalid."""


class LandingZoneError(MdmError):
    """The landing zone is missing or unreadable."""


class WarehouseUnreachable(MdmError):
    """The warehouse (DuckDB file or PostgreSQL server) cannot be opened."""


class FileRejected(MdmError):
    """A landing file cannot be ingested; it goes to quarantine with this reason."""


class PipelineFailed(MdmError):
    """A pipeline run finished in a failed state."""


class RunLocked(MdmError):
    """Another pipeline run holds the run lock: two runs never interleave."""
