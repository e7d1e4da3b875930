"""Find (and scrub) a person's identifiers everywhere the platform writes: ``mdm privacy check``.

An identifier is given as in the erasure feed (``mobile``, ``email``, ``crm_id``, ``member_id``,
``card_no``) and normalised like the matcher does (:func:`customer_mdm.privacy.normalise`: E.164
mobiles, lower-cased e-mails). Text is compared after the same normalisation: lower case, NFKC
(full-width digits), and the separators people put inside numbers (spaces, dashes, dots,
brackets between two digits) removed, so ``+86 138-1234-5678``, ``(+86)13812345678`` and
``13812345678`` are one phone and ``Li.Hao@QQ.COM`` is ``li.hao@qq.com``. A value matches only
as a whole token (not inside a longer number or word).

:func:`search_warehouse` reads every text column of every table of every schema (one query per
table, the comparison runs in the warehouse); :func:`search_files` reads every file under
``MDM_HOME`` except the warehouse file itself, the secrets and the backups (snapshots are
Parquet written before an erasure; a restore re-applies the tombstones): quarantine copies,
reports, dbt and Great Expectations artefacts, logs, serving files. Parquet files are read
column by column; other binary files are listed as not searched. :func:`scrub_files` replaces a
person's values in those files with ``[erased]`` (the erasure step calls it). Hits are reported
by place and count, never with the value.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from customer_mdm.config import Settings
from customer_mdm.errors import MdmError
from customer_mdm.warehouse import Warehouse

#: identifier types of ``mdm privacy check`` (those of the erasure feed)
CHECK_TYPES = ("mobile", "email", "crm_id", "member_id", "card_no")
ERASED = "[erased]"
#: directories of MDM_HOME never searched (the warehouse file is skipped too)
SKIPPED_DIRS = ("secrets", "backups")
_TEXT_TYPES = ("varchar", "text", "character varying", "character", "json", "jsonb", "string")
_SEP = r"[ \t().\-]+"  # not newlines: a file is searched line by line
_SQL_SEP = "[[:space:]().-]+"
_FULL_WIDTH = "０１２３４５６７８９＋＠．－（）　"
_HALF_WIDTH = "0123456789+@.-() "
_MAX_FILE_BYTES = 512 * 1024 * 1024


class PrivacyCheckError(MdmError):
    """An identifier given to ``mdm privacy check`` cannot be understood."""


@dataclass
class Hits:
    """Where the identifiers were found: place (``schema.table.column`` or a file path relative to
    MDM_HOME) -> matching rows or lines; places that could not be searched."""

    places: dict[str, int] = field(default_factory=dict)
    not_searched: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.places.values())


def normalise(kind: str, value: str) -> str:
    """An identifier as the matcher keys it: ``phone`` E.164, ``email`` lower-cased, else trimmed."""
    value = str(value).strip()
    if kind == "email":
        return value.lower()
    if kind == "phone" and not re.fullmatch(r"\+[0-9]{6,15}", value):
        import pandas as pd

        from customer_mdm.standardize.phones import standardize_phones

        e164 = standardize_phones(pd.Series([value]))["phone_e164"].iloc[0]
        return str(e164) if isinstance(e164, str) else value
    return value


_TOKEN = (r"(^|[^0-9a-z])", r"($|[^0-9a-z])")
#: an e-mail address ends where the address ends: not before a dot and more letters
_EMAIL = (r"(^|[^0-9a-z._%+\-])", r"($|[^0-9a-z.\-]|\.$|\.[^0-9a-z])")


def needles(identifiers: Iterable[tuple[str, str]]) -> list[str]:
    """One pattern per identifier for normalised text, matching it as a whole token."""
    return [regex for regex, _ in _needles(identifiers)]


def literals(identifiers: Iterable[tuple[str, str]]) -> list[str]:
    """Per identifier the plain text every match of its :func:`needles` pattern contains (the
    national digits of a mobile, the normalised e-mail or id): a quick substring test tells the
    text that cannot match, without running the patterns over it (they have no literal prefix,
    so a regex search of a large file tries every alternative at every position)."""
    return sorted({literal for _, literal in _needles(identifiers)})


def _needles(identifiers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for itype, value in identifiers:
        itype = itype.strip().lower()
        if itype not in CHECK_TYPES:
            raise PrivacyCheckError(f"unknown identifier type {itype!r}: use one of {', '.join(CHECK_TYPES)}")
        if not str(value).strip():
            raise PrivacyCheckError(f"an empty {itype} identifier")
        left, right = _TOKEN
        if itype == "mobile":
            e164 = normalise("phone", value)
            digits = re.sub(r"\D", "", e164)
            if e164.startswith("+86") and len(digits) == 13:
                literal = digits[2:]
                body = rf"(\+?(00)?86)?{literal}"
            elif e164.startswith("+"):
                literal = digits
                body = rf"(\+|00)?{digits}"
            else:
                literal = normalise_text(value)
                body = re.escape(literal)
        elif itype == "email":
            left, right = _EMAIL
            literal = normalise_text(normalise("email", value))
            body = re.escape(literal)
        else:
            literal = normalise_text(normalise("record", value))
            body = re.escape(literal)
        out.append((f"{left}({body}){right}", literal))
    return out


def normalise_text(text: str) -> str:
    """Lower case, NFKC, separators between digits and blanks around ``@`` removed (what the
    patterns expect)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[ \t]*@[ \t]*", "@", text)
    return re.sub(rf"(?<=\d){_SEP}(?=\d)", "", text)


