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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from customer_mdm import plan
from customer_mdm.config import Settings
from customer_mdm.linkage.engines import make_engine
from customer_mdm.linkage.records import (
    RECORDS_FROM,
    RECORDS_SQL,
    column_sql,
    content_hash_sql,
    prepare_evidence,
    read_records,
)
from customer_mdm.linkage.training import model_dir, train_and_save
from customer_mdm.schema import ensure_table
from customer_mdm.warehouse import Warehouse, connect

log = logging.getLogger(__name__)

#: pairs stored in the graph (a steward can only review what is stored)
PAIR_THRESHOLD = 0.2
#: uncertain band sent to steward review, around the clustering threshold (0.5):
#: REVIEW_LOW <= match probability < REVIEW_HIGH; within it only the pairs whose decision would
#: change a golden record are queued (see :func:`_review_queue`)
REVIEW_LOW = 0.35
REVIEW_HIGH = 0.65

#: the linkage state tables and their columns (declared in customer_mdm.plan)
TABLES: dict[str, dict[str, str]] = plan.LINK_TABLES


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def ensure_tables(wh: Warehouse) -> None:
    for table, columns in TABLES.items():
        ensure_table(wh, table, columns)


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


def _model(settings: Settings, records: pd.DataFrame | None) -> tuple[Any, str, bool]:
    """The current model; the first run on a new warehouse trains (and publishes) version 1.
    With ``records`` None a missing model raises instead (the caller reads records first)."""
    from customer_mdm.linkage.model import LinkageError, load_current

    try:
        model = load_current(model_dir(settings))
        return model, f"v{model.version}", False
    except (FileNotFoundError, LinkageError):
        if records is None:
            raise
        log.info("no trained linkage model in %s: training one on %d records", model_dir(settings), len(records))
    model = train_and_save(settings, records)
    return model, f"v{model.version}", True


#: above this share of new or changed records an incremental run rescores everything instead
FULL_RESCORE_SHARE = 0.3


def link(settings: Settings, run_id: str, full: bool = False) -> dict[str, Any]:
    """Bring pairs, clusters, golden ids, xref and the review queue up to date.

    Incremental (the default when a state from the current model exists): only the records
    around what changed are read, scored and clustered, and only their rows are rewritten
    (:func:`_link_incremental`). When the records no longer look like the model's training data
    (:func:`customer_mdm.linkage.drift.retrain_reason`: a new source or field, large growth, a
    shifted field) the model is retrained first; ``model_retrained`` says why, and the new
    version rescores everything. Full (``full``, a new model version, no state yet, or more than
    ``FULL_RESCORE_SHARE`` of the records changed): everything is rescored and rewritten.
    """
    from customer_mdm.keys import golden_id_key
    from customer_mdm.linkage.drift import profile_in_warehouse, retrain_reason
    from customer_mdm.linkage.model import LinkageError

    started = time.perf_counter()
    now = _now()
    id_key = golden_id_key(settings)  # checks the warehouse's salt before anything is linked
    reason = "requested (--full)" if full else ""
    retrained = None
    if not full:
        try:
            model, version, _ = _model(settings, None)
        except (FileNotFoundError, LinkageError):
            reason = "no trained model yet"
        else:
            with connect(settings) as wh:
                ensure_tables(wh)
                retrained = retrain_reason(model.extra.get("training_profile"), profile_in_warehouse(wh, RECORDS_SQL))
                if retrained is None:
                    outcome = _link_incremental(settings, wh, model, version, run_id, now, id_key)
                else:  # the data moved away from what the model was trained on: a new version
                    log.info("linkage model retrained: %s", retrained)
                    prepare_evidence(wh)
                    train_and_save(settings, read_records(wh, content_hash=False))
                    outcome = Fallback(f"model retrained: {retrained}")
            if isinstance(outcome, Fallback):
                reason = outcome.reason
            else:
                outcome["seconds"] = round(time.perf_counter() - started, 2)
                log.info("linkage (incremental): %s", json.dumps(outcome, default=str))
                return outcome
    details = _link_full(settings, run_id, now, id_key)
    details["full_reason"] = reason
    if retrained is not None:
        details["model_trained_now"] = True
        details["model_retrained"] = retrained
    details["seconds"] = round(time.perf_counter() - started, 2)
    log.info("linkage (full): %s", json.dumps(details, default=str))
    return details


