"""Least privilege on PostgreSQL and the masked BI views (both warehouses).

Four database roles, created idempotently by :func:`apply` (``mdm roles apply``, and again after
every publication and governance build, so that tables dbt or the publish step recreate keep
their grants):

``mdm_pipeline``  owns and writes every platform schema (:data:`PLATFORM_SCHEMAS`); the pipeline
                  (Airflow workers, ``mdm run``) connects as this role in production.
``mdm_steward``   reads personal data -- the golden tables (``marts``), the cross-reference, the
                  review queue and link state (``mdm``), the unified records (``intermediate``),
                  governance outputs, the audit trail (``audit``) -- and may *insert* steward
                  decisions (``mdm.steward_decisions``, what ``mdm review decide`` writes) and append
                  its audit row through the audit log's function. Nothing else: no update, delete,
                  DDL, no raw, staging or ops data.
``mdm_api``       the hub server (``mdm serve``): reads the serving tables (``serving``, rebuilt at
                  every publication) and reads and writes only the hub store (schema ``hub``:
                  tokens, intake of self-service changes and erasure requests, the access log).
``bi_reader``     reads only the masked views of schema ``bi`` (:data:`BI_VIEWS`). PostgreSQL checks
                  a view's base tables with its *owner's* privileges, so bi_reader reads masked
                  values through the views and gets "permission denied" on every other table.

The audit schema is the exception to "mdm_pipeline owns every platform schema": a fifth,
``NOLOGIN`` role, ``mdm_audit_owner`` (:data:`customer_mdm.audit.AUDIT_OWNER`), owns it, its table,
triggers and its ``SECURITY DEFINER`` writer function; the pipeline and the steward may only read
the table and execute the function (:func:`customer_mdm.audit.install_pg`, run by :func:`apply`).

Passwords come from the environment (:data:`PASSWORD_ENV`): a role whose variable is set gets
``LOGIN PASSWORD``; a role created without one is ``NOLOGIN``; an existing role whose variable is
unset is left as it is. Creating roles needs ``CREATEROLE`` (or a superuser, ``--admin-dsn``);
without it :func:`apply` still creates the views and grants for the roles that exist and reports
the missing ones.

Grants that survive recreated tables: ``alter default privileges`` (for the connected role and for
``mdm_pipeline``) gives every table dbt creates later the right grants at creation (dbt-postgres
builds ``<t>__dbt_tmp``, renames it over the old table and drops the backup *cascade*); the publish
step keeps a swapped table's and its views' grants (``customer_mdm.quality.publish``); and
:func:`apply` re-creates dropped BI views and re-grants schema-wide after each publication.

On DuckDB there are no roles: the BI export (:func:`export_bi`, ``mdm export bi``) *is* the
masked view.

Masking rules (:data:`BI_VIEWS`): phone ``+86138****5678`` (first 6 and last 4 characters), email
``z***@example.com`` (first character and the domain), name ``王**`` (first character), address
to province / city / district (street dropped), birth date to its decade (``1980``) and an age
band (``30-39``), company only for company customers; source-record pointers are dropped.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from customer_mdm.audit import AUDIT_OWNER
from customer_mdm.audit import install_pg as install_audit
from customer_mdm.audit import pg_installed as audit_installed
from customer_mdm.config import Settings
from customer_mdm.errors import MdmError
from customer_mdm.schema import ensure_table
from customer_mdm.warehouse import PostgresWarehouse, Warehouse, connect

log = logging.getLogger(__name__)

PIPELINE_ROLE = "mdm_pipeline"
STEWARD_ROLE = "mdm_steward"
BI_ROLE = "bi_reader"
API_ROLE = "mdm_api"
ROLES = (PIPELINE_ROLE, STEWARD_ROLE, BI_ROLE, API_ROLE)

#: environment variable holding each role's password (unset: NOLOGIN when created, else unchanged)
PASSWORD_ENV: dict[str, str] = {
    PIPELINE_ROLE: "MDM_PG_PIPELINE_PASSWORD",
    STEWARD_ROLE: "MDM_PG_STEWARD_PASSWORD",
    BI_ROLE: "MDM_PG_BI_PASSWORD",
    API_ROLE: "MDM_PG_API_PASSWORD",
}
#: DSN of a role allowed to create roles (superuser or CREATEROLE), for `mdm roles apply`
ADMIN_DSN_ENV = "MDM_PG_ADMIN_DSN"

BI_SCHEMA = "bi"
#: every schema the platform writes (mdm_pipeline owns or writes them all)
PLATFORM_SCHEMAS = (
    "raw",
    "ops",
    "std",
    "staging",
    "reference",
    "intermediate",
    "golden_build",
    "mdm",
    "marts",
    "governance",
    "audit",
    BI_SCHEMA,
    "serving",  # the hub's read side (customer_mdm.hub.serving), rebuilt at each publication
    "hub",  # the hub store (customer_mdm.hub.store): what the server writes
)
#: the schema mdm_audit_owner owns: mdm_pipeline gets no ownership, CREATE or write grant there
AUDIT_SCHEMA = "audit"
#: schemas each reader role may read (every table and view in them, now and later)
READS: dict[str, tuple[str, ...]] = {
    STEWARD_ROLE: ("intermediate", "mdm", "marts", "governance", "audit", BI_SCHEMA),
    BI_ROLE: (BI_SCHEMA,),
    API_ROLE: ("serving",),
}
#: the only writes of a reader role: table -> privileges
WRITES: dict[str, dict[str, tuple[str, ...]]] = {
    # a decision and its audit row are written in one transaction (linkage.step.record_decision)
    # (its audit row goes through audit.append_changes, see customer_mdm.audit)
    STEWARD_ROLE: {"mdm.steward_decisions": ("insert",)},
    BI_ROLE: {},
    API_ROLE: {},
}
#: schemas a reader role may write (every table in them, now and later: select, insert, update, delete)
SCHEMA_WRITES: dict[str, tuple[str, ...]] = {API_ROLE: ("hub",)}
#: which BI view SQL is installed (sha256 of its definition), so unchanged views are left alone
BI_VIEW_STATE = "ops.bi_views"
BI_VIEW_STATE_COLUMNS = {"view_name": "text", "sql_sha256": "text", "created_at": "timestamp"}


# ----------------------------------------------------------------------------- masking
def mask_phone(col: str) -> str:
    """``+8613812345678`` -> ``+86138****5678``; shorter than 11 characters -> ``****``."""
    return (
        f"case when {col} is null or {col} = '' then null "
        f"when length({col}) >= 11 then substr({col}, 1, 6) || '****' || right({col}, 4) "
        "else '****' end"
    )


def mask_email(col: str) -> str:
    """``zhang.wei@example.com`` -> ``z***@example.com``; no ``@`` -> ``***``."""
    return (
        f"case when {col} is null or {col} = '' then null "
        f"when strpos({col}, '@') > 1 then left({col}, 1) || '***' || substr({col}, strpos({col}, '@')) "
        "else '***' end"
    )


def mask_name(col: str) -> str:
    """``王伟`` -> ``王**``: the first character only."""
    return f"case when {col} is null or {col} = '' then null else left({col}, 1) || '**' end"


def birth_decade(col: str) -> str:
    """1984-05-17 -> 1980."""
    return f"cast(floor(extract(year from {col}) / 10) * 10 as integer)"


def age_band(col: str) -> str:
    """Ten-year age band by calendar year (``30-39``), from today's date."""
    low = f"cast(floor((extract(year from current_date) - extract(year from {col})) / 10) * 10 as integer)"
    return f"case when {col} is null then null else cast({low} as text) || '-' || cast({low} + 9 as text) end"


