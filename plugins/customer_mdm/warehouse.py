"""One small interface over the two warehouses: embedded DuckDB and PostgreSQL.

SQL handed to :meth:`Warehouse.execute` uses ``?`` placeholders on both targets and only
portable syntax (``create schema if not exists``, ``text``, ``bigint``, ``timestamp``).
Bulk loads go through :meth:`Warehouse.insert_df`: DuckDB scans the DataFrame directly,
PostgreSQL receives it through ``COPY``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from customer_mdm.config import Settings
from customer_mdm.errors import WarehouseUnreachable

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return name


class Warehouse:
    """Base class; use :func:`connect` to get the right one for the settings."""

    target: str

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def query_df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        raise NotImplementedError

    def insert_df(self, table: str, df: pd.DataFrame) -> int:
        """Append the DataFrame's rows to ``table`` (columns matched by name)."""
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[None]:
        raise NotImplementedError
        yield  # pragma: no cover

    def close(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def table_exists(self, table: str) -> bool:
        schema, _, name = _check_ident(table).rpartition(".")
        rows = self.query(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema or "main", name],
        )
        return bool(rows[0][0])

    def columns_of(self, table: str) -> list[str]:
        schema, _, name = _check_ident(table).rpartition(".")
        rows = self.query(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, name],
        )
        return [r[0] for r in rows]

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _arrow_frame(table: Any) -> pd.DataFrame | None:
    """A pyarrow Table as the DataFrame DuckDB's ``.df()`` gives for it, at a fraction of the
    cost: DuckDB 2.0's own conversion takes about 1.5 s for 100,000 rows of thirty text columns,
    Arrow 0.5 s. The dtypes are ``.df()``'s: integers and booleans nullable (``Int64``,
    ``boolean``) only when the column holds a NULL, dates and timestamps ``datetime64[us]``,
    decimals ``float64``, an all-NULL text column ``object``. ``None`` when a column has another
    type (lists, structs, intervals, time zones ...): the caller then asks DuckDB."""
    import pandas as pd
    import pyarrow as pa

    ints = {
        pa.int8(): pd.Int8Dtype(),
        pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.uint8(): pd.UInt8Dtype(),
        pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(),
        pa.uint64(): pd.UInt64Dtype(),
    }
    columns: dict[str, Any] = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        kind, nulls = col.type, col.null_count
        if kind in ints:
            series = col.to_pandas(types_mapper={kind: ints[kind]}.get) if nulls else col.to_pandas()
        elif pa.types.is_boolean(kind):
            series = col.to_pandas(types_mapper={kind: pd.BooleanDtype()}.get) if nulls else col.to_pandas()
        elif pa.types.is_floating(kind):
            series = col.to_pandas()
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            series = col.to_pandas() if nulls < len(col) else pd.Series([None] * len(col), dtype=object)
        elif pa.types.is_date32(kind):
            series = col.to_pandas(date_as_object=False).astype("datetime64[us]")
        elif pa.types.is_timestamp(kind) and kind.tz is None:
            series = col.to_pandas().astype(f"datetime64[{kind.unit}]")
        elif pa.types.is_decimal(kind):
            series = col.to_pandas().astype("float64")
        else:
            return None
        columns[name] = series
    if len(set(columns)) < table.num_columns:  # duplicate column names: DuckDB's own conversion
        return None
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))


class DuckDBWarehouse(Warehouse):
    target = "duckdb"

    def __init__(self, path: str, read_only: bool = False) -> None:
        import duckdb

        self.path = path
        try:
            self.con = duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as exc:
            raise WarehouseUnreachable(
                f"cannot open the DuckDB warehouse {path}: {exc}. "
                "Another process (a running pipeline, a BI tool) may hold it open; stop it and retry."
            ) from exc

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self.con.execute(sql, list(params) if params is not None else None)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params) if params is not None else None).fetchall()

    def query_df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        table = self.con.sql(sql, params=list(params) if params is not None else None).to_arrow_table()
        frame = _arrow_frame(table)
        if frame is None:  # a column type _arrow_frame does not convert: DuckDB's own conversion
            return self.con.from_arrow(table).df()  # of the rows fetched (the query does not run again)
        return frame

    def insert_df(self, table: str, df: pd.DataFrame) -> int:
        if df.empty:
            return 0
        cols = ", ".join(_check_ident(c) for c in df.columns)
        self.con.register("_mdm_insert_df", df)
        try:
            self.con.execute(f"insert into {_check_ident(table)} ({cols}) select {cols} from _mdm_insert_df")
        finally:
            self.con.unregister("_mdm_insert_df")
        return len(df)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("begin transaction")
        try:
            yield
        except BaseException:
            self.con.execute("rollback")
            raise
        self.con.execute("commit")

    def close(self) -> None:
        self.con.close()