def _link_full(settings: Settings, run_id: str, now: datetime, id_key: bytes) -> dict[str, Any]:
    """Score every record, cluster everything, rewrite every state table (``id_key``: the key of
    new golden ids, :func:`customer_mdm.keys.golden_id_key`)."""
    from customer_mdm.linkage.ids import assign_golden_ids
    from customer_mdm.linkage.predict import DEFAULT_THRESHOLD, cluster, predict_pairs

    details: dict[str, Any] = {}
    with connect(settings) as wh:
        ensure_tables(wh)
        details["evidence_records"] = prepare_evidence(wh)
        records = read_records(wh)
        state = wh.query_df("select record_id, first_seen_at from mdm.link_state")
        previous_xref = wh.query_df("select record_id, golden_id from mdm.xref")
        registry = wh.query_df("select golden_id, created_at, status, merged_into from mdm.golden_registry")
        must_link, cannot_link = _decisions(wh)
    model, version, trained = _model(settings, records)
    details.update(model_version=version, model_trained_now=trained)
    known = state.set_index("record_id")
    gone = set(known.index) - set(records["record_key"])
    t0 = time.perf_counter()
    pairs = predict_pairs(records, model, threshold_probability=PAIR_THRESHOLD, engine=make_engine(settings))
    details.update(
        mode="full",
        records=len(records),
        delta_records=len(records),
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
        _cluster_frame(records, clusters, first_seen), previous_xref, registry, pd.Timestamp(now), key=id_key
    )
    xref = _xref(records, assignment.xref, pairs, must_link, run_id, now)
    queue = _review_queue(pairs, xref, must_link, cannot_link, run_id, now)
    new_state = _state_rows(records, first_seen, version, now)
    events = assignment.events.assign(run_id=run_id, changed_at=pd.Timestamp(now))
    with connect(settings) as wh, wh.transaction():
        _replace(wh, "mdm.link_state", new_state)
        _replace(wh, "mdm.pairs", _pair_rows(pairs, version, now))
        _replace(wh, "mdm.xref", xref)
        _replace(wh, "mdm.golden_registry", assignment.registry)
        _replace(wh, "mdm.review_queue", queue)
        if len(events):
            wh.insert_df("mdm.golden_id_history", events[list(TABLES["mdm.golden_id_history"])])
        _record_run(wh, run_id, "full", now)
    sizes = xref.groupby("golden_id").size()
    details.update(
        golden_ids=len(sizes),
        largest_cluster=int(sizes.max()) if len(sizes) else 0,
        events={k: int(v) for k, v in assignment.events["event"].value_counts().items()},
        review_queue=len(queue),
    )
    return details


def _cluster_frame(records: pd.DataFrame, clusters: pd.DataFrame, first_seen: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_id": records["record_key"].to_numpy(),
            "cluster_id": clusters.set_index("record_key").loc[records["record_key"], "cluster_id"].to_numpy(),
            "first_seen_at": first_seen.to_numpy(),
        }
    )


def _state_rows(records: pd.DataFrame, first_seen: pd.Series, version: str, now: datetime) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_id": records["record_key"].to_numpy(),
            "content_hash": records["content_hash"].to_numpy(),
            "first_seen_at": first_seen.to_numpy(),
            "model_version": version,
            "scored_at": pd.Timestamp(now),
        }
    )


def _pair_rows(pairs: pd.DataFrame, version: str, now: datetime) -> pd.DataFrame:
    return pairs.rename(columns={"record_key_l": "record_id_l", "record_key_r": "record_id_r"}).assign(
        model_version=version, scored_at=pd.Timestamp(now)
    )


def _record_run(wh: Warehouse, run_id: str, mode: str, now: datetime) -> None:
    wh.execute("insert into mdm.link_runs (run_id, mode, linked_at) values (?, ?, ?)", [run_id, mode, now])


def _keys_table(wh: Warehouse, name: str, keys: Any) -> str:
    """A temporary one-column table ``record_key`` holding ``keys`` (for joins in SQL)."""
    wh.execute(f"drop table if exists {name}")
    wh.execute(f"create temporary table {name} (record_key text)")
    wh.insert_df(name, pd.DataFrame({"record_key": pd.Series(sorted(set(keys)), dtype=object)}))
    return name


def _tf_expression(col: str) -> str:
    """SQL giving the value :func:`~customer_mdm.linkage.model.prepare_records` makes of ``col``."""
    value = f"nullif(trim(cast(r.{col} as text)), '')"
    if col == "phone_e164":
        return f"case when coalesce(r.phone_valid, false) then {value} end"
    if col == "email":
        return f"case when coalesce(r.email_valid, false) then {value} end"
    return value


