"""The data-quality scorecard: its numbers against the generator's known dirt and independent
pandas computations, its history over runs, and the same results on PostgreSQL."""

from __future__ import annotations

import re
from datetime import datetime

import pandas as pd
import pytest
from governance_build import Built

from customer_mdm.config import Settings
from customer_mdm.governance import compute_scorecard, read_history, record_scorecard, write_report
from customer_mdm.governance.scorecard import (
    COLUMNS,
    DIMENSIONS,
    HISTORY_TABLE,
    LATEST_VIEW,
    METRICS,
    ensure_history_table,
)
from customer_mdm.warehouse import connect

SOURCES = {"crm", "ecommerce", "callcenter", "store_pos"}


@pytest.fixture(scope="module")
def card(gov: Built) -> pd.DataFrame:
    return compute_scorecard(gov.settings, "run_check")


def metric(card: pd.DataFrame, scope: str, dimension: str, name: str) -> pd.Series:
    rows = card[(card["scope"] == scope) & (card["dimension"] == dimension) & (card["metric"] == name)]
    assert len(rows) == 1, (scope, dimension, name, len(rows))
    return rows.iloc[0]


def test_long_format_every_dimension_per_source_and_overall(card: pd.DataFrame):
    assert list(card.columns) == COLUMNS
    assert set(card["dimension"]) == set(DIMENSIONS)
    assert set(card["scope"]) == SOURCES | {"overall"}
    assert (card["run_id"] == "run_check").all() and card["measured_at"].nunique() == 1
    assert card["value"].between(0, 1).all()
    assert (card["value"] == card["numerator"] / card["denominator"]).all()
    assert not card.duplicated(["scope", "dimension", "metric"]).any()
    known = {(m.dimension, m.name) for m in METRICS}
    assert set(zip(card["dimension"], card["metric"], strict=True)) <= known
    for dim in DIMENSIONS:  # every headline exists overall
        head = next(m.name for m in METRICS if m.dimension == dim and m.headline)
        metric(card, "overall", dim, head)


def _digits_valid(raw: str) -> bool:
    """An independent reading of the generator's phones: an 11-digit mobile 1[3-9]... or a landline."""
    text = raw.translate({0xFF10 + i: 0x30 + i for i in range(10)})
    digits = re.sub(r"\D", "", text)
    digits = re.sub(r"^(0086|86)(?=1\d{10}$)", "", digits)
    return bool(re.fullmatch(r"1[3-9]\d{9}", digits) or re.fullmatch(r"0[1-9]\d{8,10}", digits))


def test_validity_matches_the_injected_dirt(gov: Built, card: pd.DataFrame):
    phones = gov.query("select source, phone_raw from intermediate.int_customer_records where phone_raw is not null")
    phones["valid"] = phones["phone_raw"].map(_digits_valid)
    overall = metric(card, "overall", "validity", "phone")
    invalid_share = 1 - overall["value"]
    assert 0.005 <= invalid_share <= 0.03, "the generator injects ~1.5 % invalid numbers"
    assert overall["denominator"] == len(phones)
    assert abs(overall["value"] - phones["valid"].mean()) <= 0.003
    for source, group in phones.groupby("source"):
        assert abs(metric(card, source, "validity", "phone")["value"] - group["valid"].mean()) <= 0.01
    # emails only get correctable domain typos (qq.con, 163.cm): all valid after correction
    assert metric(card, "overall", "validity", "email")["value"] >= 0.99


def test_uniqueness_matches_the_true_people(gov: Built, card: pd.DataFrame):
    truth = gov.truth
    true_rate = 1 - truth["person_id"].nunique() / len(truth)
    before = metric(card, "overall", "uniqueness", "duplicate_rate_before_linkage")
    assert before["denominator"] == len(truth)  # every current person record, once
    assert abs(before["value"] - true_rate) <= 0.02, (before["value"], true_rate)
    for source, group in truth.groupby("source"):
        true_source_rate = 1 - group["person_id"].nunique() / len(group)
        got = metric(card, source, "uniqueness", "duplicate_rate_before_linkage")["value"]
        assert abs(got - true_source_rate) <= 0.03, (source, got, true_source_rate)
    after = metric(card, "overall", "uniqueness", "duplicate_rate_after_linkage")
    assert (
        after["value"] == 0
        and after["denominator"] == gov.query("select count(*) as n from marts.dim_customer")["n"][0]
    )


