"""The real-world patterns of the landing contract, on small hand-made data with known truth:
bare-pinyin mailboxes shared by people of one name, a former number of the same record, dead
contacts, households' nameless records, and a review queue of real doubts only."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from customer_mdm.linkage.model import prepare_records
from customer_mdm.linkage.predict import cluster
from customer_mdm.linkage.step import _review_queue

BASE = {
    "source": "crm",
    "name_raw": "张伟",
    "name_std": "张伟",
    "name_script": "han",
    "name_pinyin": "zhang wei",
    "name_pinyin_fuzzy": "zang wei",
    "name_sorted_key": "wei zhang",
    "name_issue": None,
    "gender": None,
    "birth_date": None,
    "birth_year": None,
    "birth_month": None,
    "birth_day": None,
    "birth_precision": None,
    "phone_e164": None,
    "phone_kind": "mobile",
    "phone_valid": True,
    "email": None,
    "email_valid": True,
    "province": "上海市",
    "city": "上海市",
    "district": None,
    "street": None,
    "company_key": None,
    "phone_other": None,
    "phone_dead": False,
    "email_dead": False,
    "household_nameless": False,
    "record_year": 2026,
}


def _records(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{**BASE, **r} for r in rows])


def test_prepare_records_marks_name_mailboxes_and_other_numbers() -> None:
    p = prepare_records(
        _records(
            [
                {"record_key": "a", "email": "zhangwei@163.com"},
                {"record_key": "b", "email": "wei.zhang@qq.com"},
                {"record_key": "c", "email": "zhangwei88@qq.com"},
                {"record_key": "d", "email": "tiger1234@qq.com"},
                {"record_key": "e", "phone_e164": "+8613800000001", "phone_other": "+8613800000001"},
                {"record_key": "f", "phone_e164": "+8613800000001", "phone_other": "+8613900000002"},
            ]
        )
    ).set_index("record_key")
    assert p["email_is_name"].to_dict() == {"a": True, "b": True, "c": False, "d": False, "e": False, "f": False}
    assert pd.isna(p.loc["e", "phone_other"])  # the number it shows is no other number
    assert p.loc["f", "phone_other"] == "+8613900000002"


@pytest.fixture(scope="module")
def weights() -> dict[str, float]:
    """Match weights of hand-made pairs of one name in one city, under the model's comparisons
    with fixed, plausible m/u (the levels' order and the evidence columns are what is tested)."""
    from customer_mdm.linkage.model import TF_COLUMNS, TrainedModel, build_settings
    from customer_mdm.linkage.predict import predict_pairs

    settings = build_settings().create_settings_dict("duckdb")
    for comparison in settings["comparisons"]:
        levels = comparison["comparison_levels"]
        n = len([lv for lv in levels if not lv.get("is_null_level")])
        k = 0
        for lv in levels:
            if lv.get("is_null_level"):
                continue
            # the higher a level, the stronger (the else level is evidence against)
            lv.setdefault("m_probability", 0.9 if k == 0 else 0.02)
            lv.setdefault("u_probability", 0.5 if k == n - 1 else 10.0 ** -(6 - k * 4 / n))
            k += 1
    settings["probability_two_random_records_match"] = 1e-4
    model = TrainedModel(settings=settings, trained_at="", training_records=100, matches_per_record=1.0)
    rows = [
        {"record_key": "a1", "phone_e164": "+8613811112222"},
        {"record_key": "a2", "phone_e164": "+8615933334444"},
        {"record_key": "b1", "phone_e164": "+8613755556666"},
        {"record_key": "b2", "phone_e164": "+8618677778888", "phone_dead": True},
        {"record_key": "c1", "phone_e164": "+8613099990000"},
        {"record_key": "c2", "phone_e164": "+8617712123434", "phone_other": "+8613099990000"},
        {"record_key": "d1", "email": "zhangwei@163.com"},
        {"record_key": "d2", "email": "zhangwei@163.com"},
        {"record_key": "e1", "email": "tiger1234@163.com"},
        {"record_key": "e2", "email": "tiger1234@163.com"},
        {"record_key": "f1", "phone_e164": "+8613956567878", "record_year": 2018},
        {"record_key": "f2", "phone_e164": "+8618890901212"},
    ]
    records = prepare_records(_records(rows))
    for col in TF_COLUMNS:  # each value as rare as among many people (these rows share a name by design)
        records[f"tf_{col}"] = 1e-5
    pairs = predict_pairs(records, model, threshold_probability=0.0, refine_term_frequencies=False)
    w = {
        f"{a}-{b}": float(m)
        for a, b, m in pairs[["record_key_l", "record_key_r", "match_weight"]].itertuples(index=False)
    }
    return {k: w[f"{k}1-{k}2"] for k in "abcdef"}


def test_a_former_number_of_the_record_is_evidence_for(weights: dict[str, float]) -> None:
    assert weights["c"] > weights["a"] + 5  # c2 had c1's number: not a contradiction but a link


def test_a_dead_number_or_an_old_record_contradicts_less(weights: dict[str, float]) -> None:
    assert weights["b"] > weights["a"]
    assert weights["f"] > weights["a"]


def test_a_bare_pinyin_mailbox_is_weak_evidence(weights: dict[str, float]) -> None:
    # zhangwei@163.com is shared by different 张伟: much weaker than an arbitrary shared address
    assert weights["e"] > weights["d"] + 5
    assert weights["d"] > 0 or weights["d"] > weights["a"]


def test_a_households_nameless_record_is_left_alone() -> None:
    """Two named people of a household and a nameless shop account with the head's mobile and
    their address: linked by the model to the head, but which of them it is nobody knows."""
    rows = [
        {"record_key": "head", "name_std": "王伟", "name_pinyin": "wang wei", "name_sorted_key": "wang wei"},
        {"record_key": "kid", "name_std": "王芳", "name_pinyin": "wang fang", "name_sorted_key": "fang wang"},
        {
            "record_key": "shop",
            "name_std": None,
            "name_script": None,
            "name_pinyin": None,
            "name_pinyin_fuzzy": None,
            "name_sorted_key": None,
            "household_nameless": True,
        },
        {"record_key": "own", "name_std": None, "name_script": None, "name_pinyin": None, "name_pinyin_fuzzy": None},
    ]
    records = _records(rows)
    pairs = pd.DataFrame(
        {
            "record_key_l": ["head", "head", "kid"],
            "record_key_r": ["shop", "own", "shop"],
            "match_probability": [0.99, 0.99, 0.7],
            "match_weight": [20.0, 20.0, 5.0],
        }
    )
    c = cluster(records, pairs).set_index("record_key")["cluster_id"]
    assert c["shop"] == "shop"  # on its own
    assert c["own"] == c["head"]  # a nameless record that is not a household's still links
    must = pd.DataFrame({"record_key_l": ["kid"], "record_key_r": ["shop"]})
    c = cluster(records, pairs, must_link=must).set_index("record_key")["cluster_id"]
    assert c["shop"] == c["kid"]  # a steward's decision still joins it


def test_review_queue_holds_one_real_doubt_per_decision() -> None:
    xref = pd.DataFrame(
        {
            "record_id": ["a1", "a2", "a3", "b1", "c1", "d1", "d2"],
            "golden_id": ["A", "A", "A", "B", "C", "D", "D"],
            "match_probability": [0.99, 0.99, 0.6, None, None, 0.4, 0.4],
        }
    )
    pairs = pd.DataFrame(
        {
            "record_key_l": ["a1", "a2", "a1", "a1", "a2", "a1", "b1", "d1"],
            "record_key_r": ["a2", "a3", "a3", "b1", "b1", "c1", "c1", "d2"],
            "match_probability": [0.99, 0.6, 0.5, 0.45, 0.4, 0.6, 0.2, 0.4],
            "match_weight": [0.0] * 8,
        }
    )
    none = pd.DataFrame(columns=["record_key_l", "record_key_r"])
    q = _review_queue(pairs, xref, none, none, "run", datetime(2026, 12, 4))
    got = set(zip(q["record_id_l"], q["record_id_r"], strict=True))
    # a2-a3 holds a3 in A (the doubt); a1-a3 is settled by it; A-B once (the strongest pair);
    # a1-c1 above the threshold in two golden ids was kept apart by the guard; b1-c1 is no doubt;
    # d1-d2 holds d1 and d2 (their strongest link)
    assert got == {("a2", "a3"), ("a1", "b1"), ("d1", "d2")}
    decided = pd.DataFrame({"record_key_l": ["a2"], "record_key_r": ["a3"]})
    q = _review_queue(pairs, xref, decided, none, "run", datetime(2026, 12, 4))
    assert ("a2", "a3") not in set(zip(q["record_id_l"], q["record_id_r"], strict=True))
