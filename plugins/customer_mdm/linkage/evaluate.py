"""Exact pairwise evaluation of clusters against a ground truth, and cluster size statistics.

Pairs are counted from group sizes, never enumerated: with ``n`` records in a group there are
``n (n - 1) / 2`` pairs, so

* predicted pairs  = sum over clusters            of C(size, 2)
* true pairs       = sum over people              of C(size, 2)
* true positives   = sum over (cluster, person)   of C(size, 2)

which is exact and O(records). Only records present in both tables are scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["cluster_size_stats", "pairwise_scores", "truth_for_records"]


def _pairs(sizes: pd.Series | np.ndarray) -> int:
    s = np.asarray(sizes, dtype=np.int64)
    return int((s * (s - 1) // 2).sum())


def pairwise_scores(clusters: pd.DataFrame, truth: pd.DataFrame) -> dict[str, Any]:
    """Pairwise precision, recall and F1 of ``clusters`` (record_key, cluster_id) against
    ``truth`` (record_key, person_id).

    Returns ``precision, recall, f1, true_pairs, predicted_pairs, true_positive_pairs, records``.
    With no predicted pairs precision is 1.0; with no true pairs recall is 1.0.
    """
    c = clusters[["record_key", "cluster_id"]].astype({"record_key": str})
    t = truth[["record_key", "person_id"]].astype({"record_key": str})
    if c["record_key"].duplicated().any() or t["record_key"].duplicated().any():
        raise ValueError("record_key must be unique in clusters and in truth")
    j = c.merge(t, on="record_key", how="inner")
    predicted = _pairs(j.groupby("cluster_id", sort=False).size())
    true = _pairs(j.groupby("person_id", sort=False).size())
    tp = _pairs(j.groupby(["cluster_id", "person_id"], sort=False).size())
    precision = tp / predicted if predicted else 1.0
    recall = tp / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_pairs": true,
        "predicted_pairs": predicted,
        "true_positive_pairs": tp,
        "records": len(j),
    }


def cluster_size_stats(clusters: pd.DataFrame, limit: int = 20) -> dict[str, Any]:
    """Sizes of the clusters: counts, largest, mean, percentiles, a histogram and how many exceed ``limit``."""
    sizes = clusters.groupby("cluster_id", sort=False).size().to_numpy()
    if len(sizes) == 0:
        return {
            "records": 0,
            "clusters": 0,
            "singletons": 0,
            "max_size": 0,
            "mean_size": 0.0,
            "p99_size": 0.0,
            "over_limit": 0,
            "histogram": {},
        }
    hist = pd.Series(np.minimum(sizes, limit + 1)).value_counts().sort_index()
    return {
        "records": int(sizes.sum()),
        "clusters": len(sizes),
        "singletons": int((sizes == 1).sum()),
        "max_size": int(sizes.max()),
        "mean_size": float(sizes.mean()),
        "p99_size": float(np.percentile(sizes, 99)),
        "over_limit": int((sizes > limit).sum()),
        "histogram": {(f">{limit}" if k > limit else str(k)): int(v) for k, v in hist.items()},
    }


def truth_for_records(records: pd.DataFrame, truth: pd.DataFrame | str | Path) -> pd.DataFrame:
    """``record_key, person_id`` for the records, from the generator's truth
    (``<landing>/_truth/truth.csv``: source, source_id, person_id) joined on (source, source_id)."""
    if not isinstance(truth, pd.DataFrame):
        truth = pd.read_csv(truth, dtype=str)
    t = truth[["source", "source_id", "person_id"]].astype(str).drop_duplicates(["source", "source_id"])
    r = records[["record_key", "source", "source_id"]].astype(str)
    return r.merge(t, on=["source", "source_id"], how="inner")[["record_key", "person_id"]]