def pattern(alternatives: list[str]) -> str:
    """One pattern matching any of :func:`needles`' (both regex dialects accept it)."""
    return "|".join(f"(?:{a})" for a in alternatives)


def parse_identifiers(args: Iterable[str]) -> list[tuple[str, str]]:
    """``type=value`` or ``type:value`` arguments."""
    out: list[tuple[str, str]] = []
    for arg in args:
        m = re.fullmatch(r"\s*([a-z_]+)\s*[=:]\s*(.+)", arg, flags=re.IGNORECASE)
        if not m:
            raise PrivacyCheckError(
                f"write each identifier as TYPE=VALUE with TYPE one of {', '.join(CHECK_TYPES)} "
                f"(argument {len(out) + 1} is not)"
            )
        out.append((m.group(1).lower(), m.group(2)))
    return out


# ----------------------------------------------------------------------------- warehouse
def sql_normalised(wh: Warehouse, column: str) -> str:
    """SQL for :func:`normalise_text` of a column (NFKC left out: both warehouses lack it)."""
    # full-width digits and signs (NFKC's part that matters for identifiers), blanks around @
    expr = f"translate(lower(cast({column} as text)), '{_FULL_WIDTH}', '{_HALF_WIDTH}')"
    expr = f"regexp_replace({expr}, '[[:space:]]*@[[:space:]]*', '@', 'g')"
    for _ in range(2):  # a match consumes the digit after the separator: twice covers 1-digit groups
        expr = f"regexp_replace({expr}, '([0-9]){_SQL_SEP}([0-9])', '\\1\\2', 'g')"
    return expr


def sql_matches(wh: Warehouse, column: str, regex: str) -> str:
    """SQL: the normalised column matches ``regex`` (a pattern, given as a literal)."""
    return sql_matches_expr(wh, column, "'" + regex.replace("'", "''") + "'")


def sql_matches_expr(wh: Warehouse, column: str, regex_sql: str) -> str:
    """SQL: the normalised column matches the pattern ``regex_sql`` (an SQL expression)."""
    text = sql_normalised(wh, column)
    if wh.target == "postgres":
        return f"({text} ~ {regex_sql})"
    return f"regexp_matches({text}, {regex_sql})"


