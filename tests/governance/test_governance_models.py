"""The governance dbt models: re-verification worklist, consistency report, customer segments.

Checked against the generator's truth and against independent pandas computations of the same
rules, on DuckDB (the pipeline's own build) and on PostgreSQL (the same inputs, as_of set).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from governance_build import PAST_AS_OF, Built


def _records_with_golden(gov: Built) -> pd.DataFrame:
    return gov.query(
        "select r.source, r.source_id, r.source || ':' || r.source_id as record_id, x.golden_id, "
        "r.name_std, r.name_script, r.name_issue, r.gender, r.birth_date, r.birth_precision, r.record_updated_at_utc "
        "from intermediate.int_customer_records as r "
        "inner join marts.customer_xref as x on x.source = r.source and x.source_id = r.source_id"
    )


def _as_of(built: Built) -> pd.Timestamp:
    return pd.Timestamp(built.query("select as_of_utc from governance.governance_as_of")["as_of_utc"][0])


# ----------------------------------------------------------------------------- as_of
def test_as_of_defaults_to_the_latest_order_and_follows_the_var(gov: Built):
    as_of = gov.query("select * from governance.governance_as_of")
    assert len(as_of) == 1 and as_of["as_of_basis"][0] == "max_order_time"
    latest_order = gov.query("select max(ordered_at_utc) as t from marts.fct_orders")["t"][0]
    assert pd.Timestamp(as_of["as_of_utc"][0]) == pd.Timestamp(latest_order)


@pytest.mark.postgres
def test_as_of_var_on_postgres(gov_pg: Built):
    as_of = gov_pg.query("select * from governance.governance_as_of")
    assert as_of["as_of_basis"][0] == "var"
    assert pd.Timestamp(as_of["as_of_utc"][0]) == pd.Timestamp(PAST_AS_OF)
    for table in ("governance_field_freshness", "reverification_worklist", "customer_segments"):
        stamps = gov_pg.query(f"select distinct as_of_utc from governance.{table}")["as_of_utc"]
        assert [pd.Timestamp(t) for t in stamps] == [pd.Timestamp(PAST_AS_OF)], table


# ----------------------------------------------------------------------------- worklist
def test_bounced_and_unreachable_contacts_are_on_the_worklist(gov: Built):
    customers = gov.query("select golden_id, phone_status, email_status, needs_new_contact from marts.dim_customer")
    worklist = gov.query("select * from governance.reverification_worklist")
    by_key = worklist.set_index(["golden_id", "field"])

    bounced = customers[(customers["email_status"] == "bounced") & ~customers["needs_new_contact"]]
    assert len(bounced) > 0, "the generator bounces typo'd emails: some golden emails should be bounced"
    for golden_id in bounced["golden_id"]:
        row = by_key.loc[(golden_id, "email")]
        assert row["reason_code"] == "contact_failed"
        assert row["reason"].startswith("email bounced: last event 2026-"), row["reason"]
        assert row["priority"] in ("high", "medium")

    lost = customers[customers["needs_new_contact"]]
    assert len(lost) > 0
    for c in lost.itertuples():
        row = by_key.loc[(c.golden_id, "contact")]
        assert row["reason_code"] == "new_contact_needed" and row["priority"] == "high"
        email = {"bounced": "email bounced", "missing": "no email"}.get(c.email_status, f"email {c.email_status}")
        phone = {"unreachable": "phone unreachable", "missing": "no phone"}.get(
            c.phone_status, f"phone {c.phone_status}"
        )
        assert row["reason"] == f"no valid contact: {email}, {phone}"
        # the new-contact row replaces the person's phone and email rows
        assert (c.golden_id, "phone") not in by_key.index and (c.golden_id, "email") not in by_key.index
    assert set(worklist.loc[worklist["field"] == "contact", "golden_id"]) == set(lost["golden_id"])


def test_stale_fields_use_the_age_of_their_source_record(gov: Built):
    as_of = _as_of(gov)
    customers = gov.query("select golden_id, name_source_record from marts.dim_customer where name is not null")
    records = _records_with_golden(gov).set_index("record_id")
    worklist = gov.query("select * from governance.reverification_worklist where field = 'name'").set_index("golden_id")
    due = not_due = 0
    for c in customers.itertuples():
        confirmed = pd.Timestamp(records.loc[c.name_source_record, "record_updated_at_utc"])
        due_date = (confirmed + timedelta(days=180)).date()
        if due_date <= as_of.date():
            due += 1
            row = worklist.loc[c.golden_id]
            assert row["reason"] == f"stale: last confirmed {confirmed.date().isoformat()}, policy 180 d"
            assert pd.Timestamp(row["due_date"]).date() == due_date
            assert row["days_overdue"] == (as_of.date() - due_date).days
            assert row["source_record"] == c.name_source_record
        else:
            not_due += 1
            assert c.golden_id not in worklist.index
    assert due > 0 and not_due > 0


def test_tier_review_cycles(gov: Built):
    as_of = _as_of(gov).date()
    fresh = gov.query("select * from governance.governance_field_freshness where field = 'tier'")
    cycle = {"vip": 90, "regular": 365}
    for row in fresh[fresh["rule"] == "tier_cycle"].itertuples():
        assert row.review_interval_days == cycle[row.tier]
        assert (
            pd.Timestamp(row.due_date).date()
            == (pd.Timestamp(row.last_confirmed_at_utc) + timedelta(cycle[row.tier])).date()
        )
    prospects = fresh[fresh["tier"] == "prospect"]
    assert len(prospects) > 0 and (prospects["rule"] == "tier_on_contact").all()
    assert prospects["review_interval_days"].isna().all()
    worklist = gov.query("select * from governance.reverification_worklist where field = 'tier'")
    vip = worklist[worklist["reason_code"] == "tier_cycle"]
    assert (
        vip["reason"]
        .str.fullmatch(r"tier review cycle: (vip every 90|regular every 365) d, last confirmed \d{4}-\d\d-\d\d")
        .all()
    )
    on_contact = worklist[worklist["reason_code"] == "tier_on_contact"]
    assert len(on_contact) > 0
    assert (
        on_contact["reason"]
        .str.fullmatch(
            r"tier review on contact: prospect, last contact \d{4}-\d\d-\d\d \((order|call centre ticket|self-service change)\)"
        )
        .all()
    )
    assert (pd.to_datetime(worklist["due_date"]).dt.date <= as_of).all()


def test_worklist_is_one_row_per_due_field(gov: Built):
    worklist = gov.query("select * from governance.reverification_worklist")
    assert not worklist.duplicated(["golden_id", "field"]).any()
    assert set(worklist["priority"]) <= {"high", "medium", "low"}
    assert (worklist["days_overdue"] >= 0).all()
    consent = worklist[worklist["field"] == "consent_marketing"]
    assert len(consent) > 0 and (consent["priority"] == "high").all()
    assert consent["reason"].str.endswith("policy 365 d").all()


# ----------------------------------------------------------------------------- consistency
def _conflicts(records: pd.DataFrame) -> dict[tuple[str, str], set[str]]:
    full = records[(records["birth_precision"] == "full") & records["birth_date"].notna()]
    values = {
        "birth_date": full.assign(value=pd.to_datetime(full["birth_date"]).dt.strftime("%Y-%m-%d")),
        "gender": records[records["gender"].notna()].assign(value=lambda d: d["gender"]),
        "name": records[
            records["name_std"].notna() & (records["name_script"] == "han") & records["name_issue"].isna()
        ].assign(value=lambda d: d["name_std"]),
    }
    out = {}
    for field, df in values.items():
        for golden_id, group in df.groupby("golden_id"):
            if group["value"].nunique() > 1:
                out[(str(golden_id), field)] = set(group["value"])
    return out


def test_consistency_report_lists_conflicting_birth_dates(gov: Built):
    records = _records_with_golden(gov)
    expected = _conflicts(records)
    report = gov.query("select * from governance.consistency_report")
    got = {(g, f): set(v) for (g, f), v in report.groupby(["golden_id", "field"])["value"]}
    assert got == expected

    birth = [k for k in expected if k[1] == "birth_date"]
    assert birth, "the generator swaps day and month on some records: a person with two birth dates is expected"
    truth = gov.truth.set_index(["source", "source_id"])["person_id"]
    people = gov.people.set_index("person_id")["birth_date"]
    for golden_id, _ in birth:
        rows = report[(report["golden_id"] == golden_id) & (report["field"] == "birth_date")]
        assert (rows["distinct_values"] == len(rows)).all() and rows["is_golden_value"].sum() == 1
        mine = records[(records["golden_id"] == golden_id) & (records["birth_precision"] == "full")]
        listed = sorted(r for cell in rows["records"] for r in cell.split(", "))
        assert listed == sorted(mine["record_id"])
        assert set(rows["sources"].str.split(", ").sum()) == set(mine["source"])
        # a real conflict of one person, and the person's true birth date is among the values
        persons = {truth[(s, i)] for s, i in zip(mine["source"], mine["source_id"], strict=True)}
        assert len(persons) == 1
        assert people[persons.pop()] in set(rows["value"])


@pytest.mark.postgres
def test_consistency_report_is_the_same_on_postgres(gov: Built, gov_pg: Built):
    cols = "golden_id, field, distinct_values, records_with_field, value, value_record_count, records, sources, is_golden_value"
    order = " order by golden_id, field, value"
    duck = gov.query(f"select {cols} from governance.consistency_report{order}")
    pg = gov_pg.query(f"select {cols} from governance.consistency_report{order}")
    pd.testing.assert_frame_equal(duck.astype(str), pg.astype(str))


@pytest.mark.postgres
def test_freshness_confirmations_are_the_same_on_postgres(gov: Built, gov_pg: Built):
    # last confirmations and policy due dates do not depend on as_of
    sql = (
        "select golden_id, field, source_record, last_confirmed_at_utc, confirmed_by, review_interval_days, due_date "
        "from governance.governance_field_freshness where rule = 'policy' and last_confirmed_at_utc is not null "
        "order by golden_id, field"
    )
    duck, pg = gov.query(sql), gov_pg.query(sql)
    for df in (duck, pg):
        df["last_confirmed_at_utc"] = pd.to_datetime(df["last_confirmed_at_utc"]).astype("datetime64[us]")
        df["due_date"] = pd.to_datetime(df["due_date"]).astype("datetime64[us]")
        df["review_interval_days"] = df["review_interval_days"].astype(int)
    pd.testing.assert_frame_equal(duck, pg)


# ----------------------------------------------------------------------------- segments
def reference_segments(gov: Built, as_of: pd.Timestamp) -> pd.DataFrame:
    """The segment rules of customer_segments.sql, computed independently with pandas."""
    orders = gov.query("select member_id, ordered_at_utc, amount_cny, status, is_refund from marts.fct_orders")
    xref = gov.query("select source_id as member_id, golden_id from marts.customer_xref where source = 'ecommerce'")
    customers = gov.query("select golden_id, tier from marts.dim_customer")
    o = orders.merge(xref, on="member_id")
    o = o[(pd.to_datetime(o["ordered_at_utc"]) <= as_of) & (o["status"].fillna("") != "cancelled")].copy()
    o["cents"] = (o["amount_cny"].astype(float) * 100).round().astype("int64")
    o["purchase"] = (o["status"] == "paid") & ~o["is_refund"].astype(bool)
    o["net"] = np.where(o["is_refund"].astype(bool), -o["cents"].abs(), np.where(o["purchase"], o["cents"], 0))
    o["ts"] = pd.to_datetime(o["ordered_at_utc"])
    per = o.groupby("golden_id").agg(
        orders_count=("purchase", "sum"),
        refunds_count=("is_refund", "sum"),
        net=("net", "sum"),
        last=("ts", lambda s: s[o.loc[s.index, "purchase"]].max()),
    )
    buyers = per[per["orders_count"] > 0].copy()
    n = len(buyers)

    def score(col: str) -> pd.Series:
        return (1 + np.floor(5 * (buyers[col].rank(method="min") - 1) / n)).astype(int)

    buyers["recency_score"] = score("last")
    buyers["frequency_score"] = score("orders_count")
    buyers["monetary_score"] = score("net")
    buyers["recency_days"] = (as_of.normalize() - buyers["last"].dt.normalize()).dt.days
    active = buyers[buyers["recency_days"] <= 365]
    decile = 1 + np.floor(10 * (active["net"].rank(method="min", ascending=False) - 1) / len(active))
    top = set(active.index[decile == 1])
    out = (
        customers.set_index("golden_id")
        .join(per)
        .join(buyers[["recency_score", "frequency_score", "monetary_score", "recency_days"]])
    )

    def stage(row: pd.Series) -> str:
        if row["tier"] == "vip" or row.name in top:
            return "vip"
        if pd.notna(row["recency_days"]):
            return "active" if row["recency_days"] <= 365 else "lapsed"
        return "prospect"

    def segment(row: pd.Series) -> str:
        r, f, m = row["recency_score"], row["frequency_score"], row["monetary_score"]
        if pd.isna(r):
            return "no_orders"
        if r >= 4 and f >= 4 and m >= 4:
            return "champions"
        if r >= 4 and row["orders_count"] == 1:
            return "new"
        if r >= 3 and f + m >= 6:
            return "loyal"
        if r >= 3:
            return "promising"
        return "at_risk" if f + m >= 6 else "hibernating"

    out["lifecycle_stage"] = out.apply(stage, axis=1)
    out["rfm_segment"] = out.apply(segment, axis=1)
    out["orders_count"] = out["orders_count"].fillna(0).astype(int)
    out["refunds_count"] = out["refunds_count"].fillna(0).astype(int)
    out["monetary_net_cents"] = out["net"].fillna(0).astype("int64")
    cols = [
        "lifecycle_stage",
        "rfm_segment",
        "orders_count",
        "refunds_count",
        "monetary_net_cents",
        "recency_days",
        "recency_score",
        "frequency_score",
        "monetary_score",
    ]
    return out[cols].sort_index()


def _segments(built: Built) -> pd.DataFrame:
    df = built.query("select * from governance.customer_segments").set_index("golden_id").sort_index()
    df["monetary_net_cents"] = (df["monetary_net_cny"].astype(float) * 100).round().astype("int64")
    return df


def _compare_segments(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.index) == list(expected.index)
    for col in expected.columns:
        left, right = got[col], expected[col]
        if col in ("recency_days", "recency_score", "frequency_score", "monetary_score"):
            left, right = left.astype("Float64"), right.astype("Float64")
        mismatch = ~((left == right).fillna(False) | (left.isna() & right.isna()))
        assert not mismatch.any(), (col, pd.DataFrame({"got": left[mismatch], "expected": right[mismatch]}).head())


def test_segments_follow_the_rules(gov: Built):
    got = _segments(gov)
    _compare_segments(got, reference_segments(gov, _as_of(gov)))
    assert {"active", "lapsed", "prospect", "vip"} <= set(got["lifecycle_stage"])
    assert len(set(got["rfm_segment"])) >= 5
    assert got.loc[got["orders_count"] == 0, "rfm_score"].isna().all()
    assert got["rfm_score"].dropna().str.fullmatch(r"[1-5]{3}").all()


@pytest.mark.postgres
def test_segments_with_an_earlier_as_of_on_postgres(gov: Built, gov_pg: Built):
    as_of = pd.Timestamp(PAST_AS_OF)
    got = _segments(gov_pg)
    _compare_segments(got, reference_segments(gov, as_of))
    # only orders up to as_of count: fewer purchases than with the default (latest) as_of
    assert got["orders_count"].sum() < _segments(gov)["orders_count"].sum()
    assert (pd.to_datetime(got["last_order_at_utc"]).dropna() <= as_of).all()
