"""Parse one landing file into text columns, separating good rows from bad ones.

A file that cannot be read at all raises :class:`~customer_mdm.errors.FileRejected` with the
reason (empty, wrong encoding, missing required column, unreadable Parquet ...). A file that
can be read yields a :class:`ParsedFile`: the good rows as a DataFrame of text columns and the
rejected rows with their record number, reason and raw text. Values are kept as they were in
the file (as text); typing and cleaning happen downstream in dbt.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from customer_mdm.errors import FileRejected
from customer_mdm.sources import Feed

if TYPE_CHECKING:
    import pandas as pd

#: A single field longer than this (characters) makes its row a quarantined row.
MAX_FIELD_CHARS = 65_536
#: Raw text kept for a quarantined row is cut at this many characters (the file itself is kept).
MAX_RAW_CHARS = 1_000_000

csv.field_size_limit(64 * 1024 * 1024)

try:  # orjson is several times faster on large JSON Lines files
    import orjson

    def _json_loads(line: str) -> Any:
        return orjson.loads(line)
except ImportError:  # pragma: no cover - orjson is a pinned dependency

    def _json_loads(line: str) -> Any:
        return json.loads(line)


@dataclass
class RejectedRow:
    row_number: int
    reason: str
    raw: str


@dataclass
class ParsedFile:
    encoding: str
    header: list[str]
    rows: pd.DataFrame  # feed columns + _row_number + _extra, all text except _row_number
    rejected: list[RejectedRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- encodings
def _plausible_chinese(text: str) -> bool:
    """Whether GB18030-decoded text looks like real Chinese rather than mis-decoded bytes.

    Mis-decoded Latin-1/Windows-1252 bytes land in GBK's rare-character blocks; real GB18030
    exports are dominated by the common GB2312 set (traditional characters are a minority).
    Short samples are given the benefit of the doubt.
    """
    wide = [ch for ch in text if ord(ch) > 0x7F]
    if len(wide) < 40:
        return True
    common = 0
    for ch in wide:
        try:
            ch.encode("gb2312")
            common += 1
        except UnicodeEncodeError:
            pass
    return common / len(wide) >= 0.5


def decode(data: bytes) -> tuple[str, str]:
    """Decode landing bytes as UTF-8 (with or without BOM) or GB18030; reject anything else."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileRejected("file is UTF-16 encoded; export it as UTF-8 or GB18030")
    nul = data.count(b"\x00")
    if nul > max(8, len(data) // 100):
        raise FileRejected(f"file contains {nul} NUL bytes: binary or UTF-16 content, not a text export")
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise FileRejected(f"file has a UTF-8 BOM but invalid UTF-8 at byte {exc.start + 3}") from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise FileRejected(
                f"file is neither UTF-8 nor GB18030 (invalid byte 0x{data[utf8_error.start]:02x} "
                f"at offset {utf8_error.start}); re-export it as UTF-8"
            ) from utf8_error
        if not _plausible_chinese(text[:200_000]):
            raise FileRejected(
                "file is not UTF-8 and does not look like GB18030 Chinese text (probably Latin-1 or "
                "another legacy encoding); re-export it as UTF-8"
            ) from utf8_error
        return text, "gb18030"


# ----------------------------------------------------------------------------- helpers
def _normalise_header(names: Iterable[str]) -> list[str]:
    return [unicodedata.normalize("NFKC", n).strip().lstrip("\ufeff").strip().lower() for n in names]


def _describe_header(feed: Feed, header: list[str]) -> str:
    """The header described without quoting it: a file without a header row has a person's
    values there, and a reason is stored and logged (only the feed's own column names are named)."""
    known = [h for h in header if h in feed.columns]
    unknown = len(header) - len(known)
    parts = [f"{len(header)} column(s)"]
    if known:
        parts.append(f"known: {', '.join(known)}")
    if unknown:
        parts.append(f"{unknown} not a column of the {feed.name} feed (no header row?)")
    return "header has " + "; ".join(parts)


def _check_header(feed: Feed, header: list[str]) -> list[str]:
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        named = [h for h in dupes if h in feed.columns]
        described = f"{len(dupes)} name(s) ({_describe_header(feed, header)})"
        what = ", ".join(named) if len(named) == len(dupes) else described
        raise FileRejected(f"duplicate column(s) in header: {what}")
    missing = [c for c in feed.required if c not in header]
    if missing:
        raise FileRejected(f"missing required column(s): {', '.join(missing)} ({_describe_header(feed, header)})")
    return [f"optional column {c} missing: loaded as NULL" for c in feed.optional if c not in header]


def _json_default(value: Any) -> Any:
    """Text for the values a nested Parquet or JSON value may hold that JSON has no type for
    (dates in a ``list<date>``, decimals, binary, durations)."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


class _Unconvertible(ValueError):
    """A value that cannot become text (nested too deep, a type with no text form)."""


def _to_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value else None  # NaN -> NULL
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, ensure_ascii=False, sort_keys=True, default=_json_default)
        except (RecursionError, TypeError, ValueError) as exc:
            # the message names no value: RecursionError for deep nesting, TypeError for mixed keys
            raise _Unconvertible(f"a nested value cannot be written as text ({type(exc).__name__})") from None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _row_problem(feed: Feed, record: dict[str, str | None]) -> str | None:
    for name, value in record.items():
        if value is None:
            continue
        if "\x00" in value:
            return f"field {name} contains a NUL character"
        if len(value) > MAX_FIELD_CHARS:
            return f"field {name} is {len(value)} characters long, over the {MAX_FIELD_CHARS} limit"
    if feed.key and not (record.get(feed.key) or "").strip():
        return f"empty {feed.key} (the record id)"
    return None


class _Collector:
    """Accumulates good rows column-wise and rejected rows."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.data: dict[str, list[Any]] = {c: [] for c in feed.columns}
        self.row_numbers: list[int] = []
        self.extras: list[str | None] = []
        self.rejected: list[RejectedRow] = []

    def add(self, row_number: int, record: dict[str, str | None], raw: str) -> None:
        problem = _row_problem(self.feed, record)
        if problem:
            self.reject(row_number, problem, raw)
            return
        for c in self.feed.columns:
            self.data[c].append(record.get(c))
        extra = {k: v for k, v in record.items() if k not in self.data and v not in (None, "")}
        self.extras.append(json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None)
        self.row_numbers.append(row_number)

    def reject(self, row_number: int, reason: str, raw: str) -> None:
        self.rejected.append(RejectedRow(row_number, reason, raw[:MAX_RAW_CHARS]))

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        columns: dict[str, Any] = {c: pd.array(v, dtype="object") for c, v in self.data.items()}
        columns["_row_number"] = pd.array(self.row_numbers, dtype="int64")
        columns["_extra"] = pd.array(self.extras, dtype="object")
        return pd.DataFrame(columns)


# ----------------------------------------------------------------------------- formats
class _Lines:
    """Feeds lines to csv.reader and keeps the text of the record being read. A line with a NUL
    character taints its record (the whole record is rejected, even when a quoted field spans
    several lines); the parser gets the line without its NULs, so record boundaries stay right."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pending: list[str] = []
        self.taint: str | None = None

    def __iter__(self) -> Iterator[str]:
        for line_no, line in enumerate(io.StringIO(self.text, newline=""), start=1):
            if "\x00" in line:
                self.taint = self.taint or f"line {line_no} contains a NUL character"
                self.pending.append(line.replace("\x00", "\\0"))
                yield line.replace("\x00", "")
            else:
                self.pending.append(line)
                yield line

    def take(self) -> tuple[str, str | None]:
        """The raw text of the record just read (or just failed), and why it is tainted."""
        raw = "".join(self.pending).rstrip("\r\n")
        taint, self.taint = self.taint, None
        self.pending.clear()
        return raw, taint


def read_csv(data: bytes, feed: Feed) -> ParsedFile:
    text, encoding = decode(data)
    if not text.strip():
        raise FileRejected("file has no header and no rows (only whitespace)")
    collector = _Collector(feed)
    lines = _Lines(text)
    reader = csv.reader(lines, strict=True)
    try:
        header = _normalise_header(next(reader))
    except csv.Error as exc:
        raise FileRejected(f"cannot parse the CSV header: {exc}") from exc
    if lines.take()[1]:
        raise FileRejected("the CSV header contains a NUL character: binary content, not a text export")
    warnings = _check_header(feed, header)
    width = len(header)
    row_number = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            row_number += 1
            raw, taint = lines.take()
            reason = f"line {reader.line_num}: malformed CSV ({exc})"
            collector.reject(row_number, f"{taint}; {reason}" if taint else reason, raw)
            continue
        raw, taint = lines.take()
        if not values and not taint:
            continue  # a blank line is not a record
        row_number += 1
        if taint:
            collector.reject(row_number, taint, raw)
            continue
        if len(values) != width:
            collector.reject(
                row_number,
                f"line {reader.line_num}: row has {len(values)} fields, header has {width} "
                "(truncated or malformed row)",
                raw,
            )
            continue
        collector.add(row_number, dict(zip(header, values, strict=True)), raw)
    return ParsedFile(encoding, header, collector.frame(), collector.rejected, warnings)


def read_jsonl(data: bytes, feed: Feed) -> ParsedFile:
    text, encoding = decode(data)
    if not text.strip():
        raise FileRejected("file has no JSON lines (only whitespace)")
    collector = _Collector(feed)
    seen_keys: set[str] = set()
    parsed_any = False
    first_error = ""
    # split on \n (and \r\n) only: str.splitlines() would also cut at U+2028, U+0085, \x1c ...
    # which JSON allows unescaped inside strings
    for line_no, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            obj = _json_loads(line)
        except (ValueError, TypeError) as exc:
            first_error = first_error or f"line {line_no}: {exc}"
            collector.reject(line_no, f"invalid JSON ({exc})", line)
            continue
        parsed_any = True
        if not isinstance(obj, dict):
            collector.reject(line_no, f"JSON line is a {type(obj).__name__}, not an object", line)
            continue
        try:
            record = {unicodedata.normalize("NFKC", str(k)).strip().lower(): _to_text(v) for k, v in obj.items()}
        except _Unconvertible as exc:
            collector.reject(line_no, str(exc), line)
            continue
        seen_keys.update(record)
        missing = [c for c in feed.required if record.get(c) is None]
        if missing:
            collector.reject(line_no, f"missing required field(s): {', '.join(missing)}", line)
            continue
        collector.add(line_no, record, line)
    if not parsed_any:
        raise FileRejected(f"not a JSON Lines file: no line is valid JSON ({first_error})")
    warnings = [
        f"optional field {c} absent from every line: loaded as NULL" for c in feed.optional if c not in seen_keys
    ]
    return ParsedFile(encoding, sorted(seen_keys), collector.frame(), collector.rejected, warnings)


def _parquet_column(values: list[Any]) -> tuple[list[str | None], dict[int, str]]:
    """A Parquet column as text, and the problems of the values that have no text form (by row)."""
    texts: list[str | None] = []
    problems: dict[int, str] = {}
    for idx, value in enumerate(values):
        try:
            texts.append(_to_text(value))
        except _Unconvertible as exc:
            texts.append(None)
            problems[idx] = str(exc)
    return texts, problems


def read_parquet(data: bytes, feed: Feed) -> ParsedFile:
    """Read a Parquet file one row group at a time (the Arrow table of the whole file is never
    held beside its Python text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        header = _normalise_header(parquet.schema_arrow.names)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise FileRejected(f"unreadable Parquet file (truncated or corrupt): {exc}") from exc
    warnings = _check_header(feed, header)
    collector = _Collector(feed)
    row_number = 0
    try:
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group)
            converted = [_parquet_column(table.column(i).to_pylist()) for i in range(table.num_columns)]
            for idx in range(table.num_rows):
                row_number += 1
                record = {name: col[0][idx] for name, col in zip(header, converted, strict=True)}
                problem = next(
                    (
                        f"column {name}: {col[1][idx]}"
                        for name, col in zip(header, converted, strict=True)
                        if idx in col[1]
                    ),
                    None,
                )
                raw = json.dumps(record, ensure_ascii=False)
                if problem:
                    collector.reject(row_number, problem, raw)
                else:
                    collector.add(row_number, record, raw)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise FileRejected(f"unreadable Parquet file (a row group cannot be decoded): {exc}") from exc
    return ParsedFile("parquet", header, collector.frame(), collector.rejected, warnings)


READERS = {"csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet}


def read_file(data: bytes, feed: Feed, file_name: str) -> ParsedFile:
    """Parse the bytes of one landing file of ``feed``; raises FileRejected if it is unusable."""
    if not data:
        raise FileRejected("empty file (0 bytes)")
    return READERS[feed.format_of(file_name)](data, feed)