@dataclass(frozen=True)
class BiView:
    name: str
    requires: tuple[str, ...]  # tables the view reads: created only when they all exist
    select: str = field(repr=False)

    @property
    def qualified(self) -> str:
        return f"{BI_SCHEMA}.{self.name}"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.select.encode()).hexdigest()


_DIM_CUSTOMER = f"""
select
    golden_id,
    {mask_name("name")} as name_masked,
    gender,
    {birth_decade("birth_date")} as birth_decade,
    {age_band("birth_date")} as age_band,
    {mask_phone("phone")} as phone_masked,
    phone_status,
    {mask_email("email")} as email_masked,
    email_status,
    province,
    city,
    district,
    case when customer_type = 'company' then company end as company,
    customer_type,
    tier,
    consent_marketing,
    needs_new_contact,
    source_record_count,
    source_count,
    first_seen_at_utc,
    last_updated_at_utc
from marts.dim_customer
"""

_CUSTOMER_XREF = """
select record_id, source, source_id, golden_id, match_probability, assignment, assigned_at_utc
from marts.customer_xref
"""

_FCT_ORDERS = """
select
    o.order_id,
    x.golden_id,
    o.ordered_at_utc,
    o.amount_cny,
    o.status,
    o.is_refund
from marts.fct_orders as o
left join marts.customer_xref as x
    on x.source = 'ecommerce' and x.source_id = o.member_id
"""

