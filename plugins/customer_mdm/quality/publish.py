"""Write-audit-publish for the golden tables.

dbt *writes* the golden tables into a build schema (``golden_build``); :func:`audit_and_publish`
*audits* them with the golden suites (:func:`customer_mdm.quality.gates.validate_layer` with
``schema_override=build_schema``) and, only if no blocking expectation failed, *publishes* them
into ``marts`` in ONE transaction, so BI tools see either yesterday's tables or today's, never a
mix and never a table that failed its checks.

* A blocking failure leaves ``marts`` untouched, quarantines the failing rows (``ops.quarantine``),
  records the blocked attempt in ``ops.publications`` and raises
  :class:`~customer_mdm.quality.gates.QualityGateFailed` naming the failed expectations.
* Warnings are reported (``warnings`` in the returned dict, quarantined rows) and never block.
* DuckDB: ``create table marts.t__publishing as select * from golden_build.t``, drop the old
  table, rename. DuckDB binds views by name at query time, so views on the table keep working.
* PostgreSQL: when the published table has the build's columns (names and types), its rows are
  replaced (``delete`` + ``insert``): views, grants, indexes and comments stay as they are, and
  readers see the old rows until the commit (MVCC). When the columns changed, the table is
  swapped like on DuckDB and the views that depend on it (found in ``pg_depend``) are dropped
  with it and recreated from their definitions, in the same transaction, with the grants the
  table and the views had (the roles of ``customer_mdm.security`` never lose access mid-run).
* Every published table gets a row in ``ops.publications`` (created here) with its row count and
  the validation statistics of its suite, in the publishing transaction.

Tables without a suite under ``expectations/golden/`` (``customer_segments``) can be published
alongside through ``tables``: they must exist in the build schema, and are recorded as not audited.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from customer_mdm.config import Settings
from customer_mdm.errors import MdmError
from customer_mdm.quality.gates import AssetResult, LayerResult, QualityGateFailed, validate_layer
from customer_mdm.quality.suites import load_layer
from customer_mdm.schema import ensure_table
from customer_mdm.warehouse import Warehouse, connect

log = logging.getLogger(__name__)

PUBLICATIONS_TABLE = "ops.publications"
PUBLICATIONS_COLUMNS: dict[str, str] = {
    "run_id": "text",
    "table_name": "text",  # the published table, schema-qualified (marts.dim_customer)
    "source_table": "text",  # the audited build table (golden_build.dim_customer)
    "status": "text",  # published | blocked
    "method": "text",  # swap | replace_rows | merge_rows (null when blocked)
    "audited": "boolean",  # a golden suite validated the table
    "row_count": "bigint",
    "evaluated": "bigint",  # expectations evaluated on the table (derived datasets included)
    "successful": "bigint",
    "success_percent": "double precision",
    "blocking_failures": "bigint",
    "warnings": "bigint",
    "details": "text",  # JSON: labels of the failed expectations
    "published_at": "timestamp",  # null when blocked
    "recorded_at": "timestamp",
}

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _ident(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return name


def ensure_publications_table(wh: Warehouse) -> None:
    ensure_table(wh, PUBLICATIONS_TABLE, PUBLICATIONS_COLUMNS)


# ----------------------------------------------------------------------------- swapping
def _column_signature(wh: Warehouse, table: str) -> list[tuple[str, str]]:
    schema, name = table.split(".", 1)
    rows = wh.query(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, name],
    )
    return [(str(r[0]), str(r[1]).lower()) for r in rows]


def _table_type(wh: Warehouse, table: str) -> str | None:
    schema, name = table.split(".", 1)
    value = wh.scalar(
        "select table_type from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
    )
    return str(value).upper() if value is not None else None


def _drop(wh: Warehouse, table: str, cascade: bool = False) -> None:
    kind = _table_type(wh, table)
    if kind is None:
        return
    keyword = "view" if "VIEW" in kind else "table"
    wh.execute(f"drop {keyword} {table}{' cascade' if cascade else ''}")


def _dependent_views(wh: Warehouse, table: str) -> list[tuple[str, str, str, str]]:
    """PostgreSQL views and materialized views that depend on ``table`` (transitively), base first."""
    rows = wh.query(
        """
        with recursive deps(oid, depth) as (
            select r.ev_class, 1
            from pg_depend as d
            join pg_rewrite as r on r.oid = d.objid
            where d.classid = 'pg_rewrite'::regclass and d.refobjid = cast(? as regclass)
              and r.ev_class <> d.refobjid
            union all
            select r.ev_class, deps.depth + 1
            from deps
            join pg_depend as d on d.refobjid = deps.oid and d.classid = 'pg_rewrite'::regclass
            join pg_rewrite as r on r.oid = d.objid
            where r.ev_class <> d.refobjid
        )
        select n.nspname, c.relname, c.relkind, pg_get_viewdef(c.oid), max(deps.depth) as depth
        from deps
        join pg_class as c on c.oid = deps.oid
        join pg_namespace as n on n.oid = c.relnamespace
        group by n.nspname, c.relname, c.relkind, c.oid
        order by depth, n.nspname, c.relname
        """,
        [table],
    )
    return [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]


def _grants(wh: Warehouse, relation: str) -> list[str]:
    """PostgreSQL: the grants on ``relation`` to roles other than its owner, as GRANT statements
    (a swapped table and the views recreated on it get them back in the publishing transaction)."""
    rows = wh.query(
        """
        select case when a.grantee = 0 then 'public' else quote_ident(r.rolname) end,
               a.privilege_type, a.is_grantable
        from pg_class as c
        cross join lateral aclexplode(c.relacl) as a
        left join pg_roles as r on r.oid = a.grantee
        where c.oid = cast(? as regclass) and a.grantee <> c.relowner
        order by 1, 2
        """,
        [relation],
    )
    return [
        f"grant {privilege} on {relation} to {grantee}{' with grant option' if grantable else ''}"
        for grantee, privilege, grantable in rows
    ]


def _publish_table(wh: Warehouse, source: str, target: str) -> str:
    """Put ``source``'s rows in ``target`` (inside the caller's transaction); returns the method."""
    staging = f"{target}__publishing"
    exists = _table_type(wh, target) is not None
    if wh.target == "postgres" and exists and _table_type(wh, target) == "BASE TABLE":
        if _column_signature(wh, target) == _column_signature(wh, source):
            columns = ", ".join(_ident(c) for c, _ in _column_signature(wh, source))
            wh.execute(f"delete from {target}")
            wh.execute(f"insert into {target} ({columns}) select {columns} from {source}")
            return "replace_rows"
    views = _dependent_views(wh, target) if wh.target == "postgres" and exists else []
    grants = _grants(wh, target) if wh.target == "postgres" and exists else []
    for schema, name, _, _ in views:
        grants += _grants(wh, f'"{schema}"."{name}"')
    _drop(wh, staging)
    wh.execute(f"create table {staging} as select * from {source}")
    _drop(wh, target, cascade=wh.target == "postgres")
    wh.execute(f"alter table {staging} rename to {_ident(target.split('.', 1)[1])}")
    for schema, name, kind, definition in views:  # recreate what the cascade dropped, base views first
        body = definition.strip().rstrip(";")
        create = "create materialized view" if kind == "m" else "create or replace view"
        try:
            wh.execute(f'{create} "{schema}"."{name}" as {body}')
        except Exception as exc:  # the transaction rolls back: nothing is published
            raise MdmError(
                f"publishing {target}: the view {schema}.{name} does not work on the new table ({exc}); "
                f"nothing was published. Adapt the view to the new columns of {source}, or drop it, and rerun."
            ) from exc
    for grant in grants:  # the roles keep exactly what they had (customer_mdm.security)
        wh.execute(grant)
    return "swap"


# ----------------------------------------------------------------------------- merging
#: the golden ids the last incremental golden build rebuilt (or removed)
AFFECTED_TABLE = "intermediate.int_golden_affected"
#: (in the build schema) the golden ids an incremental publication replaces
CHANGED_TABLE = "_publish_changed"
#: above this share of the published rows, replacing every row is as cheap as merging
MERGE_MAX_SHARE = 0.25


@dataclass
class DeltaScope:
    """An incremental publication: only the rows of ``changed`` golden ids (listed in
    ``<build schema>._publish_changed``) differ between the build and the published tables."""

    changed_table: str
    changed: int
    tables: list[str]

    def in_build(self) -> str:
        """SQL condition on a build table's rows: the changed ones."""
        return f"golden_id in (select golden_id from {self.changed_table})"

    def in_published(self, source: str, columns: Sequence[str]) -> str:
        """SQL condition on a published table's rows: those the changed ones replace (same golden
        id, or -- a table keyed by record -- a record now under a changed id)."""
        where = self.in_build()
        if "record_id" in columns:
            where += f" or record_id in (select record_id from {source} where {self.in_build()})"
        return where


