"""The ``link`` step of the daily run: records -> scored pairs -> persons -> stable golden ids.

State kept in the warehouse (schema ``mdm``):

``mdm.link_state``        every linked record (``source:source_id``), the hash of its linkage
                          fields, when it was first seen, the model version that scored it
``mdm.pairs``             scored candidate pairs above the pair threshold (the linkage graph)
``mdm.xref``              record -> golden id, match probability, assignment (model/steward/new)
``mdm.golden_registry``   every golden id ever issued: active, merged (into which) or retired
``mdm.golden_id_history`` append-only: create / merge / split / retire events, with the run
``mdm.review_queue``      pairs in the uncertain band awaiting a steward decision
``mdm.steward_decisions`` match / no-match decisions (``mdm review``); later runs honour them

Incremental runs score only new and changed records (Splink ``predict_between`` against the
existing records plus ``predict_within`` the delta) and keep the stored pairs of everything
else; clustering and id assignment then run over the whole graph, which is cheap. A full run
(``mdm run --full``, a new model version, or no state yet) rescores every record.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from customer_mdm.config import Settings
from customer_mdm.warehouse import Warehouse, connect

log = logging.getLogger(__name__)

#: pairs stored in the graph (a steward can only review what is stored)
PAIR_THRESHOLD = 0.2
#: uncertain band sent to steward review, around the clustering threshold (0.5):
#: REVIEW_LOW <= match probability < REVIEW_HIGH
REVIEW_LOW = 0.2
REVIEW_HIGH = 0.8

TABLES: dict[str, dict[str, str]] = {
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
    "mdm.steward_decisions": {
        "record_id_l": "text",
        "record_id_r": "text",
        "decision": "text",  # match | no_match
        "decided_by": "text",
        "decided_at": "timestamp",
        "note": "text",
    },
}


def link_columns() -> list[str]:
    """The int_customer_records columns the model reads (hashed to detect changed records)."""
    from customer_mdm.linkage.model import INPUT_COLUMNS

    return [c for c in INPUT_COLUMNS if c not in ("record_key", "source")]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def ensure_tables(wh: Warehouse) -> None:
    wh.execute("create schema if not exists mdm")
    for table, columns in TABLES.items():
        body = ", ".join(f"{c} {t}" for c, t in columns.items())
        wh.execute(f"create table if not exists {table} ({body})")


def read_records(wh: Warehouse) -> pd.DataFrame:
    """The unified records with a stable linkage key and a hash of the fields linkage reads."""
    columns = link_columns()
    cols = ", ".join(["source", "source_id", "record_created_at_utc", "_ingested_at", *columns])
    fingerprint = " || chr(31) || ".join(f"coalesce(cast({c} as text), '')" for c in columns)
    records = wh.query_df(
        f"select source || ':' || source_id as record_key, {cols}, md5({fingerprint}) as content_hash "
        "from intermediate.int_customer_records order by record_key"
    )
    return records.reset_index(drop=True)


def _replace(wh: Warehouse, table: str, frame: pd.DataFrame) -> None:
    wh.execute(f"delete from {table}")
    wh.insert_df(table, frame[list(TABLES[table])])


def _decisions(wh: Warehouse) -> tuple[pd.DataFrame, pd.DataFrame]:
    latest = wh.query_df(
        "select record_id_l, record_id_r, decision, decided_at from mdm.steward_decisions order by decided_at"
    )
    if latest.empty:
        empty = pd.DataFrame(columns=["record_key_l", "record_key_r"])
        return empty, empty
    latest = latest.drop_duplicates(["record_id_l", "record_id_r"], keep="last")
    pairs = latest.rename(columns={"record_id_l": "record_key_l", "record_id_r": "record_key_r"})
    must = pairs[pairs["decision"] == "match"][["record_key_l", "record_key_r"]]
    cannot = pairs[pairs["decision"] == "no_match"][["record_key_l", "record_key_r"]]
    return must.reset_index(drop=True), cannot.reset_index(drop=True)


def _model(settings: Settings, records: pd.DataFrame) -> tuple[Any, str, bool]:
    """The current model; the first run on a new warehouse trains (and publishes) version 1."""
    from customer_mdm.linkage.model import LinkageError, load_current
    from customer_mdm.linkage.training import model_dir, train_and_save

    try:
        model = load_current(model_dir(settings))
        return model, f"v{model.version}", False
    except (FileNotFoundError, LinkageError):
        log.info("no trained linkage model in %s: training one on %d records", model_dir(settings), len(records))
    model = train_and_save(settings, records)
    return model, f"v{model.version}", True


def link(settings: Settings, run_id: str, full: bool = False) -> dict[str, Any]:
    """Bring pairs, clusters, golden ids, xref and the review queue up to date."""
    from customer_mdm.linkage.ids import assign_golden_ids
    from customer_mdm.linkage.predict import DEFAULT_THRESHOLD, cluster, predict_incremental, predict_pairs

    started = time.perf_counter()
    now = _now()
    details: dict[str, Any] = {}
    with connect(settings) as wh:
        ensure_tables(wh)
        records = read_records(wh)
        state = wh.query_df("select record_id, content_hash, first_seen_at, model_version from mdm.link_state")
        previous_xref = wh.query_df("select record_id, golden_id from mdm.xref")
        registry = wh.query_df("select golden_id, created_at, status, merged_into from mdm.golden_registry")
        must_link, cannot_link = _decisions(wh)
        stored_pairs = wh.query_df(
            "select record_id_l as record_key_l, record_id_r as record_key_r, match_probability, match_weight, "
            "model_version from mdm.pairs"
        )
    model, version, trained = _model(settings, records)
    details["model_version"] = version
    details["model_trained_now"] = trained

    known = state.set_index("record_id")
    same_model = bool(len(known)) and (known["model_version"] == version).all()
    mode = "full" if full or not same_model else "incremental"
    hashes = known["content_hash"].reindex(records["record_key"]).to_numpy()
    changed = records["content_hash"].to_numpy() != hashes
    delta = records[changed]
    gone = sorted(set(known.index) - set(records["record_key"]))
    t0 = time.perf_counter()
    if mode == "full":
        pairs = predict_pairs(records, model, threshold_probability=PAIR_THRESHOLD)
    else:
        touched = set(delta["record_key"]) | set(gone)
        keep = stored_pairs[~stored_pairs["record_key_l"].isin(touched) & ~stored_pairs["record_key_r"].isin(touched)]
        fresh = predict_incremental(delta, records[~changed], model, threshold_probability=PAIR_THRESHOLD)
        pairs = pd.concat([keep.drop(columns=["model_version"]), fresh], ignore_index=True)
    details.update(
        mode=mode,
        records=len(records),
        delta_records=len(delta) if mode == "incremental" else len(records),
        removed_records=len(gone),
        pairs=len(pairs),
        predict_seconds=round(time.perf_counter() - t0, 2),
    )

    t0 = time.perf_counter()
    clusters = cluster(records, pairs, threshold=DEFAULT_THRESHOLD, must_link=must_link, cannot_link=cannot_link)
    details["cluster_seconds"] = round(time.perf_counter() - t0, 2)

    first_seen = known["first_seen_at"].reindex(records["record_key"]).to_numpy()
    first_seen = pd.Series(first_seen, index=records.index).fillna(pd.Timestamp(now))
    assignment = assign_golden_ids(
        pd.DataFrame(
            {
                "record_id": records["record_key"],
                "cluster_id": clusters.set_index("record_key").loc[records["record_key"], "cluster_id"].to_numpy(),
                "first_seen_at": first_seen,
            }
        ),
        previous_xref,
        registry,
        pd.Timestamp(now),
    )
    xref = _xref(records, assignment.xref, pairs, must_link, run_id, now)
    queue = _review_queue(pairs, xref, must_link, cannot_link, run_id, now)

    new_state = pd.DataFrame(
        {
            "record_id": records["record_key"],
            "content_hash": records["content_hash"],
            "first_seen_at": first_seen,
            "model_version": version,
            "scored_at": pd.Timestamp(now),
        }
    )
    pair_table = pairs.rename(columns={"record_key_l": "record_id_l", "record_key_r": "record_id_r"}).assign(
        model_version=version, scored_at=pd.Timestamp(now)
    )
    events = assignment.events.assign(run_id=run_id, changed_at=pd.Timestamp(now))
    with connect(settings) as wh, wh.transaction():
        _replace(wh, "mdm.link_state", new_state)
        _replace(wh, "mdm.pairs", pair_table)
        _replace(wh, "mdm.xref", xref)
        _replace(wh, "mdm.golden_registry", assignment.registry)
        _replace(wh, "mdm.review_queue", queue)
        if len(events):
            wh.insert_df("mdm.golden_id_history", events[list(TABLES["mdm.golden_id_history"])])
    sizes = xref.groupby("golden_id").size()
    details.update(
        golden_ids=len(sizes),
        largest_cluster=int(sizes.max()) if len(sizes) else 0,
        events={k: int(v) for k, v in assignment.events["event"].value_counts().items()},
        review_queue=len(queue),
        seconds=round(time.perf_counter() - started, 2),
    )
    log.info("linkage (%s): %s", mode, json.dumps(details, default=str))
    return details


def _xref(
    records: pd.DataFrame, ids: pd.DataFrame, pairs: pd.DataFrame, must_link: pd.DataFrame, run_id: str, now: datetime
) -> pd.DataFrame:
    """xref rows: the strongest link of each record to another record of its golden id."""
    xref = (
        records[["record_key", "source", "source_id"]]
        .rename(columns={"record_key": "record_id"})
        .merge(ids, on="record_id", how="left", validate="1:1")
    )
    gid = xref.set_index("record_id")["golden_id"]
    edges = pd.concat(
        [
            pairs[["record_key_l", "record_key_r", "match_probability"]],
            pairs[["record_key_r", "record_key_l", "match_probability"]].set_axis(
                ["record_key_l", "record_key_r", "match_probability"], axis=1
            ),
        ]
    )
    edges = edges[edges["record_key_l"].map(gid).to_numpy() == edges["record_key_r"].map(gid).to_numpy()]
    best = edges.groupby("record_key_l")["match_probability"].max()
    xref["match_probability"] = xref["record_id"].map(best)
    steward = set(must_link["record_key_l"]) | set(must_link["record_key_r"])
    xref["assignment"] = "model"
    xref.loc[xref["match_probability"].isna(), "assignment"] = "new"
    xref.loc[xref["record_id"].isin(steward), "assignment"] = "steward"
    xref["assigned_at_utc"] = pd.Timestamp(now)
    xref["run_id"] = run_id
    return xref


def _review_queue(
    pairs: pd.DataFrame,
    xref: pd.DataFrame,
    must_link: pd.DataFrame,
    cannot_link: pd.DataFrame,
    run_id: str,
    now: datetime,
) -> pd.DataFrame:
    band = pairs[(pairs["match_probability"] >= REVIEW_LOW) & (pairs["match_probability"] < REVIEW_HIGH)]
    decided = pd.concat([must_link, cannot_link])
    if len(decided):
        keys = set(zip(decided["record_key_l"], decided["record_key_r"], strict=True))
        keys |= {(right, left) for left, right in keys}
        band = band[[(a, b) not in keys for a, b in zip(band["record_key_l"], band["record_key_r"], strict=True)]]
    gid = xref.set_index("record_id")["golden_id"]
    queue = pd.DataFrame(
        {
            "record_id_l": band["record_key_l"].to_numpy(),
            "record_id_r": band["record_key_r"].to_numpy(),
            "match_probability": band["match_probability"].to_numpy(),
        }
    )
    queue["golden_id_l"] = queue["record_id_l"].map(gid)
    queue["golden_id_r"] = queue["record_id_r"].map(gid)
    queue["queued_at"] = pd.Timestamp(now)
    queue["run_id"] = run_id
    return queue.sort_values(["match_probability", "record_id_l", "record_id_r"], ascending=[False, True, True])


def record_decision(
    settings: Settings, left: str, right: str, decision: str, decided_by: str, note: str | None = None
) -> None:
    """Store a steward decision on a pair of records (``source:source_id``)."""
    from customer_mdm.errors import MdmError

    if decision not in ("match", "no_match"):
        raise MdmError(f"decision must be match or no_match, not {decision!r}")
    if left == right:
        raise MdmError("a decision needs two different records")
    left, right = sorted((left, right))
    with connect(settings) as wh:
        ensure_tables(wh)
        known = {
            r[0] for r in wh.query("select record_id from mdm.link_state where record_id in (?, ?)", [left, right])
        }
        missing = [r for r in (left, right) if r not in known]
        if missing:
            raise MdmError(f"unknown record(s) {', '.join(missing)}: use source:source_id as in `mdm review list`")
        wh.execute(
            "insert into mdm.steward_decisions (record_id_l, record_id_r, decision, decided_by, decided_at, note) "
            "values (?, ?, ?, ?, ?, ?)",
            [left, right, decision, decided_by, _now(), note],
        )
