"""The platform's plan: every feed, step and platform-owned table, declared once.

Everything else derives from these declarations:

- **Feeds** (:data:`FEEDS`): the landing-zone contract (folder, file patterns, columns), the raw
  table, the dbt staging model, whether the feed's records describe a person and how they map
  onto the unified person record (``int_person_records__unioned``, rendered by dbt from
  :func:`dbt_vars`), and which raw values the standardiser reads (:func:`std_inputs`).
  Ingestion, the DAG's ingest tasks, the raw gate, the dbt layers' watermarks, the standardiser,
  the linkage evidence and erasure's lineage all read them here.
- **Steps** (:data:`DAILY`, :data:`GOVERNANCE`, :data:`BACKUP`, :data:`TRAIN`): the function each
  step runs, what it runs after, its dbt selection and run options. The DAG files wire their
  tasks from them (:mod:`customer_mdm.orchestration`), the inline runner
  (:func:`customer_mdm.pipeline.run_inline`) runs them in the same order and ``finish`` checks
  them (:func:`expected_steps`).
- **Tables** (:data:`TABLES`): the tables the platform owns outside dbt with their columns, and
  whether a backup snapshot holds them (:func:`backed_up_tables`).

Adding a feed: a :class:`Feed` entry in :data:`FEEDS` (or :func:`customer_mdm.sources.register_feed`
for one of your own) and its staging model in ``dbt_project/models/staging`` (with its source
declaration). ``tests/test_plan_new_feed.py`` proves that is all a feed needs.

Imported by the DAG files at parse time: nothing heavy, functions named by their import path.
"""

from __future__ import annotations

import fnmatch
import importlib
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: Lineage columns added to every raw table, in this order, after the contract columns.
LINEAGE_COLUMNS: tuple[str, ...] = (
    "_source_file",  # path of the landing file, relative to the landing zone
    "_batch_id",  # one id per ingested file version: <feed>:<file name>:<sha256 prefix>
    "_row_number",  # 1-based record number in the file (CSV data row / JSON line)
    "_ingested_at",  # UTC timestamp of the ingestion
    "_extra",  # JSON object with unknown extra columns, kept but ignored downstream
)

# ----------------------------------------------------------------------------- feeds
#: The unified person record (``int_person_records__unioned``): its columns, in order, and their
#: types (``text`` or ``timestamp``). A person feed maps its staging columns onto these; a column
#: it does not map is NULL. ``record_key``, ``source``, ``source_id`` and the lineage columns come
#: from every staging model as they are.
PERSON_COLUMNS: dict[str, Literal["text", "timestamp"]] = {
    "name_raw": "text",
    "nickname_raw": "text",
    "gender_raw": "text",
    "birth_date_raw": "text",
    "phone_raw": "text",
    "email_raw": "text",
    "province_raw": "text",
    "city_raw": "text",
    "district_raw": "text",
    "address_raw": "text",
    "company_raw": "text",
    "customer_type_raw": "text",
    "tier_raw": "text",
    "consent_marketing_raw": "text",
    "record_created_at_utc": "timestamp",
    "record_updated_at_utc": "timestamp",
    "last_activity_at_utc": "timestamp",
    "source_timezone": "text",
}

#: The standardisation lookups (``customer_mdm.standardize.step``) and the raw columns each reads,
#: in the order its function takes them.
STD_LOOKUPS: dict[str, tuple[str, ...]] = {
    "phone": ("raw",),
    "name": ("raw",),
    "birth_date": ("raw",),
    "region": ("province_raw", "city_raw", "district_raw"),
    "address": ("raw",),
}
#: which unified person columns feed which lookup (one select per column group)
_PERSON_STD: dict[str, tuple[tuple[str, ...], ...]] = {
    "phone": (("phone_raw",),),
    "name": (("name_raw",), ("nickname_raw",)),
    "birth_date": (("birth_date_raw",),),
    "region": (("province_raw", "city_raw", "district_raw"),),
    "address": (("address_raw",),),
}


def _same(*columns: str) -> dict[str, str]:
    """Person columns a staging model has under their unified name."""
    return {c: c for c in columns}