def _checksum(wh: Warehouse, table: str, where: str | None = None) -> tuple[int, str]:
    """Row count and an order-independent checksum of every column of the (matching) rows."""
    if wh.target == "postgres":
        row_hash = "('x' || substr(md5(cast(d as text)), 1, 15))::bit(60)::bigint"
    else:
        row_hash = "hash(d)"
    condition = f" where {where}" if where else ""
    count, total = wh.query(
        f"select count(*), cast(coalesce(sum({row_hash}), 0) as text) from {table} as d{condition}"
    )[0]
    return int(count), str(total)


def delta_scope(wh: Warehouse, tables: Sequence[str], build_schema: str, publish_schema: str) -> DeltaScope | None:
    """The scope of an incremental publication, when one is possible: the last golden build was
    incremental, every table is published with the build's columns and has a golden_id, few ids
    changed, and -- checked now, by row count and checksum -- every row outside the changed ids
    is already published as built. Only then may the changed rows alone be validated and
    replaced. None (validate everything, replace every row) otherwise."""
    if not tables or not wh.table_exists("ops.dbt_state") or not wh.table_exists(AFFECTED_TABLE):
        return None
    if wh.scalar("select mode from ops.dbt_state where layer = 'golden'") != "incremental":
        return None
    changed_table = f"{build_schema}.{CHANGED_TABLE}"
    wh.execute(f"drop table if exists {changed_table}")
    wh.execute(
        f"create table {changed_table} as select distinct golden_id from {AFFECTED_TABLE} where golden_id is not null"
    )
    scope = DeltaScope(changed_table, int(wh.scalar(f"select count(*) from {changed_table}")), list(tables))
    for t in tables:
        source, target = f"{build_schema}.{t}", f"{publish_schema}.{t}"
        if _table_type(wh, target) != "BASE TABLE" or not wh.table_exists(source):
            return _no_scope(wh, changed_table, f"{target} is not a published table yet")
        signature = _column_signature(wh, source)
        if signature != _column_signature(wh, target):
            return _no_scope(wh, changed_table, f"the columns of {source} changed")
        columns = [c for c, _ in signature]
        if "golden_id" not in columns:
            return _no_scope(wh, changed_table, f"{source} has no golden_id")
        published = int(wh.scalar(f"select count(*) from {target}"))
        if scope.changed > MERGE_MAX_SHARE * max(published, 1):
            return _no_scope(wh, changed_table, f"{scope.changed} of {published} golden ids changed")
        kept_built = _checksum(wh, source, f"not coalesce({scope.in_build()}, false)")
        kept_published = _checksum(wh, target, f"not coalesce({scope.in_published(source, columns)}, false)")
        if kept_built != kept_published:
            return _no_scope(wh, changed_table, f"{source} differs from {target} outside the changed golden ids")
    return scope


