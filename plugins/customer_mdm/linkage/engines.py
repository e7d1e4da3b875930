"""Where Splink runs: DuckDB in this process (default) or Apache Spark (``MDM_LINKAGE_ENGINE=spark``).

Everything around the scoring stays the same on both engines: the records are read from the
warehouse and prepared as a pandas frame, the scored pairs come back as a pandas frame, and the
giant-cluster guard, the golden ids and the state tables are computed from them as before. Only
Splink's work -- blocking, comparing and scoring the candidate pairs, and training -- runs on
the engine. That work is what grows faster than the records (the candidate pairs), and what a
Spark cluster spreads over many machines.

:func:`make_engine` picks the engine from :class:`~customer_mdm.config.Settings`
(``linkage_engine``, ``spark_master``, ``spark_driver_memory``); :func:`make_db_api` gives the
Splink ``DatabaseAPI`` of it. An :class:`Engine` also

- registers a pandas frame as a Splink table (:meth:`Engine.register`; on Spark through Arrow);
- translates a model's settings to its SQL dialect (:meth:`Engine.model_settings`). The model
  artefact is written in DuckDB SQL whatever engine trained it, so one model file serves both;
  on Spark every comparison level and blocking rule is transpiled with sqlglot (double-quoted
  identifiers become back-quoted, ``starts_with`` becomes ``startswith``, ...), and the two
  string distances are made to count what DuckDB counts: DuckDB's ``levenshtein`` and
  ``jaro_winkler_similarity`` work on UTF-8 bytes, Spark's ``levenshtein`` and Splink's
  ``jaro_winkler`` UDF on characters, so their arguments are given to Spark as one character
  per UTF-8 byte (``decode(encode(x, 'UTF-8'), 'ISO-8859-1')``). Levenshtein distances are then
  identical; Jaro-Winkler is identical on ASCII text and within about 0.01 on Chinese text (the
  two implementations bound the match window differently), which moves a street pair across
  the 0.9 "similar street" threshold now and then;
- fetches a Splink result as pandas (:meth:`Engine.fetch`).

Spark runs in local mode by default (``local[2]``: the driver process runs the executors, with
the machine's Java 17+); ``MDM_SPARK_MASTER`` points it at a cluster (``spark://host:7077``,
``yarn``, ``k8s://...``). The session is created once per process, with Splink's similarity
UDF jar (``jaro_winkler``) on the class path of the driver and the executors, the web UI off
and, in local mode, few shuffle partitions. Further Spark settings for a cluster go where Spark
reads them (``$SPARK_CONF_DIR/spark-defaults.conf``).
"""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from customer_mdm.config import LINKAGE_ENGINES
from customer_mdm.errors import ConfigError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    from splink.internals.database_api import DatabaseAPI
    from splink.internals.splink_dataframe import SplinkDataFrame

    from customer_mdm.config import Settings

log = logging.getLogger(__name__)

__all__ = ["ENGINES", "DuckDBEngine", "Engine", "SparkEngine", "make_db_api", "make_engine", "spark_session"]

#: values of MDM_LINKAGE_ENGINE
ENGINES = LINKAGE_ENGINES

#: shuffle partitions in Spark local mode (Spark's default of 200 is for clusters)
LOCAL_SHUFFLE_PARTITIONS = 4


class Engine:
    """The Splink backend the linkage runs on (see the module docstring)."""

    name = "duckdb"

    def db_api(self, con: duckdb.DuckDBPyConnection | None = None) -> DatabaseAPI:
        raise NotImplementedError

    def register(self, db_api: DatabaseAPI, frame: pd.DataFrame, table_name: str | None = None) -> SplinkDataFrame:
        """``frame`` as a Splink table of ``db_api``."""
        return db_api.register(frame, table_name=table_name)

    def model_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        """A model's settings (DuckDB SQL) in this engine's SQL dialect."""
        return settings

    def fetch(self, df: SplinkDataFrame, columns: list[str]) -> pd.DataFrame:
        """``columns`` of a Splink result as a pandas frame."""
        raise NotImplementedError

    def release(self, db_api: DatabaseAPI) -> None:
        """Free what a scoring call left cached on the engine."""