@dataclass(frozen=True)
class Person:
    """How a feed's records describe a person: its ``source`` in the cross-reference
    (``mdm.xref.source``) and its staging columns as unified person columns (SQL expressions over
    the staging model, keyed by :data:`PERSON_COLUMNS`)."""

    source: str
    columns: Mapping[str, str]
    #: an earlier export of a record may show another number of the person (linkage evidence)
    former_phones: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.columns) - set(PERSON_COLUMNS)
        if unknown:
            raise ValueError(f"person source {self.source!r}: no unified person column {sorted(unknown)}")


@dataclass(frozen=True)
class StdInput:
    """Raw values of a feed's staging model that a standardisation lookup reads: one column (or
    None) per key of the lookup (:data:`STD_LOOKUPS`), for the rows matching ``where``."""

    lookup: str
    columns: tuple[str | None, ...]
    where: str | None = None


@dataclass(frozen=True)
class Feed:
    name: str  # raw table name and Airflow task suffix
    folder: str  # sub-folder of the landing zone
    patterns: tuple[str, ...]  # file-name globs, matched case-insensitively
    columns: tuple[str, ...]  # contract columns, in a canonical order
    required: tuple[str, ...]  # columns that must exist (CSV header) or keys every row needs
    key: str | None  # record id column: must be non-empty in every row; None = no id
    description: str = ""
    #: the dbt staging model reading ``raw.<name>`` (schema ``staging``)
    staging_model: str = ""
    #: the records describe a person (they are linked into golden customers)
    person: Person | None = None
    #: (source, column): the records name a person of ``source`` by its id in ``column``
    refers_to: tuple[str, str] | None = None
    #: raw values the standardiser reads besides a person's (:data:`_PERSON_STD`)
    standardised: tuple[StdInput, ...] = ()
    #: an erasure deletes the person's rows of this feed (raw and staging, by lineage)
    erasable: bool = True

    def matches(self, file_name: str) -> bool:
        lower = file_name.lower()
        return any(fnmatch.fnmatch(lower, pattern) for pattern in self.patterns)

    @property
    def raw_table(self) -> str:
        return f"raw.{self.name}"

    @property
    def staging_table(self) -> str:
        return f"staging.{self.staging_model}"

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.required)

    @property
    def person_id(self) -> tuple[str, str] | None:
        """(source, raw column) of the person ids this feed's raw rows carry (erasure by id)."""
        if self.person is not None and self.key:
            return (self.person.source, self.key)
        return self.refers_to

    def format_of(self, file_name: str) -> str:
        lower = file_name.lower()
        for ext, fmt in ((".csv", "csv"), (".jsonl", "jsonl"), (".json", "jsonl"), (".parquet", "parquet")):
            if lower.endswith(ext):
                return fmt
        raise ValueError(f"no known format for {file_name}")

    def std_inputs(self) -> list[StdInput]:
        """Every raw value of this feed the standardiser reads."""
        inputs: list[StdInput] = []
        if self.person is not None:
            mapped = self.person.columns
            for lookup, groups in _PERSON_STD.items():
                for group in groups:
                    if any(c in mapped for c in group):
                        inputs.append(StdInput(lookup, tuple(mapped.get(c) for c in group)))
        return [*inputs, *self.standardised]


