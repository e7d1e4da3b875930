"""When the trained model no longer represents what arrives: the profile of the training data.

A model is trained on the records of its day. Its m and u probabilities, its prior and the
term frequencies it was tuned with describe *those* records: when the data is delivered over
several days (the older CRM and shop batches first, everything else the next day), a model
trained on the first delivery has never seen a call-centre ticket or a store card, and it
keeps scoring every later delivery until someone retrains it.

So every model carries the profile of its training records (:func:`profile_of_records`, saved
in its metadata): the records per source and, per source, the share of records that carry each
field the comparisons read. Before an incremental link the same profile is taken of the
records now (:func:`profile_in_warehouse`, one grouped query) and :func:`retrain_reason`
compares them. The model is retrained (and everything rescored) when

- a source appears that the model was not trained on, or a source gains a field it did not
  carry (share of records with it from under 5 % to 20 % or more);
- the records grew by more than ``GROWTH`` (half as many again): the prior, the term
  frequencies and the sampled u were estimated on a much smaller population;
- the share of a field within a source shifted by more than ``SHIFT`` (absolute): the comparison
  levels' frequencies among matches and non-matches moved with it.

The reason is returned as text for the run summary; None when the model still fits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from customer_mdm.warehouse import Warehouse

__all__ = ["GROWTH", "PROFILE_COLUMNS", "SHIFT", "profile_in_warehouse", "profile_of_records", "retrain_reason"]

#: the fields whose presence decides the comparisons
PROFILE_COLUMNS = (
    "name_pinyin",
    "gender",
    "birth_month",
    "phone_e164",
    "email",
    "city",
    "street",
    "company_key",
)
#: retrain when the records grew by more than this share of the training records
GROWTH = 0.5
#: retrain when a field's share within a source moved by more than this (absolute)
SHIFT = 0.2
_ABSENT, _PRESENT = 0.05, 0.2


def profile_of_records(records: pd.DataFrame) -> dict[str, Any]:
    """``{"records": n, "sources": {source: {"records": n, "fields": {col: share}}}}`` of
    int_customer_records rows (a DataFrame with ``source`` and the profile columns)."""
    out: dict[str, Any] = {"records": len(records), "sources": {}}
    if "source" not in records.columns:
        return out
    for source, group in records.groupby("source", sort=True):
        fields = {c: round(float(group[c].notna().mean()), 4) if c in group.columns else 0.0 for c in PROFILE_COLUMNS}
        out["sources"][str(source)] = {"records": len(group), "fields": fields}
    return out


def profile_in_warehouse(wh: Warehouse, table: str = "intermediate.int_customer_records") -> dict[str, Any]:
    """The same profile as :func:`profile_of_records`, counted in the warehouse."""
    counts = ", ".join(f"count({c})" for c in PROFILE_COLUMNS)
    rows = wh.query(f"select source, count(*), {counts} from {table} group by source order by source")
    sources = {}
    for row in rows:
        n = int(row[1])
        fields = {c: round(int(v) / n, 4) if n else 0.0 for c, v in zip(PROFILE_COLUMNS, row[2:], strict=True)}
        sources[str(row[0])] = {"records": n, "fields": fields}
    return {"records": sum(s["records"] for s in sources.values()), "sources": sources}


def retrain_reason(trained: dict[str, Any] | None, now: dict[str, Any]) -> str | None:
    """Why a model trained on ``trained`` no longer represents ``now`` (None: it still does).

    A model without a profile (trained before profiles were kept) is left alone: its training
    data is unknown, and retraining every such model at once would rescore every warehouse."""
    if not trained or "sources" not in trained:
        return None
    reasons = []
    new_sources = sorted(set(now["sources"]) - set(trained["sources"]))
    if new_sources:
        reasons.append(f"new source(s) {', '.join(new_sources)}")
    before, after = int(trained.get("records") or 0), int(now.get("records") or 0)
    if before and after > before * (1 + GROWTH):
        reasons.append(f"records grew from {before:,} to {after:,} (+{after / before - 1:.0%})")
    for source in sorted(set(now["sources"]) & set(trained["sources"])):
        old, new = trained["sources"][source]["fields"], now["sources"][source]["fields"]
        for col in PROFILE_COLUMNS:
            a, b = float(old.get(col, 0.0)), float(new.get(col, 0.0))
            if a < _ABSENT and b >= _PRESENT:
                reasons.append(f"{source} now carries {col} ({a:.0%} -> {b:.0%})")
            elif abs(b - a) > SHIFT:
                reasons.append(f"{source}.{col} shifted ({a:.0%} -> {b:.0%})")
    return "; ".join(reasons) or None
