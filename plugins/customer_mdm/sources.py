"""The landing-zone contract as data: which files each reference source delivers.

A *feed* is one kind of file inside a source folder (``ecommerce/`` delivers two feeds:
members and orders). Each feed lands in one raw table, ``raw.<feed name>``, holding every
contract column as text plus the lineage columns. This module is imported by the DAG files,
so it must stay free of heavy imports.

To add a source of your own, append a :class:`Feed` to :data:`FEEDS` (or register one with
:func:`register_feed`), add its staging model in ``dbt_project/models/staging``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

#: Lineage columns added to every raw table, in this order, after the contract columns.
LINEAGE_COLUMNS: tuple[str, ...] = (
    "_source_file",  # path of the landing file, relative to the landing zone
    "_batch_id",  # one id per ingested file version: <feed>:<file name>:<sha256 prefix>
    "_row_number",  # 1-based record number in the file (CSV data row / JSON line)
    "_ingested_at",  # UTC timestamp of the ingestion
    "_extra",  # JSON object with unknown extra columns, kept but ignored downstream
)


@dataclass(frozen=True)
class Feed:
    name: str  # raw table name and Airflow task suffix
    folder: str  # sub-folder of the landing zone
    patterns: tuple[str, ...]  # file-name globs, matched case-insensitively
    columns: tuple[str, ...]  # contract columns, in a canonical order
    required: tuple[str, ...]  # columns that must exist (CSV header) or keys every row needs
    key: str | None  # record id column: must be non-empty in every row; None = no id
    description: str = ""

    def matches(self, file_name: str) -> bool:
        lower = file_name.lower()
        return any(fnmatch.fnmatch(lower, pattern) for pattern in self.patterns)

    @property
    def raw_table(self) -> str:
        return f"raw.{self.name}"

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.required)

    def format_of(self, file_name: str) -> str:
        lower = file_name.lower()
        for ext, fmt in ((".csv", "csv"), (".jsonl", "jsonl"), (".json", "jsonl"), (".parquet", "parquet")):
            if lower.endswith(ext):
                return fmt
        raise ValueError(f"no known format for {file_name}")


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
        description="Online shop member accounts (JSON Lines)",
    ),
    Feed(
        name="ecommerce_orders",
        folder="ecommerce",
        patterns=("orders_*.csv", "orders_*.parquet"),
        columns=("order_id", "member_id", "order_ts", "amount_cny", "status"),
        required=("order_id", "member_id", "order_ts", "amount_cny", "status"),
        key="order_id",
        description="Online shop orders (CSV or Parquet)",
    ),
    Feed(
        name="callcenter",
        folder="callcenter",
        patterns=("*.csv",),
        columns=("ticket_id", "caller_name", "caller_phone", "callback_email", "city", "created_at", "channel"),
        required=("ticket_id", "caller_name", "caller_phone", "created_at"),
        key="ticket_id",
        description="Call-centre service tickets",
    ),
    Feed(
        name="store_pos",
        folder="store_pos",
        patterns=("*.csv",),
        columns=("card_no", "name", "phone", "birthday", "store_city", "enrolled_at"),
        required=("card_no", "name", "phone"),
        key="card_no",
        description="Offline store loyalty cards",
    ),
    Feed(
        name="self_service",
        folder="self_service",
        patterns=("*.jsonl", "*.json"),
        columns=("event_id", "source_system", "source_id", "field", "new_value", "submitted_at"),
        required=("event_id", "source_system", "source_id", "field", "submitted_at"),
        key="event_id",
        description="Changes customers made themselves in the portal (JSON Lines)",
    ),
    Feed(
        name="contact_events",
        folder="contact_events",
        patterns=("*.csv",),
        columns=("channel", "value", "event", "occurred_at"),
        required=("channel", "value", "event", "occurred_at"),
        key=None,
        description="Outcomes of using a contact: bounced, unreachable, verified, opted out",
    ),
    Feed(
        name="erasure",
        folder="erasure",
        patterns=("*.csv",),
        columns=("request_id", "identifier_type", "identifier_value", "requested_at"),
        required=("request_id", "identifier_type", "identifier_value", "requested_at"),
        key="request_id",
        description="Requests to erase a person (PIPL art. 47, GDPR art. 17)",
    ),
]


def source_folders() -> list[str]:
    """The source folders of the landing zone, in processing order."""
    return list(dict.fromkeys(f.folder for f in FEEDS))


#: Sources whose records describe a person, with the id column used in the cross-reference.
PERSON_SOURCES: dict[str, str] = {
    "crm": "crm_id",
    "ecommerce": "member_id",
    "callcenter": "ticket_id",
    "store_pos": "card_no",
}


def feed(name: str) -> Feed:
    for f in FEEDS:
        if f.name == name:
            return f
    raise KeyError(f"unknown feed {name!r}; known feeds: {', '.join(f.name for f in FEEDS)}")


def feeds_in_folder(folder: str) -> list[Feed]:
    return [f for f in FEEDS if f.folder == folder]


def feed_for_file(folder: str, file_name: str) -> Feed | None:
    """The feed a landing file belongs to, or None when its name matches no pattern."""
    for f in feeds_in_folder(folder):
        if f.matches(file_name):
            return f
    return None


def register_feed(new: Feed) -> None:
    """Add a custom feed (a source of your own). Its name must be new."""
    if any(f.name == new.name for f in FEEDS):
        raise ValueError(f"feed {new.name!r} exists already")
    FEEDS.append(new)