def test_completeness_accuracy_consistency_timeliness_recomputed(gov: Built, card: pd.DataFrame):
    records = gov.query(
        "select r.*, x.golden_id from intermediate.int_customer_records as r "
        "inner join marts.customer_xref as x on x.source = r.source and x.source_id = r.source_id"
    )
    # completeness: the CRM's gender and the shop's real names as delivered
    crm = records[records["source"] == "crm"]
    assert metric(card, "crm", "completeness", "gender")["value"] == pytest.approx(crm["gender_raw"].notna().mean())
    shop = records[records["source"] == "ecommerce"]
    assert metric(card, "ecommerce", "completeness", "name")["value"] == pytest.approx(shop["name_raw"].notna().mean())

    # accuracy: the last event of every record contact
    events = gov.query("select channel, contact_value, event, occurred_at_utc from intermediate.int_contact_events")
    last = (
        events.dropna(subset=["contact_value"])
        .sort_values(["occurred_at_utc", "event"], ascending=[False, True])
        .drop_duplicates(["channel", "contact_value"])
    )
    contacts = pd.concat(
        [
            records.dropna(subset=["phone_e164"]).assign(channel="phone", contact_value=lambda d: d["phone_e164"]),
            records.dropna(subset=["email"]).assign(channel="email", contact_value=lambda d: d["email"]),
        ]
    ).merge(last, on=["channel", "contact_value"], how="left")
    outcome = contacts[contacts["event"].isin(["verified", "bounced", "unreachable"])]
    verified = metric(card, "overall", "accuracy", "contacts_verified")
    assert verified["denominator"] == len(outcome) > 0
    assert verified["numerator"] == (outcome["event"] == "verified").sum()
    failed = metric(card, "overall", "accuracy", "contacts_failed")
    assert failed["denominator"] == len(contacts)
    assert failed["numerator"] == outcome["event"].isin(["bounced", "unreachable"]).sum()

    # consistency: persons with several records carrying a birth date that agree
    full = records[(records["birth_precision"] == "full") & records["birth_date"].notna()]
    per_person = full.groupby("golden_id")["birth_date"].agg(["size", "nunique"])
    testable = per_person[per_person["size"] >= 2]
    birth = metric(card, "overall", "consistency", "birth_date")
    assert birth["denominator"] == len(testable) > 0
    assert birth["numerator"] == (testable["nunique"] == 1).sum()

    # timeliness: the share of golden fields within policy
    fresh = gov.query("select source, field_class, within_policy from governance.governance_field_freshness")
    timely = metric(card, "overall", "timeliness", "all_fields")
    assert timely["denominator"] == len(fresh) and timely["numerator"] == fresh["within_policy"].sum()
    crm_consent = fresh[(fresh["source"] == "crm") & (fresh["field_class"] == "consent")]
    assert metric(card, "crm", "timeliness", "consent")["value"] == pytest.approx(crm_consent["within_policy"].mean())


def test_history_accumulates_over_runs(gov: Built, history: pd.DataFrame):
    assert list(history["run_id"].drop_duplicates()) == ["run_1", "run_2"]
    counts = history.groupby("run_id").size()
    assert counts["run_1"] == counts["run_2"] > 50  # recording run_2 again replaced it
    first, second = (
        history[history["run_id"] == r].set_index(["scope", "dimension", "metric"]) for r in ("run_1", "run_2")
    )
    pd.testing.assert_series_equal(first["value"], second["value"])  # same data, same scores
    latest = gov.query(f"select distinct run_id from {LATEST_VIEW}")
    assert list(latest["run_id"]) == ["run_2"]
    assert read_history(gov.settings, runs=1)["run_id"].unique().tolist() == ["run_2"]