def _no_scope(wh: Warehouse, changed_table: str, reason: str) -> DeltaScope | None:
    wh.execute(f"drop table if exists {changed_table}")
    log.info("publishing every row (%s)", reason)
    return None


def _merge_table(wh: Warehouse, source: str, target: str, scope: DeltaScope) -> None:
    """Replace the changed rows of ``target`` (inside the caller's transaction) with the build's;
    :func:`delta_scope` checked that every other row is already published as built."""
    columns = [c for c, _ in _column_signature(wh, source)]
    cols = ", ".join(_ident(c) for c in columns)
    wh.execute(f"delete from {target} where {scope.in_published(source, columns)}")
    wh.execute(f"insert into {target} ({cols}) select {cols} from {source} where {scope.in_build()}")
    # delta_scope checked that the other rows are published as built: the rows now equal the build's
    built, published = (int(wh.scalar(f"select count(*) from {t}")) for t in (source, target))
    if built != published:  # the build changed after the check
        raise MdmError(
            f"publishing {target}: after replacing the {scope.changed} changed golden ids it holds {published} rows, "
            f"not the {built} rows of {source} (did something write to {source} during the publication?); "
            "nothing was published. Rerun the publish step."
        )


# ----------------------------------------------------------------------------- audit + publish
def _stats(asset: AssetResult | None) -> dict[str, Any]:
    if asset is None:
        return {
            "evaluated": 0,
            "successful": 0,
            "success_percent": None,
            "blocking_failures": 0,
            "warnings": 0,
            "failed": [],
        }
    evaluated = len(asset.expectations)
    failed = asset.failed
    return {
        "evaluated": evaluated,
        "successful": evaluated - len(failed),
        "success_percent": round(100.0 * (evaluated - len(failed)) / evaluated, 3) if evaluated else None,
        "blocking_failures": sum(1 for e in failed if e.blocking),
        "warnings": sum(1 for e in failed if not e.blocking),
        "failed": [e.label for e in failed],
    }


def _record(
    wh: Warehouse,
    run_id: str,
    target: str,
    source: str,
    status: str,
    method: str | None,
    audited: bool,
    rows: int | None,
    stats: dict[str, Any],
    now: datetime,
) -> None:
    wh.execute(
        f"insert into {PUBLICATIONS_TABLE} (run_id, table_name, source_table, status, method, audited, row_count, "
        "evaluated, successful, success_percent, blocking_failures, warnings, details, published_at, recorded_at) "
        "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run_id,
            target,
            source,
            status,
            method,
            audited,
            rows,
            stats["evaluated"],
            stats["successful"],
            stats["success_percent"],
            stats["blocking_failures"],
            stats["warnings"],
            json.dumps({"failed": stats["failed"]}, ensure_ascii=False),
            now if status == "published" else None,
            now,
        ],
    )