def text_columns(wh: Warehouse) -> dict[str, list[str]]:
    """Every base table of every schema -> its text columns."""
    rows = wh.query(
        "select c.table_schema, c.table_name, c.column_name, lower(c.data_type) "
        "from information_schema.columns as c join information_schema.tables as t "
        "on t.table_schema = c.table_schema and t.table_name = c.table_name "
        "where t.table_type = 'BASE TABLE' and c.table_schema not in ('information_schema', 'pg_catalog', 'pg_toast') "
        "and c.table_schema not like 'pg_temp%' and c.table_schema not like 'pg_toast%' "
        "order by c.table_schema, c.table_name, c.ordinal_position"
    )
    out: dict[str, list[str]] = {}
    for schema, table, column, dtype in rows:
        if str(dtype).split("(")[0].strip() in _TEXT_TYPES:
            out.setdefault(f'"{schema}"."{table}"', []).append(str(column))
    return out


def search_warehouse(wh: Warehouse, regex: str) -> dict[str, int]:
    """``schema.table.column`` -> rows whose column matches ``regex`` (normalised text)."""
    found: dict[str, int] = {}
    for table, columns in text_columns(wh).items():
        sums = ", ".join(f"sum(case when {sql_matches(wh, _quoted(c), regex)} then 1 else 0 end)" for c in columns)
        counts = wh.query(f"select {sums} from {table}")[0]
        for column, n in zip(columns, counts, strict=True):
            if n:
                found[f"{table.replace(chr(34), '')}.{column}"] = int(n)
    return found


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


# ----------------------------------------------------------------------------- files
def _files(settings: Settings) -> Iterator[Path]:
    home = settings.home
    if not home.is_dir():
        return
    skip = {home / d for d in SKIPPED_DIRS}
    warehouse = settings.warehouse_file.resolve() if settings.warehouse_file else None
    for path in sorted(home.rglob("*")):
        if any(p in skip for p in path.parents) or not path.is_file() or path.is_symlink():
            continue
        if warehouse is not None and path.resolve() in (warehouse, Path(f"{warehouse}.wal")):
            continue
        yield path


def _decode(data: bytes) -> str | None:
    if b"\x00" in data[:8192]:
        return None
    for encoding in ("utf-8", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


def _parquet_lines(path: Path) -> list[str] | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException):  # not a readable Parquet file: listed as not searched
        return None
    lines = []
    for column in table.columns:
        lines += [str(v) for v in column.to_pylist() if v is not None]
    return lines


def _may_match(text: str, literals: list[str] | None) -> bool:
    """False when normalised ``text`` holds none of the ``literals`` (None: unknown, may match)."""
    return literals is None or any(literal in text for literal in literals)


def _matching_lines(lines: list[str], compiled: re.Pattern[str], literals: list[str] | None) -> Iterator[int]:
    """Indexes of the lines whose normalised text matches (the literals tested first)."""
    for i, line in enumerate(lines):
        text = normalise_text(line)
        if _may_match(text, literals) and compiled.search(text):
            yield i


def _file_may_match(lines: list[str], compiled: re.Pattern[str], literals: list[str] | None) -> bool:
    """Whether any line can match: with ``literals`` a substring test of the whole text (the
    lines are then searched one by one), else the pattern itself."""
    text = normalise_text("\n".join(lines))
    return _may_match(text, literals) if literals is not None else compiled.search(text) is not None


