"""Files with personal data outside the warehouse are readable by their owner only.

Exports (``mdm export``), quarantine copies (``$MDM_HOME/quarantine``), report CSVs
(``$MDM_HOME/reports``), backups and key files are written mode 0600; the directories the platform
creates for them are 0700. A file is created with its final mode (``os.open(..., 0o600)``), never
first with the umask's mode and changed afterwards, and an existing file is narrowed before it is
rewritten.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path, *, narrow: bool = True) -> Path:
    """Create ``path`` (missing parents too) with mode 0700. ``narrow``: also set 0700 on an
    existing ``path`` (a directory the platform owns; not a user's directory an export goes to)."""
    missing = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass
        os.chmod(directory, DIR_MODE)  # mkdir's mode is masked by the umask
    if narrow:
        os.chmod(path, DIR_MODE)
    return path


@contextmanager
def open_private(path: Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open ``path`` for writing ("w" or "wb"), created or truncated with mode 0600. Missing
    parent directories are created 0700."""
    if mode not in ("w", "wb"):
        raise ValueError(f"open_private writes only: mode {mode!r}")
    private_dir(path.parent, narrow=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # an existing file keeps its old mode through O_CREAT
    with os.fdopen(fd, mode, **kwargs) as fh:
        yield fh


def write_private(path: Path, data: bytes) -> Path:
    with open_private(path, "wb") as fh:
        fh.write(data)
    return path


def copy_private(source: Path, dest: Path) -> Path:
    """Copy ``source`` to ``dest`` (mode 0600, parent 0700), keeping the modification time."""
    with source.open("rb") as src, open_private(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    stat = source.stat()
    os.utime(dest, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return dest