#: the golden tables that write-audit-publish swaps from golden_build into marts
PUBLISHED_TABLES: tuple[str, ...] = ("dim_customer", "customer_xref")


def audit_and_publish(
    settings: Settings,
    run_id: str,
    tables: Sequence[str] = PUBLISHED_TABLES,
    build_schema: str = "golden_build",
    publish_schema: str = "marts",
) -> dict[str, Any]:
    """Validate ``build_schema.<table>`` with the golden suites; publish into ``publish_schema`` or raise.

    Returns a summary (tables with rows and method, the validation summary, warnings). Raises
    :class:`QualityGateFailed` (nothing published) when a blocking expectation fails or a table
    is missing from the build schema.
    """
    t0 = time.perf_counter()
    tables = [_ident(t) for t in tables]
    build_schema, publish_schema = _ident(build_schema), _ident(publish_schema)
    if not tables:
        raise ValueError("audit_and_publish needs at least one table")
    with_suites = {s.asset for s in load_layer(settings, "golden")}
    audited = [t for t in tables if t in with_suites]
    result: LayerResult | None = None
    with connect(settings) as wh:  # an incremental golden build: validate and replace its changes only
        scope = delta_scope(wh, audited, build_schema, publish_schema) if audited == tables else None
    if audited:
        filters = {t: scope.in_build() for t in audited} if scope else None
        result = validate_layer(
            settings, "golden", run_id, schema_override=build_schema, assets=audited, row_filters=filters
        )
    assets = {a.table: a for a in result.assets} if result else {}

    with connect(settings) as wh:
        ensure_publications_table(wh)
        sources = {t: f"{build_schema}.{t}" for t in tables}
        targets = {t: f"{publish_schema}.{t}" for t in tables}
        missing = [sources[t] for t in tables if t not in audited and not wh.table_exists(sources[t])]
        rows = {t: int(wh.scalar(f"select count(*) from {sources[t]}")) for t in tables if wh.table_exists(sources[t])}
        now = _now()
        if missing or (result is not None and not result.success):
            with wh.transaction():
                for t in tables:
                    _record(
                        wh,
                        run_id,
                        targets[t],
                        sources[t],
                        "blocked",
                        None,
                        t in audited,
                        rows.get(t),
                        _stats(assets.get(sources[t])),
                        now,
                    )
            if scope:
                wh.execute(f"drop table if exists {scope.changed_table}")
            kept = ", ".join(targets[t] for t in tables)
            lines = [f"write-audit-publish blocked: {kept} left unchanged (yesterday's tables stay published)"]
            lines += [f"  - {m} does not exist (nothing to publish)" for m in missing]
            if result is not None and not result.success:
                lines.append(result.message())
            message = "\n".join(lines)
            log.warning("publication of %s blocked by the quality gate (run %s)", kept, run_id)
            raise QualityGateFailed(message, result)

        methods: dict[str, str] = {}
        audited_changes = 0
        with wh.transaction():
            wh.execute(f"create schema if not exists {publish_schema}")
            if "dim_customer" in tables:  # survivorship changes go to the audit log, in this transaction
                from customer_mdm.audit import record_survivorship_changes

                audited_changes = record_survivorship_changes(
                    settings,
                    wh,
                    run_id,
                    targets["dim_customer"],
                    sources["dim_customer"],
                    now,
                    only=scope.changed_table if scope else None,
                )
            for t in tables:
                if scope:
                    _merge_table(wh, sources[t], targets[t], scope)
                    methods[t] = "merge_rows"
                else:
                    methods[t] = _publish_table(wh, sources[t], targets[t])
            if scope:
                wh.execute(f"drop table if exists {scope.changed_table}")
            for t in tables:
                _record(
                    wh,
                    run_id,
                    targets[t],
                    sources[t],
                    "published",
                    methods[t],
                    t in audited,
                    rows[t],
                    _stats(assets.get(sources[t])),
                    now,
                )

    warnings = [e.label for e in result.warnings] if result else []
    summary: dict[str, Any] = {
        "run_id": run_id,
        "status": "published",
        "build_schema": build_schema,
        "publish_schema": publish_schema,
        "tables": {
            t: {"published_table": targets[t], "rows": rows[t], "method": methods[t], "audited": t in audited}
            for t in tables
        },
        "warnings": warnings,
        "survivorship_changes_audited": audited_changes,
        "changed_golden_ids": scope.changed if scope else None,  # an incremental publication's
        "validation": result.to_dict() if result else None,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    log.info(
        "published %s into %s (%s)",
        ", ".join(f"{t} ({rows[t]:,} rows)" for t in tables),
        publish_schema,
        f"{len(warnings)} warning(s)" if warnings else "no warnings",
    )
    return summary
