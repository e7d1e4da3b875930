"""The pipeline's side of the console: at the start of the link step, the steward actions the
console queued in the hub store are applied to the warehouse (on DuckDB the server cannot write
the warehouse while a run holds it, so every target takes the same path).

``decision``    match / no match on a pair: :func:`customer_mdm.linkage.step.insert_decision`,
                the same function ``mdm review decide`` uses; the link step that follows honours it
``merge``       two customers are one (must-link): a ``match`` decision on a record of each
``split``       a record is not its customer (must-not-link): a ``no_match`` decision between it
                and every other record of its golden id
``correction``  a steward value of a golden attribute: a row of ``mdm.steward_corrections`` (it
                wins survivorship in int_golden_candidates), the golden id marked dirty and an
                audit row ``steward_correction``

Each action is marked ``applied`` (with the run id) or ``rejected`` with the reason (a record
that no longer exists, an unknown attribute) in the store; one failure does not stop the others.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from customer_mdm.config import Settings
from customer_mdm.errors import MdmError
from customer_mdm.warehouse import Warehouse, connect

log = logging.getLogger(__name__)

#: golden attributes a steward may correct (consent and contact status come from the customer)
CORRECTABLE = ("name", "gender", "birth_date", "phone", "email", "company")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def apply_pending(settings: Settings, run_id: str) -> dict[str, Any]:
    """Apply every pending console action; returns counts by outcome and kind."""
    from customer_mdm.console.store import connect_store, mark_action, pending_actions
    from customer_mdm.hub.store import store_path

    summary: dict[str, Any] = {"applied": 0, "rejected": 0}
    if settings.target == "duckdb" and not store_path(settings).exists():
        return summary
    with connect_store(settings) as store:
        pending = pending_actions(store, ("decision", "merge", "split", "correction"))
        if not pending:
            return summary
        with connect(settings) as wh:
            from customer_mdm.linkage.step import ensure_tables

            ensure_tables(wh)
            for action in pending:
                try:
                    outcome = _apply(settings, wh, action, run_id)
                except MdmError as exc:
                    mark_action(store, action["action_id"], "rejected", run_id, str(exc)[:500])
                    summary["rejected"] += 1
                    continue
                mark_action(store, action["action_id"], "applied", run_id, outcome)
                summary["applied"] += 1
                summary[action["kind"]] = summary.get(action["kind"], 0) + 1
    log.info("console actions: %s", summary)
    return summary


def _apply(settings: Settings, wh: Warehouse, action: dict[str, Any], run_id: str) -> str:
    from customer_mdm.linkage.step import insert_decision

    kind, actor, note = action["kind"], action["actor"], action.get("note")
    left, right = action.get("record_id_l"), action.get("record_id_r")
    if kind == "decision":
        decision = action.get("value")
        insert_decision(settings, wh, str(left), str(right), str(decision), note=note, actor=actor)
        return f"decision {decision}"
    if kind == "merge":
        insert_decision(settings, wh, str(left), str(right), "match", note=note, actor=actor)
        return "must-link"
    if kind == "split":
        others = [
            r[0]
            for r in wh.query(
                "select x.record_id from mdm.xref as x inner join mdm.xref as me on me.golden_id = x.golden_id "
                "where me.record_id = ? and x.record_id <> ? order by 1",
                [left, left],
            )
        ]
        if not others:
            raise MdmError("the record is alone in its golden id (or gone): nothing to split")
        for other in others:
            insert_decision(settings, wh, str(left), str(other), "no_match", note=note, actor=actor)
        return f"must-not-link with {len(others)} record(s)"
    if kind == "correction":
        return _correct(settings, wh, action, run_id)
    raise MdmError(f"unknown console action {kind!r}")


def _correct(settings: Settings, wh: Warehouse, action: dict[str, Any], run_id: str) -> str:
    from customer_mdm.audit import append, to_json
    from customer_mdm.pseudonyms import pseudonym

    attribute, value, record = action.get("field"), action.get("value"), action.get("record_id_l")
    if attribute not in CORRECTABLE:
        raise MdmError(f"attribute {attribute!r} cannot be corrected (one of {', '.join(CORRECTABLE)})")
    golden = wh.query("select golden_id from mdm.xref where record_id = ?", [record])
    if not golden:
        raise MdmError("the record the correction names is gone (erased or replaced): correct the customer again")
    gid = str(golden[0][0])
    at = _now()
    with wh.transaction():
        wh.execute(
            "insert into mdm.steward_corrections (correction_id, record_id, golden_id, attribute, value, "
            "corrected_by, corrected_at, note, run_id) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [action["action_id"], record, gid, attribute, value, action["actor"], at, action.get("note"), run_id],
        )
        wh.execute(
            "insert into mdm.golden_dirty (golden_id, run_id, reason) values (?, ?, ?)", [gid, run_id, "steward"]
        )
        append(
            wh,
            [
                {
                    "changed_at": at,
                    "actor": action["actor"],
                    "actor_kind": "steward",
                    "action": "steward_correction",
                    "golden_id": gid,
                    "field": attribute,
                    "old_value": None,
                    # the value itself is personal: the audit keeps its pseudonym, like survivorship changes
                    "new_value": to_json(
                        {
                            "value": pseudonym(settings, str(attribute), str(value)),
                            "record": pseudonym(settings, "record", str(record)),
                        }
                    ),
                    "reason": action.get("note") or "steward correction",
                    "run_id": run_id,
                }
            ],
        )
    return f"correction of {attribute}"