def _blocking_candidates(wh: Warehouse, delta_table: str) -> set[str]:
    """Existing records that share a blocking key (model.BLOCKING_KEYS) with a new record: the
    only ones a new record can be compared with. Compared on trimmed values, so a superset."""
    from customer_mdm.linkage.model import BLOCKING_KEYS, CROSS_BLOCKING_KEYS

    key = "r.source || ':' || r.source_id"
    pairs = [[(c, c) for c in cols] for cols in BLOCKING_KEYS] + [[pair] for pair in CROSS_BLOCKING_KEYS]
    parts = []
    for cols in pairs:
        on = " and ".join(f"trim(cast({column_sql(a)} as text)) = trim(cast(d.{b} as text))" for a, b in cols)
        parts.append(f"select {key} as record_key from {RECORDS_FROM} join _link_delta_rows as d on {on}")
    wh.execute("drop table if exists _link_delta_rows")
    blocking_cols = sorted({c for cols in pairs for pair in cols for c in pair})
    wh.execute(
        "create temporary table _link_delta_rows as select "
        + ", ".join(f"{column_sql(c)} as {c}" for c in blocking_cols)
        + f" from {RECORDS_FROM} where {key} in (select record_key from {delta_table})"
    )
    rows = wh.query(f"select distinct record_key from ({' union all '.join(parts)}) as c")
    return {r[0] for r in rows}


def _tf_lookups(wh: Warehouse, universe_table: str, delta_table: str) -> dict[str, pd.DataFrame]:
    """Term-frequency lookups over *all* records, counting people (golden ids; new or changed
    records count as themselves), for the values of the records in ``universe_table``; the same
    formula as :func:`~customer_mdm.linkage.model.add_term_frequencies`."""
    from customer_mdm.linkage.model import TF_COLUMNS

    key = "r.source || ':' || r.source_id"
    values = ", ".join(f"{_tf_expression(c)} as {c}" for c in TF_COLUMNS)
    wh.execute("drop table if exists _link_tf_src")
    wh.execute(
        f"create temporary table _link_tf_src as select {key} as record_key, "
        f"case when d.record_key is null and x.golden_id is not null then x.golden_id else 'record:' || {key} end "
        f"as entity, {values} "
        f"from {RECORDS_SQL} as r left join mdm.xref as x on x.source = r.source and x.source_id = r.source_id "
        f"left join {delta_table} as d on d.record_key = {key}"
    )
    wh.execute("drop table if exists _link_tf_wanted")
    wh.execute(
        "create temporary table _link_tf_wanted as select * from _link_tf_src "
        f"where record_key in (select record_key from {universe_table})"
    )
    lookups: dict[str, pd.DataFrame] = {}
    for col in TF_COLUMNS:
        frame = wh.query_df(
            f"""
            with p as (select distinct {col} as v, entity from _link_tf_src where {col} is not null),
            k as (select v, count(*) as k from p group by v),
            s as (
                select (select count(distinct entity) from p) as total,
                    sum(case when k = 1 then 1 else 0 end) as n1, sum(case when k = 2 then 1 else 0 end) as n2
                from k
            ),
            wanted as (select distinct {col} as v from _link_tf_wanted where {col} is not null)
            select k.v as {col},
                (greatest(k.k - 2, 0) + case when s.n1 > 0 then least(1.0, greatest(0.05, 2.0 * s.n2 / s.n1))
                    else 1.0 end) / greatest(s.total, 1) as tf_{col}
            from k join wanted as w on w.v = k.v cross join s
            """
        )
        frame[f"tf_{col}"] = frame[f"tf_{col}"].astype(float)
        lookups[col] = frame.reset_index(drop=True)
    return lookups


