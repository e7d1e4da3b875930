"""Record linkage: the Splink model that finds the records of one real person.

``model``     settings (blocking rules + comparisons), training, the versioned model artefact
``predict``   scored candidate pairs and clusters with a giant-cluster guard
``evaluate``  exact pairwise precision / recall / F1 against a ground truth, cluster sizes

The input everywhere is ``intermediate.int_customer_records`` as a pandas DataFrame (one row
per source record, the standardised columns of its dbt contract).
"""

from __future__ import annotations

from customer_mdm.linkage.evaluate import cluster_size_stats, pairwise_scores, truth_for_records
from customer_mdm.linkage.model import (
    LinkageError,
    TrainedModel,
    add_term_frequencies,
    blocking_rules,
    build_settings,
    count_comparisons,
    load_current,
    prepare_records,
    save,
    train,
    write_charts,
)
from customer_mdm.linkage.predict import (
    DEFAULT_THRESHOLD,
    ClusterGuard,
    cluster,
    link_records,
    predict_incremental,
    predict_pairs,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "ClusterGuard",
    "LinkageError",
    "TrainedModel",
    "add_term_frequencies",
    "blocking_rules",
    "build_settings",
    "cluster",
    "cluster_size_stats",
    "count_comparisons",
    "link_records",
    "load_current",
    "pairwise_scores",
    "predict_incremental",
    "predict_pairs",
    "prepare_records",
    "save",
    "train",
    "truth_for_records",
    "write_charts",
]
