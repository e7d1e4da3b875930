"""The one configuration object: where things are and which warehouse is used.

Every path the platform touches is derived here, from environment variables, so the CLI,
the Airflow tasks, dbt and the tests all agree. Nothing else rebuilds these paths.

Environment variables (all optional except ``MDM_PG_DSN`` when the target is postgres):

``MDM_HOME``         state directory (default ``./.mdm``): warehouse file, Airflow metadata,
                     quarantine copies, reports, dbt artefacts
``MDM_LANDING``      landing zone (default ``$MDM_HOME/landing``)
``MDM_TARGET``       ``duckdb`` (default, embedded) or ``postgres``
``MDM_PG_DSN``       PostgreSQL connection string (URL or ``key=value``) for ``postgres``; when unset,
                     the Airflow connection ``mdm_warehouse`` (``MDM_WAREHOUSE_CONN_ID``) is read
                     through Airflow's connection API: ``AIRFLOW_CONN_MDM_WAREHOUSE`` (URI or JSON),
                     or, in an Airflow process or when ``MDM_WAREHOUSE_CONN_ID`` is set, a connection
                     defined in the UI or a secrets backend; its ``extra`` libpq options (``sslmode``,
                     ``sslrootcert``, ``connect_timeout``, ``options`` ...) are kept
``MDM_DUCKDB_PATH``  DuckDB warehouse file (default ``$MDM_HOME/warehouse.duckdb``)
``MDM_PROJECT_ROOT`` the checkout holding ``dags/`` and ``dbt_project/`` (found automatically)
``MDM_LINKAGE_ENGINE``       where Splink scores the pairs: ``duckdb`` (default, in process) or ``spark``
``MDM_SPARK_MASTER``         Spark master URL for the ``spark`` engine (default ``local[2]``)
``MDM_SPARK_DRIVER_MEMORY``  Spark driver memory (default ``2g``)
``MDM_LINKAGE_MEMORY_LIMIT`` memory DuckDB may hold while Splink scores and trains on the ``duckdb``
                             engine, beyond which it spills to ``$MDM_HOME/tmp`` (default ``2GB``)
``MDM_MAX_FILE_MB``  a landing file larger than this many MiB is quarantined unread (default 2048)
``MDM_RUN_LOCK_WAIT`` seconds a run waits for another run's lock before it gives up (default 0: fail at once)
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from customer_mdm.errors import ConfigError

TARGETS = ("duckdb", "postgres")
#: Airflow's environment-variable form of the connection ``mdm_warehouse`` (URI or JSON)
AIRFLOW_CONN_ENV = "AIRFLOW_CONN_MDM_WAREHOUSE"
LINKAGE_ENGINES = ("duckdb", "spark")

_PACKAGE_DIR = Path(__file__).resolve().parent


def _find_project_root() -> Path:
    # plugins/customer_mdm/config.py -> the checkout is two levels above the package.
    candidate = _PACKAGE_DIR.parent.parent
    if (candidate / "dbt_project").is_dir():
        return candidate
    return Path.cwd()


#: the Airflow connection id of the warehouse (``MDM_WAREHOUSE_CONN_ID``)
WAREHOUSE_CONN_ID_ENV = "MDM_WAREHOUSE_CONN_ID"
DEFAULT_WAREHOUSE_CONN_ID = "mdm_warehouse"
#: ``extra`` keys of a connection that are libpq connection parameters (the rest is ignored)
LIBPQ_EXTRA = frozenset(
    {
        "sslmode",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslcrl",
        "sslnegotiation",
        "channel_binding",
        "gssencmode",
        "connect_timeout",
        "application_name",
        "options",
        "target_session_attrs",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "client_encoding",
    }
)


#: the libpq environment variable of each option, for child processes (dbt's psycopg2 reads them)
LIBPQ_ENV = {
    "sslmode": "PGSSLMODE",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "sslnegotiation": "PGSSLNEGOTIATION",
    "channel_binding": "PGCHANNELBINDING",
    "gssencmode": "PGGSSENCMODE",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "client_encoding": "PGCLIENTENCODING",
}


def connection_dsn(conn: Any) -> str:
    """A libpq URL from an Airflow connection (``airflow.sdk.Connection`` or alike): login,
    password, host, port, schema (the database) and the libpq options of its ``extra``."""
    from urllib.parse import quote, urlencode

    user = quote(str(conn.login or ""), safe="")
    password = quote(str(conn.password or ""), safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    port = f":{conn.port}" if conn.port else ""
    extra = conn.extra_dejson or {}
    options = {k: str(v) for k, v in sorted(extra.items()) if k in LIBPQ_EXTRA and v is not None}
    query = f"?{urlencode(options)}" if options else ""
    database = quote(str(conn.schema or ""), safe="")
    return f"postgresql://{auth}{conn.host or 'localhost'}{port}/{database}{query}"


def _airflow_dsn(env: Mapping[str, str], lookup: bool) -> str | None:
    """The warehouse DSN from the Airflow connection ``MDM_WAREHOUSE_CONN_ID`` (default
    ``mdm_warehouse``): its ``AIRFLOW_CONN_...`` variable in ``env`` (URI or JSON), else, when
    ``lookup``, Airflow's connection API (metadata database through the task runner, secrets
    backends, environment). ``None`` when there is none."""
    conn_id = (env.get(WAREHOUSE_CONN_ID_ENV) or "").strip() or DEFAULT_WAREHOUSE_CONN_ID
    value = (env.get(f"AIRFLOW_CONN_{conn_id.upper()}") or "").strip()
    explicit = bool((env.get(WAREHOUSE_CONN_ID_ENV) or "").strip())
    if not value and not (lookup or explicit):
        return None
    try:
        from airflow.sdk import Connection
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:  # a deployment without Airflow: only MDM_PG_DSN
        if value or explicit:
            raise ConfigError(f"the Airflow connection {conn_id!r} needs Airflow installed; set MDM_PG_DSN") from None
        return None
    if value:
        try:
            parse = Connection.from_json if value.startswith("{") else Connection.from_uri
            conn = parse(value, conn_id)
        except ValueError as exc:
            raise ConfigError(f"AIRFLOW_CONN_{conn_id.upper()} is neither a URI nor valid JSON: {exc}") from exc
        return connection_dsn(conn)
    try:
        return connection_dsn(Connection.get(conn_id))
    except AirflowNotFoundException:
        if explicit:
            raise ConfigError(
                f"no Airflow connection {conn_id!r} ({WAREHOUSE_CONN_ID_ENV}): define it in the Airflow UI, "
                f"a secrets backend or AIRFLOW_CONN_{conn_id.upper()}, or set MDM_PG_DSN"
            ) from None
        return None


def _in_airflow() -> bool:
    """True in an Airflow process (a task, the triggerer, the dag-processor): there the connection
    API reaches UI-defined connections and the configured secrets backends."""
    return "airflow.sdk.execution_time.task_runner" in sys.modules or bool(os.environ.get("AIRFLOW_CTX_DAG_ID"))


def _number(name: str, value: object, default: float) -> float:
    """A non-negative number from a setting (``None`` or empty: the default)."""
    if value is None or str(value).strip() == "":
        return float(default)
    try:
        number = float(str(value))
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None
    if number < 0 or number != number:
        raise ConfigError(f"{name}={value!r} must be zero or more")
    return number


@dataclass(frozen=True)
class Settings:
    home: Path
    landing: Path
    target: str = "duckdb"
    pg_dsn: str | None = None
    duckdb_path: Path | None = None
    project_root: Path = field(default_factory=_find_project_root)
    #: where Splink runs (customer_mdm.linkage.engines): duckdb or spark
    linkage_engine: str = "duckdb"
    spark_master: str = "local[2]"
    spark_driver_memory: str = "2g"
    #: DuckDB memory_limit of Splink's connections (duckdb engine)
    linkage_memory_limit: str = "2GB"
    #: landing files above this size (MiB) are quarantined without being read
    max_file_mb: float = 2048.0
    #: seconds a run waits for the run lock another run holds (0: refuse at once)
    run_lock_wait: float = 0.0
    #: retention (customer_mdm.privacy.apply_retention): years without a source seeing the person
    #: and without an order after which a golden id is flagged, then erased; None: off (default)
    retention_years: float | None = None
    #: days between the flag and the erasure (a person seen again meanwhile is kept)
    retention_grace_days: int = 30

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        home = Path(str(overrides.pop("home", None) or env.get("MDM_HOME") or ".mdm")).expanduser()
        home = home.resolve()
        landing = overrides.pop("landing", None) or env.get("MDM_LANDING") or home / "landing"
        target = str(overrides.pop("target", None) or env.get("MDM_TARGET") or "duckdb").lower()
        target_given = str(overrides.get("target") or env.get("MDM_TARGET") or "duckdb").lower()
        pg_dsn = (
            overrides.pop("pg_dsn", None)
            or env.get("MDM_PG_DSN")
            or _airflow_dsn(env, lookup=target_given == "postgres" and env is os.environ and _in_airflow())
        )
        duckdb_path = overrides.pop("duckdb_path", None) or env.get("MDM_DUCKDB_PATH") or None
        root = overrides.pop("project_root", None) or env.get("MDM_PROJECT_ROOT") or None
        engine = str(overrides.pop("linkage_engine", None) or env.get("MDM_LINKAGE_ENGINE") or "duckdb").lower()
        spark_master = str(overrides.pop("spark_master", None) or env.get("MDM_SPARK_MASTER") or "local[2]")
        driver_memory = str(overrides.pop("spark_driver_memory", None) or env.get("MDM_SPARK_DRIVER_MEMORY") or "2g")
        memory_limit = str(overrides.pop("linkage_memory_limit", None) or env.get("MDM_LINKAGE_MEMORY_LIMIT") or "2GB")
        max_file_mb = _number("MDM_MAX_FILE_MB", overrides.pop("max_file_mb", None) or env.get("MDM_MAX_FILE_MB"), 2048)
        lock_wait = _number(
            "MDM_RUN_LOCK_WAIT", overrides.pop("run_lock_wait", None) or env.get("MDM_RUN_LOCK_WAIT"), 0
        )
        if env.get("MDM_WAREHOUSE_KEY"):
            from customer_mdm.keys import refuse_warehouse_key

            refuse_warehouse_key(env)
        retention = overrides.pop("retention_years", None) or env.get("MDM_RETENTION_YEARS") or None
        grace = overrides.pop("retention_grace_days", None) or env.get("MDM_RETENTION_GRACE_DAYS") or 30
        if overrides:
            raise TypeError(f"unknown settings: {sorted(overrides)}")
        try:
            retention_years = float(str(retention)) if retention is not None else None
            grace_days = int(str(grace))
        except ValueError as exc:
            raise ConfigError(
                "MDM_RETENTION_YEARS must be a number of years (e.g. 3) and MDM_RETENTION_GRACE_DAYS a whole "
                "number of days"
            ) from exc
        settings = cls(
            home=home,
            landing=Path(str(landing)).expanduser().resolve(),
            target=target,
            pg_dsn=str(pg_dsn) if pg_dsn else None,
            duckdb_path=Path(str(duckdb_path)).expanduser().resolve() if duckdb_path else None,
            project_root=Path(str(root)).resolve() if root else _find_project_root(),
            linkage_engine=engine,
            spark_master=spark_master,
            spark_driver_memory=driver_memory,
            linkage_memory_limit=memory_limit,
            max_file_mb=max_file_mb,
            run_lock_wait=lock_wait,
            retention_years=retention_years,
            retention_grace_days=grace_days,
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.retention_years is not None and self.retention_years <= 0:
            raise ConfigError("MDM_RETENTION_YEARS must be more than 0 (leave it unset to keep the policy off)")
        if self.retention_grace_days < 0:
            raise ConfigError("MDM_RETENTION_GRACE_DAYS must be 0 or more")
        if self.target not in TARGETS:
            raise ConfigError(
                f"unknown warehouse target {self.target!r}: set MDM_TARGET to one of {', '.join(TARGETS)}"
            )
        if self.target == "postgres" and not self.pg_dsn:
            raise ConfigError(
                "MDM_TARGET=postgres needs MDM_PG_DSN, e.g. postgresql://mdm_pipeline:PASSWORD@localhost:5432/mdm"
            )
        if self.linkage_engine not in LINKAGE_ENGINES:
            raise ConfigError(
                f"unknown linkage engine {self.linkage_engine!r}: set MDM_LINKAGE_ENGINE to one of "
                f"{', '.join(LINKAGE_ENGINES)}"
            )
        if not re.fullmatch(r"\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", self.linkage_memory_limit, re.I):
            raise ConfigError(
                f"MDM_LINKAGE_MEMORY_LIMIT={self.linkage_memory_limit!r} is not an amount of memory: "
                "write e.g. 2GB or 1500MB"
            )

    # ------------------------------------------------------------------ derived paths
    @property
    def warehouse_file(self) -> Path:
        return self.duckdb_path or self.home / "warehouse.duckdb"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def models_dir(self) -> Path:
        """Trained model artefacts (the Splink linkage model, versioned JSON + charts)."""
        return self.home / "models"

    @property
    def dbt_project_dir(self) -> Path:
        return self.project_root / "dbt_project"

    @property
    def dbt_state_dir(self) -> Path:
        return self.home / "dbt"

    @property
    def dbt_docs_dir(self) -> Path:
        """The static dbt docs site (catalogue and lineage graph), regenerated after each publication."""
        return self.dbt_state_dir / "docs"

    @property
    def dags_dir(self) -> Path:
        return self.project_root / "dags"

    @property
    def expectations_dir(self) -> Path:
        return self.project_root / "expectations"

    def ensure_dirs(self) -> None:
        """Create the state directories; those holding personal data (quarantine copies, report
        CSVs) are private (0700), like ``MDM_HOME`` itself when the platform creates it."""
        from customer_mdm.private_files import private_dir

        private_dir(self.home, narrow=False)
        for path in (self.quarantine_dir, self.reports_dir):
            private_dir(path)
        self.dbt_state_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ environments
    def pg_params(self) -> dict[str, str]:
        """The PostgreSQL DSN split into libpq keywords (host, port, user, password, dbname)."""
        if not self.pg_dsn:
            raise ConfigError("no MDM_PG_DSN set")
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(self.pg_dsn)
        except Exception as exc:  # psycopg raises ProgrammingError for a malformed DSN
            raise ConfigError(f"MDM_PG_DSN is not a valid PostgreSQL connection string: {exc}") from exc
        return {k: str(v) for k, v in params.items() if v is not None}

    def env(self) -> dict[str, str]:
        """Environment for child processes (Airflow, dbt) so they see the same settings."""
        env = {
            "MDM_HOME": str(self.home),
            "MDM_LANDING": str(self.landing),
            "MDM_TARGET": self.target,
            "MDM_DUCKDB_PATH": str(self.warehouse_file),
            "MDM_PROJECT_ROOT": str(self.project_root),
            "MDM_LINKAGE_ENGINE": self.linkage_engine,
            "MDM_SPARK_MASTER": self.spark_master,
            "MDM_SPARK_DRIVER_MEMORY": self.spark_driver_memory,
            "MDM_LINKAGE_MEMORY_LIMIT": self.linkage_memory_limit,
            "MDM_MAX_FILE_MB": f"{self.max_file_mb:g}",
            "MDM_RUN_LOCK_WAIT": f"{self.run_lock_wait:g}",
            "MDM_RETENTION_GRACE_DAYS": str(self.retention_grace_days),
        }
        if self.retention_years is not None:
            env["MDM_RETENTION_YEARS"] = str(self.retention_years)
        if self.pg_dsn:
            env["MDM_PG_DSN"] = self.pg_dsn
            params = self.pg_params()
            env.update(
                {
                    "MDM_PG_HOST": params.get("host", "localhost"),
                    "MDM_PG_PORT": params.get("port", "5432"),
                    "MDM_PG_USER": params.get("user", os.environ.get("USER", "postgres")),
                    "MDM_PG_PASSWORD": params.get("password", ""),
                    "MDM_PG_DBNAME": params.get("dbname", "mdm"),
                    # TLS (dbt's profile): verify-full with the CA's certificate in production
                    "MDM_PG_SSLMODE": params.get("sslmode", ""),
                    "MDM_PG_SSLROOTCERT": params.get("sslrootcert", ""),
                }
            )
            # the DSN's libpq options (an Airflow connection's extra: sslmode, sslrootcert ...) for dbt
            env.update({LIBPQ_ENV[k]: v for k, v in params.items() if k in LIBPQ_ENV})
        return env
