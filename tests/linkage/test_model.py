"""The Splink linkage model: settings, training and the model artefact, prediction, the
giant-cluster guard and the evaluation maths.

Real input: ~2,000 generated people (~4,300 records) taken through ingestion, dbt staging, the
standardiser and ``int_customer_records`` once per module; the model is trained on them once.
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from customer_mdm.config import Settings
from customer_mdm.linkage.evaluate import cluster_size_stats, pairwise_scores, truth_for_records
from customer_mdm.linkage.model import (
    LinkageError,
    TrainedModel,
    build_settings,
    count_comparisons,
    load_current,
    prepare_records,
    save,
    train,
)
from customer_mdm.linkage.predict import ClusterGuard, cluster, predict_incremental, predict_pairs

PEOPLE = 2000


# ----------------------------------------------------------------------------- fixtures
def _build_records(tmp: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate a landing zone and build intermediate.int_customer_records from it (no dbt tests)."""
    from customer_mdm.dbt import run_dbt
    from customer_mdm.pipeline import ingest_step, new_run_id, start_run
    from customer_mdm.sources import FEEDS
    from customer_mdm.standardize.step import standardize
    from customer_mdm.warehouse import connect
    from mdm_devtools.generate import generate_landing

    landing = tmp / "landing"
    generate_landing(landing, PEOPLE, seed=11)
    settings = Settings.from_env(env={}, home=tmp / "home", landing=landing)
    run_id = new_run_id()
    start_run(settings, run_id)
    for f in FEEDS:
        ingest_step(settings, run_id, f.name)
    run_dbt(settings, "build", ["--select", "tag:staging", "--exclude-resource-type", "test"])
    standardize(settings)
    run_dbt(settings, "run", ["--select", "int_customer_records"])
    with connect(settings) as wh:
        records = wh.query_df("select * from intermediate.int_customer_records")
    truth = truth_for_records(records, landing / "_truth" / "truth.csv")
    return records, truth


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    return _build_records(tmp_path_factory.mktemp("linkage"))


