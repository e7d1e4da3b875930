"""Quality gates: validate a layer's tables against its Great Expectations suites.

:func:`validate_layer` runs every suite of a layer (``raw``, ``standardised``, ``golden``; files
under ``expectations/<layer>/``, see :mod:`customer_mdm.quality.suites`) through a GX checkpoint
with an ``UpdateDataDocsAction``, in a file-backed GX context under ``$MDM_HOME/gx``, so the Data
Docs site (``$MDM_HOME/reports/data_docs/index.html``, :func:`data_docs_index`) accumulates the
results of every run.

Where the data is validated:

* **DuckDB**: GX's SQL engine does not work through duckdb-engine (metric resolution fails), so
  the gate reads the table into pandas: only the columns the suite reads plus the key columns
  (columns that are only checked for existence come as empty placeholders, present exactly when
  the table has them), and with ``since`` only the rows ingested since then.
* **PostgreSQL**: GX's postgres data source validates the table in SQL (a query asset with the
  ``since`` filter when given).
* **Derived datasets** (row counts against ``ops.manifest``, conflicting birth dates, xref orphans)
  are small tables the gate computes with SQL on either warehouse and validates as pandas batches.

Every failed expectation, blocking or warning, sends its failing rows to ``ops.quarantine``
(kind ``gx``, reason ``gx:<suite>:<expectation type>(<columns>) [<severity>]``, the row's key
columns and offending values as JSON in ``raw_record``), at most :data:`QUARANTINE_CAP` rows per
expectation (the result says when it was capped). Rows are found with a second, unstored GX
validation of only the failed expectations: GX limits the row query itself on PostgreSQL
(``partial_unexpected_count``); on pandas it returns row positions that are mapped to the key
columns. Warnings are reported and quarantined but never block; :meth:`LayerResult.raise_for_blocking`
raises :class:`QualityGateFailed` naming the failed blocking expectations.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from customer_mdm.config import Settings
from customer_mdm.errors import MdmError
from customer_mdm.quality.suites import (
    DERIVED_DATASETS,
    LAYERS,
    SuiteSpec,
    expectation_columns,
    load_layer,
    suite_parameters,
)
from customer_mdm.schema import OPS_TABLES, ensure_table
from customer_mdm.warehouse import Warehouse, connect

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.data_context import AbstractDataContext

log = logging.getLogger(__name__)

#: Failing rows quarantined per expectation at most.
QUARANTINE_CAP = 10_000
#: Failing values are never copied out of the validation: an expectation's outcome (in
#: ops.run_steps, ops.runs.summary, XCom, task logs and alerts) keeps counts and the expectation's
#: name only, since a sample value can be a person's phone or e-mail. The failing rows themselves
#: are in ops.quarantine (erasure covers it) and in Data Docs under MDM_HOME (scrubbed by erasure).
DOCS_SITE = "mdm_data_docs"
#: The Data Docs index lists (and rebuilds from) the newest validation results only.
DOCS_INDEX_LIMIT = 100
PANDAS_SOURCE = "mdm_pandas"
POSTGRES_SOURCE = "mdm_postgres"
#: GX config variable holding the SQLAlchemy URL (given at runtime: no password in gx/*.yml).
PG_URL_VARIABLE = "MDM_GX_PG_URL"
BATCH_DEFINITION = "whole"
_SCHEMA = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_STORED_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": 20,
    "return_unexpected_index_query": False,
}


class QualityGateFailed(MdmError):
    """Blocking expectations failed; the message names them. ``result`` holds the details."""

    def __init__(self, message: str, result: LayerResult | None = None) -> None:
        super().__init__(message)
        self.result = result


# ----------------------------------------------------------------------------- results
@dataclass
class ExpectationOutcome:
    """One expectation of one validation run."""

    suite: str
    expectation_type: str
    columns: tuple[str, ...]
    severity: str  # blocking | warning
    why: str
    success: bool
    dataset: str | None = None  # derived dataset it ran on (None: the table)
    mostly: float | None = None
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: Any = None
    error: str | None = None
    quarantined_rows: int = 0
    quarantine_truncated: bool = False

    @property
    def column(self) -> str:
        return ",".join(self.columns)

    @property
    def label(self) -> str:
        return f"gx:{self.suite}:{self.expectation_type}({self.column})"

    @property
    def blocking(self) -> bool:
        return self.severity == "blocking"

    @property
    def failed(self) -> bool:
        return not self.success

    def describe(self) -> str:
        if self.error:
            detail = f"error: {self.error}"
        elif self.unexpected_count is not None:
            pct = f" ({self.unexpected_percent:.2f} %)" if self.unexpected_percent is not None else ""
            mostly = f", allowed {100 * (1 - self.mostly):.2f} %" if self.mostly is not None else ""
            of = f" of {self.element_count:,}" if self.element_count is not None else ""
            detail = f"{self.unexpected_count:,}{of} rows unexpected{pct}{mostly}"
        else:
            detail = f"observed {_short(self.observed_value)}"
        if self.quarantine_truncated:
            detail += f"; first {self.quarantined_rows:,} rows quarantined"
        return f"{self.label}: {detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "suite": self.suite,
            "type": self.expectation_type,
            "column": self.column,
            "severity": self.severity,
            "success": self.success,
            "dataset": self.dataset,
            "element_count": self.element_count,
            "unexpected_count": self.unexpected_count,
            "unexpected_percent": self.unexpected_percent,
            "observed_value": self.observed_value,
            "error": self.error,
            "quarantined_rows": self.quarantined_rows,
            "quarantine_truncated": self.quarantine_truncated,
        }


@dataclass
class AssetResult:
    """The suite of one asset (with its derived datasets) against one table."""

    suite: str
    table: str
    rows: int | None = None
    expectations: list[ExpectationOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if e.failed]

    @property
    def success(self) -> bool:
        return not any(e.blocking for e in self.failed)

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        shown = self.expectations if full else self.failed
        return {
            "suite": self.suite,
            "table": self.table,
            "rows": self.rows,
            "success": self.success,
            "evaluated": len(self.expectations),
            "successful": len(self.expectations) - len(self.failed),
            "expectations": [e.to_dict() for e in shown],
        }


@dataclass
class LayerResult:
    """Every asset of one layer validated in one run."""

    layer: str
    run_id: str
    target: str
    schema: str | None = None
    since: datetime | None = None
    assets: list[AssetResult] = field(default_factory=list)
    seconds: float = 0.0
    data_docs: str = ""

    @property
    def expectations(self) -> list[ExpectationOutcome]:
        return [e for a in self.assets for e in a.expectations]

    @property
    def blocking_failures(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if e.failed and e.blocking]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if e.failed and not e.blocking]

    @property
    def success(self) -> bool:
        return not self.blocking_failures

    @property
    def quarantined_rows(self) -> int:
        return sum(e.quarantined_rows for e in self.expectations)

    def message(self) -> str:
        head = f"quality gate {self.layer!r} (run {self.run_id}, {self.target}"
        head += f", schema {self.schema}" if self.schema else ""
        head += f", rows since {self.since:%Y-%m-%d %H:%M:%S})" if self.since else ")"
        evaluated = len(self.expectations)
        if self.success:
            lines = [f"{head} passed: {evaluated} expectations, {len(self.warnings)} warning(s)"]
        else:
            lines = [f"{head} failed: {len(self.blocking_failures)} blocking expectation(s) of {evaluated} failed"]
            lines += [f"  - {e.describe()}\n    why it blocks: {e.why}" for e in self.blocking_failures]
        if self.warnings:
            lines.append(f"  warnings ({len(self.warnings)}, not blocking):")
            lines += [f"  - {e.describe()}" for e in self.warnings]
        if self.quarantined_rows:
            lines.append(f"  {self.quarantined_rows:,} failing rows in ops.quarantine (run_id {self.run_id}, kind gx)")
        if self.data_docs:
            lines.append(f"  Data Docs: {self.data_docs}")
        return "\n".join(lines)

    def raise_for_blocking(self) -> None:
        if not self.success:
            raise QualityGateFailed(self.message(), self)

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        """Summary for the run summary (``full``: every expectation, not only the failed ones)."""
        return {
            "layer": self.layer,
            "run_id": self.run_id,
            "target": self.target,
            "schema": self.schema,
            "since": self.since.isoformat(sep=" ") if self.since else None,
            "success": self.success,
            "seconds": round(self.seconds, 3),
            "evaluated": len(self.expectations),
            "successful": sum(1 for e in self.expectations if e.success),
            "blocking_failures": [e.label for e in self.blocking_failures],
            "warnings": [e.label for e in self.warnings],
            "quarantined_rows": self.quarantined_rows,
            "data_docs": self.data_docs,
            "assets": [a.to_dict(full) for a in self.assets],
        }


# ----------------------------------------------------------------------------- GX context
def data_docs_dir(settings: Settings) -> Path:
    return settings.reports_dir / "data_docs"


def data_docs_index(settings: Settings) -> Path:
    """The Data Docs site's index page (exists after the first validation)."""
    return data_docs_dir(settings) / "index.html"