FEEDS: list[Feed] = [
    Feed(
        name="crm",
        folder="crm",
        patterns=("*.csv",),
        columns=(
            "crm_id",
            "name",
            "gender",
            "birth_date",
            "mobile",
            "email",
            "province",
            "city",
            "district",
            "address",
            "company",
            "customer_type",
            "tier",
            "consent_marketing",
            "created_at",
            "updated_at",
        ),
        required=("crm_id", "name", "mobile", "email", "updated_at"),
        key="crm_id",
        staging_model="stg_crm__customers",
        person=Person(
            source="crm",
            columns={
                **_same(
                    "name_raw",
                    "gender_raw",
                    "birth_date_raw",
                    "phone_raw",
                    "email_raw",
                    "province_raw",
                    "city_raw",
                    "district_raw",
                    "address_raw",
                    "company_raw",
                    "customer_type_raw",
                    "tier_raw",
                    "consent_marketing_raw",
                ),
                "record_created_at_utc": "created_at_utc",
                "record_updated_at_utc": "coalesce(updated_at_utc, created_at_utc)",
                "source_timezone": "'Asia/Shanghai'",
            },
        ),
        description="Sales CRM person and company contacts",
    ),
    Feed(
        name="ecommerce_members",
        folder="ecommerce",
        patterns=("members_*.jsonl", "members_*.json"),
        columns=(
            "member_id",
            "nickname",
            "real_name",
            "phone",
            "email",
            "shipping_address",
            "registered_at",
            "last_login_at",
        ),
        required=("member_id",),
        key="member_id",
        staging_model="stg_ecommerce__members",
        person=Person(
            source="ecommerce",
            columns={
                **_same("name_raw", "nickname_raw", "phone_raw", "email_raw", "address_raw"),
                "record_created_at_utc": "registered_at_utc",
                "record_updated_at_utc": "coalesce(last_login_at_utc, registered_at_utc)",
                "last_activity_at_utc": "last_login_at_utc",
                "source_timezone": "'offset in value (ISO 8601) / epoch ms'",
            },
        ),
        description="Online shop member accounts (JSON Lines)",
    ),
    Feed(
        name="ecommerce_orders",
        folder="ecommerce",
        patterns=("orders_*.csv", "orders_*.parquet"),
        columns=("order_id", "member_id", "order_ts", "amount_cny", "status"),
        required=("order_id", "member_id", "order_ts", "amount_cny", "status"),
        key="order_id",
        staging_model="stg_ecommerce__orders",
        refers_to=("ecommerce", "member_id"),
        description="Online shop orders (CSV or Parquet)",
    ),
    Feed(
        name="callcenter",
        folder="callcenter",
        patterns=("*.csv",),
        columns=("ticket_id", "caller_name", "caller_phone", "callback_email", "city", "created_at", "channel"),
        required=("ticket_id", "caller_name", "caller_phone", "created_at"),
        key="ticket_id",
        staging_model="stg_callcenter__tickets",
        person=Person(
            source="callcenter",
            columns={
                **_same("name_raw", "phone_raw", "email_raw", "city_raw"),
                "record_created_at_utc": "created_at_utc",
                "record_updated_at_utc": "created_at_utc",
                "last_activity_at_utc": "created_at_utc",
                "source_timezone": "'Asia/Shanghai'",
            },
            former_phones=False,  # a ticket is never re-exported with another number
        ),
        description="Call-centre service tickets",
    ),
    Feed(
        name="store_pos",
        folder="store_pos",
        patterns=("*.csv",),
        columns=("card_no", "name", "phone", "birthday", "store_city", "enrolled_at"),
        required=("card_no", "name", "phone"),
        key="card_no",
        staging_model="stg_store_pos__cards",
        person=Person(
            source="store_pos",
            columns={
                **_same("name_raw", "birth_date_raw", "phone_raw"),
                "city_raw": "store_city_raw",
                "record_created_at_utc": "enrolled_at_utc",
                "record_updated_at_utc": "enrolled_at_utc",
                "source_timezone": "'Asia/Shanghai'",
            },
        ),
        description="Offline store loyalty cards",
    ),
    Feed(
        name="self_service",
        folder="self_service",
        patterns=("*.jsonl", "*.json"),
        columns=("event_id", "source_system", "source_id", "field", "new_value", "submitted_at"),
        required=("event_id", "source_system", "source_id", "field", "submitted_at"),
        key="event_id",
        staging_model="stg_self_service__changes",
        standardised=(
            StdInput("phone", ("new_value_raw",), "field = 'mobile'"),
            StdInput("region", ("new_value_raw", None, None), "field = 'province'"),
            StdInput("region", (None, "new_value_raw", None), "field = 'city'"),
            StdInput("region", (None, None, "new_value_raw"), "field = 'district'"),
            StdInput("address", ("new_value_raw",), "field = 'address'"),
        ),
        description="Changes customers made themselves in the portal (JSON Lines)",
    ),
    Feed(
        name="contact_events",
        folder="contact_events",
        patterns=("*.csv",),
        columns=("channel", "value", "event", "occurred_at"),
        required=("channel", "value", "event", "occurred_at"),
        key=None,
        staging_model="stg_contact_events__events",
        standardised=(StdInput("phone", ("contact_value_raw",), "channel = 'phone'"),),
        description="Outcomes of using a contact: bounced, unreachable, verified, opted out",
    ),
    Feed(
        name="erasure",
        folder="erasure",
        patterns=("*.csv",),
        columns=("request_id", "identifier_type", "identifier_value", "requested_at"),
        required=("request_id", "identifier_type", "identifier_value", "requested_at"),
        key="request_id",
        staging_model="stg_erasure__requests",
        erasable=False,  # the requests are the erasure's own record (customer_mdm.privacy)
        standardised=(StdInput("phone", ("identifier_value_raw",), "identifier_type = 'mobile'"),),
        description="Requests to erase a person (PIPL art. 47, GDPR art. 17)",
    ),
]