#: the masked views BI tools read (schema ``bi``); columns are an allow-list: a column added to a
#: marts table never reaches BI until it is added here
BI_VIEWS: tuple[BiView, ...] = (
    BiView("dim_customer", ("marts.dim_customer",), _DIM_CUSTOMER),
    BiView("customer_xref", ("marts.customer_xref",), _CUSTOMER_XREF),
    BiView("fct_orders", ("marts.fct_orders", "marts.customer_xref"), _FCT_ORDERS),
    # no personal data: RFM scores and lifecycle per golden id, and quality metrics per source
    BiView("customer_segments", ("governance.customer_segments",), "select * from governance.customer_segments"),
    BiView("scorecard_latest", ("governance.scorecard_latest",), "select * from governance.scorecard_latest"),
)
BI_VIEW_NAMES = tuple(v.name for v in BI_VIEWS)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _view_exists(wh: Warehouse, qualified: str) -> bool:
    return wh.table_exists(qualified)


def _create_view(wh: Warehouse, view: BiView) -> None:
    body = view.select.strip()
    if wh.target != "postgres":
        wh.execute(f"create or replace view {view.qualified} as {body}")
        return
    # PostgreSQL: `create or replace` keeps the view's grants but cannot drop or retype columns
    import psycopg

    try:
        with wh.transaction():  # a savepoint inside the caller's transaction
            wh.execute(f"create or replace view {view.qualified} as {body}")
    except psycopg.Error:
        wh.execute(f"drop view if exists {view.qualified}")
        wh.execute(f"create view {view.qualified} as {body}")


def ensure_bi_views(wh: Warehouse) -> list[str]:
    """Create or update the masked views whose base tables exist; returns the views now present.

    A view that exists with the current definition is left alone (no lock on a view BI tools
    read); a missing one (dropped by a cascade) or an outdated one is (re)created.
    """
    ensure_table(wh, BI_VIEW_STATE, BI_VIEW_STATE_COLUMNS)
    wh.execute(f"create schema if not exists {BI_SCHEMA}")
    installed = {str(r[0]): str(r[1]) for r in wh.query(f"select view_name, sql_sha256 from {BI_VIEW_STATE}")}
    present = []
    for view in BI_VIEWS:
        if not all(wh.table_exists(t) for t in view.requires):
            continue
        if not (_view_exists(wh, view.qualified) and installed.get(view.name) == view.sha256):
            try:
                _create_view(wh, view)
            except Exception as exc:
                raise MdmError(
                    f"cannot create the masked view {view.qualified} ({exc}). The columns of "
                    f"{', '.join(view.requires)} changed: adapt BI_VIEWS in customer_mdm/security.py."
                ) from exc
            wh.execute(f"delete from {BI_VIEW_STATE} where view_name = ?", [view.name])
            wh.execute(f"insert into {BI_VIEW_STATE} values (?, ?, ?)", [view.name, view.sha256, _now()])
            log.info("created the masked view %s", view.qualified)
        present.append(view.qualified)
    return present


