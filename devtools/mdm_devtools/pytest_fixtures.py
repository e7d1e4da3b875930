"""pytest fixtures backed by a real local PostgreSQL server.

Import them into a conftest.py::

    from mdm_devtools.pytest_fixtures import pg_server, pg_dsn  # noqa

``pg_server`` (session): a started :class:`LocalPostgres` in a temporary directory, stopped at the end.
``pg_dsn`` (function): the DSN of a fresh, uniquely named database, dropped after the test.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mdm_devtools.pgserver import LocalPostgres


@contextlib.contextmanager
def postgres_data_dir(tmp_path_factory: pytest.TempPathFactory, name: str = "pgserver") -> Iterator[Path]:
    """A not-yet-existing data directory path for a test server, removed afterwards when pytest won't.

    As root, PostgreSQL runs as an unprivileged user that must be able to traverse every parent
    directory. pytest resets /tmp/pytest-of-root to mode 0700 whenever any pytest session starts
    (e.g. a colleague's run), which would cut a running server off from its own data directory
    (seen as "Permission denied" on global/pg_control). So as root the data directory lives in a
    private mkdtemp directory under the system temp dir instead of under tmp_path_factory.
    """
    if os.geteuid() != 0:
        yield tmp_path_factory.mktemp(name) / "data"
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"mdm-{name}-"))
    try:
        yield scratch / "data"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def running_postgres(
    tmp_path_factory: pytest.TempPathFactory, name: str = "pgserver", **options: Any
) -> Iterator[LocalPostgres]:
    """A started :class:`LocalPostgres` of its own (``options`` go to its constructor), stopped
    and its data directory removed afterwards."""
    with postgres_data_dir(tmp_path_factory, name) as data_dir:
        server = LocalPostgres(data_dir, **options)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    with running_postgres(tmp_path_factory) as server:
        yield server


def _database_name(test_name: str) -> str:
    stem = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")[:40]
    return f"t_{stem}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pg_dsn(pg_server: LocalPostgres, request: pytest.FixtureRequest) -> Iterator[str]:
    name = _database_name(request.node.name)
    dsn = pg_server.create_database(name)
    try:
        yield dsn
    finally:
        if pg_server.is_running():
            pg_server.drop_database(name)