def _site_config(settings: Settings) -> dict[str, Any]:
    def view(name: str) -> dict[str, str]:
        return {"module_name": "customer_mdm.quality.docs", "class_name": name}

    return {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(data_docs_dir(settings))},
        "site_index_builder": {
            "class_name": "DefaultSiteIndexBuilder",
            "validation_results_limit": DOCS_INDEX_LIMIT,
            "view": view("CachedJinjaIndexPageView"),
        },
        "site_section_builders": {
            "expectations": {"view": view("CachedJinjaPageView")},
            "validations": {"view": view("CachedJinjaPageView")},
            "profiling": "None",
        },
    }


def _sqlalchemy_url(settings: Settings) -> str:
    from sqlalchemy.engine import URL

    params = settings.pg_params()
    host = params.pop("host", None)
    port = params.pop("port", None)
    query = {k: v for k, v in params.items() if k not in ("user", "password", "dbname")}
    if host and host.startswith("/"):  # a unix socket directory
        query["host"], host = host, None
    url = URL.create(
        "postgresql+psycopg",
        username=params.get("user"),
        password=params.get("password"),
        host=host,
        port=int(port) if port else None,
        database=params.get("dbname"),
        query=query,
    )
    return url.render_as_string(hide_password=False)


def gx_context(settings: Settings) -> AbstractDataContext:
    """The file-backed GX context under ``$MDM_HOME/gx``, configured for this platform.

    Progress bars, analytics and GX's INFO logging off; one Data Docs site under
    ``$MDM_HOME/reports/data_docs``.
    The PostgreSQL URL is a runtime config variable, never written to the context's files.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    gx_log = logging.getLogger("great_expectations")
    if gx_log.level == logging.NOTSET:  # GX logs several INFO lines per asset and checkpoint
        gx_log.setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every pandas batch under HASH_THRESHOLD bytes by hashing all of its cells
    # (about 5 s per million rows, a third of a large gate's time); the fingerprint is only a batch
    # marker, read by nothing here. A threshold of 0 skips it, as GX does for batches over 1 GB.
    pandas_execution_engine.HASH_THRESHOLD = 0  # type: ignore[assignment]

    settings.home.mkdir(parents=True, exist_ok=True)
    runtime = {PG_URL_VARIABLE: _sqlalchemy_url(settings)} if settings.target == "postgres" else {}
    context = gx.get_context(mode="file", project_root_dir=settings.home, runtime_environment=runtime)
    if context.config.config_variables_file_path:
        # GX re-reads and parses this YAML file on every config lookup (hundreds per checkpoint run,
        # most of a small validation's time); the platform keeps no variables there.
        context.config.config_variables_file_path = None
        context.variables.save()
        context = gx.get_context(mode="file", project_root_dir=settings.home, runtime_environment=runtime)
    changed = False
    if context.config.analytics_enabled is not False:
        context.config.analytics_enabled = False
        changed = True
    current: Any = context.variables.progress_bars  # a dict once read back from the file
    bars = dict(current) if isinstance(current, dict) else vars(current) if current is not None else {}
    if bars.get("globally", True) or bars.get("metric_calculations", True):
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        changed = True
    sites = {DOCS_SITE: _site_config(settings)}
    if dict(context.variables.data_docs_sites or {}) != sites:
        context.variables.data_docs_sites = sites
        changed = True
    if changed:
        context.variables.save()
    return context


# ----------------------------------------------------------------------------- GX plumbing
def _batch_definition(
    context: AbstractDataContext, target: str, asset_name: str, *, table: str | None = None, query: str | None = None
) -> BatchDefinition:
    """The whole-table batch definition of a pandas dataframe asset, or of a postgres table/query asset."""
    sources = context.data_sources
    name = PANDAS_SOURCE if target == "pandas" else POSTGRES_SOURCE
    ds: Any
    if name in sources.all():
        ds = sources.get(name)  # bound to this context (``all()`` returns unbound configs)
    elif target == "pandas":
        ds = sources.add_pandas(name)
    else:
        ds = sources.add_postgres(name, connection_string="${" + PG_URL_VARIABLE + "}")
    # get_asset binds the asset to this context's datasource (``ds.assets`` items may not be)
    asset = ds.get_asset(asset_name) if asset_name in {a.name for a in ds.assets} else None
    kind = "dataframe" if target == "pandas" else "query" if query is not None else "table"
    if asset is not None and (asset.type != kind or (query is not None and asset.query != query)):
        ds.delete_asset(asset_name)  # the ``since`` filter changed
        asset = None
    if asset is None:
        if target == "pandas":
            asset = ds.add_dataframe_asset(asset_name)
        elif query is not None:
            asset = ds.add_query_asset(asset_name, query=query)
        else:
            assert table is not None
            schema, table_name = table.split(".", 1)
            asset = ds.add_table_asset(asset_name, table_name=table_name, schema_name=schema)
    if BATCH_DEFINITION in {bd.name for bd in asset.batch_definitions}:
        return asset.get_batch_definition(BATCH_DEFINITION)  # type: ignore[no-any-return]
    if target == "pandas":
        return asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)  # type: ignore[no-any-return]
    return asset.add_batch_definition_whole_table(BATCH_DEFINITION)  # type: ignore[no-any-return]


def _run_checkpoint(
    context: AbstractDataContext,
    suite: Any,
    batch_definition: BatchDefinition,
    run_id: str,
    parameters: dict[str, Any],
    result_format: dict[str, Any],
    batch_parameters: dict[str, Any] | None = None,
    docs_resources: list[Any] | None = None,
) -> ExpectationSuiteValidationResult:
    """Save the checkpoint (with its validation definition and suite) and run it: the result is
    stored; ``docs_resources`` receives its identifiers, for one Data Docs build per layer
    (:func:`_build_data_docs`) instead of one per suite."""
    import great_expectations as gx
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    # one add_or_update: the checkpoint factory saves its validation definitions and their suites
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=suite.name,
            validation_definitions=[gx.ValidationDefinition(name=suite.name, data=batch_definition, suite=suite)],
            actions=[],
            result_format=result_format,
        )
    )
    result = checkpoint.run(
        batch_parameters=batch_parameters,
        expectation_parameters=parameters,
        run_id=gx.RunIdentifier(run_name=run_id, run_time=datetime.now(UTC)),
    )
    ((identifier, suite_result),) = result.run_results.items()
    if docs_resources is not None:
        docs_resources += [identifier, ExpectationSuiteIdentifier(name=suite.name)]
    return suite_result


def _build_data_docs(context: AbstractDataContext, resources: list[Any]) -> None:
    """Render the pages of this layer's validation results and suites, and the index, once."""
    if resources:
        context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=resources)