# ----------------------------------------------------------------------------- roles
def scram_verifier(password: str, iterations: int = 4096, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677, as psql's
    ``\\password`` computes it on the client). ``alter role ... password '<verifier>'`` sets the
    password without the password itself ever reaching the server: a statement log
    (``log_statement``), an error's STATEMENT line or ``pg_stat_activity`` shows only the verifier."""
    import base64
    import hmac
    import unicodedata

    salt = salt if salt is not None else os.urandom(16)
    normalised = unicodedata.normalize("NFKC", password)  # SASLprep's normalisation step
    salted = hashlib.pbkdf2_hmac("sha256", normalised.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _literal(wh: PostgresWarehouse, value: str) -> str:
    from psycopg import sql

    return sql.Literal(value).as_string(wh.con)


def _one(wh: Warehouse, sql: str, params: list[Any] | None = None) -> Any:
    return wh.scalar(sql, params)


def _can_create_roles(wh: Warehouse) -> bool:
    return bool(_one(wh, "select rolsuper or rolcreaterole from pg_roles where rolname = current_user"))


def _role_exists(wh: Warehouse, role: str) -> bool:
    return bool(_one(wh, "select count(*) from pg_roles where rolname = ?", [role]))


def ensure_roles(wh: PostgresWarehouse, env: Mapping[str, str], summary: dict[str, Any]) -> None:
    """Create the three roles if missing and set the passwords given in ``env`` (never logged)."""
    import psycopg

    can_create = _can_create_roles(wh)
    for role in ROLES:
        password = env.get(PASSWORD_ENV[role]) or None
        # the server gets the SCRAM verifier, never the password (statement logs, errors)
        login = f"login password {_literal(wh, scram_verifier(password))}" if password else "nologin"
        if not _role_exists(wh, role):
            if not can_create:
                summary["warnings"].append(
                    f"role {role} does not exist and {summary['connected_as']} may not create roles: "
                    f"run `mdm roles apply --admin-dsn ...` (or set {ADMIN_DSN_ENV}) as a superuser or CREATEROLE role"
                )
                continue
            try:
                wh.execute(f"create role {role} {login}")
                summary["roles"][role] = "created (login)" if password else "created (nologin)"
                continue
            except psycopg.errors.DuplicateObject:  # created meanwhile by a concurrent run
                pass
        if password:
            try:
                wh.execute(f"alter role {role} {login}")
                summary["roles"][role] = "password set (login)"
            except psycopg.errors.InsufficientPrivilege:
                summary["warnings"].append(
                    f"{summary['connected_as']} may not change role {role}: its password ({PASSWORD_ENV[role]}) "
                    "was not applied; run `mdm roles apply --admin-dsn ...`"
                )
        else:
            summary["roles"].setdefault(role, "exists")


def grant_database(wh: PostgresWarehouse, summary: dict[str, Any]) -> None:
    """CONNECT for the three roles, CREATE (schemas) and TEMPORARY for mdm_pipeline."""
    import psycopg

    db = _one(wh, "select current_database()")
    privileges = {
        PIPELINE_ROLE: "connect, create, temporary",
        STEWARD_ROLE: "connect",
        BI_ROLE: "connect",
        API_ROLE: "connect",
    }
    for role, privilege in privileges.items():
        if not _role_exists(wh, role):
            continue
        try:
            wh.execute(f'grant {privilege} on database "{db}" to {role}')
        except psycopg.errors.InsufficientPrivilege:
            summary["warnings"].append(
                f"{summary['connected_as']} may not grant {privilege} on database {db} to {role}"
            )


def reassign_ownership(wh: PostgresWarehouse) -> list[str]:
    """Make mdm_pipeline the owner of the platform schemas and everything in them (a warehouse first
    built by another role, e.g. a superuser). Needs a superuser or a member of both roles."""
    changed = []
    schemas = wh.query(
        "select n.nspname from pg_namespace n join pg_roles r on r.oid = n.nspowner "
        "where n.nspname = any(?) and r.rolname <> ?",
        [[s for s in PLATFORM_SCHEMAS if s != AUDIT_SCHEMA], PIPELINE_ROLE],
    )
    for (schema,) in schemas:
        wh.execute(f"alter schema {schema} owner to {PIPELINE_ROLE}")
        changed.append(f"schema {schema}")
    relations = wh.query(
        """
        select n.nspname, c.relname, c.relkind
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        join pg_roles r on r.oid = c.relowner
        where n.nspname = any(?) and r.rolname <> ? and c.relkind in ('r', 'p', 'v', 'm', 'S')
          and not (c.relkind = 'S' and exists (
              select 1 from pg_depend d where d.objid = c.oid and d.deptype in ('a', 'i')))
        order by n.nspname, c.relname
        """,
        [[s for s in PLATFORM_SCHEMAS if s != AUDIT_SCHEMA], PIPELINE_ROLE],
    )
    kinds = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "S": "sequence"}
    for schema, name, kind in relations:
        wh.execute(f'alter {kinds[str(kind)]} "{schema}"."{name}" owner to {PIPELINE_ROLE}')
        changed.append(f"{kinds[str(kind)]} {schema}.{name}")
    return changed