def _region(
    wh: Warehouse, seeds: set[str], touched_table: str, extra_edges: pd.DataFrame, threshold: float
) -> set[str]:
    """The records to re-cluster: ``seeds`` closed over links at ``threshold`` (stored pairs not
    involving a record of ``touched_table``, plus ``extra_edges``) and over the previous golden
    groups. Iterated in SQL (a few rounds: groups are small), so nothing of the whole graph is loaded."""
    wh.execute("drop table if exists _link_edges")
    wh.execute(
        "create temporary table _link_edges as select record_id_l as l, record_id_r as r from mdm.pairs "
        f"where match_probability >= {float(threshold)!r} "
        f"and record_id_l not in (select record_key from {touched_table}) "
        f"and record_id_r not in (select record_key from {touched_table})"
    )
    if len(extra_edges):
        wh.insert_df("_link_edges", extra_edges.set_axis(["l", "r"], axis=1).astype(object))
    region_table = _keys_table(wh, "_link_grow", seeds)
    wh.execute("drop table if exists _link_next")
    wh.execute("create temporary table _link_next (record_key text)")
    for _ in range(1000):
        wh.execute("delete from _link_next")
        wh.execute(
            f"""
            insert into _link_next
            select distinct n.k from (
                select e.r as k from _link_edges as e join {region_table} as g on g.record_key = e.l
                union all
                select e.l from _link_edges as e join {region_table} as g on g.record_key = e.r
                union all
                select x2.record_id from mdm.xref as x1
                join {region_table} as g on g.record_key = x1.record_id
                join mdm.xref as x2 on x2.golden_id = x1.golden_id
            ) as n
            where n.k not in (select record_key from {region_table})
            """
        )
        if not int(wh.scalar("select count(*) from _link_next")):
            break
        wh.execute(f"insert into {region_table} select record_key from _link_next")
    return {r[0] for r in wh.query(f"select record_key from {region_table}")}


@dataclass(frozen=True)
class Fallback:
    """The incremental link cannot be done: a full run is needed instead, for ``reason``."""

    reason: str


@dataclass
class _Delta:
    """Step 1 of an incremental link: what changed since the linkage state was written."""

    n_records: int
    delta_keys: list[str]  # new or changed records (content hash)
    gone: list[str]  # records no longer in int_customer_records
    decided: list[tuple[Any, ...]]  # steward decisions made since the last link run
    evidence_records: int
    delta_table: str  # temporary table of delta_keys
    seconds: float


@dataclass
class _Region:
    """Step 3: the records to re-cluster and what they were clustered from."""

    records: pd.DataFrame
    region: set[str]
    region_table: str  # the region and the removed records
    touched_table: str  # rescored records: their stored pairs go
    touching: pd.DataFrame  # every pair touching the region (stored and fresh)
    pairs: pd.DataFrame  # the pairs inside the region
    clusters: pd.DataFrame
    seconds: float


@dataclass
class _RegionIds:
    """Step 3, continued: the region's golden ids and the rows to write for it."""

    assignment: Any  # customer_mdm.linkage.ids.Assignment
    old_ids: list[str]
    xref: pd.DataFrame
    queue: pd.DataFrame
    events: pd.DataFrame
    new_state: pd.DataFrame
    dirty: pd.DataFrame


def _read_delta(wh: Warehouse, version: str) -> _Delta | Fallback:
    """New, changed and removed records (in SQL) and the steward decisions since the last link
    run, or why the state cannot be updated incrementally."""
    total_state = int(wh.scalar("select count(*) from mdm.link_state"))
    if total_state == 0:
        return Fallback("no linkage state yet")
    other_models = int(wh.scalar("select count(*) from mdm.link_state where model_version <> ?", [version]))
    if other_models:
        return Fallback(f"new model {version}: every record is rescored")
    t0 = time.perf_counter()
    key = "r.source || ':' || r.source_id"
    evidence_records = prepare_evidence(wh)
    wh.execute("drop table if exists _link_cur")
    wh.execute(
        f"create temporary table _link_cur as select {key} as record_key, {content_hash_sql()} as content_hash "
        f"from {RECORDS_FROM}"
    )
    n_records = int(wh.scalar("select count(*) from _link_cur"))
    delta_keys = [
        r[0]
        for r in wh.query(
            "select c.record_key from _link_cur as c left join mdm.link_state as s on s.record_id = c.record_key "
            "where s.record_id is null or s.content_hash <> c.content_hash"
        )
    ]
    gone = [
        r[0]
        for r in wh.query(
            "select s.record_id from mdm.link_state as s "
            "where not exists (select 1 from _link_cur as c where c.record_key = s.record_id)"
        )
    ]
    if len(delta_keys) > FULL_RESCORE_SHARE * max(n_records, 1):
        return Fallback(f"{len(delta_keys)} of {n_records} records new or changed")
    last_run = wh.scalar("select max(linked_at) from mdm.link_runs")
    decisions_sql = "select record_id_l, record_id_r from mdm.steward_decisions"
    if last_run is None:
        decided = wh.query(decisions_sql)
    else:
        decided = wh.query(decisions_sql + " where decided_at > ?", [last_run])
    delta_table = _keys_table(wh, "_link_delta", delta_keys)
    return _Delta(n_records, delta_keys, gone, decided, evidence_records, delta_table, time.perf_counter() - t0)