@dataclass(frozen=True)
class DuckDBEngine(Engine):
    """Splink on an in-process DuckDB connection (a new in-memory one unless ``con`` is given).

    ``memory_limit`` (``MDM_LINKAGE_MEMORY_LIMIT``) caps what DuckDB holds of Splink's tables
    (blocked pairs, comparison vectors); beyond it DuckDB spills to ``temp_directory``. A
    connection the engine opened is closed by :meth:`release`, so each scoring pass gives its
    memory back before the next one starts."""

    memory_limit: str | None = None
    temp_directory: str | None = None
    name = "duckdb"

    def db_api(self, con: duckdb.DuckDBPyConnection | None = None) -> DatabaseAPI:
        import duckdb
        from splink import DuckDBAPI

        if con is not None:
            return DuckDBAPI(connection=con)
        config: dict[str, str | bool | int | float | list[str]] = {}
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        if self.temp_directory:
            config["temp_directory"] = self.temp_directory
        api = DuckDBAPI(connection=duckdb.connect(config=config))
        api._mdm_owned_connection = True  # type: ignore[attr-defined]  # release() closes it
        return api

    def register(self, db_api: DatabaseAPI, frame: pd.DataFrame, table_name: str | None = None) -> SplinkDataFrame:
        """``frame`` as a Splink table, handed to DuckDB as an Arrow table: Splink registers a
        view, which DuckDB scans on every query that reads it, and a pandas scan converts the
        frame again each time (a third of the scoring time of an incremental run)."""
        return db_api.register(to_arrow(frame), table_name=table_name)

    def fetch(self, df: SplinkDataFrame, columns: list[str]) -> pd.DataFrame:
        rel = df.as_duckdbpyrelation().select(", ".join(columns))
        return rel.arrow().read_all().to_pandas()

    def release(self, db_api: DatabaseAPI) -> None:
        if getattr(db_api, "_mdm_owned_connection", False):  # opened by db_api(), not the caller's
            db_api._mdm_owned_connection = False  # type: ignore[attr-defined]
            db_api.duckdb_con.close()  # type: ignore[attr-defined]
            gc.collect()  # Splink's objects hold each other in cycles


DUCKDB = DuckDBEngine()


def to_arrow(frame: pd.DataFrame) -> pa.Table | pd.DataFrame:
    """``frame`` as an Arrow table with the SQL types DuckDB gives the frame itself: a column of
    only NULLs (no type in Arrow) is text. A frame Arrow cannot type (an object column of mixed
    Python types) is returned as it is, for DuckDB's pandas scan."""
    import pyarrow as pa

    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return frame
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.string()))
    return table


@dataclass(frozen=True)
class SparkEngine(Engine):
    """Splink on Apache Spark (``pyspark``; local mode or a cluster)."""

    master: str = "local[2]"
    driver_memory: str = "2g"
    name = "spark"

    def session(self) -> Any:
        return spark_session(self.master, self.driver_memory)

    def db_api(self, con: duckdb.DuckDBPyConnection | None = None) -> DatabaseAPI:
        from splink import SparkAPI

        # persist (memory, spilling to disk) breaks the lineage of Splink's intermediate tables;
        # Splink's default writes parquet to a checkpoint directory that would have to be shared
        return SparkAPI(spark_session=self.session(), break_lineage_method="persist")

    def register(self, db_api: DatabaseAPI, frame: pd.DataFrame, table_name: str | None = None) -> SplinkDataFrame:
        return db_api.register(to_spark(self.session(), frame), table_name=table_name)

    def model_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return to_spark_settings(settings)

    def fetch(self, df: SplinkDataFrame, columns: list[str]) -> pd.DataFrame:
        sdf = df.as_spark_dataframe().select(*columns)
        return sdf.toArrow().to_pandas()

    def release(self, db_api: DatabaseAPI) -> None:
        self.session().catalog.clearCache()


def make_engine(settings: Settings | None = None) -> Engine:
    """The engine ``settings`` configure (``MDM_LINKAGE_ENGINE``); DuckDB without settings."""
    if settings is None:
        return DUCKDB
    if settings.linkage_engine == "duckdb":
        temp = settings.home / "tmp" / "linkage"
        temp.mkdir(parents=True, exist_ok=True)
        return DuckDBEngine(memory_limit=settings.linkage_memory_limit, temp_directory=str(temp))
    if settings.linkage_engine == "spark":
        return SparkEngine(master=settings.spark_master, driver_memory=settings.spark_driver_memory)
    raise ConfigError(f"unknown linkage engine {settings.linkage_engine!r}: use one of {', '.join(ENGINES)}")


def make_db_api(settings: Settings | None = None, con: duckdb.DuckDBPyConnection | None = None) -> DatabaseAPI:
    """The Splink ``DatabaseAPI`` of the configured engine."""
    return make_engine(settings).db_api(con)


# ============================================================================ Spark session
_LOCK = threading.Lock()
_SESSION: dict[str, Any] = {}