@pytest.mark.postgres
def test_scorecard_on_postgres(gov: Built, gov_pg: Built, card: pd.DataFrame):
    pg = record_scorecard(gov_pg.settings, "run_pg")
    assert read_history(gov_pg.settings)["run_id"].unique().tolist() == ["run_pg"]
    keys = ["scope", "dimension", "metric"]
    both = card.merge(pg, on=keys, how="outer", suffixes=("_duck", "_pg"), indicator=True)
    assert (both["_merge"] == "both").all(), both.loc[both["_merge"] != "both", keys]
    # the same inputs give the same scores; timeliness is measured at the earlier as_of on PostgreSQL
    same = both[both["dimension"] != "timeliness"]
    assert (same["numerator_duck"] == same["numerator_pg"]).all() and (
        same["denominator_duck"] == same["denominator_pg"]
    ).all()
    fresh = gov_pg.query("select within_policy from governance.governance_field_freshness")
    timely = metric(pg, "overall", "timeliness", "all_fields")
    assert timely["numerator"] == fresh["within_policy"].sum() and timely["denominator"] == len(fresh)


def test_source_freshness_of_the_daily_run_is_in_the_scorecard(gov: Built, card: pd.DataFrame):
    """run_inline ran `dbt source freshness` after ingestion; every feed had just been loaded."""
    checks = gov.query("select source_name, status from ops.source_freshness")  # erasure requests have no policy
    assert len(checks) == 7 and (checks["status"] == "pass").all()
    fresh = metric(card, "overall", "timeliness", "sources_fresh")
    assert (fresh["numerator"], fresh["denominator"], fresh["value"]) == (7, 7, 1.0)
    ecommerce = metric(card, "ecommerce", "timeliness", "sources_fresh")
    assert ecommerce["denominator"] == 2, "members and orders"
    assert set(card.loc[card["metric"] == "sources_fresh", "scope"]) == SOURCES | {"overall"}


def test_golden_schema_is_a_parameter(gov: Built, card: pd.DataFrame):
    """Score a golden build before publication: the golden tables come from golden_schema."""
    with connect(gov.settings) as wh:
        wh.execute("create schema if not exists scorecard_check")
        wh.execute("create or replace table scorecard_check.customer_xref as select * from marts.customer_xref")
        wh.execute(
            "create or replace table scorecard_check.dim_customer as select * from marts.dim_customer "
            "union all select * from marts.dim_customer where golden_id = (select min(golden_id) from marts.dim_customer)"
        )
    build = compute_scorecard(gov.settings, "run_build", golden_schema="scorecard_check")
    after = metric(build, "overall", "uniqueness", "duplicate_rate_after_linkage")
    assert (
        after["numerator"] == 1
        and after["denominator"]
        == metric(card, "overall", "uniqueness", "duplicate_rate_after_linkage")["denominator"] + 1
    )
    with pytest.raises(ValueError, match="identifier"):
        compute_scorecard(gov.settings, "run_x", golden_schema="marts; drop table x")


def _synthetic_history() -> pd.DataFrame:
    rows = []
    for i, run in enumerate(("run_a", "run_b")):
        for scope in ("overall", "crm", "ecommerce"):
            for m in METRICS:
                num = 40 + 5 * i + len(scope)
                rows.append((run, datetime(2026, 11, 20 + i, 3), scope, m.dimension, m.name, num / 100, num, 100))
    return pd.DataFrame(rows, columns=COLUMNS)


def test_history_table_and_report_on_each_warehouse(settings: Settings):
    """The history table, its latest view and the report on DuckDB and PostgreSQL, without a pipeline."""
    with connect(settings) as wh:
        ensure_history_table(wh)
        ensure_history_table(wh)  # idempotent
        wh.insert_df(HISTORY_TABLE, _synthetic_history())
    history = read_history(settings)
    assert history["run_id"].unique().tolist() == ["run_a", "run_b"]
    with connect(settings) as wh:
        assert {r[0] for r in wh.query(f"select distinct run_id from {LATEST_VIEW}")} == {"run_b"}
    page = write_report(settings).read_text(encoding="utf-8")
    assert "run_b" in page and "<svg" in page
    assert "governance dbt models have not been built" in page