def person_feeds() -> list[Feed]:
    """The feeds whose records describe a person, in :data:`FEEDS` order (the union's order)."""
    return [f for f in FEEDS if f.person is not None]


def person_sources() -> dict[str, str]:
    """Person source -> the id column of its records (the cross-reference's ``source``)."""
    return {f.person.source: f.key or "" for f in person_feeds() if f.person is not None}


def staging_models() -> list[str]:
    return [f.staging_model for f in FEEDS if f.staging_model]


def dbt_vars() -> dict[str, object]:
    """What the dbt project reads of the plan (``--vars``, :func:`customer_mdm.dbt.run_dbt`): the
    person feeds' staging models and column mappings, unioned by ``int_person_records__unioned``."""
    return {
        "mdm_person_columns": [[c, t] for c, t in PERSON_COLUMNS.items()],
        "mdm_person_feeds": [
            {"model": f.staging_model, "columns": dict(f.person.columns)} for f in FEEDS if f.person is not None
        ],
        "mdm_person_sources": list(person_sources()),
    }


def std_inputs(lookup: str) -> list[tuple[Feed, StdInput]]:
    """The raw values a standardisation lookup reads, feed by feed."""
    if lookup not in STD_LOOKUPS:
        raise KeyError(f"unknown lookup {lookup!r}; known: {', '.join(STD_LOOKUPS)}")
    return [(f, i) for f in FEEDS for i in f.std_inputs() if i.lookup == lookup]


# ----------------------------------------------------------------------------- steps
Option = Literal["run_id", "dag_run_id", "feed_name", "full", "policy"]


@dataclass(frozen=True)
class Step:
    """One step of a DAG: ``function`` (``module:name``) is called with the settings and the
    ``options`` it takes, by name: ``run_id`` (the platform run), ``dag_run_id`` (the Airflow
    run), ``feed_name`` (a per-feed step), ``full`` and ``policy`` (run options). It runs after
    the steps in ``after`` (``ingest`` stands for every feed's ingest step); ``trigger_rule``
    ``all_done`` runs it even when one of them failed (so a failure there does not stop it)."""

    name: str
    function: str
    after: tuple[str, ...] = ()
    options: tuple[Option, ...] = ("run_id",)
    dbt: tuple[str, ...] = ()  # the dbt node selection of a dbt step
    per_feed: bool = False  # one step per feed: ``<name>_<feed>``
    trigger_rule: Literal["all_success", "all_done"] = "all_success"
    #: a failure is recorded and the run goes on (``finish`` then fails it): the steps after it
    #: run on ``all_done``
    may_fail: bool = False
    inlets: tuple[str, ...] = ()  # assets read: "linkage_model" | "golden"
    outlets: tuple[str, ...] = ()  # assets updated
    summary: str = ""

    def names(self) -> list[str]:
        """The step's names in a run: one per feed for a per-feed step."""
        return [f"{self.name}_{f.name}" for f in FEEDS] if self.per_feed else [self.name]

    def resolve(self) -> Callable[..., Any]:
        """The step's function (imported now: the DAG files only name it at parse time)."""
        module, _, name = self.function.partition(":")
        function: Callable[..., Any] = getattr(importlib.import_module(module), name)
        return function


_PIPELINE = "customer_mdm.pipeline"