# ----------------------------------------------------------------------------- grants
def apply_grants(wh: PostgresWarehouse, summary: dict[str, Any]) -> None:
    """Converge the schema, table and default privileges of the three roles (one transaction)."""
    me = str(_one(wh, "select current_user"))
    existing = {r for r in ROLES if _role_exists(wh, r)}
    # default privileges for tables created later by the connected role, and by mdm_pipeline
    # when the connected role may set them (itself, a superuser, or a member of mdm_pipeline)
    creators = [me]
    may_act_for_pipeline = (
        _one(wh, "select pg_has_role(?, 'MEMBER')", [PIPELINE_ROLE]) if PIPELINE_ROLE in existing else False
    )
    if me != PIPELINE_ROLE and may_act_for_pipeline:
        creators.append(PIPELINE_ROLE)
    # every platform schema exists (owned by mdm_pipeline), so its default privileges are in place
    # before the first table in it is created (audit.*, governance.* come later in a run)
    owner = f" authorization {PIPELINE_ROLE}" if PIPELINE_ROLE in creators else ""
    can_create = _one(wh, "select has_database_privilege(current_database(), 'CREATE')")
    if can_create:
        for schema in PLATFORM_SCHEMAS:
            if schema != AUDIT_SCHEMA:  # created by customer_mdm.audit.install_pg, owned by its own role
                wh.execute(f"create schema if not exists {schema}{owner}")
    schemas = [
        str(r[0]) for r in wh.query("select nspname from pg_namespace where nspname = any(?)", [list(PLATFORM_SCHEMAS)])
    ]
    schemas.sort(key=PLATFORM_SCHEMAS.index)
    statements: list[str] = []
    for schema in schemas:

        def defaults(creator: str, action: str, schema: str = schema) -> str:
            return f'alter default privileges for role "{creator}" in schema {schema} {action}'

        if PIPELINE_ROLE in existing and me != PIPELINE_ROLE and schema != AUDIT_SCHEMA:
            statements += [
                f"grant usage, create on schema {schema} to {PIPELINE_ROLE}",
                f"grant all on all tables in schema {schema} to {PIPELINE_ROLE}",
                f"grant all on all sequences in schema {schema} to {PIPELINE_ROLE}",
                defaults(me, f"grant all on tables to {PIPELINE_ROLE}"),
                defaults(me, f"grant all on sequences to {PIPELINE_ROLE}"),
            ]
        for role, reads in READS.items():
            if role not in existing:
                continue
            # converge: no write privilege anywhere, then read where allowed
            statements.append(f"revoke all on all tables in schema {schema} from {role}")
            statements += [defaults(creator, f"revoke all on tables from {role}") for creator in creators]
            if schema in reads:
                statements += [
                    f"grant usage on schema {schema} to {role}",
                    f"grant select on all tables in schema {schema} to {role}",
                ]
                statements += [defaults(creator, f"grant select on tables to {role}") for creator in creators]
            else:
                statements.append(f"revoke all on schema {schema} from {role}")
    for role, write_schemas in SCHEMA_WRITES.items():
        if role not in existing:
            continue
        for schema in write_schemas:
            if schema not in schemas:
                continue
            dml = "select, insert, update, delete"
            statements += [
                f"grant usage on schema {schema} to {role}",
                f"grant {dml} on all tables in schema {schema} to {role}",
            ]
            statements += [
                f'alter default privileges for role "{creator}" in schema {schema} grant {dml} on tables to {role}'
                for creator in creators
            ]
    for role, tables in WRITES.items():
        if role not in existing:
            continue
        for table, privileges in tables.items():
            if wh.table_exists(table):
                statements.append(f"grant {', '.join(privileges)} on {table} to {role}")
    with wh.transaction():
        for statement in statements:
            wh.execute(statement)
    summary["schemas"] = schemas
    summary["grant_statements"] = len(statements)


