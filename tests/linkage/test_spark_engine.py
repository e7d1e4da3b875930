"""The Spark linkage engine (MDM_LINKAGE_ENGINE=spark) scores exactly what the DuckDB engine scores.

Real input: ~150 generated people (~330 records) taken through ingestion, dbt staging, the
standardiser and ``int_customer_records``; one model is trained on DuckDB and saved, then the
link step runs with each engine on the same warehouse and the same model file. Spark runs in
local mode with the machine's Java (skipped, with the reason, when there is no ``java``).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from customer_mdm.config import Settings
from customer_mdm.errors import ConfigError
from customer_mdm.linkage.engines import (
    DUCKDB,
    DuckDBEngine,
    SparkEngine,
    make_engine,
    to_spark_settings,
    to_spark_sql,
)
from customer_mdm.linkage.model import build_settings

PEOPLE = 150
U_PAIRS = 2e5

needs_java = pytest.mark.skipif(
    shutil.which("java") is None, reason="no `java` on PATH: the Spark engine needs Java 17+ (apt install openjdk-17)"
)


# ----------------------------------------------------------------------------- configuration
def test_engine_is_configured_by_env(tmp_path: Path) -> None:
    base = {"MDM_HOME": str(tmp_path)}
    assert Settings.from_env(env=base).linkage_engine == "duckdb"
    duck = make_engine(Settings.from_env(env=base))
    assert isinstance(duck, DuckDBEngine) and duck.memory_limit == "2GB"
    assert duck.temp_directory == str(tmp_path / "tmp" / "linkage")
    assert make_engine(None) is DUCKDB
    limited = make_engine(Settings.from_env(env={**base, "MDM_LINKAGE_MEMORY_LIMIT": "750MB"}))
    assert isinstance(limited, DuckDBEngine) and limited.memory_limit == "750MB"
    api = limited.db_api()
    con = api.duckdb_con  # type: ignore[attr-defined]
    assert con.sql("select current_setting('memory_limit')").fetchall()[0][0] in ("715.2 MiB", "750.0 MB")
    limited.release(api)
    with pytest.raises(duckdb.ConnectionException):
        con.sql("select 1")
    with pytest.raises(ConfigError, match="MDM_LINKAGE_MEMORY_LIMIT"):
        Settings.from_env(env={**base, "MDM_LINKAGE_MEMORY_LIMIT": "lots"})
    s = Settings.from_env(
        env={
            **base,
            "MDM_LINKAGE_ENGINE": "Spark",
            "MDM_SPARK_MASTER": "spark://m:7077",
            "MDM_SPARK_DRIVER_MEMORY": "8g",
        }
    )
    engine = make_engine(s)
    assert isinstance(engine, SparkEngine)
    assert (engine.master, engine.driver_memory) == ("spark://m:7077", "8g")
    assert s.env()["MDM_LINKAGE_ENGINE"] == "spark" and s.env()["MDM_SPARK_MASTER"] == "spark://m:7077"
    assert make_engine(Settings.from_env(env={**base, "MDM_LINKAGE_ENGINE": "spark"})).master == "local[2]"
    with pytest.raises(ConfigError, match="MDM_LINKAGE_ENGINE"):
        Settings.from_env(env={**base, "MDM_LINKAGE_ENGINE": "hadoop"})


def test_model_sql_is_translated_to_spark() -> None:
    assert to_spark_sql('"name_std_l" = "name_std_r"') == "`name_std_l` = `name_std_r`"
    assert to_spark_sql("ELSE") == "ELSE"
    sql = to_spark_sql("starts_with(\"name_pinyin_r\" || ' ', \"name_surname_only_l\" || ' ')")
    assert sql.upper().startswith("STARTSWITH(") and '"' not in sql
    # DuckDB's string distances count UTF-8 bytes: Spark gets one character per byte
    jw = to_spark_sql('jaro_winkler_similarity("street_l", "street_r") >= 0.9')
    assert jw.lower().startswith("jaro_winkler(decode(encode(`street_l`, 'utf-8'), 'iso-8859-1')")
    assert "levenshtein(decode(encode(`email_l`" in to_spark_sql('levenshtein("email_l", "email_r") <= 1').lower()
    # every condition of the model parses and none keeps a double-quoted identifier
    spark = to_spark_settings(build_settings().create_settings_dict("duckdb"))
    assert spark["sql_dialect"] == "spark"
    conditions = [lv["sql_condition"] for c in spark["comparisons"] for lv in c["comparison_levels"]]
    conditions += [r["blocking_rule"] for r in spark["blocking_rules_to_generate_predictions"]]
    assert conditions and not any('"' in c for c in conditions)


# ----------------------------------------------------------------------------- both engines
@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """int_customer_records of generated people, and a model trained on DuckDB, saved as current."""
    from customer_mdm.dbt import run_dbt
    from customer_mdm.linkage.model import save, train
    from customer_mdm.linkage.step import read_records
    from customer_mdm.linkage.training import model_dir
    from customer_mdm.pipeline import ingest_step, new_run_id, start_run
    from customer_mdm.sources import FEEDS
    from customer_mdm.standardize.step import standardize
    from customer_mdm.warehouse import connect
    from mdm_devtools.generate import generate_landing

    tmp = tmp_path_factory.mktemp("spark_engine")
    generate_landing(tmp / "landing", PEOPLE, seed=5)
    settings = Settings.from_env(env={}, home=tmp / "home", landing=tmp / "landing")
    run_id = new_run_id()
    start_run(settings, run_id)
    for f in FEEDS:
        ingest_step(settings, run_id, f.name)
    run_dbt(settings, "build", ["--select", "tag:staging", "--exclude-resource-type", "test"])
    standardize(settings)
    run_dbt(settings, "run", ["--select", "int_customer_records"])
    with connect(settings) as wh:
        records = read_records(wh)
    save(train(records, u_max_pairs=U_PAIRS), model_dir(settings), charts=False)
    return settings


def _state(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    from customer_mdm.warehouse import connect

    with connect(settings) as wh:
        pairs = wh.query_df(
            "select record_id_l, record_id_r, match_probability, match_weight from mdm.pairs "
            "order by record_id_l, record_id_r"
        )
        xref = wh.query_df("select record_id, golden_id from mdm.xref order by record_id")
    return pairs, xref


def _partition(xref: pd.DataFrame) -> set[frozenset[str]]:
    return {frozenset(g["record_id"]) for _, g in xref.groupby("golden_id")}


@needs_java
@pytest.mark.slow
def test_full_link_on_spark_equals_duckdb(warehouse: Settings) -> None:
    """The link step (full) on each engine: the same pairs, probabilities and persons."""
    from customer_mdm.linkage.step import link

    on_duckdb = link(warehouse, "run-duckdb", full=True)
    pairs_d, xref_d = _state(warehouse)
    on_spark = link(replace(warehouse, linkage_engine="spark"), "run-spark", full=True)
    pairs_s, xref_s = _state(warehouse)

    assert on_duckdb["model_version"] == on_spark["model_version"] == "v1"
    assert not on_spark["model_trained_now"]
    assert len(pairs_d) > 100 and on_spark["pairs"] == on_duckdb["pairs"] == len(pairs_s)
    merged = pairs_d.merge(pairs_s, on=["record_id_l", "record_id_r"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
    assert (merged["match_probability_x"] - merged["match_probability_y"]).abs().max() < 1e-9
    assert (merged["match_weight_x"] - merged["match_weight_y"]).abs().max() < 1e-6
    # the same persons, and so (same previous ids) the same golden ids
    assert _partition(xref_s) == _partition(xref_d)
    pd.testing.assert_frame_equal(xref_s, xref_d)
    assert on_spark["golden_ids"] == on_duckdb["golden_ids"] < len(xref_d)


@needs_java
@pytest.mark.slow
def test_incremental_scoring_on_spark_equals_duckdb(warehouse: Settings) -> None:
    """predict_incremental (the incremental link step's scoring) on each engine."""
    from customer_mdm.linkage.model import load_current
    from customer_mdm.linkage.predict import predict_incremental
    from customer_mdm.linkage.step import read_records
    from customer_mdm.linkage.training import model_dir
    from customer_mdm.warehouse import connect

    with connect(warehouse) as wh:
        records = read_records(wh)
    model = load_current(model_dir(warehouse))
    is_new = records.index % 5 == 0  # a fifth of the records arrive new
    args = (records[is_new], records[~is_new], model, 0.2)
    on_duckdb = predict_incremental(*args)
    on_spark = predict_incremental(*args, engine=make_engine(replace(warehouse, linkage_engine="spark")))
    assert len(on_duckdb) > 20
    merged = on_duckdb.merge(on_spark, on=["record_key_l", "record_key_r"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
    assert (merged["match_probability_x"] - merged["match_probability_y"]).abs().max() < 1e-9