class PostgresWarehouse(Warehouse):
    target = "postgres"

    def __init__(self, dsn: str) -> None:
        import psycopg

        try:
            self.con = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise WarehouseUnreachable(
                f"cannot reach PostgreSQL at {redact_dsn(dsn)}: {str(exc).strip()}. "
                "Check MDM_PG_DSN and that the server is running and accepts connections."
            ) from exc
        self.con.execute("set timezone to 'UTC'")
        self._in_tx = False

    @staticmethod
    def _sql(sql: str) -> str:
        # The portable placeholder is '?'; psycopg wants '%s'. Literal '%' must be doubled.
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self.con.execute(self._sql(sql) if params is not None else sql, params)  # type: ignore[arg-type]

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        cur = self.con.execute(self._sql(sql) if params is not None else sql, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []

    def query_df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        import pandas as pd

        cur = self.con.execute(self._sql(sql) if params is not None else sql, params)  # type: ignore[arg-type]
        cols = [d.name for d in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=cols)

    def insert_df(self, table: str, df: pd.DataFrame) -> int:
        if df.empty:
            return 0
        cols = ", ".join(_check_ident(c) for c in df.columns)
        records = df.astype(object).where(df.notna(), None).itertuples(index=False, name=None)
        with self.con.cursor() as cur, cur.copy(f"copy {_check_ident(table)} ({cols}) from stdin") as copy:
            for record in records:
                copy.write_row(record)
        return len(df)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.con.transaction():
            yield

    def close(self) -> None:
        self.con.close()


def redact_dsn(dsn: str) -> str:
    """A connection string fit for a log or an error message: its password masked."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", re.sub(r"password=\S+", "password=***", dsn))


#: DuckDB files held open by :func:`kept_open` in this process: path -> its connection (None
#: while :func:`released`)
_KEPT: dict[str, DuckDBWarehouse | None] = {}
_KEPT_LOCK = threading.Lock()


@contextmanager
def kept_open(settings: Settings) -> Iterator[None]:
    """Keep the DuckDB warehouse open while the block runs (a pipeline step); no-op on PostgreSQL.

    Opening a DuckDB file loads its catalogue, and closing the last connection to it writes a
    checkpoint: 50 to 200 ms each time, and a run's steps open the warehouse about fifty times.
    While one connection stays open, :func:`connect` attaches further connections to the same
    database for about a millisecond, and DuckDB checkpoints once, when the block ends (or when
    its write-ahead log grows past its threshold). Inside the block every connection is
    read-write (DuckDB serves one file with one configuration per process);
    :func:`released` closes the file for a moment (dbt opens it itself). A nested block
    leaves the file to the outer one."""
    path = str(settings.warehouse_file)
    with _KEPT_LOCK:
        owner = settings.target == "duckdb" and path not in _KEPT
        if owner:
            settings.warehouse_file.parent.mkdir(parents=True, exist_ok=True)
            _KEPT[path] = DuckDBWarehouse(path)
    try:
        yield
    finally:
        if owner:
            with _KEPT_LOCK:
                kept = _KEPT.pop(path)
                if kept is not None:
                    kept.close()


@contextmanager
def released(settings: Settings) -> Iterator[None]:
    """Close a file :func:`kept_open` holds for the duration of the block (another program, or
    dbt-duckdb with its own configuration, opens it), then open it again."""
    path = str(settings.warehouse_file)
    with _KEPT_LOCK:
        kept = _KEPT.get(path) if settings.target == "duckdb" else None
        if kept is not None:
            kept.close()
            _KEPT[path] = None
    try:
        yield
    finally:
        if kept is not None:
            with _KEPT_LOCK:
                if path in _KEPT and _KEPT[path] is None:
                    _KEPT[path] = DuckDBWarehouse(path)


def connect(settings: Settings, read_only: bool = False) -> Warehouse:
    """Open the warehouse the settings name. The caller closes it (use ``with``)."""
    if settings.target == "postgres":
        assert settings.pg_dsn is not None  # Settings.validate guarantees it
        return PostgresWarehouse(settings.pg_dsn)
    path = str(settings.warehouse_file)
    with _KEPT_LOCK:
        kept = _KEPT.get(path)
    if kept is not None:
        return DuckDBWarehouse(path)  # attaches to the open database (kept_open): read-write
    settings.warehouse_file.parent.mkdir(parents=True, exist_ok=True)
    return DuckDBWarehouse(path, read_only=read_only)
