"""The Great Expectations suites: JSON files under ``expectations/<layer>/``, one per asset.

Each file is a GX 1.x expectation suite (``gx.ExpectationSuite(**json.load(f))`` loads it) and
every expectation carries ``meta.severity`` (``blocking`` stops the pipeline or the publication,
``warning`` is reported and quarantined but never blocks) and ``meta.why`` (what the check
protects). The platform reads three more keys, all inside ``meta`` so the files stay plain GX:

suite ``meta``
    ``table``         the schema-qualified table the suite describes (``raw.crm``); the gate may
                      validate another schema's copy (``golden_build.dim_customer``)
    ``key_columns``   columns that identify a row: failing rows are quarantined by these
    ``since_column``  timestamp column for incremental validation (only rows at or after ``since``)

expectation ``meta``
    ``dataset``       the expectation runs on a *derived dataset* the gate computes with SQL
                      (:data:`DERIVED_DATASETS`), not on the table: raw row counts against the
                      manifest, conflicting birth dates per golden id, cross-reference orphans

Values that change with the data or the day are GX suite parameters (``{"$PARAMETER": "name"}``)
filled by :func:`suite_parameters`: ``today`` and ``provinces`` (the provinces of
``customer_mdm/reference/cn_regions.csv``).

This module does not import Great Expectations until a suite is turned into a GX object.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from customer_mdm import plan
from customer_mdm.config import Settings
from customer_mdm.errors import ConfigError

if TYPE_CHECKING:
    import great_expectations as gx

LAYERS: tuple[str, ...] = ("raw", "standardised", "golden")
SEVERITIES: tuple[str, ...] = ("blocking", "warning")

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
_EXISTENCE_TYPES = frozenset({"expect_column_to_exist"})


class SuiteError(ConfigError):
    """A suite file is not valid (unreadable JSON, a missing severity, an unknown dataset ...)."""


# ----------------------------------------------------------------------------- derived datasets
SqlBuilder = Callable[["SuiteSpec", str, "datetime | None"], "tuple[str, list[Any]]"]


@dataclass(frozen=True)
class DerivedDataset:
    """A small table the gate computes with SQL and validates like a table (pandas on both targets)."""

    name: str
    key_columns: tuple[str, ...]
    description: str
    sql: SqlBuilder
    #: its rows may be restricted by the table's row filter (each row stands for table rows of the
    #: same golden id, and rows outside the filter were validated before): see validate_layer
    row_filtered: bool = False


def _manifest_row_counts(spec: SuiteSpec, table: str, since: datetime | None) -> tuple[str, list[Any]]:
    """Per batch: rows in ``raw.<feed>`` and the row count ``ops.manifest`` recorded for the file,
    less the rows an erasure deleted since (``rows_erased``): a full rebuild after an erasure
    passes, a row lost any other way still fails the gate.

    With ``since`` only the batches ingested (or recorded) since then are compared, each in full.
    """
    feed = table.rsplit(".", 1)[1]
    raw_since = " where _ingested_at >= ?" if since else ""
    manifest_since = " and recorded_at >= ?" if since else ""
    sql = f"""
        with batches as (
            select batch_id from ops.manifest where feed = ? and status = 'ingested'{manifest_since}
            union
            select distinct _batch_id as batch_id from {table}{raw_since}
        ),
        raw_counts as (
            select _batch_id as batch_id, min(_source_file) as source_file, count(*) as raw_rows
            from {table}
            where _batch_id in (select batch_id from batches)
            group by _batch_id
        ),
        manifest_counts as (
            select batch_id, min(file_path) as source_file,
                sum(rows_loaded) - sum(coalesce(rows_erased, 0)) as manifest_rows
            from ops.manifest
            where feed = ? and status = 'ingested' and batch_id in (select batch_id from batches)
            group by batch_id
        )
        select
            coalesce(m.batch_id, r.batch_id) as batch_id,
            coalesce(r.source_file, m.source_file) as source_file,
            cast(coalesce(r.raw_rows, 0) as bigint) as raw_rows,
            cast(coalesce(m.manifest_rows, 0) as bigint) as manifest_rows
        from manifest_counts as m
        full outer join raw_counts as r on r.batch_id = m.batch_id
        order by 1
    """
    params: list[Any] = [feed, *([since] if since else []), *([since] if since else []), feed]
    return sql, params


def _birth_date_conflicts(spec: SuiteSpec, table: str, since: datetime | None) -> tuple[str, list[Any]]:
    """Per golden id (of the cross-reference next to ``table``): distinct full birth dates of its records."""
    schema = table.split(".", 1)[0]
    sql = f"""
        select x.golden_id, cast(count(distinct r.birth_date) as bigint) as birth_dates
        from {schema}.customer_xref as x
        left join intermediate.int_customer_records as r
            on r.source = x.source and r.source_id = x.source_id and r.birth_date is not null
        where x.golden_id is not null
        group by x.golden_id
        order by 1
    """
    return sql, []


def _xref_orphans(spec: SuiteSpec, table: str, since: datetime | None) -> tuple[str, list[Any]]:
    """Every cross-reference row with a golden id, and that id as found in ``dim_customer`` (or null)."""
    schema = table.split(".", 1)[0]
    sql = f"""
        select x.record_id, x.golden_id, d.golden_id as dim_customer_golden_id
        from {table} as x
        left join (select distinct golden_id from {schema}.dim_customer) as d on d.golden_id = x.golden_id
        where x.golden_id is not null
        order by 1
    """
    return sql, []


DERIVED_DATASETS: dict[str, DerivedDataset] = {
    d.name: d
    for d in (
        DerivedDataset(
            "manifest_row_counts",
            ("batch_id", "source_file"),
            "rows per batch in raw.<feed> next to the rows ops.manifest recorded for the file",
            _manifest_row_counts,
        ),
        DerivedDataset(
            "birth_date_conflicts",
            ("golden_id",),
            "distinct full birth dates among the records of each golden id (customer_xref x int_customer_records)",
            _birth_date_conflicts,
        ),
        DerivedDataset(
            "xref_orphans",
            ("record_id", "golden_id"),
            "each cross-reference row's golden id as found in dim_customer (null: an orphan)",
            _xref_orphans,
            row_filtered=True,
        ),
    )
}


# ----------------------------------------------------------------------------- suites
def expectation_columns(expectation: dict[str, Any]) -> list[str]:
    """The columns an expectation (GX JSON form) reads: column, column_A/column_B or column_list."""
    kwargs = expectation.get("kwargs", {})
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_A" in kwargs:
        return [kwargs["column_A"], kwargs["column_B"]]
    return list(kwargs.get("column_list", []))


@dataclass(frozen=True)
class SuiteSpec:
    """One suite file, split into the expectations on its table and those on derived datasets."""

    name: str  # GX suite name, "<layer>.<asset>"
    layer: str
    path: Path
    table: str  # default schema-qualified table
    key_columns: tuple[str, ...]
    since_column: str | None
    document: dict[str, Any] = field(repr=False)  # the JSON as written
    table_expectations: tuple[dict[str, Any], ...] = field(repr=False)
    derived: dict[str, tuple[dict[str, Any], ...]] = field(repr=False)

    @property
    def asset(self) -> str:
        return self.table.split(".", 1)[1]

    def table_in(self, schema: str | None) -> str:
        """The table in ``schema`` (default: the suite's own schema)."""
        return f"{schema}.{self.asset}" if schema else self.table

    def data_columns(self) -> list[str]:
        """Columns whose values the table expectations read (plus the key columns), in order."""
        cols: list[str] = []
        for exp in self.table_expectations:
            if exp["type"] not in _EXISTENCE_TYPES:
                cols.extend(expectation_columns(exp))
        cols.extend(self.key_columns)
        return list(dict.fromkeys(cols))

    def existence_columns(self) -> list[str]:
        """Columns only checked for existence (their values are never read)."""
        data = set(self.data_columns())
        cols = [
            c for exp in self.table_expectations if exp["type"] in _EXISTENCE_TYPES for c in expectation_columns(exp)
        ]
        return [c for c in dict.fromkeys(cols) if c not in data]

    def all_expectations(self) -> list[dict[str, Any]]:
        return copy.deepcopy(list(self.document["expectations"]))

    def dataset_suite_name(self, dataset: str) -> str:
        return f"{self.name}.{dataset}"

    def gx_suite(self, dataset: str | None = None) -> gx.ExpectationSuite:
        """A GX suite with the table expectations, or those of one derived dataset."""
        import great_expectations as gx

        if dataset is None:
            name, expectations = self.name, self.table_expectations
        else:
            name, expectations = self.dataset_suite_name(dataset), self.derived[dataset]
        meta = {k: v for k, v in self.document.get("meta", {}).items() if k != "great_expectations_version"}
        if dataset is not None:
            meta = {**meta, "dataset": dataset, "dataset_description": DERIVED_DATASETS[dataset].description}
        prepared = []
        for exp in copy.deepcopy(list(expectations)):
            if not exp.get("notes"):  # Data Docs render an expectation's notes: show severity and why
                exp["notes"] = f"[{exp['meta']['severity']}] {exp['meta']['why']}"
            prepared.append(exp)
        return gx.ExpectationSuite(name=name, expectations=prepared, meta=meta, notes=self.document.get("notes"))


def _fail(path: Path, message: str) -> SuiteError:
    return SuiteError(f"expectation suite {path}: {message}")


def load_suite(path: Path, layer: str | None = None) -> SuiteSpec:
    """Read and check one suite file; raises :class:`SuiteError` with the file and the problem."""
    import great_expectations as gx

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(path, f"not readable JSON ({exc})") from exc
    layer = layer or path.parent.name
    name = document.get("name")
    meta = document.get("meta") or {}
    table = meta.get("table", "")
    if not name or not isinstance(name, str):
        raise _fail(path, "no suite name")
    if not _TABLE.match(str(table)):
        raise _fail(path, f"meta.table must be a schema-qualified table name, got {table!r}")
    keys = tuple(meta.get("key_columns") or ())
    since_column = meta.get("since_column")
    for col in (*keys, *([since_column] if since_column else [])):
        if not _IDENT.match(str(col)):
            raise _fail(path, f"not a column name: {col!r}")
    table_expectations: list[dict[str, Any]] = []
    derived: dict[str, list[dict[str, Any]]] = {}
    for i, exp in enumerate(document.get("expectations") or []):
        where = f"expectation {i} ({exp.get('type')})"
        exp_meta = exp.get("meta") or {}
        if exp_meta.get("severity") not in SEVERITIES:
            raise _fail(path, f"{where}: meta.severity must be one of {', '.join(SEVERITIES)}")
        if not str(exp_meta.get("why") or "").strip():
            raise _fail(path, f"{where}: meta.why must say what the expectation protects")
        for col in expectation_columns(exp):
            if not _IDENT.match(str(col)):
                raise _fail(path, f"{where}: not a column name: {col!r}")
        dataset = exp_meta.get("dataset")
        if dataset is None:
            table_expectations.append(exp)
        elif dataset in DERIVED_DATASETS:
            derived.setdefault(dataset, []).append(exp)
        else:
            raise _fail(path, f"{where}: unknown meta.dataset {dataset!r} (known: {', '.join(DERIVED_DATASETS)})")
    if not table_expectations and not derived:
        raise _fail(path, "no expectations")
    try:  # GX logs and *skips* an invalid expectation: make that an error instead
        loaded = gx.ExpectationSuite(**copy.deepcopy(document))
    except Exception as exc:
        raise _fail(path, f"not a valid GX suite ({exc})") from exc
    if len(loaded.expectations) != len(document.get("expectations") or []):
        raise _fail(path, "GX rejected some expectations (unknown type or invalid arguments; see the log)")
    return SuiteSpec(
        name=name,
        layer=layer,
        path=path,
        table=table,
        key_columns=keys,
        since_column=since_column,
        document=document,
        table_expectations=tuple(table_expectations),
        derived={k: tuple(v) for k, v in derived.items()},
    )


def suite_files(settings: Settings, layer: str) -> list[Path]:
    if layer not in LAYERS:
        raise ConfigError(f"unknown quality layer {layer!r}: one of {', '.join(LAYERS)}")
    return sorted((settings.expectations_dir / layer).glob("*.json"))


def load_layer(settings: Settings, layer: str, assets: Sequence[str] | None = None) -> list[SuiteSpec]:
    """The suites of a layer (optionally only those of the named assets, e.g. ``dim_customer``)."""
    specs = [load_suite(p, layer) for p in suite_files(settings, layer)]
    if assets is not None:
        wanted = set(assets)
        specs = [s for s in specs if s.asset in wanted]
    return specs


def provinces() -> list[str]:
    """Standard province names from the reference data (the ``provinces`` suite parameter)."""
    from customer_mdm.reference import load_cn_regions

    return [r.name for r in load_cn_regions() if r.level == "province"]


def suite_parameters(today: date | None = None) -> dict[str, Any]:
    """Values for the ``$PARAMETER`` placeholders of the suites."""
    return {
        "today": (today or date.today()).isoformat(),
        "provinces": provinces(),
        "person_sources": list(plan.person_sources()),
    }
