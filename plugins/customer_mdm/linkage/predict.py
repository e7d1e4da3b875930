"""Scoring candidate pairs with a trained model and clustering them into people.

:func:`predict_pairs` scores the pairs the model's blocking rules generate (Splink
``linker.inference.predict``) in two passes: the clusters of the first pass are the "people"
whose values the term frequencies of the second pass count (see
:func:`customer_mdm.linkage.model.add_term_frequencies`). :func:`predict_incremental` scores
only what involves new or changed records (``predict_between`` existing, ``predict_within`` new).

:func:`cluster` turns pairs into clusters with a **giant-cluster guard**. Plain connected
components over pairwise links chain people together on Chinese data: 王伟 links to another 王伟
through a shared household landline, that one to a third through a parent's mobile, a family
mailbox joins a mother and her daughter, and so on. On the generator's data at 217k records
(100k people) plain connected components over this model's links at p >= 0.5 reach only 88.7 %
pairwise precision (components of up to 17 records); with the guard 98.5 % at about the same
recall (96.2 %), no cluster above 11 records. The guard:

1. only links at or above ``threshold`` (match probability) are used. The model's probabilities
   are calibrated enough (the prior is rescaled to the data size) that 0.5 -- a Bayes factor of
   about 2^17 against a prior of 1 in 130,000 at 217k records -- is the best F1 with the guard
   (F1 is flat between 0.3 and 0.6); raise it to 0.8-0.9 to trade about one point of recall
   for a third of the false merges;
2. connected components that are *suspect* -- more than ``max_cluster_size`` records; records
   whose birth dates conflict (two full dates that differ other than by a day/month swap, or a
   month-day that fits neither); both genders; two real names (optionally pinyin handles) that
   are not the same name in any spelling (sorted fuzzy pinyin differs: 王秀 and 王琳诗 sharing their
   mother's mobile, the family mailbox and the flat); a steward's cannot-link -- are re-clustered:
   their links are replayed strongest first (match weight, ties by record keys) and two groups
   are joined only if the result is still consistent and not larger than the limit
   (constrained single linkage, Kruskal-style). The weakest links, the ones that chained
   different people together, are the ones left out. Steward must-links are replayed first and
   always join.

Consistency is hereditary (a sub-group of a consistent group is consistent), so replaying every
component this way would give the same result as replaying only the suspect ones; that is what
makes the guard cheap. Everything is ordered by record key: the output is deterministic and does
not depend on the row order of the input.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from customer_mdm.linkage.model import (
    LINKAGE_COLUMNS,
    TF_COLUMNS,
    LinkageError,
    TrainedModel,
    add_term_frequencies,
    make_linker,
    prepare_records,
)

if TYPE_CHECKING:
    import duckdb

    from customer_mdm.linkage.engines import Engine

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PAIR_THRESHOLD",
    "DEFAULT_THRESHOLD",
    "PAIR_COLUMNS",
    "ClusterGuard",
    "cluster",
    "link_records",
    "predict_incremental",
    "predict_pairs",
]

PAIR_COLUMNS = ["record_key_l", "record_key_r", "match_probability", "match_weight"]
#: clustering threshold (match probability)
DEFAULT_THRESHOLD = 0.5
#: pairs below this are not returned by predict_pairs (they can never be clustered)
DEFAULT_PAIR_THRESHOLD = 0.5


@dataclass(frozen=True)
class ClusterGuard:
    """Limits a cluster must respect; see the module docstring."""

    max_cluster_size: int = 20
    birth_conflicts: bool = True
    gender_conflicts: bool = True
    #: two real names (not a handle, not 王先生) whose sorted fuzzy pinyin differs: different people
    name_conflicts: bool = True
    #: a record without a name that shares its phone or street with several differently named
    #: people (``household_nameless``, see customer_mdm.linkage.step.prepare_evidence) is not
    #: linked by the model: it is at most one of them, and the data does not say which
    households: bool = True
    #: pinyin handles (wangwei88) count as names for name conflicts too. On the generated data
    #: (where every pinyin handle is built from the real name) +0.2 F1 points; off by default
    #: because real handles are often not names (tianxia88) and would split a person.
    handle_names: bool = False


def predict_pairs(
    records: pd.DataFrame,
    model: TrainedModel,
    threshold_probability: float = DEFAULT_PAIR_THRESHOLD,
    con: duckdb.DuckDBPyConnection | None = None,
    refine_term_frequencies: bool = True,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """Scored candidate pairs (``record_key_l < record_key_r``) with ``match_probability`` at or
    above ``threshold_probability``, sorted by the two keys.

    The model's prior is rescaled to the number of records scored (see ``TrainedModel``).
    Term frequencies should count people, not records
    (:func:`~customer_mdm.linkage.model.add_term_frequencies`): a first pass scores with
    Splink's record-based frequencies, its clusters are the people of the second pass
    (``refine_term_frequencies``). Splink runs on ``engine`` (default DuckDB, see
    :mod:`customer_mdm.linkage.engines`); the pairs come back as pandas either way.
    """
    prepared = prepare_records(records)
    t0 = time.perf_counter()
    pairs = _score(prepared, model, threshold_probability, con, engine)
    if refine_term_frequencies:
        first = cluster(prepared, pairs, threshold=max(DEFAULT_THRESHOLD, threshold_probability))
        entities = pd.factorize(first["cluster_id"])[0]
        pairs = _score(add_term_frequencies(prepared, entities), model, threshold_probability, con, engine)
    log.info(
        "scored pairs for %d records in %.1f s: %d at p >= %s",
        len(prepared),
        time.perf_counter() - t0,
        len(pairs),
        threshold_probability,
    )
    return pairs


def _score(
    prepared: pd.DataFrame,
    model: TrainedModel,
    threshold: float,
    con: duckdb.DuckDBPyConnection | None,
    engine: Engine | None = None,
) -> pd.DataFrame:
    from customer_mdm.linkage.engines import DUCKDB

    engine = engine or DUCKDB
    linker = make_linker(prepared, model.settings_for(len(prepared)), con, engine=engine)
    df = linker.inference.predict(threshold_match_probability=threshold, warning_mode="never")
    pairs = engine.fetch(df, PAIR_COLUMNS)
    df.drop_table_from_database_and_remove_from_cache()
    engine.release(linker._db_api)
    return _tidy(pairs)


def predict_incremental(
    new_records: pd.DataFrame,
    existing_records: pd.DataFrame,
    model: TrainedModel,
    threshold_probability: float = DEFAULT_PAIR_THRESHOLD,
    con: duckdb.DuckDBPyConnection | None = None,
    entities: pd.Series | None = None,
    tf_lookups: dict[str, pd.DataFrame] | None = None,
    n_records: int | None = None,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """Pairs that involve a new (or changed) record: new x existing (Splink ``predict_between``)
    and new x new (``predict_within``); existing x existing pairs are not rescored.

    Term frequencies are computed over all records; ``entities`` (record_key -> cluster or golden
    id of the existing records) lets them count people, otherwise every record counts as one.
    Same columns and order as :func:`predict_pairs`.

    ``existing_records`` may be only the existing records a new one can be blocked with (the
    link step finds them in SQL) when ``tf_lookups`` (column -> frame ``[col, tf_col]``, computed
    over *all* records) and ``n_records`` (all records, for the prior) are given: the pairs and
    their scores are then the same as against every record. Splink runs on ``engine`` (default
    DuckDB).
    """
    from splink import Linker

    from customer_mdm.linkage.engines import DUCKDB

    engine = engine or DUCKDB

    if len(new_records) == 0:
        return pd.DataFrame({c: pd.Series(dtype=float if c.startswith("match") else str) for c in PAIR_COLUMNS})
    t0 = time.perf_counter()
    new_keys = set(new_records["record_key"].astype(str))
    existing_records = existing_records[~existing_records["record_key"].astype(str).isin(new_keys)]
    prepared = prepare_records(pd.concat([existing_records, new_records], ignore_index=True))
    if tf_lookups is None:
        if entities is not None:
            ent = prepared["record_key"].map(entities.astype(str))
            ent = ent.where(ent.notna() & ~prepared["record_key"].isin(new_keys), "record:" + prepared["record_key"])
            codes = pd.factorize(ent)[0]
        else:
            codes = np.arange(len(prepared))
        scored = add_term_frequencies(prepared, codes)
        tf_lookups = {
            col: scored[[col, f"tf_{col}"]].dropna().drop_duplicates(col).reset_index(drop=True) for col in TF_COLUMNS
        }
    base = prepared[list(LINKAGE_COLUMNS)]
    is_new = base["record_key"].isin(new_keys).to_numpy()
    db_api = engine.db_api(con)
    settings = engine.model_settings(model.settings_for(n_records or len(base)))
    linker = Linker(engine.register(db_api, base), settings, log_level=None)
    # predict_within / predict_between read term frequencies from registered lookups only
    for col in TF_COLUMNS:
        linker.table_management.register_term_frequency_lookup(engine.register(db_api, tf_lookups[col]), col)
    fresh = engine.register(db_api, base[is_new].reset_index(drop=True))
    old = engine.register(db_api, base[~is_new].reset_index(drop=True))
    parts = [
        linker.inference.predict_within(fresh, threshold_match_probability=threshold_probability, warning_mode="never")
    ]
    if (~is_new).any():
        parts.append(
            linker.inference.predict_between(
                fresh, old, threshold_match_probability=threshold_probability, warning_mode="never"
            )
        )
    frames = []
    for df in parts:
        frames.append(engine.fetch(df, PAIR_COLUMNS))
        df.drop_table_from_database_and_remove_from_cache()
    engine.release(db_api)
    pairs = _tidy(pd.concat(frames, ignore_index=True)).drop_duplicates(["record_key_l", "record_key_r"])
    log.info(
        "scored %d new records against %d existing in %.1f s: %d pairs at p >= %s",
        int(is_new.sum()),
        int((~is_new).sum()),
        time.perf_counter() - t0,
        len(pairs),
        threshold_probability,
    )
    return pairs.reset_index(drop=True)


def _tidy(pairs: pd.DataFrame) -> pd.DataFrame:
    """Keys as text with record_key_l < record_key_r, sorted by the keys."""
    pairs = pairs.copy()
    pairs["record_key_l"] = pairs["record_key_l"].astype(str)
    pairs["record_key_r"] = pairs["record_key_r"].astype(str)
    swap = (pairs["record_key_l"] > pairs["record_key_r"]).to_numpy()
    if swap.any():
        left = pairs["record_key_l"].to_numpy().copy()
        right = pairs["record_key_r"].to_numpy().copy()
        left[swap], right[swap] = right[swap], left[swap]
        pairs["record_key_l"], pairs["record_key_r"] = left, right
    pairs = pairs.sort_values(["record_key_l", "record_key_r"], kind="stable").reset_index(drop=True)
    return pairs[PAIR_COLUMNS]


# ============================================================================ clustering
def _attributes(records: pd.DataFrame, guard: ClusterGuard) -> pd.DataFrame:
    """Per record (sorted by key): birth year (full dates only), unordered month-day key, gender."""
    p = prepare_records(records)
    m = p["birth_month"].astype("Float64")
    d = p["birth_day"].astype("Float64")
    lo = np.fmin(m.to_numpy(dtype=float, na_value=np.nan), d.to_numpy(dtype=float, na_value=np.nan))
    hi = np.fmax(m.to_numpy(dtype=float, na_value=np.nan), d.to_numpy(dtype=float, na_value=np.nan))
    md = np.where(np.isnan(lo) | np.isnan(hi), -1, np.nan_to_num(lo) * 100 + np.nan_to_num(hi)).astype(np.int64)
    full = (p["birth_precision"] == "full").to_numpy()
    year = np.where(full, p["birth_year"].to_numpy(dtype=float, na_value=np.nan), np.nan)
    year = np.where(np.isnan(year), -1, year).astype(np.int64)
    gender = p["gender"].map({"M": 1, "F": 2}).fillna(0).astype(np.int64).to_numpy()
    scripts = ["han", "latin", "mixed", "pinyin_handle"] if guard.handle_names else ["han", "latin", "mixed"]
    real = p["name_script"].isin(scripts) & p["name_surname_only"].isna()
    fuzzy = p["name_pinyin_fuzzy"].where(real)
    key = fuzzy.map(lambda v: " ".join(sorted(v.split())) if isinstance(v, str) else None)
    name = pd.factorize(key, use_na_sentinel=True)[0].astype(np.int64)  # -1: no real name
    isolated = (
        p["household_nameless"].fillna(False).astype(bool).to_numpy() if guard.households else np.zeros(len(p), bool)
    )
    return pd.DataFrame(
        {
            "record_key": p["record_key"].to_numpy(),
            "md": md,
            "year": year,
            "gender": gender,
            "name": name,
            "isolated": isolated,
        }
    )


def _conflicting(labels: np.ndarray, attr: np.ndarray, unknown: int) -> np.ndarray:
    """Components (by label) in which ``attr`` takes more than one value other than ``unknown``."""
    known = attr != unknown
    if not known.any():
        return np.zeros(0, dtype=np.int64)
    df = pd.DataFrame({"c": labels[known], "v": attr[known]})
    nun = df.groupby("c", sort=False)["v"].nunique()
    return nun.index[nun.to_numpy() > 1].to_numpy()


def _pair_index(index: pd.Index, frame: pd.DataFrame | None, what: str) -> tuple[np.ndarray, np.ndarray]:
    if frame is None or len(frame) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    li = index.get_indexer(frame["record_key_l"].astype(str))
    ri = index.get_indexer(frame["record_key_r"].astype(str))
    known = (li >= 0) & (ri >= 0) & (li != ri)
    if not known.all():
        log.info("%d %s pair(s) name records that are not clustered now; ignored", int((~known).sum()), what)
    return li[known].astype(np.int64), ri[known].astype(np.int64)


def cluster(
    records: pd.DataFrame,
    pairs: pd.DataFrame,
    threshold: float = DEFAULT_THRESHOLD,
    guard: ClusterGuard | None = None,
    must_link: pd.DataFrame | None = None,
    cannot_link: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Cluster records from scored pairs; one row per record: ``record_key``, ``cluster_id``
    (the smallest record key of the cluster), ``cluster_size`` and ``guard_split`` (the record's
    connected component was re-clustered by the giant-cluster guard).

    ``must_link`` / ``cannot_link`` (``record_key_l``, ``record_key_r``): steward decisions. A
    must-link always joins its two records (before any model link, whatever the guard says); a
    cannot-link pair never ends up in one cluster.
    """
    guard = guard or ClusterGuard()
    if guard.max_cluster_size < 1:
        raise LinkageError("ClusterGuard.max_cluster_size must be at least 1")
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    t0 = time.perf_counter()
    attr = _attributes(records, guard)
    keys = attr["record_key"].to_numpy().astype(str)
    n = len(keys)
    index = pd.Index(keys)
    e = pairs.loc[pairs["match_probability"] >= threshold, PAIR_COLUMNS]
    li = index.get_indexer(e["record_key_l"].astype(str))
    ri = index.get_indexer(e["record_key_r"].astype(str))
    if (li < 0).any() or (ri < 0).any():
        raise LinkageError("pairs reference record keys that are not in records: predict and cluster the same records")
    w = e["match_weight"].to_numpy(dtype=float)
    isolated = attr["isolated"].to_numpy()
    if isolated.any():  # a household's nameless record: no model link (a steward's must-link still joins)
        keep = ~(isolated[li] | isolated[ri])
        li, ri, w = li[keep], ri[keep], w[keep]
    ml, mr = _pair_index(index, must_link, "must-link")
    cl, cr = _pair_index(index, cannot_link, "cannot-link")
    li = np.concatenate([ml, li.astype(np.int64)])
    ri = np.concatenate([mr, ri.astype(np.int64)])
    w = np.concatenate([np.full(len(ml), np.inf), w])
    graph = coo_matrix((np.ones(len(li), dtype=np.int8), (li, ri)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    labels = labels.astype(np.int64)

    sizes = np.bincount(labels) if n else np.zeros(0, dtype=np.int64)
    suspect = set(np.flatnonzero(sizes > guard.max_cluster_size).tolist())
    if guard.birth_conflicts:
        suspect.update(_conflicting(labels, attr["md"].to_numpy(), -1).tolist())
        suspect.update(_conflicting(labels, attr["year"].to_numpy(), -1).tolist())
    if guard.gender_conflicts:
        suspect.update(_conflicting(labels, attr["gender"].to_numpy(), 0).tolist())
    if guard.name_conflicts:
        suspect.update(_conflicting(labels, attr["name"].to_numpy(), -1).tolist())
    suspect.update(labels[cl[labels[cl] == labels[cr]]].tolist())

    split = np.zeros(n, dtype=bool)
    if suspect:
        sus = np.array(sorted(suspect), dtype=np.int64)
        in_sus = np.isin(labels[li], sus)
        nodes = np.flatnonzero(np.isin(labels, sus))
        split[nodes] = True
        in_c = np.isin(labels[cl], sus)
        labels = _constrained_relink(
            labels, nodes, li[in_sus], ri[in_sus], w[in_sus], attr, guard, int(labels.max()) + 1, cl[in_c], cr[in_c]
        )

    # cluster id: the smallest key of the cluster (keys are sorted, so the first index)
    first = pd.Series(np.arange(n)).groupby(labels).transform("min").to_numpy() if n else np.zeros(0, dtype=int)
    out = pd.DataFrame({"record_key": keys, "cluster_id": keys[first]})
    out["cluster_size"] = out.groupby("cluster_id")["record_key"].transform("size").astype(np.int64)
    out["guard_split"] = split
    log.info(
        "clustered %d records into %d clusters in %.2f s (%d links >= %s, %d must-link, %d cannot-link; guard "
        "re-clustered %d components, %d records; largest cluster %d)",
        n,
        out["cluster_id"].nunique(),
        time.perf_counter() - t0,
        len(li) - len(ml),
        threshold,
        len(ml),
        len(cl),
        len(suspect),
        int(split.sum()),
        int(out["cluster_size"].max()) if n else 0,
    )
    return out


def _constrained_relink(
    labels: np.ndarray,
    nodes: np.ndarray,
    li: np.ndarray,
    ri: np.ndarray,
    w: np.ndarray,
    attr: pd.DataFrame,
    guard: ClusterGuard,
    next_label: int,
    cl: np.ndarray,
    cr: np.ndarray,
) -> np.ndarray:
    """Re-cluster ``nodes`` from their links, strongest first, joining only consistent groups.

    Must-links (weight +inf) come first and always join; cannot-link pairs ``(cl, cr)`` never do.
    """
    parent = {int(v): int(v) for v in nodes}
    size = dict.fromkeys(parent, 1)
    tables = []  # (per-group value, unknown value, enabled)
    for col, unknown, on in (
        ("md", -1, guard.birth_conflicts),
        ("year", -1, guard.birth_conflicts),
        ("gender", 0, guard.gender_conflicts),
        ("name", -1, guard.name_conflicts),
    ):
        values = attr[col].to_numpy()
        tables.append(({v: int(values[v]) for v in parent}, unknown, on))
    # cannot-links: per group, the records it must not contain and its members that have such a rule
    forbid: dict[int, set[int]] = {}
    constrained: dict[int, set[int]] = {}
    for x, y in zip(cl.tolist(), cr.tolist(), strict=True):
        forbid.setdefault(x, set()).add(y)
        forbid.setdefault(y, set()).add(x)
        constrained.setdefault(x, {x})
        constrained.setdefault(y, {y})

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    # strongest first; ties broken by the (sorted) record positions -> deterministic
    order = np.lexsort((ri, li, -w))
    for k in order:
        a, b = find(int(li[k])), find(int(ri[k]))
        if a == b:
            continue
        if w[k] != np.inf:  # a model link: the guard applies
            if size[a] + size[b] > guard.max_cluster_size:
                continue
            if any(on and t[a] != unknown and t[b] != unknown and t[a] != t[b] for t, unknown, on in tables):
                continue
            if (forbid.get(a) and constrained.get(b) and forbid[a] & constrained[b]) or (
                forbid.get(b) and constrained.get(a) and forbid[b] & constrained[a]
            ):
                continue
        if b < a:
            a, b = b, a
        parent[b] = a
        size[a] += size[b]
        for t, unknown, _ in tables:
            if t[a] == unknown:
                t[a] = t[b]
        if b in forbid:
            forbid.setdefault(a, set()).update(forbid.pop(b))
        if b in constrained:
            constrained.setdefault(a, set()).update(constrained.pop(b))
    new = labels.copy()
    roots = np.array([find(int(v)) for v in nodes], dtype=np.int64)
    new[nodes] = next_label + roots  # roots are record positions: unique and disjoint from old labels
    return new


def link_records(
    records: pd.DataFrame,
    model: TrainedModel,
    threshold: float = DEFAULT_THRESHOLD,
    guard: ClusterGuard | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    engine: Engine | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predict and cluster in one call: ``(pairs, clusters)``."""
    pairs = predict_pairs(
        records, model, threshold_probability=min(DEFAULT_PAIR_THRESHOLD, threshold), con=con, engine=engine
    )
    return pairs, cluster(records, pairs, threshold=threshold, guard=guard)