# ----------------------------------------------------------------------------- helpers
def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _jsonable(item())
        except (TypeError, ValueError):
            pass
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _short(value: Any, width: int = 40) -> str:
    text = json.dumps(_jsonable(value), ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _exception_message(info: Any) -> str | None:
    """The first raised exception's message in a GX exception_info (flat or keyed by metric)."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "exception while validating")
    for value in info.values():
        message = _exception_message(value)
        if message:
            return message
    return None


def _normalise_since(since: datetime | str | None) -> datetime | None:
    if since is None:
        return None
    if isinstance(since, str):
        since = datetime.fromisoformat(since)
    if since.tzinfo is not None:  # the warehouse keeps naive UTC timestamps
        since = since.astimezone(UTC).replace(tzinfo=None)
    return since


def _columns_with_types(wh: Warehouse, table: str) -> dict[str, str]:
    schema, name = table.split(".", 1)
    rows = wh.query(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, name],
    )
    return {str(r[0]): str(r[1]).lower() for r in rows}


def _dates_as_objects(df: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """DATE columns as ``datetime.date`` objects: GX compares them with parsed date bounds."""
    import pandas as pd

    for col in columns:
        if col in df.columns and pd.api.types.is_datetime64_any_dtype(df[col]):
            df[col] = pd.Series(df[col].dt.date, index=df.index, dtype=object)
    return df


def _outcome(suite_name: str, r: ExpectationValidationResult) -> ExpectationOutcome:
    cfg = r.expectation_config
    assert cfg is not None
    meta = dict(cfg.meta or {})
    kwargs = dict(cfg.kwargs or {})
    res = dict(r.result or {})
    mostly = kwargs.get("mostly")
    return ExpectationOutcome(
        suite=suite_name,
        expectation_type=cfg.type,
        columns=tuple(expectation_columns({"kwargs": kwargs})),
        severity=str(meta.get("severity", "blocking")),
        why=str(meta.get("why", "")),
        success=bool(r.success),
        dataset=meta.get("dataset"),
        mostly=float(mostly) if isinstance(mostly, (int, float)) else None,
        element_count=_jsonable(res.get("element_count")),
        unexpected_count=_jsonable(res.get("unexpected_count")),
        unexpected_percent=_jsonable(res.get("unexpected_percent")),
        observed_value=_jsonable(res.get("observed_value")),
        error=_exception_message(r.exception_info),
    )


@dataclass
class _Dataset:
    """One GX validation unit: the table (pandas frame or SQL asset) or a derived dataset."""

    suite_name: str
    gx_suite: Any
    key_columns: list[str]
    frame: pd.DataFrame | None = None  # pandas batches
    sql_table: str | None = None  # postgres batches
    sql_query: str | None = None


class _Gate:
    def __init__(self, settings: Settings, wh: Warehouse, context: AbstractDataContext, run_id: str) -> None:
        self.settings = settings
        self.wh = wh
        self.context = context
        self.run_id = run_id
        self.parameters = suite_parameters()
        self.quarantine: dict[str, list[dict[str, Any]]] = {}  # suite name -> rows
        self.docs_resources: list[Any] = []  # validation results and suites to render in Data Docs

    # ------------------------------------------------------------- datasets
    def table_dataset(
        self, spec: SuiteSpec, table: str, since: datetime | None, row_filter: str | None = None
    ) -> tuple[_Dataset, int]:
        types = _columns_with_types(self.wh, table)
        keys = [k for k in spec.key_columns if k in types]
        since_col = spec.since_column if since and spec.since_column in types else None
        # the same filter with a placeholder (pandas batches) and with a literal (GX's SQL query assets)
        conditions, params, literal = [], [], []
        if since_col and since is not None:
            conditions.append(f"{since_col} >= ?")
            params.append(since)
            literal.append(f"{since_col} >= cast('{since.isoformat(sep=' ')}' as timestamp)")
        if row_filter:
            conditions.append(f"({row_filter})")
            literal.append(f"({row_filter})")
        where = f" where {' and '.join(conditions)}" if conditions else ""
        if self.settings.target == "postgres":
            rows = int(self.wh.scalar(f"select count(*) from {table}{where}", params))
            query = f"select * from {table} where {' and '.join(literal)}" if literal else None
            return _Dataset(spec.name, spec.gx_suite(), keys, sql_table=table, sql_query=query), rows
        data = [c for c in spec.data_columns() if c in types]
        placeholders = [f"cast(null as text) as {c}" for c in spec.existence_columns() if c in types]
        select = ", ".join([*data, *placeholders]) or "1 as _no_columns"
        frame = self.wh.query_df(f"select {select} from {table}{where}", params)
        frame = _dates_as_objects(frame.reset_index(drop=True), [c for c in data if types[c] == "date"])
        return _Dataset(spec.name, spec.gx_suite(), keys, frame=frame), len(frame)

    def whole_table_outcomes(
        self, suite_name: str, expectations: Sequence[dict[str, Any]], table: str
    ) -> list[ExpectationOutcome]:
        """The row-count expectations of a suite validated on part of its table (``row_filters``),
        evaluated on the whole table in SQL."""
        if not expectations:
            return []
        count = int(self.wh.scalar(f"select count(*) from {table}"))
        out = []
        for e in expectations:
            kwargs = {k: self._parameter(v) for k, v in e["kwargs"].items()}
            if e["type"] == "expect_table_row_count_to_equal":
                success = count == int(kwargs["value"])
            else:
                low, high = kwargs.get("min_value"), kwargs.get("max_value")
                success = (low is None or count >= low) and (high is None or count <= high)
            out.append(
                ExpectationOutcome(
                    suite=suite_name,
                    expectation_type=e["type"],
                    columns=(),
                    severity=e["meta"]["severity"],
                    why=e["meta"]["why"],
                    success=success,
                    observed_value=count,
                )
            )
        return out

    def _parameter(self, value: Any) -> Any:
        if isinstance(value, dict) and "$PARAMETER" in value:
            return self.parameters[value["$PARAMETER"]]
        return value

    def derived_dataset(
        self, spec: SuiteSpec, name: str, table: str, since: datetime | None, row_filter: str | None = None
    ) -> _Dataset:
        derived = DERIVED_DATASETS[name]
        sql, params = derived.sql(spec, table, since)
        if row_filter and derived.row_filtered:
            sql = f"select * from ({sql}) as d where {row_filter}"
        frame = self.wh.query_df(sql, params).reset_index(drop=True)
        return _Dataset(spec.dataset_suite_name(name), spec.gx_suite(name), list(derived.key_columns), frame=frame)

    # ------------------------------------------------------------- validation
    def validate(self, dataset: _Dataset, asset_name: str) -> list[ExpectationOutcome]:
        result_format = dict(_STORED_RESULT_FORMAT)
        if dataset.frame is not None:
            bd = _batch_definition(self.context, "pandas", asset_name)
            batch_parameters: dict[str, Any] | None = {"dataframe": dataset.frame}
        else:
            name = f"{asset_name} (since)" if dataset.sql_query else asset_name
            bd = _batch_definition(self.context, "postgres", name, table=dataset.sql_table, query=dataset.sql_query)
            batch_parameters = None
            if dataset.key_columns:  # GX limits this row query to partial_unexpected_count
                result_format["unexpected_index_column_names"] = dataset.key_columns
        suite_result = _run_checkpoint(
            self.context,
            dataset.gx_suite,
            bd,
            self.run_id,
            self.parameters,
            result_format,
            batch_parameters,
            self.docs_resources,
        )
        outcomes: list[ExpectationOutcome] = []
        rows: list[dict[str, Any]] = []
        for r in suite_result.results:
            outcome = _outcome(dataset.suite_name, r)
            outcomes.append(outcome)
            if outcome.failed and (outcome.unexpected_count or 0) > 0:
                found = self._failing_rows(dataset, bd, r, batch_parameters)
                outcome.quarantined_rows = len(found)
                outcome.quarantine_truncated = (outcome.unexpected_count or 0) > len(found)
                reason = f"{outcome.label} [{outcome.severity}]"
                rows += [{"reason": reason, "row": row} for row in found]
        self.quarantine[dataset.suite_name] = rows
        return outcomes

    def _failing_rows(
        self,
        dataset: _Dataset,
        bd: BatchDefinition,
        r: ExpectationValidationResult,
        batch_parameters: dict[str, Any] | None,
    ) -> list[dict[str, Any]]:
        """Key columns and offending values of (at most QUARANTINE_CAP of) the rows failing ``r``."""
        res = dict(r.result or {})
        count = int(res.get("unexpected_count") or 0)
        index = list(res.get("partial_unexpected_index_list") or [])
        if len(index) < min(count, QUARANTINE_CAP):
            # not all in the stored (summary) result: validate this expectation again, unstored
            assert r.expectation_config is not None
            expectation = r.expectation_config.to_domain_obj()
            if dataset.frame is not None:
                # only the expectation's columns: GX hashes the whole frame to identify the batch;
                # the positions it returns are those of the full frame (same RangeIndex)
                columns = expectation_columns({"kwargs": dict(r.expectation_config.kwargs)})
                narrow = dataset.frame[[c for c in columns if c in dataset.frame.columns]]
                batch = bd.get_batch(batch_parameters={"dataframe": narrow})
                fmt: dict[str, Any] = {"result_format": "COMPLETE", "return_unexpected_index_query": False}
            else:
                batch = bd.get_batch(batch_parameters=batch_parameters)
                fmt = {
                    "result_format": "SUMMARY",
                    "partial_unexpected_count": QUARANTINE_CAP,
                    "return_unexpected_index_query": False,
                }
                if dataset.key_columns:
                    fmt["unexpected_index_column_names"] = dataset.key_columns
            again = dict(batch.validate(expectation, result_format=fmt, expectation_parameters=self.parameters).result)
            index = list(again.get("unexpected_index_list") or again.get("partial_unexpected_index_list") or [])
            if not index:  # GX keeps no row index for compound columns on SQL: quarantine the values
                index = list(again.get("partial_unexpected_list") or [])
        elif not index:
            index = list(res.get("partial_unexpected_list") or [])
        index = index[:QUARANTINE_CAP]
        columns = expectation_columns({"kwargs": dict(r.expectation_config.kwargs if r.expectation_config else {})})
        if dataset.frame is not None and index and not isinstance(index[0], dict):
            wanted = list(dict.fromkeys([c for c in (*dataset.key_columns, *columns) if c in dataset.frame.columns]))
            picked = dataset.frame.iloc[[int(i) for i in index]][wanted]
            return [_jsonable(rec) for rec in picked.to_dict(orient="records")]
        return [
            _jsonable(rec) if isinstance(rec, dict) else {columns[0] if columns else "value": _jsonable(rec)}
            for rec in index
        ]

    def error_outcomes(
        self, suite_name: str, expectations: Sequence[dict[str, Any]], error: str
    ) -> list[ExpectationOutcome]:
        return [
            ExpectationOutcome(
                suite=suite_name,
                expectation_type=e["type"],
                columns=tuple(expectation_columns(e)),
                severity=e["meta"]["severity"],
                why=e["meta"]["why"],
                success=False,
                dataset=e["meta"].get("dataset"),
                error=error,
            )
            for e in expectations
        ]

    # ------------------------------------------------------------- quarantine
    def write_quarantine(self, feeds: dict[str, str]) -> None:
        """Replace this run's gx rows of the validated suites with the rows found now (one transaction)."""
        import pandas as pd

        now = datetime.now(UTC).replace(tzinfo=None)
        records = []
        for suite_name, rows in self.quarantine.items():
            for item in rows:
                row = item["row"]
                records.append(
                    {
                        "run_id": self.run_id,
                        "feed": feeds[suite_name],
                        "source_file": row.get("_source_file", row.get("source_file")),
                        "batch_id": row.get("_batch_id", row.get("batch_id")),
                        "kind": "gx",
                        "row_number": row.get("_row_number"),
                        "reason": item["reason"],
                        "raw_record": json.dumps(row, ensure_ascii=False, sort_keys=True, default=str),
                        "kept_at": None,
                        "quarantined_at": now,
                    }
                )
        row_numbers = pd.array([r.pop("row_number") for r in records], dtype="Int64")
        frame = pd.DataFrame(records, columns=[c for c in OPS_TABLES["ops.quarantine"] if c != "row_number"])
        frame["row_number"] = row_numbers
        frame["quarantined_at"] = pd.to_datetime(frame["quarantined_at"])
        with self.wh.transaction():
            for suite_name in self.quarantine:
                prefix = f"gx:{suite_name}:"
                self.wh.execute(
                    "delete from ops.quarantine where run_id = ? and kind = 'gx' and substr(reason, 1, ?) = ?",
                    [self.run_id, len(prefix), prefix],
                )
            self.wh.insert_df("ops.quarantine", frame)


#: table-level expectations that depend on every row: on the whole table even with a row filter
WHOLE_TABLE_TYPES = ("expect_table_row_count_to_be_between", "expect_table_row_count_to_equal")
#: suite name suffix (and Data Docs asset suffix) of a validation restricted by a row filter
ROW_FILTER_SUFFIX = "changed_rows"


def _dispose_engines(context: AbstractDataContext) -> None:
    if POSTGRES_SOURCE in context.data_sources.all():
        try:
            source: Any = context.data_sources.get(POSTGRES_SOURCE)
            source.get_engine().dispose()
        except Exception:
            log.debug("could not dispose the GX PostgreSQL engine", exc_info=True)


# ----------------------------------------------------------------------------- entry point
def validate_layer(
    settings: Settings,
    layer: str,
    run_id: str,
    schema_override: str | None = None,
    since: datetime | str | None = None,
    *,
    assets: Sequence[str] | None = None,
    row_filters: Mapping[str, str] | None = None,
) -> LayerResult:
    """Validate every asset of ``layer`` (or only ``assets``, e.g. ``["dim_customer"]``).

    ``schema_override`` validates the tables of another schema (``golden_build.dim_customer``
    instead of ``marts.dim_customer``). ``since`` restricts suites with a ``since_column``
    (raw, standardised) to the rows ingested at or after it. ``row_filters`` (asset -> SQL
    condition) validates only the matching rows of an asset's table (suite
    ``<suite>.changed_rows``), its row-count expectations still on the whole table: an
    incremental publication validates the golden ids it changes. Failing rows go to
    ``ops.quarantine``; the result never raises: call :meth:`LayerResult.raise_for_blocking`.
    """
    if layer not in LAYERS:
        raise MdmError(f"unknown quality layer {layer!r}: one of {', '.join(LAYERS)}")
    if schema_override is not None and not _SCHEMA.match(schema_override):
        raise MdmError(f"not a schema name: {schema_override!r}")
    t0 = time.perf_counter()
    since_dt = _normalise_since(since)
    specs = load_layer(settings, layer, assets)
    result = LayerResult(layer, run_id, settings.target, schema_override, since_dt)
    context = gx_context(settings)
    feeds: dict[str, str] = {}
    try:
        with connect(settings) as wh:
            ensure_table(wh, "ops.quarantine", OPS_TABLES["ops.quarantine"])
            gate = _Gate(settings, wh, context, run_id)
            for spec in specs:
                table = spec.table_in(schema_override)
                asset = AssetResult(spec.name, table)
                result.assets.append(asset)
                feeds[spec.name] = spec.asset
                if not wh.table_exists(table):
                    asset.expectations.append(
                        ExpectationOutcome(
                            spec.name,
                            "expect_table_to_exist",
                            (),
                            "blocking",
                            "the table must exist to be validated (and published)",
                            False,
                            error=f"table {table} does not exist",
                        )
                    )
                    continue
                row_filter = (row_filters or {}).get(spec.asset)
                if spec.table_expectations and row_filter:
                    # part of the table: row-count expectations on the whole table, the rest on the part
                    whole = [e for e in spec.table_expectations if e["type"] in WHOLE_TABLE_TYPES]
                    asset.expectations += gate.whole_table_outcomes(spec.name, whole, table)
                    part = replace(
                        spec,
                        name=f"{spec.name}.{ROW_FILTER_SUFFIX}",
                        table_expectations=tuple(e for e in spec.table_expectations if e not in whole),
                    )
                    if part.table_expectations:
                        feeds[part.name] = spec.asset
                        dataset, asset.rows = gate.table_dataset(part, table, since_dt, row_filter)
                        asset.expectations += gate.validate(dataset, f"{table} ({ROW_FILTER_SUFFIX})")
                elif spec.table_expectations:
                    dataset, asset.rows = gate.table_dataset(spec, table, since_dt)
                    asset.expectations += gate.validate(dataset, table)
                for name, expectations in spec.derived.items():
                    suite_name = spec.dataset_suite_name(name)
                    feeds[suite_name] = spec.asset
                    try:
                        derived = gate.derived_dataset(spec, name, table, since_dt, row_filter)
                    except Exception as exc:
                        log.exception("derived dataset %s of %s could not be computed", name, table)
                        asset.expectations += gate.error_outcomes(
                            suite_name, expectations, f"{type(exc).__name__}: {exc}"
                        )
                        continue
                    asset.expectations += gate.validate(derived, f"{table}.{name}")
            gate.write_quarantine(feeds)
            _build_data_docs(context, gate.docs_resources)
    finally:
        _dispose_engines(context)
    result.seconds = time.perf_counter() - t0
    result.data_docs = str(data_docs_index(settings))
    log.info(
        "quality gate %s: %s (%d expectations, %d blocking failures, %d warnings, %.1fs)",
        layer,
        "passed" if result.success else "FAILED",
        len(result.expectations),
        len(result.blocking_failures),
        len(result.warnings),
        result.seconds,
    )
    return result