def _score_delta(settings: Settings, wh: Warehouse, model: Any, delta: _Delta, details: dict[str, Any]) -> pd.DataFrame:
    """Step 2: score the delta against the existing records it can be blocked with
    (``predict_between``, and ``predict_within`` the delta); term frequencies count every record.
    Returns the fresh pairs above :data:`PAIR_THRESHOLD`."""
    from customer_mdm.linkage.predict import predict_incremental

    fresh = pd.DataFrame(columns=["record_key_l", "record_key_r", "match_probability", "match_weight"])
    if delta.delta_keys:
        candidates = _blocking_candidates(wh, delta.delta_table) | set(delta.delta_keys)
        universe = _keys_table(wh, "_link_universe", candidates)
        lookups = _tf_lookups(wh, universe, delta.delta_table)
        scored = read_records(wh, universe, content_hash=False)  # only scored: no state row
        is_new = scored["record_key"].isin(set(delta.delta_keys))
        fresh = predict_incremental(
            scored[is_new],
            scored[~is_new],
            model,
            PAIR_THRESHOLD,
            tf_lookups=lookups,
            n_records=delta.n_records,
            engine=make_engine(settings),
        )
        details["candidates"] = int((~is_new).sum())
    return fresh


def _recluster_region(
    wh: Warehouse, delta: _Delta, fresh: pd.DataFrame, must_link: pd.DataFrame, cannot_link: pd.DataFrame
) -> _Region:
    """Step 3: the connected components holding a changed record, a removed record's neighbours
    or a record of a new steward decision (:func:`_region`), clustered again from their stored
    pairs (less the rescored records') and the fresh ones."""
    from customer_mdm.linkage.predict import DEFAULT_THRESHOLD, cluster

    t0 = time.perf_counter()
    touched = set(delta.delta_keys) | set(delta.gone)
    seeds = touched | {k for pair in delta.decided for k in pair}
    if len(fresh):
        seeds |= set(fresh["record_key_l"]) | set(fresh["record_key_r"])
    gone_set = set(delta.gone)
    strong = fresh[fresh["match_probability"] >= DEFAULT_THRESHOLD]
    extra_edges = pd.concat(
        [strong[["record_key_l", "record_key_r"]], must_link[["record_key_l", "record_key_r"]]], ignore_index=True
    )
    touched_table = _keys_table(wh, "_link_touched", touched)  # rescored: their stored pairs go
    region = _region(wh, seeds, touched_table, extra_edges, DEFAULT_THRESHOLD) - gone_set
    region_table = _keys_table(wh, "_link_region", region | gone_set)
    records = read_records(wh, region_table)
    region_pairs = wh.query_df(
        "select record_id_l as record_key_l, record_id_r as record_key_r, match_probability, match_weight "
        f"from mdm.pairs where record_id_l in (select record_key from {region_table}) "
        f"or record_id_r in (select record_key from {region_table})"
    )
    if touched:
        region_pairs = region_pairs[
            ~region_pairs["record_key_l"].astype(object).isin(touched)
            & ~region_pairs["record_key_r"].astype(object).isin(touched)
        ]
    region = set(records["record_key"])  # a decision may name a record that is gone
    touching = pd.concat([region_pairs, fresh], ignore_index=True)
    pairs = touching[
        touching["record_key_l"].astype(object).isin(region) & touching["record_key_r"].astype(object).isin(region)
    ]
    clusters = cluster(records, pairs, threshold=DEFAULT_THRESHOLD, must_link=must_link, cannot_link=cannot_link)
    return _Region(records, region, region_table, touched_table, touching, pairs, clusters, time.perf_counter() - t0)


