"""The link step in the pipeline: stable ids over reruns and new batches, steward decisions
honoured, history written, the cross-reference export, the golden table."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from customer_mdm.cli import main
from customer_mdm.config import Settings
from customer_mdm.linkage.evaluate import pairwise_scores
from customer_mdm.linkage.step import record_decision
from customer_mdm.pipeline import run_inline
from customer_mdm.warehouse import connect
from mdm_devtools.generate import generate_landing

PEOPLE = 800


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = tmp_path_factory.mktemp("link")
    generate_landing(base / "landing", PEOPLE, seed=21, days=2)
    s = Settings.from_env(env={}, home=base / "home", landing=base / "landing")
    run_inline(s, governance=False)
    return s


def xref(settings: Settings) -> pd.DataFrame:
    with connect(settings) as wh:
        return wh.query_df(
            "select record_id, source, source_id, golden_id, match_probability, assignment "
            "from mdm.xref order by record_id"
        )


def link_details(summary: dict) -> dict:
    return summary["steps"]["link"]


def test_first_run_links_every_record_well(settings: Settings):
    x = xref(settings)
    truth = pd.read_csv(settings.landing / "_truth" / "truth.csv", dtype=str)
    merged = x.merge(truth, on=["source", "source_id"], how="left", validate="1:1")
    assert merged["person_id"].notna().all()
    scores = pairwise_scores(
        merged[["record_id", "golden_id"]].set_axis(["record_key", "cluster_id"], axis=1),
        merged[["record_id", "person_id"]].set_axis(["record_key", "person_id"], axis=1),
    )
    assert scores["f1"] >= 0.95, scores
    assert set(x["assignment"]) <= {"model", "new", "steward"}
    assert (x.loc[x["assignment"] == "model", "match_probability"] >= 0.5).all()
    with connect(settings) as wh:
        assert wh.scalar("select count(*) from marts.dim_customer") == x["golden_id"].nunique()
        assert wh.scalar("select count(*) from marts.customer_xref") == len(x)
        assert (
            wh.scalar("select count(*) from mdm.golden_id_history where event = 'create'") == x["golden_id"].nunique()
        )
        sources = wh.query("select count(*) from marts.dim_customer where name_source_record is null")
        assert sources[0][0] < x["golden_id"].nunique() * 0.05  # nearly every person has a name with its origin
    assert (settings.models_dir / "linkage" / "current.json").exists()
    charts = settings.reports_dir / "linkage"
    assert (charts / "current_model_match_weights.html").exists()
    assert (charts / "current_model_m_u_parameters.html").exists()


def test_rerun_on_same_data_keeps_every_id(settings: Settings):
    before = xref(settings)
    summary = run_inline(settings, governance=False)
    details = link_details(summary)
    assert details["mode"] == "incremental" and details["delta_records"] == 0
    assert details["events"] == {}
    pd.testing.assert_frame_equal(xref(settings)[["record_id", "golden_id"]], before[["record_id", "golden_id"]])


def test_new_batch_joins_existing_people_and_steward_decisions_are_honoured(settings: Settings):
    before = xref(settings).set_index("record_id")["golden_id"]
    # a new CRM export: a second account of an existing person (copy of a record under a new id)
    crm_files = sorted((settings.landing / "crm").glob("*.csv"))
    with open(crm_files[-1], encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    template = rows[0]
    twin = dict(template, crm_id="C9000001")
    out = settings.landing / "crm" / "crm_2026-11-25.csv"
    with open(out, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(template))
        writer.writeheader()
        writer.writerow(twin)
    details = link_details(run_inline(settings, governance=False))
    assert details["mode"] == "incremental" and details["delta_records"] == 1
    after = xref(settings).set_index("record_id")["golden_id"]
    assert after[f"crm:{template['crm_id']}"] == before[f"crm:{template['crm_id']}"]
    assert after["crm:C9000001"] == after[f"crm:{template['crm_id']}"], "the new record joins the person"
    assert (after.drop("crm:C9000001") == before).all(), "nobody else changed id"

    # steward: the two are NOT the same person -> split; the id stays with the larger part (the
    # person's other records join whichever of the two identical accounts links more strongly)
    person = before[f"crm:{template['crm_id']}"]
    record_decision(settings, "crm:C9000001", f"crm:{template['crm_id']}", "no_match", "steward-a", "test")
    run_inline(settings, governance=False)
    split = xref(settings).set_index("record_id")
    ids = split.loc[["crm:C9000001", f"crm:{template['crm_id']}"], "golden_id"]
    assert ids.nunique() == 2
    part_sizes = split[split["golden_id"].isin(set(ids))].groupby("golden_id").size()
    assert part_sizes.idxmax() == person and part_sizes.max() > part_sizes.min(), part_sizes
    assert (
        split.drop(["crm:C9000001", f"crm:{template['crm_id']}"])["golden_id"]
        == before.drop(f"crm:{template['crm_id']}").reindex(
            split.index.drop(["crm:C9000001", f"crm:{template['crm_id']}"])
        )
    ).all()
    with connect(settings) as wh:
        assert wh.scalar("select count(*) from mdm.golden_id_history where event = 'split' and golden_id = ?", [person])

    # steward: two different people ARE the same -> merged under the older id, kept on later runs
    a, b = sorted(split.index[split["assignment"] == "new"])[:2]
    ids = split.loc[[a, b], "golden_id"]
    record_decision(settings, a, b, "match", "steward-b", "same customer, confirmed by phone")
    run_inline(settings, governance=False)
    merged = xref(settings).set_index("record_id")
    assert merged.loc[a, "golden_id"] == merged.loc[b, "golden_id"]
    assert merged.loc[a, "golden_id"] in set(ids)
    assert merged.loc[[a, b], "assignment"].eq("steward").all()
    with connect(settings) as wh:
        events = wh.query_df("select event, golden_id, other_golden_id from mdm.golden_id_history")
        registry = wh.query_df("select golden_id, status, merged_into from mdm.golden_registry").set_index("golden_id")
    survivor = merged.loc[a, "golden_id"]
    loser = next(g for g in ids if g != survivor)
    assert (
        (events["event"] == "merge") & (events["golden_id"] == survivor) & (events["other_golden_id"] == loser)
    ).any()
    assert registry.loc[loser, "status"] == "merged" and registry.loc[loser, "merged_into"] == survivor
    again = link_details(run_inline(settings, governance=False))
    assert xref(settings).set_index("record_id").loc[b, "golden_id"] == survivor
    assert again["events"] == {}


def test_export_xref_and_review_commands(settings: Settings, tmp_path: Path):
    env = settings.env()
    out = tmp_path / "xref.csv"
    result = CliRunner().invoke(main, ["export", "xref", "--out", str(out)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    exported = pd.read_csv(out, dtype=str)
    assert {"source", "source_id", "golden_id"} <= set(exported.columns)
    assert set(exported["source"]) <= {"crm", "ecommerce", "callcenter", "store_pos"}
    assert len(exported) == len(xref(settings))
    listing = CliRunner().invoke(main, ["review", "list", "--limit", "3"], env=env, catch_exceptions=False)
    assert listing.exit_code == 0 and "awaiting review" in listing.output
    bad = CliRunner().invoke(main, ["review", "decide", "crm:NOPE", "crm:NOPE2", "--match", "--by", "x"], env=env)
    assert bad.exit_code == 2 and "unknown record" in bad.output


def test_incremental_scoring_of_a_neighbourhood_equals_scoring_against_every_record(settings: Settings):
    """The incremental link step reads only the records a new one can be blocked with and term
    frequencies computed in SQL; the pairs must be those of scoring against every record."""
    from customer_mdm.linkage import step
    from customer_mdm.linkage.model import load_current
    from customer_mdm.linkage.predict import predict_incremental
    from customer_mdm.linkage.training import model_dir

    model = load_current(model_dir(settings))
    with connect(settings) as wh:
        records = step.read_records(wh)
        ids = wh.query_df("select record_id, golden_id from mdm.xref").set_index("record_id")["golden_id"]
        delta = records["record_key"].sample(n=25, random_state=3).tolist()
        delta_table = step._keys_table(wh, "_t_delta", delta)
        candidates = step._blocking_candidates(wh, delta_table) | set(delta)
        universe = step._keys_table(wh, "_t_universe", candidates)
        lookups = step._tf_lookups(wh, universe, delta_table)
        neighbourhood = step.read_records(wh, universe)
    assert len(neighbourhood) < len(records) / 4
    is_new = records["record_key"].isin(delta)
    everything = predict_incremental(records[is_new], records[~is_new], model, 0.2, entities=ids)
    is_new = neighbourhood["record_key"].isin(delta)
    local = predict_incremental(
        neighbourhood[is_new], neighbourhood[~is_new], model, 0.2, tf_lookups=lookups, n_records=len(records)
    )
    assert len(everything) > 10
    pd.testing.assert_frame_equal(local, everything, check_exact=False, rtol=1e-9)
