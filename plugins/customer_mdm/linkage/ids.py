"""Stable golden ids across runs, with merge and split rules.

Clustering gives this run's groups of records; the golden ids BI tools and downstream systems
hold must not churn because of that. The rules:

* **Same data, same ids.** A record keeps the golden id it had when its group is unchanged.
* **New records join** the golden id of the group they fall into.
* **A brand-new person** gets a new id derived from its oldest record: ``G`` + 12 hex digits of
  an HMAC-SHA256 of ``source:source_id`` under a key derived from the warehouse's erasure salt
  (:func:`customer_mdm.keys.golden_id_key`). A rebuild from scratch on the same data and the same
  warehouse gives the same ids, but nobody without the key can compute a person's golden id from
  a (sequential, guessable) CRM id, nor a CRM id from a golden id.
* **Merge:** when one group now holds records of several golden ids, the *oldest* golden id
  (earliest ``created_at``, then the smallest id) survives; the others are retired as
  ``merged_into`` the survivor.
* **Split:** when the records of one golden id now fall into several groups, the id stays with
  the group holding *most* of its records (ties: the group with the oldest record, then the
  smallest group key); the other parts take another old id they hold, or a new one.

Every create, merge and split is returned as an event for ``mdm.golden_id_history``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import pandas as pd


def _isin(values: pd.Series, members: object) -> pd.Series:
    """Fast membership test (pandas' Arrow-string isin builds a scalar per member)."""
    return values.astype(object).isin(set(members))  # type: ignore[call-overload]


def new_golden_id(record_id: str, key: bytes) -> str:
    """``G`` + 12 upper-case hex digits of HMAC-SHA256(key, record_id)."""
    if len(key) < 16:
        raise ValueError("the golden id key must be at least 16 bytes (customer_mdm.keys.golden_id_key)")
    return "G" + hmac.new(key, record_id.encode("utf-8"), hashlib.sha256).hexdigest()[:12].upper()


@dataclass
class Assignment:
    xref: pd.DataFrame  # record_id, golden_id
    registry: pd.DataFrame  # golden_id, created_at, status (active|merged|retired), merged_into
    events: pd.DataFrame  # event, golden_id, other_golden_id, records, detail


def assign_golden_ids(
    clusters: pd.DataFrame,
    previous: pd.DataFrame,
    registry: pd.DataFrame,
    now: pd.Timestamp,
    issued: set[str] | None = None,
    *,
    key: bytes,
) -> Assignment:
    """Give every cluster a golden id.

    ``clusters``: record_id, cluster_id, first_seen_at (when the record was first ingested);
    ``previous``: record_id, golden_id from the last run (empty on the first run);
    ``registry``: golden_id, created_at, status, merged_into (every id ever issued).

    An incremental run passes only a *region*: its records, their previous ids, the registry
    rows of those ids, and in ``issued`` every id ever issued (an id is never reissued). Ids of
    the registry that no record of the region holds any more are retired, so the region must
    hold every record of each of its previous ids. ``key`` keys new ids (:func:`new_golden_id`).
    """
    clusters = clusters[["record_id", "cluster_id", "first_seen_at"]].copy()
    clusters["cluster_id"] = clusters["cluster_id"].astype(str)
    prev = previous[["record_id", "golden_id"]].rename(columns={"golden_id": "old_id"})
    cur = clusters.merge(prev, on="record_id", how="left")
    reg = (
        registry.set_index("golden_id")
        if not registry.empty
        else pd.DataFrame(columns=["created_at", "status", "merged_into"])
    )

    # oldest record of each cluster (its id seeds a new golden id; it breaks ties)
    ordered = cur.sort_values(["first_seen_at", "record_id"], kind="mergesort")
    oldest_record = ordered.groupby("cluster_id", sort=False)["record_id"].first()
    oldest_time = ordered.groupby("cluster_id", sort=False)["first_seen_at"].first()

    # 1. each old id goes to the cluster holding most of its records (split rule)
    held = cur.dropna(subset=["old_id"]).groupby(["old_id", "cluster_id"]).size().rename("n").reset_index()
    held["oldest"] = oldest_time.reindex(held["cluster_id"]).to_numpy()
    held = held.sort_values(
        ["old_id", "n", "oldest", "cluster_id"], ascending=[True, False, True, True], kind="mergesort"
    )
    home = held.drop_duplicates("old_id")  # old_id -> the cluster that keeps it

    # 2. among the old ids a cluster keeps, the oldest id survives (merge rule)
    home = home.assign(
        id_created=home["old_id"].map(reg["created_at"]) if len(reg) else pd.NaT,
    )
    home["id_created"] = home["id_created"].fillna(now)
    home = home.sort_values(["cluster_id", "id_created", "old_id"], kind="mergesort")
    survivors = home.drop_duplicates("cluster_id").set_index("cluster_id")["old_id"]
    merged = home[~_isin(home["old_id"], survivors.to_numpy())]

    # 3. clusters left without an old id: another old id they hold (a split-off part), else new
    cluster_ids = pd.Index(cur["cluster_id"].unique())
    golden = pd.Series(survivors, index=cluster_ids, dtype=object)
    taken = set(survivors.values)
    merged_ids = set(merged["old_id"])
    events: list[dict[str, object]] = []
    orphan_parts = held[~_isin(held["cluster_id"], survivors.index.to_numpy())].sort_values(
        ["cluster_id", "n", "old_id"], ascending=[True, False, True], kind="mergesort"
    )
    for cid, group in orphan_parts.groupby("cluster_id", sort=True):
        for old_id in group["old_id"]:
            if old_id not in taken and old_id not in merged_ids:
                golden[cid] = old_id
                taken.add(old_id)
                break
    known = set(reg.index) if len(reg) else set()
    never_again = known | (issued or set())
    missing = cluster_ids[golden.isna().to_numpy()]
    fresh = []
    for record_id in oldest_record.reindex(missing).astype(str):
        gid = new_golden_id(record_id, key)
        while gid in taken or gid in never_again:  # practically never: an issued id is never reissued
            gid = new_golden_id(gid, key)
        fresh.append(gid)
        taken.add(gid)
    golden.loc[missing] = fresh

    xref = cur[["record_id", "cluster_id", "old_id"]].assign(golden_id=cur["cluster_id"].map(golden))

    # events: creations, merges and splits
    sizes = xref.groupby("golden_id").size()
    created = sorted(set(golden.values) - known)
    events += [
        {"event": "create", "golden_id": gid, "other_golden_id": None, "records": int(n), "detail": "new person"}
        for gid, n in zip(created, sizes.reindex(created).to_numpy(), strict=True)
    ]
    for row in merged.itertuples(index=False):
        survivor = survivors[row.cluster_id]
        events.append(
            {
                "event": "merge",
                "golden_id": survivor,
                "other_golden_id": row.old_id,
                "records": int(sizes[survivor]),
                "detail": f"{row.old_id} merged into the older id {survivor}",
            }
        )
    moved = xref.dropna(subset=["old_id"])
    moved = moved[moved["old_id"] != moved["golden_id"]]
    for (old_id, gid), part in moved.groupby(["old_id", "golden_id"], sort=True):
        if old_id in merged_ids and survivors.get(part["cluster_id"].iloc[0]) == gid:
            continue  # already told as a merge
        events.append(
            {
                "event": "split",
                "golden_id": old_id,
                "other_golden_id": gid,
                "records": len(part),
                "detail": f"{len(part)} record(s) of {old_id} now belong to {gid}",
            }
        )

    # registry: new ids active, merged ids point at their survivor, ids with no record retired
    new_rows = pd.DataFrame({"golden_id": created, "created_at": now, "status": "active", "merged_into": None})
    out_reg = pd.concat([registry, new_rows], ignore_index=True) if len(registry) else new_rows
    out_reg = out_reg.set_index("golden_id")
    out_reg["merged_into"] = out_reg["merged_into"].astype(object)
    if len(merged):
        out_reg.loc[merged["old_id"].to_numpy(), "status"] = "merged"
        out_reg.loc[merged["old_id"].to_numpy(), "merged_into"] = merged["cluster_id"].map(survivors).to_numpy()
    in_use = _isin(out_reg.index.to_series(), list(taken)).to_numpy()
    retired = out_reg.index[~in_use & (out_reg["status"] == "active").to_numpy()]
    out_reg.loc[retired, "status"] = "retired"
    events += [
        {"event": "retire", "golden_id": gid, "other_golden_id": None, "records": 0, "detail": "no record left"}
        for gid in retired
    ]
    revived = in_use & (out_reg["status"] != "active").to_numpy()  # a steward decision can revive an id
    out_reg.loc[revived, "status"] = "active"
    out_reg.loc[revived, "merged_into"] = None

    event_frame = pd.DataFrame(events, columns=["event", "golden_id", "other_golden_id", "records", "detail"])
    return Assignment(
        xref=xref[["record_id", "golden_id"]].sort_values("record_id").reset_index(drop=True),
        registry=out_reg.reset_index().sort_values("golden_id").reset_index(drop=True),
        events=event_frame,
    )