def search_files(settings: Settings, regex: str, literals: Iterable[str] | None = None) -> Hits:
    """Files under MDM_HOME -> lines (or Parquet values) matching ``regex``; ``literals``
    (:func:`literals` of the same identifiers): files and lines holding none are skipped."""
    compiled = re.compile(regex)
    lits = None if literals is None else list(literals)
    hits = Hits()
    for path in _files(settings):
        rel = str(path.relative_to(settings.home))
        if path.stat().st_size > _MAX_FILE_BYTES:
            hits.not_searched.append(f"{rel} (larger than {_MAX_FILE_BYTES // 2**20} MB)")
            continue
        if path.suffix == ".parquet":
            lines = _parquet_lines(path)
        else:
            text = _decode(path.read_bytes())
            lines = None if text is None else text.splitlines()
        if lines is None:
            if path.suffix not in (".gpickle", ".msgpack", ".pyc", ".png", ".ico", ".woff", ".woff2", ".ttf"):
                hits.not_searched.append(f"{rel} (binary)")
            continue
        if not _file_may_match(lines, compiled, lits):
            continue
        n = sum(1 for _ in _matching_lines(lines, compiled, lits))
        if n:
            hits.places[rel] = n
    return hits


def scrub_files(settings: Settings, regex: str, literals: Iterable[str] | None = None) -> dict[str, int]:
    """Replace the matching values in the text files under MDM_HOME with ``[erased]`` (the
    normalised line is searched, the original line is rewritten token by token); Parquet and
    other binary files that match are deleted. Returns file -> lines changed (or -1: deleted).
    ``literals`` (:func:`literals` of the same identifiers): files and lines holding none of
    them are skipped without running the pattern (and a file without a match is never rewritten)."""
    compiled = re.compile(regex)
    lits = None if literals is None else list(literals)
    changed: dict[str, int] = {}
    for path in _files(settings):
        rel = str(path.relative_to(settings.home))
        if path.stat().st_size > _MAX_FILE_BYTES:
            continue
        if path.suffix == ".parquet":
            values = _parquet_lines(path)
            if values and next(_matching_lines(values, compiled, lits), None) is not None:
                path.unlink()
                changed[rel] = -1
            continue
        data = path.read_bytes()
        text = _decode(data)
        if text is None:
            continue
        lines = text.splitlines(keepends=True)
        if not _file_may_match(lines, compiled, lits):
            continue
        matching = set(_matching_lines(lines, compiled, lits))
        if matching:
            encoding = "utf-8" if _is_utf8(data) else "gb18030"
            out = [scrub_text(line, compiled) if i in matching else line for i, line in enumerate(lines)]
            tmp = path.with_name(path.name + ".scrub")
            tmp.write_text("".join(out), encoding=encoding, errors="replace")
            tmp.chmod(path.stat().st_mode & 0o777)
            tmp.replace(path)
            changed[rel] = len(matching)
    return changed


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def scrub_text(line: str, compiled: re.Pattern[str]) -> str:
    """Replace each token of ``line`` (runs of characters other than quotes, commas, blanks,
    brackets, separators of markup) whose normalised form matches; a value split by blanks
    (``138 1234 5678``) is matched as a run of digits and separators."""
    candidates = re.compile(r"[+0-9][0-9\s().\-]{5,}[0-9]|[^\s\"',;<>|{}\[\]=]+")

    def repl(m: re.Match[str]) -> str:
        return ERASED if compiled.search(normalise_text(m.group(0))) else m.group(0)

    scrubbed = candidates.sub(repl, line)
    if compiled.search(normalise_text(scrubbed)):  # nothing token-shaped matched: drop the line
        return ERASED + ("\n" if line.endswith("\n") else "")
    return scrubbed


# ----------------------------------------------------------------------------- the check
def check(settings: Settings, identifiers: list[tuple[str, str]], wh: Warehouse | None = None) -> Hits:
    """Every table and every file under MDM_HOME searched for the identifiers."""
    from customer_mdm.warehouse import connect

    regex = pattern(needles(identifiers))
    hits = Hits()
    if wh is None:
        with connect(settings, read_only=True) as own:
            hits.places.update(search_warehouse(own, regex))
    else:
        hits.places.update(search_warehouse(wh, regex))
    files = search_files(settings, regex, literals(identifiers))
    hits.places.update({f"file:{k}": v for k, v in files.places.items()})
    hits.not_searched = files.not_searched
    return hits