#: The daily run (DAG ``mdm_daily``), in the order the inline runner runs it.
DAILY: tuple[Step, ...] = (
    Step("start", f"{_PIPELINE}:start_run", options=("run_id", "dag_run_id"), summary="schemas, run lock, intake"),
    Step(
        "ingest",
        f"{_PIPELINE}:ingest_step",
        ("start",),
        ("run_id", "feed_name"),
        per_feed=True,
        may_fail=True,
        summary="a feed whose source is down fails alone; the others and the build go on",
    ),
    Step(
        "source_freshness",
        f"{_PIPELINE}:source_freshness_step",
        ("ingest",),
        ("run_id", "policy"),
        trigger_rule="all_done",
        may_fail=True,
        summary="dbt source freshness; a stale feed never stops publication",
    ),
    Step(
        "validate_raw",
        f"{_PIPELINE}:validate_raw_step",
        ("ingest",),
        ("run_id", "full"),
        trigger_rule="all_done",
        summary="Great Expectations on the raw rows of this run; one source down must not stop the build",
    ),
    Step(
        "dbt_staging",
        f"{_PIPELINE}:dbt_staging_step",
        ("validate_raw",),
        ("run_id", "full"),
        dbt=("--select", "tag:staging"),
    ),
    Step("standardize", f"{_PIPELINE}:standardize_step", ("dbt_staging",), summary="std.* lookups (Python)"),
    Step(
        "dbt_build",
        f"{_PIPELINE}:dbt_build_step",
        ("standardize",),
        ("run_id", "full"),
        dbt=("--exclude", "tag:staging", "tag:golden", "tag:governance"),
    ),
    Step("validate_standardised", f"{_PIPELINE}:validate_standardised_step", ("dbt_build",), ("run_id", "full")),
    Step(
        "link",
        f"{_PIPELINE}:link_step",
        ("validate_standardised",),
        ("run_id", "full"),
        inlets=("linkage_model",),
        summary="Splink scoring, clustering, stable golden ids",
    ),
    Step("erasure", f"{_PIPELINE}:erasure_step", ("link",), summary="erasure requests and tombstones"),
    Step(
        "dbt_golden",
        f"{_PIPELINE}:dbt_golden_step",
        ("erasure",),
        ("run_id", "full"),
        # the governance models' tests on dim_customer belong to the governance step
        dbt=("--select", "tag:golden", "--indirect-selection", "cautious"),
    ),
    Step(
        "publish",
        f"{_PIPELINE}:publish_step",
        ("dbt_golden",),
        outlets=("golden",),
        summary="golden suites, then the swap into marts (write-audit-publish)",
    ),
    Step(
        "finish",
        f"{_PIPELINE}:finish_run",
        ("publish", "source_freshness"),
        trigger_rule="all_done",
        summary="the run's status: success only if every expected step succeeded",
    ),
)

#: The governance outputs after each publication (DAG ``mdm_governance``, on the golden asset).
GOVERNANCE: tuple[Step, ...] = (
    Step("dbt_governance", f"{_PIPELINE}:dbt_governance_step", dbt=("--select", "tag:governance")),
    Step("scorecard", f"{_PIPELINE}:scorecard_step", ("dbt_governance",)),
    Step("dbt_docs", f"{_PIPELINE}:dbt_docs_step", ("scorecard",)),
)

#: The backup after each publication (DAG ``mdm_backup``, on the golden asset).
BACKUP: tuple[Step, ...] = (Step("backup", f"{_PIPELINE}:backup_step"),)

#: The weekly retraining of the linkage model (DAG ``mdm_train_linkage``).
TRAIN: tuple[Step, ...] = (
    Step("train_model", "customer_mdm.linkage.training:train_and_publish", options=(), outlets=("linkage_model",)),
)


def step_named(name: str, steps: tuple[Step, ...] = DAILY) -> Step:
    for s in steps:
        if s.name == name:
            return s
    raise KeyError(f"no step {name!r}")


def edges(steps: tuple[Step, ...]) -> Iterator[tuple[str, str]]:
    """(upstream, downstream) step names, per-feed steps expanded."""
    by_name = {s.name: s for s in steps}
    for s in steps:
        for before in s.after:
            yield from itertools.product(by_name[before].names(), s.names())


def expected_steps() -> list[str]:
    """The steps every daily run must complete, in order; ``finish`` checks them."""
    return [n for s in DAILY if s.name != "finish" for n in s.names()]


def check_steps(steps: tuple[Step, ...]) -> None:
    """A plan that cannot run is refused: unknown ``after`` names, steps out of order, a step
    after one that may fail not running on ``all_done``."""
    seen: dict[str, Step] = {}
    for s in steps:
        for before in s.after:
            if before not in seen:
                raise ValueError(f"step {s.name!r} runs after {before!r}, which is not declared before it")
            if seen[before].may_fail and s.trigger_rule != "all_done":
                raise ValueError(f"step {s.name!r} runs after {before!r}, which may fail: it needs all_done")
        seen[s.name] = s


