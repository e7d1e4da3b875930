"""One small interface over the two warehouses: embedded DuckDB and PostgreSQL.

SQL handed to :meth:`Warehouse.execute` uses ``?`` placeholders on both targets and only
portable syntax (``create schema if not exists``, ``text``, ``bigint``, ``timestamp``).
Bulk loads go through :meth:`Warehouse.insert_df`: DuckDB scans the DataFrame directly,
PostgreSQL receives it through ``COPY``.
"""

from __future__ import annotations

import logging
import re
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
        return self.con.execute(sql, list(params) if params is not None else None).df()

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
                f"cannot reach PostgreSQL at {_redact(dsn)}: {str(exc).strip()}. "
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


def _redact(dsn: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", re.sub(r"password=\S+", "password=***", dsn))


def connect(settings: Settings, read_only: bool = False) -> Warehouse:
    """Open the warehouse the settings name. The caller closes it (use ``with``)."""
    if settings.target == "postgres":
        assert settings.pg_dsn is not None  # Settings.validate guarantees it
        return PostgresWarehouse(settings.pg_dsn)
    settings.warehouse_file.parent.mkdir(parents=True, exist_ok=True)
    return DuckDBWarehouse(str(settings.warehouse_file), read_only=read_only)