def apply(
    settings: Settings,
    admin_dsn: str | None = None,
    reassign: bool = False,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Create the masked BI views and (PostgreSQL) the roles and their grants; idempotent.

    ``admin_dsn``: a superuser or CREATEROLE connection used to create the roles, grant database
    privileges and (``reassign``) make mdm_pipeline the owner of the platform schemas; the views
    and grants are then made through the pipeline's own connection (``MDM_PG_DSN``), so that
    mdm_pipeline owns the views. Returns a summary (roles, views, warnings).
    """
    env = os.environ if env is None else env
    summary: dict[str, Any] = {"target": settings.target, "roles": {}, "warnings": [], "views": []}
    if settings.target == "postgres":
        if admin_dsn:
            admin = PostgresWarehouse(admin_dsn)
            try:
                summary["connected_as"] = str(_one(admin, "select current_user"))
                ensure_roles(admin, env, summary)
                grant_database(admin, summary)
                if reassign:
                    summary["reassigned"] = reassign_ownership(admin)
                install_audit(admin)
                summary["audit_owner"] = AUDIT_OWNER
            finally:
                admin.close()
        from customer_mdm.hub.store import ensure_store

        ensure_store(settings, dsn=settings.pg_dsn)  # the hub store's tables exist before their grants
        with connect(settings) as wh:
            assert isinstance(wh, PostgresWarehouse)
            summary["connected_as"] = str(_one(wh, "select current_user"))
            if not admin_dsn:
                ensure_roles(wh, env, summary)
                grant_database(wh, summary)
                if _can_create_roles(wh):
                    install_audit(wh)
                    summary["audit_owner"] = AUDIT_OWNER
                elif not audit_installed(wh):
                    summary["warnings"].append(
                        f"the audit log is not owned by {AUDIT_OWNER}: run `mdm roles apply --admin-dsn ...` "
                        "as a superuser or CREATEROLE role"
                    )
            with wh.transaction():  # the views and their grants together: never a view without its grants
                summary["views"] = ensure_bi_views(wh)
                apply_grants(wh, summary)
    else:
        with connect(settings) as wh:
            summary["views"] = ensure_bi_views(wh)
    for warning in summary["warnings"]:
        log.warning("%s", warning)
    return summary


# ----------------------------------------------------------------------------- export
def export_bi(settings: Settings, view: str, out: Path) -> int:
    """Write the masked view ``bi.<view>`` as CSV; returns the row count.

    On DuckDB this is the BI export (no roles there). On PostgreSQL it works as bi_reader too.
    """
    if view not in BI_VIEW_NAMES:
        raise MdmError(f"unknown BI view {view!r}: choose one of {', '.join(BI_VIEW_NAMES)}")
    qualified = f"{BI_SCHEMA}.{view}"
    if settings.target == "duckdb" and not settings.warehouse_file.exists():
        raise MdmError(f"no {qualified} yet: no warehouse at {settings.warehouse_file}; run `mdm run` first")
    with connect(settings, read_only=True) as wh:
        exists = wh.table_exists(qualified)
    if not exists:  # published before the views existed: create them (needs a writer)
        with connect(settings) as wh:
            if wh.target == "postgres":
                with wh.transaction():
                    ensure_bi_views(wh)
            else:
                ensure_bi_views(wh)
            exists = wh.table_exists(qualified)
    if not exists:
        raise MdmError(f"no {qualified} yet: its tables are not published; run `mdm run` first")
    with connect(settings, read_only=True) as wh:
        frame = wh.query_df(f"select * from {qualified} order by 1")
    from customer_mdm.private_files import open_private

    with open_private(out, "w", encoding="utf-8", newline="") as fh:  # mode 0600: masked, still personal
        frame.to_csv(fh, index=False)
    return len(frame)