for _steps in (DAILY, GOVERNANCE, BACKUP, TRAIN):
    check_steps(_steps)


# ----------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class Table:
    """A table the platform owns. ``columns`` None: built by dbt or by its module (DDL there)."""

    name: str
    columns: Mapping[str, str] | None = None
    backed_up: bool = False  # a backup snapshot holds it (customer_mdm.backup)
    required: bool = False  # a snapshot cannot be taken without it
    merged: bool = False  # append-only log: a restore merges it instead of replacing it
    description: str = field(default="", compare=False)


#: Golden ids to rebuild, appended by the link step, cleared by dbt_golden (dbt source mdm.golden_dirty).
GOLDEN_DIRTY: dict[str, str] = {"golden_id": "text", "run_id": "text", "reason": "text"}
#: ``mdm.steward_corrections``: a steward's value for a golden attribute, anchored on a source
#: record (it follows the record through merges and splits); it wins survivorship
#: (int_golden_candidates) until the customer states the attribute again by self-service
STEWARD_CORRECTIONS: dict[str, str] = {
    "correction_id": "text",
    "record_id": "text",
    "golden_id": "text",
    "attribute": "text",
    "value": "text",
    "corrected_by": "text",
    "corrected_at": "timestamp",
    "note": "text",
    "run_id": "text",
}

#: The linkage state (schema ``mdm``, customer_mdm.linkage.step), steward decisions and golden id
#: history included.
LINK_TABLES: dict[str, dict[str, str]] = {
    "mdm.link_state": {
        "record_id": "text",
        "content_hash": "text",
        "first_seen_at": "timestamp",
        "model_version": "text",
        "scored_at": "timestamp",
    },
    "mdm.pairs": {
        "record_id_l": "text",
        "record_id_r": "text",
        "match_probability": "double precision",
        "match_weight": "double precision",
        "model_version": "text",
        "scored_at": "timestamp",
    },
    "mdm.xref": {
        "record_id": "text",
        "source": "text",
        "source_id": "text",
        "golden_id": "text",
        "match_probability": "double precision",
        "assignment": "text",
        "assigned_at_utc": "timestamp",
        "run_id": "text",
    },
    "mdm.golden_registry": {
        "golden_id": "text",
        "created_at": "timestamp",
        "status": "text",
        "merged_into": "text",
    },
    "mdm.golden_id_history": {
        "run_id": "text",
        "changed_at": "timestamp",
        "event": "text",
        "golden_id": "text",
        "other_golden_id": "text",
        "records": "bigint",
        "detail": "text",
    },
    "mdm.review_queue": {
        "record_id_l": "text",
        "record_id_r": "text",
        "match_probability": "double precision",
        "golden_id_l": "text",
        "golden_id_r": "text",
        "queued_at": "timestamp",
        "run_id": "text",
    },
    "mdm.link_runs": {"run_id": "text", "mode": "text", "linked_at": "timestamp"},
    "mdm.golden_dirty": GOLDEN_DIRTY,  # read by the incremental golden build (dbt)
    "mdm.steward_corrections": STEWARD_CORRECTIONS,  # read by int_golden_candidates (dbt)
    "mdm.steward_decisions": {
        "record_id_l": "text",
        "record_id_r": "text",
        "decision": "text",  # match | no_match
        "decided_by": "text",
        "decided_at": "timestamp",
        "note": "text",
    },
}

TABLES: tuple[Table, ...] = (
    Table("marts.dim_customer", backed_up=True, required=True, description="the golden customers (dbt)"),
    Table("marts.customer_xref", backed_up=True, required=True, description="source record -> golden id (dbt)"),
    *(Table(name, columns, backed_up=True) for name, columns in LINK_TABLES.items()),
    Table("audit.golden_changes", backed_up=True, merged=True, description="customer_mdm.audit"),
    Table("ops.erasure_tombstones", backed_up=True, merged=True, description="customer_mdm.privacy"),
)


def backed_up_tables() -> tuple[str, ...]:
    """Every table a backup snapshot holds when present, in snapshot order."""
    return tuple(t.name for t in TABLES if t.backed_up)
