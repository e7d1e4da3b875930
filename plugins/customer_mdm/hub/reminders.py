"""``mdm export reminders``: whom to ask to confirm or update their data, for a messaging tool.

From the published serving tables: every customer with at least one field the freshness policy
says is due (``serving.field_freshness``, governance_field_freshness), one row per channel:

* ``email`` when the golden e-mail exists and is not bounced or opted out,
* ``sms`` when the golden phone is a reachable mobile number,

and only where consent allows it: the platform records one purpose, marketing, so a reminder
goes only to customers whose marketing consent is ``granted`` (no statement = not consented).
A (customer, channel) reminded within ``MDM_REMINDER_INTERVAL_DAYS`` (default 30) is skipped;
what was handed out is remembered in ``hub.reminders_sent`` (covered by erasure).
"""

from __future__ import annotations

import csv
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from customer_mdm.config import Settings
from customer_mdm.hub.serving import ServingReader
from customer_mdm.hub.store import SCHEMA, ensure_store, now, open_store

COLUMNS = ("golden_id", "channel", "contact", "name", "due_fields", "due_since")
_FIELD_NAMES = {"phone": "mobile"}


def interval_days() -> float:
    """``MDM_REMINDER_INTERVAL_DAYS`` (default 30): the least time between two reminders."""
    return float(os.environ.get("MDM_REMINDER_INTERVAL_DAYS") or 30)


def reminder_rows(reader: ServingReader) -> list[dict[str, Any]]:
    """Candidate reminders (before the interval rule): one per customer and allowed channel."""
    due = reader.query(
        "select golden_id, field, due_date from serving.field_freshness where not within_policy "
        "order by golden_id, field"
    )
    by_customer: dict[str, list[tuple[str, Any]]] = {}
    for gid, field, due_date in due:
        by_customer.setdefault(str(gid), []).append((_FIELD_NAMES.get(str(field), str(field)), due_date))
    if not by_customer:
        return []
    rows: list[dict[str, Any]] = []
    customers = reader.query_dicts(
        "select golden_id, name, phone, phone_status, email, email_status, consent_marketing "
        "from serving.golden_customer where consent_marketing = 'granted' order by golden_id"
    )
    for c in customers:
        fields = by_customer.get(str(c["golden_id"]))
        if not fields:
            continue
        since = min(str(d) for _, d in fields if d is not None) if any(d for _, d in fields) else None
        names = ",".join(sorted({f for f, _ in fields}))
        channels = []
        if c.get("email") and c.get("email_status") not in ("bounced", "opted_out"):
            channels.append(("email", c["email"]))
        if c.get("phone") and str(c["phone"]).startswith("+861") and c.get("phone_status") != "unreachable":
            channels.append(("sms", c["phone"]))
        for channel, contact in channels:
            rows.append(
                {
                    "golden_id": c["golden_id"],
                    "channel": channel,
                    "contact": contact,
                    "name": c.get("name"),
                    "due_fields": names,
                    "due_since": since,
                }
            )
    return rows


def export_reminders(settings: Settings, out: Path) -> dict[str, Any]:
    """Write the reminders CSV and remember them; returns rows written and skipped as recent."""
    ensure_store(settings)
    candidates = reminder_rows(ServingReader(settings))
    cutoff = (datetime.now(UTC) - timedelta(days=interval_days())).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with open_store(settings) as store:
        recent = {
            (str(g), str(ch))
            for g, ch in store.query(
                f"select golden_id, channel from {SCHEMA}.reminders_sent where sent_at > ?", [cutoff]
            )
        }
        rows = [r for r in candidates if (str(r["golden_id"]), r["channel"]) not in recent]
        from customer_mdm.private_files import open_private

        tmp = out.parent / f".{out.name}.tmp"
        with open_private(tmp, "w", newline="", encoding="utf-8") as fh:  # contacts: 0600
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        sent_at = now()
        with store.transaction():
            for r in rows:
                store.execute(
                    f"insert into {SCHEMA}.reminders_sent (golden_id, channel, sent_at, export_file) "
                    "values (?, ?, ?, ?)",
                    [r["golden_id"], r["channel"], sent_at, out.name],
                )
        os.replace(tmp, out)
    return {"rows": len(rows), "skipped_recent": len(candidates) - len(rows)}
