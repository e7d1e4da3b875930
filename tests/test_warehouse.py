"""The DuckDB warehouse's DataFrames: built from Arrow, with the dtypes DuckDB's own ``.df()`` gives."""

from __future__ import annotations

import pandas as pd
import pytest

from customer_mdm.warehouse import DuckDBWarehouse

#: every column type the warehouse's tables use, and a few more a query can produce
COLUMNS = {
    "big": "bigint",
    "small": "smallint",
    "qty": "integer",
    "flag": "boolean",
    "born": "date",
    "seen_at": "timestamp",
    "amount": "decimal(18,2)",
    "score": "double",
    "ratio": "float",
    "name": "varchar",
}
ROWS = [
    (1, 2, 3, True, "2026-11-01", "2026-11-01 08:30:00.123456", 12.5, 0.25, 1.5, "王伟"),
    (None, None, None, None, None, None, None, None, None, None),
    (-7, 0, 9, False, "1970-01-01", "1999-12-31 23:59:59", -0.01, -1e300, 0.0, ""),
]


@pytest.fixture()
def wh(tmp_path) -> DuckDBWarehouse:
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    wh.execute("create table t (" + ", ".join(f"{c} {t}" for c, t in COLUMNS.items()) + ")")
    for row in ROWS:
        wh.execute(f"insert into t values ({', '.join('?' for _ in row)})", list(row))
    yield wh
    wh.close()


@pytest.mark.parametrize(
    "where",
    ["", "where big is not null", "where big is null", "where 1 = 0", "where name = '王伟'"],
    ids=["nulls", "no-nulls", "only-nulls", "empty", "one-row"],
)
def test_query_df_gives_what_duckdb_gives(wh: DuckDBWarehouse, where: str):
    sql = f"select * from t {where} order by big nulls last"
    expected = wh.con.execute(sql).df()
    got = wh.query_df(sql)
    pd.testing.assert_frame_equal(got, expected, check_dtype=True)


def test_query_df_with_parameters_and_other_types(wh: DuckDBWarehouse):
    # a list column is not converted from Arrow: DuckDB's own conversion answers
    sql = "select big, [big, qty] as pair, interval 1 day as span from t where big > ? order by big"
    got = wh.query_df(sql, [-10])
    expected = wh.con.execute(sql, [-10]).df()
    pd.testing.assert_frame_equal(got, expected, check_dtype=True)
    assert list(got["big"]) == [-7, 1]
    same = wh.query_df("select big, name from t where big = ?", [1])
    assert same.to_dict("records") == [{"big": 1, "name": "王伟"}]


def test_a_kept_open_warehouse_serves_every_connection_until_released(tmp_path):
    import duckdb

    from customer_mdm.config import Settings
    from customer_mdm.warehouse import connect, kept_open, released

    settings = Settings.from_env(env={}, home=tmp_path / "home", target="duckdb")
    path = str(settings.warehouse_file)
    with kept_open(settings):
        with connect(settings) as wh:
            wh.execute("create table t as select 1 as x")
        with kept_open(settings), connect(settings, read_only=True) as wh:  # nested; read-write inside
            wh.execute("insert into t values (2)")
        with pytest.raises(duckdb.Error):  # the file is this process's, with its configuration
            duckdb.connect(path, read_only=True)
        with released(settings):  # e.g. dbt-duckdb, with its own configuration
            other = duckdb.connect(path, read_only=True)
            assert other.execute("select count(*) from t").fetchall() == [(2,)]
            other.close()
        with connect(settings) as wh:  # open again after the release
            assert wh.scalar("select sum(x) from t") == 3
    reader = duckdb.connect(path, read_only=True)  # closed (and checkpointed) at the end
    assert reader.execute("select count(*) from t").fetchall() == [(2,)]
    reader.close()