@pytest.fixture(scope="module")
def records(generated: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return generated[0]


@pytest.fixture(scope="module")
def truth(generated: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return generated[1]


#: fewer u-sampling pairs than production (3e6) keep the module fast; determinism is the same
U_PAIRS = 1e6


@pytest.fixture(scope="module")
def model(records: pd.DataFrame) -> TrainedModel:
    return train(records, u_max_pairs=U_PAIRS)


@pytest.fixture(scope="module")
def pairs(records: pd.DataFrame, model: TrainedModel) -> pd.DataFrame:
    return predict_pairs(records, model)


# ----------------------------------------------------------------------------- settings
def test_settings_build() -> None:
    d = build_settings().create_settings_dict("duckdb")
    assert d["link_type"] == "dedupe_only"
    assert d["unique_id_column_name"] == "record_key"
    names = [c["output_column_name"] for c in d["comparisons"]]
    assert names == ["name", "phone", "email", "birth", "gender", "address", "company"]
    tf = {lv.get("tf_adjustment_column") for c in d["comparisons"] for lv in c["comparison_levels"]}
    assert {"phone_e164", "email", "name_pinyin", "name_std", "street", "company_key"} <= tf
    rules = [r["blocking_rule"] for r in d["blocking_rules_to_generate_predictions"]]
    assert any("phone_e164" in r for r in rules) and any("email" in r for r in rules)
    assert all("=" in r for r in rules)  # equi-joins only: the pair count grows with N, not N^2


def test_prepare_records_derives_match_keys() -> None:
    base = {
        "phone_valid": True,
        "email_valid": True,
        "birth_precision": None,
        "birth_date": None,
        "birth_year": None,
        "birth_month": None,
        "birth_day": None,
        "name_issue": None,
        "gender": None,
    }
    rows = [
        {
            **base,
            "record_key": "b",
            "name_raw": "王先生",
            "name_std": "王",
            "name_script": "han",
            "name_pinyin": "wang",
            "name_issue": "honorific",
            "phone_e164": "+8613800000000",
            "phone_valid": False,
            "email": "x@qq.com",
            "email_valid": False,
        },
        {
            **base,
            "record_key": "a",
            "name_raw": "王怡",
            "name_std": "王怡",
            "name_script": "han",
            "name_pinyin": "wang yi",
            "email": "yi.wang@qq.com",
            "birth_precision": "month_day",
            "birth_year": 1990,
            "birth_month": 3,
            "birth_day": 7,
        },
        {**base, "record_key": "c", "name_script": "pinyin_handle", "name_pinyin": "xiao wang", "phone_e164": None},
    ]
    p = prepare_records(pd.DataFrame(rows)).set_index("record_key")
    assert list(p.index) == ["a", "b", "c"]  # sorted by key
    assert p.loc["b", "gender"] == "M" and p.loc["b", "name_surname_only"] == "wang"
    assert pd.isna(p.loc["b", "phone_e164"]) and pd.isna(p.loc["b", "email"])  # invalid -> no evidence
    assert p.loc["a", "name_compact"] == "wangyi" and p.loc["a", "name_compact_rev"] == "yiwang"
    assert p.loc["a", "email_alpha"] == "yiwang"
    assert pd.isna(p.loc["a", "birth_year"]) and p.loc["a", "birth_precision"] == "month_day"
    assert p.loc["c", "name_surname_only"] == "wang"  # xiaowang88: a diminutive, surname only


def test_blocking_rules_are_bounded(records: pd.DataFrame) -> None:
    counts = count_comparisons(records)
    assert len(counts) == len(build_settings().blocking_rules_to_generate_predictions)
    # a handful of candidate pairs per record, not a quadratic blow-up
    assert counts["cumulative_comparison_count"].iloc[-1] < 5 * len(records)


# ----------------------------------------------------------------------------- artefact
def test_train_save_load_round_trip(model: TrainedModel, records: pd.DataFrame, tmp_path: Path) -> None:
    first = save(model, tmp_path)
    second = save(model, tmp_path)
    assert (first.name, second.name) == ("linkage_model_v1.json", "linkage_model_v2.json")
    current = json.loads((tmp_path / "current.json").read_text())
    assert current["version"] == 2 and current["file"] == "linkage_model_v2.json"
    assert current["training_records"] == len(records)
    assert current["content_hash"] == model.content_hash and model.content_hash.startswith("sha256:")
    assert (tmp_path / "linkage_model_v2_match_weights.html").stat().st_size > 0
    assert (tmp_path / "linkage_model_v2_m_u_parameters.html").stat().st_size > 0

    loaded = load_current(tmp_path)
    assert loaded.version == 2 and loaded.settings == model.settings
    assert loaded.content_hash == model.content_hash
    assert loaded.matches_per_record == pytest.approx(model.matches_per_record)

    # the model file is a plain Splink model; a changed file is refused
    path = tmp_path / "linkage_model_v2.json"
    path.write_text(path.read_text().replace('"max_iterations": 25', '"max_iterations": 26'))
    with pytest.raises(LinkageError, match="content hash"):
        load_current(tmp_path)
    with pytest.raises(LinkageError, match="train one first"):
        load_current(tmp_path / "empty")


def test_training_is_deterministic(model: TrainedModel, records: pd.DataFrame) -> None:
    again = train(records.sample(frac=1.0, random_state=3), u_max_pairs=U_PAIRS)  # row order must not matter
    assert again.content_hash == model.content_hash


# ----------------------------------------------------------------------------- prediction
def test_predict_and_cluster_are_deterministic(records: pd.DataFrame, model: TrainedModel, pairs: pd.DataFrame) -> None:
    assert list(pairs.columns) == ["record_key_l", "record_key_r", "match_probability", "match_weight"]
    assert (pairs["record_key_l"] < pairs["record_key_r"]).all()
    again = predict_pairs(records.sample(frac=1.0, random_state=7), model)
    pd.testing.assert_frame_equal(pairs, again)
    first = cluster(records, pairs)
    second = cluster(records.sample(frac=1.0, random_state=5), again.sample(frac=1.0, random_state=9))
    pd.testing.assert_frame_equal(first, second)
    assert set(first["record_key"]) == set(records["record_key"])


def test_f1_on_generated_people(records: pd.DataFrame, truth: pd.DataFrame, pairs: pd.DataFrame) -> None:
    clusters = cluster(records, pairs)
    scores = pairwise_scores(clusters, truth)
    assert scores["f1"] >= 0.95, scores
    assert scores["precision"] >= 0.95, scores
    assert cluster_size_stats(clusters)["over_limit"] == 0


def test_incremental_matches_a_full_run(
    records: pd.DataFrame, truth: pd.DataFrame, model: TrainedModel, pairs: pd.DataFrame
) -> None:
    new = records.sample(frac=0.1, random_state=1)
    old = records[~records["record_key"].isin(new["record_key"])]
    fresh = predict_incremental(new, old, model)
    keys = set(new["record_key"])
    assert (fresh["record_key_l"].isin(keys) | fresh["record_key_r"].isin(keys)).all()
    kept = pairs[~pairs["record_key_l"].isin(keys) & ~pairs["record_key_r"].isin(keys)]
    full = pairwise_scores(cluster(records, pairs), truth)["f1"]
    incremental = pairwise_scores(cluster(records, pd.concat([kept, fresh])), truth)["f1"]
    assert incremental >= full - 0.01


# ----------------------------------------------------------------------------- the guard
def _wang_wei(people: int = 300, phones: int = 5, duplicated: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``people`` different 王伟 in Shanghai sharing ``phones`` household numbers, each with his own
    birth date (days 13-28: no two are a day/month swap of each other); ``duplicated`` of them have
    a second record (same date, same phone)."""
    rows, truth = [], []
    numbers = [f"+86216123456{i}" for i in range(phones)]
    for i in range(people):
        born = pd.Timestamp(year=1950 + i // 192, month=1 + i % 12, day=13 + (i // 12) % 16)
        for copy in range(2 if i < duplicated else 1):
            key = f"test:wangwei:{i:03d}:{copy}"
            rows.append(
                {
                    "record_key": key,
                    "source": "crm",
                    "source_id": key,
                    "name_raw": "王伟",
                    "name_std": "王伟",
                    "name_script": "han",
                    "name_pinyin": "wang wei",
                    "name_pinyin_fuzzy": "wan wei",
                    "name_sorted_key": "wang wei",
                    "name_issue": None,
                    "gender": "M",
                    "birth_date": born,
                    "birth_year": born.year,
                    "birth_month": born.month,
                    "birth_day": born.day,
                    "birth_precision": "full",
                    "phone_e164": numbers[i % phones],
                    "phone_kind": "landline",
                    "phone_valid": True,
                    "email": None,
                    "email_valid": None,
                    "province": "上海市",
                    "city": "上海市",
                    "district": ["浦东新区", "闵行区"][i % 2],
                    "street": None,
                    "company_key": None,
                }
            )
            truth.append({"record_key": key, "person_id": f"W{i}"})
    return pd.DataFrame(rows), pd.DataFrame(truth)


def test_guard_splits_a_naive_chain() -> None:
    """Links a naive model gives every pair sharing name + household phone: the guard must cut."""
    wang, truth = _wang_wei()
    p = prepare_records(wang)
    edges = []
    for _, group in p.groupby("phone_e164"):
        keys = sorted(group["record_key"])
        edges += [(a, b) for a, b in combinations(keys, 2)]
    naive = pd.DataFrame(edges, columns=["record_key_l", "record_key_r"])
    same = naive["record_key_l"].str.rsplit(":", n=1).str[0] == naive["record_key_r"].str.rsplit(":", n=1).str[0]
    naive["match_probability"] = np.where(same, 0.9999, 0.995)
    naive["match_weight"] = np.where(same, 20.0, 12.0)

    plain = cluster(
        wang,
        naive,
        threshold=0.99,
        guard=ClusterGuard(max_cluster_size=10**6, birth_conflicts=False, gender_conflicts=False, name_conflicts=False),
    )
    assert plain["cluster_size"].max() >= 60  # the failure mode the guard exists for
    assert pairwise_scores(plain, truth)["precision"] < 0.1

    guarded = cluster(wang, naive, threshold=0.99)
    assert guarded["cluster_size"].max() <= ClusterGuard().max_cluster_size
    scores = pairwise_scores(guarded, truth)
    assert scores["precision"] >= 0.95 and scores["recall"] >= 0.95, scores

    size_only = cluster(wang, naive, threshold=0.99, guard=ClusterGuard(birth_conflicts=False))
    assert size_only["cluster_size"].max() <= 20


def test_guard_with_the_trained_model(records: pd.DataFrame, model: TrainedModel) -> None:
    """300 王伟 with shared household phones among real records: no giant cluster, no false merge."""
    wang, truth = _wang_wei()
    both = pd.concat([records, wang], ignore_index=True)
    clusters = cluster(both, predict_pairs(both, model))
    ours = clusters[clusters["record_key"].isin(wang["record_key"])]
    assert ours["cluster_size"].max() <= ClusterGuard().max_cluster_size
    scores = pairwise_scores(ours, truth)
    assert scores["precision"] >= 0.95, scores


def test_steward_decisions_override_the_model(records: pd.DataFrame, pairs: pd.DataFrame) -> None:
    strong = pairs[pairs["match_probability"] > 0.999].head(5)[["record_key_l", "record_key_r"]]
    keys = sorted(records["record_key"])
    apart = pd.DataFrame({"record_key_l": [keys[0]], "record_key_r": [keys[-1]]})
    c = cluster(records, pairs, must_link=apart, cannot_link=strong).set_index("record_key")["cluster_id"]
    assert all(c[a] != c[b] for a, b in strong.itertuples(index=False))
    assert c[keys[0]] == c[keys[-1]]


# ----------------------------------------------------------------------------- evaluation
def test_pairwise_scores_hand_made() -> None:
    clusters = pd.DataFrame({"record_key": list("123456"), "cluster_id": list("AAABBC")})
    truth = pd.DataFrame({"record_key": list("123456"), "person_id": list("PPQQQR")})
    s = pairwise_scores(clusters, truth)
    # predicted pairs 12 13 23 45; true pairs 12 34 35 45; both: 12 45
    assert (s["predicted_pairs"], s["true_pairs"], s["true_positive_pairs"]) == (4, 4, 2)
    assert s["precision"] == s["recall"] == s["f1"] == pytest.approx(0.5)
    assert pairwise_scores(truth.rename(columns={"person_id": "cluster_id"}), truth)["f1"] == 1.0
    singles = pd.DataFrame({"record_key": list("123456"), "cluster_id": list("123456")})
    s = pairwise_scores(singles, truth)
    assert (s["precision"], s["recall"], s["f1"]) == (1.0, 0.0, 0.0)


def test_pairwise_scores_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    n = 300
    clusters = pd.DataFrame({"record_key": [f"r{i}" for i in range(n)], "cluster_id": rng.integers(0, 60, n)})
    truth = pd.DataFrame({"record_key": [f"r{i}" for i in range(n)], "person_id": rng.integers(0, 50, n)})
    c, t = clusters["cluster_id"].to_numpy(), truth["person_id"].to_numpy()
    pred = {(i, j) for i, j in combinations(range(n), 2) if c[i] == c[j]}
    true = {(i, j) for i, j in combinations(range(n), 2) if t[i] == t[j]}
    s = pairwise_scores(clusters, truth)
    assert (s["predicted_pairs"], s["true_pairs"], s["true_positive_pairs"]) == (len(pred), len(true), len(pred & true))


def test_cluster_size_stats() -> None:
    stats = cluster_size_stats(pd.DataFrame({"record_key": list("abcdef"), "cluster_id": list("xxxyyz")}), limit=2)
    assert stats["clusters"] == 3 and stats["max_size"] == 3 and stats["singletons"] == 1
    assert stats["over_limit"] == 1 and stats["histogram"] == {"1": 1, "2": 1, ">2": 1}