def _assign_region_ids(
    wh: Warehouse,
    delta: _Delta,
    region: _Region,
    must_link: pd.DataFrame,
    cannot_link: pd.DataFrame,
    version: str,
    run_id: str,
    now: datetime,
    id_key: bytes,
) -> _RegionIds:
    """Golden ids for the region (its old golden groups are wholly inside it; an id is never
    issued twice), its cross-reference, review queue, id events, state rows and dirty ids."""
    from customer_mdm.linkage.ids import assign_golden_ids, new_golden_id

    records = region.records
    region_previous = wh.query_df(
        f"select record_id, golden_id from mdm.xref where record_id in (select record_key from {region.region_table})"
    )
    old_ids = sorted(set(region_previous["golden_id"]))
    ids_table = _keys_table(wh, "_link_ids", old_ids)
    region_registry = wh.query_df(
        "select golden_id, created_at, status, merged_into from mdm.golden_registry "
        f"where golden_id in (select record_key from {ids_table})"
    )
    # an id is never issued twice: the ids a new person of the region could get, already issued
    maybe: set[str] = set()
    for record_id in records["record_key"]:
        gid = new_golden_id(record_id, id_key)
        maybe.update((gid, new_golden_id(gid, id_key), new_golden_id(new_golden_id(gid, id_key), id_key)))
    maybe_table = _keys_table(wh, "_link_maybe", maybe)
    issued = {
        r[0]
        for r in wh.query(
            f"select golden_id from mdm.golden_registry where golden_id in (select record_key from {maybe_table})"
        )
    }
    state = wh.query_df(
        "select record_id, first_seen_at from mdm.link_state "
        f"where record_id in (select record_key from {region.region_table})"
    ).set_index("record_id")
    first_seen = pd.Series(
        pd.to_datetime(state["first_seen_at"].reindex(records["record_key"]).to_numpy()), index=records.index
    )
    first_seen = first_seen.fillna(pd.Timestamp(now))
    assignment = assign_golden_ids(
        _cluster_frame(records, region.clusters, first_seen),
        region_previous,
        region_registry,
        pd.Timestamp(now),
        issued,
        key=id_key,
    )
    xref = _xref(records, assignment.xref, region.pairs, must_link, run_id, now)
    # the queue of every pair touching the region (the other end keeps its golden id)
    touching = region.touching
    outside = set(touching["record_key_l"]) | set(touching["record_key_r"])
    outside -= region.region
    outside_table = _keys_table(wh, "_link_outside", outside)
    outside_ids = wh.query_df(
        "select record_id, golden_id, match_probability from mdm.xref "
        f"where record_id in (select record_key from {outside_table})"
    )
    ids_for_queue = pd.concat([xref[["record_id", "golden_id", "match_probability"]], outside_ids], ignore_index=True)
    queue = _review_queue(touching, ids_for_queue, must_link, cannot_link, run_id, now)
    events = assignment.events.assign(run_id=run_id, changed_at=pd.Timestamp(now))
    delta_records = records[records["record_key"].isin(set(delta.delta_keys))]
    new_state = _state_rows(delta_records, first_seen[delta_records.index], version, now)
    changed_ids = set(old_ids) | set(assignment.xref["golden_id"])
    dirty = pd.DataFrame({"golden_id": sorted(changed_ids), "run_id": run_id, "reason": "linkage"})
    return _RegionIds(assignment, old_ids, xref, queue, events, new_state, dirty)


def _write_region(
    wh: Warehouse, region: _Region, ids: _RegionIds, fresh: pd.DataFrame, version: str, run_id: str, now: datetime
) -> None:
    """Step 4: rewrite the region's rows of the state tables only, in one transaction; the golden
    ids it touched go to ``mdm.golden_dirty`` for the incremental golden build."""
    touched_table, region_table = region.touched_table, region.region_table
    with wh.transaction():
        wh.execute(f"delete from mdm.link_state where record_id in (select record_key from {touched_table})")
        wh.insert_df("mdm.link_state", ids.new_state[list(TABLES["mdm.link_state"])])
        wh.execute(
            f"delete from mdm.pairs where record_id_l in (select record_key from {touched_table}) "
            f"or record_id_r in (select record_key from {touched_table})"
        )
        wh.insert_df("mdm.pairs", _pair_rows(fresh, version, now)[list(TABLES["mdm.pairs"])])
        wh.execute(f"delete from mdm.xref where record_id in (select record_key from {region_table})")
        wh.insert_df("mdm.xref", ids.xref[list(TABLES["mdm.xref"])])
        ids_table = _keys_table(wh, "_link_ids", set(ids.old_ids) | set(ids.assignment.registry["golden_id"]))
        wh.execute(f"delete from mdm.golden_registry where golden_id in (select record_key from {ids_table})")
        wh.insert_df("mdm.golden_registry", ids.assignment.registry[list(TABLES["mdm.golden_registry"])])
        wh.execute(
            f"delete from mdm.review_queue where record_id_l in (select record_key from {region_table}) "
            f"or record_id_r in (select record_key from {region_table})"
        )
        wh.insert_df("mdm.review_queue", ids.queue[list(TABLES["mdm.review_queue"])])
        if len(ids.events):
            wh.insert_df("mdm.golden_id_history", ids.events[list(TABLES["mdm.golden_id_history"])])
        wh.insert_df("mdm.golden_dirty", ids.dirty)
        _record_run(wh, run_id, "incremental", now)


