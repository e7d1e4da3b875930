"""The daily steady state: data delivered over two days links as well as in one run.

The older CRM and shop batches arrive first, everything else the next day. The model trained on
the first delivery has never seen a call-centre ticket or a store card: the second run must
notice (customer_mdm.linkage.drift), retrain, say why in the run summary, and end with the same
persons as one run over everything."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from customer_mdm.config import Settings
from customer_mdm.linkage.drift import profile_of_records, retrain_reason
from customer_mdm.pipeline import new_run_id, run_inline, run_summary
from customer_mdm.warehouse import connect
from mdm_devtools.generate import generate_landing

PEOPLE = 400


def _profile(sources: dict[str, int], email_share: float = 0.8) -> dict:
    rows = []
    for source, n in sources.items():
        for i in range(n):
            rows.append(
                {"source": source, "name_pinyin": "wang wei", "email": "a@b.cn" if i < n * email_share else None}
            )
    return profile_of_records(pd.DataFrame(rows))


def test_retrain_reasons() -> None:
    trained = _profile({"crm": 100, "ecommerce": 100})
    assert retrain_reason(trained, _profile({"crm": 110, "ecommerce": 105})) is None  # daily growth
    assert "new source(s) callcenter" in (
        retrain_reason(trained, _profile({"crm": 100, "ecommerce": 100, "callcenter": 5})) or ""
    )
    assert "grew" in (retrain_reason(trained, _profile({"crm": 200, "ecommerce": 120})) or "")
    assert "crm.email shifted" in (retrain_reason(trained, _profile({"crm": 100, "ecommerce": 100}, 0.3)) or "")
    assert retrain_reason(None, trained) is None  # a model without a profile is left alone


def _partition(settings: Settings) -> set[frozenset[str]]:
    with connect(settings) as wh:
        x = wh.query_df("select record_id, golden_id from mdm.xref")
    return {frozenset(g["record_id"]) for _, g in x.groupby("golden_id")}


@pytest.mark.slow
def test_two_day_delivery_retrains_and_equals_one_run(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    generate_landing(landing, PEOPLE, seed=5, days=2)
    # day 1: the older CRM and shop batches only
    day1 = tmp_path / "day1"
    for folder in ("crm", "ecommerce"):
        shutil.copytree(landing / folder, day1 / folder)
    for path in list((day1 / "crm").iterdir()) + list((day1 / "ecommerce").iterdir()):
        if "2026-11-19" in path.name or "20261119" in path.name:
            path.unlink()
    home = tmp_path / "home"
    first = Settings.from_env(env={}, home=home, landing=day1)
    run_inline(first, new_run_id(), governance=False)
    # day 2: everything
    second = Settings.from_env(env={}, home=home, landing=landing)
    run_id = new_run_id()
    run_inline(second, run_id, governance=False)
    linkage = run_summary(second, run_id)["linkage"]
    assert linkage["model_trained_now"] is True
    assert "new source(s) callcenter, store_pos" in linkage["model_retrained"]
    assert linkage["mode"] == "full"
    # one run over everything gives the same persons
    once = Settings.from_env(env={}, home=tmp_path / "once", landing=landing)
    run_inline(once, new_run_id(), governance=False)
    assert _partition(second) == _partition(once)
