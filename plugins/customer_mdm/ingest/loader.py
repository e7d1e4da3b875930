"""Idempotent, crash-safe loading of landing files into ``raw.<feed>``.

For every file of a feed, oldest name first:

* a file whose path and SHA-256 are already in ``ops.manifest`` is skipped;
* a file that was ingested before but whose bytes changed is *flagged* (``status=changed``,
  a quarantine entry says so) and not loaded again, because loading it would duplicate rows;
  deliver the correction as a new batch file instead;
* a quarantined file whose bytes changed (someone fixed it) is tried again;
* a new file is parsed; its good rows, its rejected rows and its manifest entry are written in
  ONE transaction, so a crash at any point leaves either all of it or none of it;
* an unusable file is copied to ``$MDM_HOME/quarantine/<folder>/`` and recorded with its reason.

Hidden files (``.name``) and files still being written (``*.tmp``, ``*.part``, ``*.partial``)
are left alone until they get their final name.

Symbolic links are never followed, neither a linked file nor a linked feed folder: whoever can
write the landing zone could otherwise make the pipeline read (and quarantine, and quote) any file
the pipeline's user can read. A link is recorded in the quarantine and the manifest with a reason
that names no target, and nothing behind it is opened (files are opened with ``O_NOFOLLOW``, so a
file swapped for a link after it was listed is refused too).

A file larger than ``MDM_MAX_FILE_MB`` is quarantined without being read into memory (it stays in
the landing zone; no copy is kept). Any failure while parsing one file, even an unexpected one,
quarantines that file with a reason and the run goes on: one poison file never blocks its feed.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from customer_mdm.config import Settings
from customer_mdm.errors import FileRejected, LandingZoneError
from customer_mdm.ingest.readers import read_file
from customer_mdm.schema import ensure_feed_table, ensure_schema
from customer_mdm.sources import FEEDS, Feed, feed, feed_for_file, feeds_in_folder
from customer_mdm.warehouse import Warehouse, connect

log = logging.getLogger(__name__)

IN_FLIGHT_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp")


@dataclass
class FileOutcome:
    file_path: str
    status: str  # ingested | skipped | quarantined | changed
    rows_loaded: int = 0
    rows_quarantined: int = 0
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class FeedResult:
    feed: str
    files: list[FileOutcome] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    def to_dict(self) -> dict[str, object]:
        return {
            "feed": self.feed,
            "files_ingested": self.count("ingested"),
            "files_skipped": self.count("skipped"),
            "files_quarantined": self.count("quarantined"),
            "files_changed": self.count("changed"),
            "rows_loaded": self.rows_loaded,
            "rows_quarantined": self.rows_quarantined,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
            "files": [asdict(f) for f in self.files if f.status != "skipped"],
        }


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


#: why a symbolic link in the landing zone is not read (quotes nothing of the link or its target)
LINK_REASON = "symbolic link: links in the landing zone are never followed; deliver the file itself, not a link to it"


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


def _is_candidate(path: Path) -> bool:
    """A regular file, or a symbolic link (recorded, never followed), with a final name."""
    name = path.name
    if name.startswith(".") or name.lower().endswith(IN_FLIGHT_SUFFIXES):
        return False
    return path.is_symlink() or path.is_file()


def check_landing(settings: Settings) -> Path:
    landing = settings.landing
    if not landing.exists():
        raise LandingZoneError(
            f"landing zone {landing} does not exist: point MDM_LANDING (or --landing) at the folder "
            "holding crm/, ecommerce/, ... or create demo data with `mdm-dev generate --out DIR` "
            "(a development tool: `make install`)"
        )
    if not landing.is_dir():
        raise LandingZoneError(f"landing zone {landing} is not a directory")
    return landing


def discover(settings: Settings, target: Feed) -> tuple[list[Path], list[Path]]:
    """The feed's files (sorted by name) and, for the folder's first feed, unrecognised files."""
    folder = check_landing(settings) / target.folder
    if folder.is_symlink() or not folder.is_dir():
        return [], []
    try:
        candidates = sorted(p for p in folder.iterdir() if _is_candidate(p))
    except OSError as exc:  # unreadable folder (permissions, a network share that is down)
        raise LandingZoneError(
            f"cannot read the {target.name} folder {folder}: {exc.strerror or exc}; the other sources are "
            "ingested as usual and this one is tried again on the next run"
        ) from exc
    mine = [p for p in candidates if target.matches(p.name)]
    unknown: list[Path] = []
    if feeds_in_folder(target.folder)[0].name == target.name:
        unknown = [p for p in candidates if feed_for_file(target.folder, p.name) is None]
    return mine, unknown


class FeedIngestor:
    def __init__(self, settings: Settings, wh: Warehouse, target: Feed, run_id: str) -> None:
        self.settings = settings
        self.wh = wh
        self.feed = target
        self.run_id = run_id

    # ---------------------------------------------------------------- manifest
    def _manifest(self, rel: str) -> list[tuple[str, str]]:
        return [
            (r[0], r[1])
            for r in self.wh.query(
                "select sha256, status from ops.manifest where file_path = ? order by recorded_at", [rel]
            )
        ]

    def _record(
        self,
        rel: str,
        size: int,
        sha: str,
        batch: str,
        status: str,
        encoding: str | None,
        loaded: int,
        rejected: int,
        reason: str | None,
    ) -> None:
        self.wh.execute(
            "insert into ops.manifest (feed, file_path, file_name, size_bytes, sha256, batch_id, status, "
            "encoding, rows_loaded, rows_quarantined, reason, run_id, recorded_at) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                self.feed.name,
                rel,
                rel.rsplit("/", 1)[-1],
                size,
                sha,
                batch,
                status,
                encoding,
                loaded,
                rejected,
                reason,
                self.run_id,
                _now(),
            ],
        )

    def _quarantine_entry(
        self,
        rel: str,
        batch: str | None,
        kind: str,
        row_number: int | None,
        reason: str,
        raw: str | None,
        kept_at: str | None,
    ) -> None:
        self.wh.execute(
            "insert into ops.quarantine (run_id, feed, source_file, batch_id, kind, row_number, reason, "
            "raw_record, kept_at, quarantined_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [self.run_id, self.feed.name, rel, batch, kind, row_number, reason, raw, kept_at, _now()],
        )

    def _keep_copy(self, path: Path, sha: str) -> str:
        from customer_mdm.private_files import copy_private, private_dir

        dest_dir = private_dir(self.settings.quarantine_dir / self.feed.folder)
        dest = dest_dir / f"{sha[:12]}_{path.name}"
        if not dest.exists():
            copy_private(path, dest)  # mode 0600 in a 0700 directory: the file holds personal data
        return str(dest)

    # ---------------------------------------------------------------- files
    def _read(self, path: Path) -> tuple[str, bytes, str, str]:
        """A landing file's path relative to the landing zone, bytes, SHA-256 and batch id.

        Opened without following a link; a file above ``MDM_MAX_FILE_MB`` raises ``_TooLarge``
        before anything is read."""
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            if info.st_size > self.settings.max_file_mb * 1024 * 1024:
                raise _TooLarge(info.st_size)
            data = fh.read()
        sha = hashlib.sha256(data).hexdigest()
        return f"{self.feed.folder}/{path.name}", data, sha, f"{self.feed.name}:{path.name}:{sha[:12]}"

    def _link_fingerprint(self, path: Path) -> str:
        """What identifies a link in the manifest: a hash of where it points (never stored as text)."""
        try:
            target = os.readlink(path)
        except OSError:
            target = ""
        return hashlib.sha256(b"symlink\0" + os.fsencode(target)).hexdigest()

    def _record_unread(self, rel: str, size: int, fingerprint: str, reason: str) -> FileOutcome:
        """A file quarantined without its content being read (a link, a file over the size limit):
        recorded once per fingerprint, no copy kept."""
        if any(s == fingerprint for s, _ in self._manifest(rel)):
            return FileOutcome(rel, "skipped")
        batch = f"{self.feed.name}:{rel.rsplit('/', 1)[-1]}:{fingerprint[:12]}"
        with self.wh.transaction():
            self._quarantine_entry(rel, batch, "file", None, reason, None, None)
            self._record(rel, size, fingerprint, batch, "quarantined", None, 0, 0, reason)
        log.warning("quarantined %s: %s", rel, reason)
        return FileOutcome(rel, "quarantined", reason=reason)

    def reject_link(self, path: Path, rel: str | None = None) -> FileOutcome:
        return self._record_unread(
            rel or f"{self.feed.folder}/{path.name}", 0, self._link_fingerprint(path), LINK_REASON
        )

    def _too_large(self, path: Path, size: int) -> FileOutcome:
        reason = (
            f"file is {size / 1024 / 1024:,.1f} MiB, over the MDM_MAX_FILE_MB limit of {self.settings.max_file_mb:g} "
            "MiB: not read (left in the landing zone, no copy kept); split it into smaller batch files or raise "
            "MDM_MAX_FILE_MB"
        )
        fingerprint = hashlib.sha256(
            f"too-large\0{size}\0{path.stat(follow_symlinks=False).st_mtime_ns}".encode()
        ).hexdigest()
        return self._record_unread(f"{self.feed.folder}/{path.name}", size, fingerprint, reason)

    def _open(self, path: Path) -> tuple[str, bytes, str, str] | FileOutcome:
        """The file's contents as ``_read`` gives them, or the outcome when it cannot be read."""
        if path.is_symlink():
            return self.reject_link(path)
        try:
            return self._read(path)
        except _TooLarge as exc:
            return self._too_large(path, exc.size)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # swapped for a link after it was listed
                return self.reject_link(path)
            return self._unreadable(path, exc)

    def _unreadable(self, path: Path, exc: OSError) -> FileOutcome:
        """A file that cannot be read (permissions, I/O error, gone meanwhile): listed in the
        quarantine with the reason, not recorded in the manifest, so the next run tries it again."""
        rel = f"{self.feed.folder}/{path.name}"
        reason = f"cannot read the file: {exc.strerror or exc}; it is tried again on the next run"
        with self.wh.transaction():
            self._quarantine_entry(rel, None, "file", None, reason, None, None)
        log.warning("unreadable %s: %s", rel, reason)
        return FileOutcome(rel, "quarantined", reason=reason)

    def reject_unrecognised(self, path: Path) -> FileOutcome:
        opened = self._open(path)
        if isinstance(opened, FileOutcome):
            return opened
        rel, data, sha, batch = opened
        if any(s == sha for s, _ in self._manifest(rel)):
            return FileOutcome(rel, "skipped")
        expected = ", ".join(p for f in feeds_in_folder(self.feed.folder) for p in f.patterns)
        reason = f"file name matches no feed of {self.feed.folder}/ (expected {expected})"
        return self._reject_file(path, rel, data, sha, batch, reason)

    def _reject_file(
        self, path: Path, rel: str, data: bytes, sha: str, batch: str, reason: str, status: str = "quarantined"
    ) -> FileOutcome:
        """Keep a copy of the file, record it in the quarantine and the manifest (one transaction)."""
        kept = self._keep_copy(path, sha)
        with self.wh.transaction():
            self._quarantine_entry(rel, batch, "file", None, reason, None, kept)
            self._record(rel, len(data), sha, batch, status, None, 0, 0, reason)
        log.warning("%s %s: %s", status, rel, reason)
        return FileOutcome(rel, status, reason=reason)

    def ingest_file(self, path: Path) -> FileOutcome:
        import pandas as pd

        opened = self._open(path)
        if isinstance(opened, FileOutcome):
            return opened
        rel, data, sha, batch = opened
        history = self._manifest(rel)
        if any(s == sha for s, _ in history):
            return FileOutcome(rel, "skipped")
        if any(status == "ingested" for _, status in history):
            reason = (
                "file changed after it was ingested (same name, new content); not loaded again to avoid "
                "duplicate rows: deliver the correction as a new batch file with a new name"
            )
            return self._reject_file(path, rel, data, sha, batch, reason, status="changed")
        try:
            parsed = read_file(data, self.feed, path.name)
        except FileRejected as exc:
            return self._reject_file(path, rel, data, sha, batch, str(exc))
        except MemoryError:
            reason = "the file does not fit in memory once parsed: split it into smaller batch files"
            return self._reject_file(path, rel, data, sha, batch, reason)
        except Exception as exc:  # noqa: BLE001 - one poison file must never block its feed
            # the exception's text may quote the file's content: only its type is kept
            reason = (
                f"the file cannot be parsed ({type(exc).__name__} in the {self.feed.format_of(path.name)} reader); "
                "re-export it, or report the file's shape as a bug"
            )
            return self._reject_file(path, rel, data, sha, batch, reason)

        rows = parsed.rows
        now = _now()
        rows["_source_file"] = rel
        rows["_batch_id"] = batch
        rows["_ingested_at"] = pd.Timestamp(now)
        rejected = pd.DataFrame(
            {
                "run_id": self.run_id,
                "feed": self.feed.name,
                "source_file": rel,
                "batch_id": batch,
                "kind": "row",
                "row_number": pd.array([r.row_number for r in parsed.rejected], dtype="int64"),
                "reason": pd.array([r.reason for r in parsed.rejected], dtype="object"),
                "raw_record": pd.array([r.raw for r in parsed.rejected], dtype="object"),
                "kept_at": None,
                "quarantined_at": pd.Timestamp(now),
            }
        )
        note = "; ".join(parsed.warnings) or None
        with self.wh.transaction():
            self.wh.insert_df(self.feed.raw_table, rows)
            self.wh.insert_df("ops.quarantine", rejected)
            self._record(rel, len(data), sha, batch, "ingested", parsed.encoding, len(rows), len(parsed.rejected), note)
        log.info("ingested %s: %d rows, %d quarantined (%s)", rel, len(rows), len(parsed.rejected), parsed.encoding)
        return FileOutcome(rel, "ingested", len(rows), len(parsed.rejected), warnings=parsed.warnings)