def _link_incremental(
    settings: Settings, wh: Warehouse, model: Any, version: str, run_id: str, now: datetime, id_key: bytes
) -> dict[str, Any] | Fallback:
    """Score, cluster and rewrite only the neighbourhood of what changed.

    1. new or changed records (content hash) and removed ones, in SQL (:func:`_read_delta`);
    2. existing records that share a blocking key with them (SQL equi-joins) are the only ones
       ``predict_between`` can pair them with; term frequencies still count every record
       (:func:`_score_delta`);
    3. the *region*: the connected components (links at the clustering threshold, stored and
       fresh, steward must-links) that hold a changed record, a removed record's neighbours or
       a record of a new steward decision, closed over the golden ids its records had. Outside
       it nothing changed -- the same links, values and decisions give the same clusters, and
       golden ids stay as they are -- so only the region is clustered and given ids
       (:func:`_recluster_region`, :func:`_assign_region_ids`);
    4. only the region's rows of the state tables are rewritten; the golden ids it touched go
       to ``mdm.golden_dirty`` for the incremental golden build (:func:`_write_region`).
    Returns the step details, or a :class:`Fallback` when a full run is needed instead.
    """
    delta = _read_delta(wh, version)
    if isinstance(delta, Fallback):
        return delta
    details: dict[str, Any] = {
        "model_version": version,
        "model_trained_now": False,
        "evidence_records": delta.evidence_records,
    }
    must_link, cannot_link = _decisions(wh)
    t0 = time.perf_counter()
    fresh = _score_delta(settings, wh, model, delta, details)
    predict_seconds = time.perf_counter() - t0
    region = _recluster_region(wh, delta, fresh, must_link, cannot_link)
    ids = _assign_region_ids(wh, delta, region, must_link, cannot_link, version, run_id, now, id_key)
    t0 = time.perf_counter()
    _write_region(wh, region, ids, fresh, version, run_id, now)
    write_seconds = time.perf_counter() - t0
    largest = wh.scalar("select max(n) from (select count(*) as n from mdm.xref group by golden_id) as s")
    details.update(
        mode="incremental",
        records=delta.n_records,
        delta_records=len(delta.delta_keys),
        removed_records=len(delta.gone),
        region_records=len(region.region),
        pairs=int(wh.scalar("select count(*) from mdm.pairs")),
        golden_ids=int(wh.scalar("select count(distinct golden_id) from mdm.xref")),
        largest_cluster=int(largest or 0),
        events={k: int(v) for k, v in ids.assignment.events["event"].value_counts().items()},
        review_queue=int(wh.scalar("select count(*) from mdm.review_queue")),
        read_seconds=round(delta.seconds, 2),
        predict_seconds=round(predict_seconds, 2),
        cluster_seconds=round(region.seconds, 2),
        write_seconds=round(write_seconds, 2),
    )
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
    """The pairs a steward should decide: in the uncertain band, not decided yet, and of those

    - between two golden ids: only below the clustering threshold (a pair above it that ended in
      two golden ids was kept apart by the cluster guard on a hard conflict -- two birth dates,
      genders or names -- which the model decided), and only the strongest pair of each pair of
      golden ids (one decision joins them);
    - within one golden id: only a pair that is the strongest link of one of its records (the
      link that holds the record in its golden id; a weaker pair inside is settled by it).

    ``xref`` gives ``golden_id`` and ``match_probability`` (the record's strongest link within its
    golden id) of every record the pairs name."""
    band = pairs[(pairs["match_probability"] >= REVIEW_LOW) & (pairs["match_probability"] < REVIEW_HIGH)]
    decided = pd.concat([must_link, cannot_link])
    if len(decided):
        keys = set(zip(decided["record_key_l"], decided["record_key_r"], strict=True))
        keys |= {(right, left) for left, right in keys}
        undecided = [(a, b) not in keys for a, b in zip(band["record_key_l"], band["record_key_r"], strict=True)]
        band = band[np.array(undecided, dtype=bool)]
    by_record = xref.drop_duplicates("record_id").set_index("record_id")
    queue = pd.DataFrame(
        {
            "record_id_l": band["record_key_l"].to_numpy(),
            "record_id_r": band["record_key_r"].to_numpy(),
            "match_probability": band["match_probability"].to_numpy(),
        }
    )
    queue["golden_id_l"] = queue["record_id_l"].map(by_record["golden_id"])
    queue["golden_id_r"] = queue["record_id_r"].map(by_record["golden_id"])
    p = queue["match_probability"].to_numpy()
    within = (queue["golden_id_l"] == queue["golden_id_r"]).to_numpy()
    holds = np.zeros(len(queue), dtype=bool)
    if "match_probability" in by_record.columns:
        best = by_record["match_probability"]
        holds = (queue["record_id_l"].map(best).to_numpy() == p) | (queue["record_id_r"].map(best).to_numpy() == p)
    from customer_mdm.linkage.predict import DEFAULT_THRESHOLD

    queue = queue[(within & holds) | (~within & (p < DEFAULT_THRESHOLD))]
    lo = np.minimum(queue["golden_id_l"].astype(str), queue["golden_id_r"].astype(str))
    hi = np.maximum(queue["golden_id_l"].astype(str), queue["golden_id_r"].astype(str))
    one_per = np.where(
        queue["golden_id_l"] == queue["golden_id_r"], queue["record_id_l"] + "|" + queue["record_id_r"], lo + "|" + hi
    )
    queue = (
        queue.assign(_k=one_per)
        .sort_values(["match_probability", "record_id_l", "record_id_r"], ascending=[False, True, True])
        .drop_duplicates("_k")
        .drop(columns="_k")
    )
    queue["queued_at"] = pd.Timestamp(now)
    queue["run_id"] = run_id
    return queue.sort_values(["match_probability", "record_id_l", "record_id_r"], ascending=[False, True, True])