def spark_session(master: str = "local[2]", driver_memory: str = "2g") -> Any:
    """The process's Spark session (created on first use) with Splink's UDF jar.

    Raises ConfigError when pyspark is not installed or Java cannot start Spark; the master and
    the driver memory of a running session cannot change (Spark reads them at start).
    """
    with _LOCK:
        if "spark" in _SESSION:
            running = _SESSION["spark"]
            if _SESSION["key"] != (master, driver_memory):
                log.warning(
                    "a Spark session (%s, driver memory %s) is running already; %s / %s ignored",
                    *_SESSION["key"],
                    master,
                    driver_memory,
                )
            return running
        try:
            from pyspark.sql import SparkSession
            from splink.backends.spark import similarity_jar_location
        except ImportError as exc:
            raise ConfigError(
                "MDM_LINKAGE_ENGINE=spark needs pyspark: pip install -c constraints.txt -e '.[spark]'"
            ) from exc
        jar = similarity_jar_location()
        builder = (
            SparkSession.builder.appName("customer-mdm-linkage")
            .master(master)
            .config("spark.driver.memory", driver_memory)
            .config("spark.jars", jar)
            .config("spark.driver.extraClassPath", jar)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        )
        if master.startswith("local"):
            builder = (
                builder.config("spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS))
                .config("spark.default.parallelism", str(LOCAL_SHUFFLE_PARTITIONS))
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
            )
        try:
            spark = builder.getOrCreate()
        except Exception as exc:  # py4j / Java errors: no java, wrong version, bad master URL
            raise ConfigError(
                f"cannot start Spark (master {master}): {exc}. The Spark engine needs Java 17 or later on "
                "PATH (or JAVA_HOME) and a reachable MDM_SPARK_MASTER"
            ) from exc
        spark.sparkContext.setLogLevel("ERROR")
        log.info("Spark %s session started (master %s, driver memory %s)", spark.version, master, driver_memory)
        _SESSION.update(spark=spark, key=(master, driver_memory))
        return spark


def to_spark(spark: Any, frame: pd.DataFrame) -> Any:
    """A pandas frame as a Spark DataFrame, through Arrow (all-null columns become strings)."""
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    fields = []
    for f in table.schema:
        if pa.types.is_null(f.type) or pa.types.is_large_string(f.type) or pa.types.is_string_view(f.type):
            fields.append(pa.field(f.name, pa.string()))
        else:
            fields.append(f)
    table = table.cast(pa.schema(fields))
    return spark.createDataFrame(table)


# ============================================================================ SQL dialect
def _as_bytes(e: Any) -> Any:
    """``e`` as a string of one character per UTF-8 byte (DuckDB's string distances count bytes)."""
    from sqlglot import exp

    encoded = exp.Anonymous(this="encode", expressions=[e, exp.Literal.string("UTF-8")])
    return exp.Anonymous(this="decode", expressions=[encoded, exp.Literal.string("ISO-8859-1")])


def to_spark_sql(condition: str) -> str:
    """A DuckDB SQL condition (comparison level, blocking rule) in Spark SQL."""
    import sqlglot
    from sqlglot import exp

    if condition.strip().upper() == "ELSE":
        return condition

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.JarowinklerSimilarity):
            return exp.Anonymous(this="jaro_winkler", expressions=[_as_bytes(node.this), _as_bytes(node.expression)])
        if isinstance(node, exp.Levenshtein):
            return exp.Anonymous(this="levenshtein", expressions=[_as_bytes(node.this), _as_bytes(node.expression)])
        return node

    tree = sqlglot.parse_one(condition, read="duckdb").transform(fix)
    return tree.sql(dialect="spark")


def to_spark_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A Splink settings dict in DuckDB SQL translated to Spark SQL (a copy)."""
    import copy

    out = copy.deepcopy(settings)
    out["sql_dialect"] = "spark"
    for rule in out.get("blocking_rules_to_generate_predictions", []):
        if isinstance(rule, dict):
            rule["blocking_rule"] = to_spark_sql(rule["blocking_rule"])
            rule["sql_dialect"] = "spark"
    for comparison in out.get("comparisons", []):
        for level in comparison["comparison_levels"]:
            level["sql_condition"] = to_spark_sql(level["sql_condition"])
    return out


def restore_sql(trained: dict[str, Any], original: dict[str, Any]) -> dict[str, Any]:
    """``trained`` (settings saved by a linker of another dialect) with the SQL of ``original``:
    the same comparisons, levels and rules in the same order, so only the SQL text changes."""
    out = dict(trained)
    out["sql_dialect"] = original.get("sql_dialect", "duckdb")
    rules = original.get("blocking_rules_to_generate_predictions", [])
    out["blocking_rules_to_generate_predictions"] = [dict(r) if isinstance(r, dict) else r for r in rules]
    comparisons = []
    for comp, orig in zip(trained["comparisons"], original["comparisons"], strict=True):
        levels = []
        for level, orig_level in zip(comp["comparison_levels"], orig["comparison_levels"], strict=True):
            levels.append({**level, "sql_condition": orig_level["sql_condition"]})
        comparisons.append({**comp, "comparison_levels": levels})
    out["comparisons"] = comparisons
    return out