def ingest_feed(settings: Settings, feed_name: str, run_id: str, wh: Warehouse | None = None) -> FeedResult:
    """Load every new file of one feed. Opens (and closes) the warehouse unless one is given."""
    target = feed(feed_name)
    started = time.perf_counter()
    result = FeedResult(feed=target.name)
    files, unknown = discover(settings, target)
    folder = settings.landing / target.folder
    linked_folder = folder.is_symlink()
    if linked_folder:
        result.notes.append(f"the {target.folder}/ folder is a symbolic link: not followed, nothing read")
    elif not folder.is_dir():
        result.notes.append(f"no folder {target.folder}/ in the landing zone: nothing delivered")
    own = wh is None
    wh = wh or connect(settings)
    try:
        ensure_feed_table(wh, target)
        ingestor = FeedIngestor(settings, wh, target, run_id)
        if linked_folder and feeds_in_folder(target.folder)[0].name == target.name:
            result.files.append(ingestor.reject_link(folder, f"{target.folder}/"))
        for path in unknown:
            result.files.append(ingestor.reject_unrecognised(path))
        for i, path in enumerate(files, start=1):
            log.info("[%s] file %d/%d: %s", target.name, i, len(files), path.name)
            result.files.append(ingestor.ingest_file(path))
    finally:
        if own:
            wh.close()
    result.seconds = time.perf_counter() - started
    return result


def ingest_all(settings: Settings, run_id: str) -> list[FeedResult]:
    """Ingest every feed in order, in one connection (used by the CLI without Airflow)."""
    check_landing(settings)
    results = []
    with connect(settings) as wh:
        ensure_schema(wh)
        for f in FEEDS:
            try:
                results.append(ingest_feed(settings, f.name, run_id, wh))
            except LandingZoneError as exc:  # one source down never stops the others
                log.error("%s", exc)
                results.append(FeedResult(feed=f.name, notes=[str(exc)]))
    return results