def record_decision(
    settings: Settings, left: str, right: str, decision: str, decided_by: str | None = None, note: str | None = None
) -> None:
    """Store a steward decision on a pair of records (``source:source_id``). Who decided is the
    authenticated principal (the PostgreSQL login, the operating-system user on DuckDB);
    ``decided_by`` is only a display note kept with ``note``."""
    with connect(settings) as wh:
        insert_decision(settings, wh, left, right, decision, decided_by, note)


def insert_decision(
    settings: Settings,
    wh: Warehouse,
    left: str,
    right: str,
    decision: str,
    decided_by: str | None = None,
    note: str | None = None,
    actor: str | None = None,
) -> None:
    """:func:`record_decision` on an open warehouse: the one path of every steward decision
    (``mdm review decide`` and the console's decisions, applied by the next run). ``actor``: the
    console's signed-in user (``user:NAME``) whose queued decision the pipeline applies; else the
    authenticated principal decided."""
    from customer_mdm.errors import MdmError

    if decision not in ("match", "no_match"):
        raise MdmError(f"decision must be match or no_match, not {decision!r}")
    if left == right:
        raise MdmError("a decision needs two different records")
    left, right = sorted((left, right))
    if not (wh.table_exists("mdm.steward_decisions") and wh.table_exists("mdm.link_state")):
        ensure_tables(wh)  # only when missing: a steward's role may insert decisions, not run DDL
    known = {r[0] for r in wh.query("select record_id from mdm.link_state where record_id in (?, ?)", [left, right])}
    missing = [r for r in (left, right) if r not in known]
    if missing:
        raise MdmError(f"unknown record(s) {', '.join(missing)}: use source:source_id as in `mdm review list`")
    from customer_mdm.audit import os_principal, record_steward_decision

    decided_at = _now()
    principal = str(wh.scalar("select session_user")) if wh.target == "postgres" else os_principal()
    stored = note
    if decided_by:  # a display note, never the actor
        stored = f"{note} (noted as: {decided_by})" if note else f"noted as: {decided_by}"
    with wh.transaction():
        wh.execute(
            "insert into mdm.steward_decisions (record_id_l, record_id_r, decision, decided_by, decided_at, note) "
            "values (?, ?, ?, ?, ?, ?)",
            [left, right, decision, actor or principal, decided_at, stored],
        )
        record_steward_decision(settings, wh, left, right, decision, decided_by, note, decided_at, actor=actor)
