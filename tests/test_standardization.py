"""Standardisation measured against the generator's ground truth, and the same results on both
warehouses: generated landing -> ingest -> dbt staging -> Python lookups -> dbt intermediate.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from customer_mdm import runlock
from customer_mdm.config import Settings
from customer_mdm.pipeline import (
    dbt_build_step,
    dbt_staging_step,
    ingest_steps,
    new_run_id,
    standardize_step,
    start_run,
)
from customer_mdm.warehouse import connect
from mdm_devtools.generate import generate_landing

PEOPLE = 1500
STANDARD_PROVINCES = {
    "北京市",
    "天津市",
    "上海市",
    "重庆市",
    "河北省",
    "山西省",
    "辽宁省",
    "吉林省",
    "黑龙江省",
    "江苏省",
    "浙江省",
    "安徽省",
    "福建省",
    "江西省",
    "山东省",
    "河南省",
    "湖北省",
    "湖南省",
    "广东省",
    "海南省",
    "四川省",
    "贵州省",
    "云南省",
    "陕西省",
    "甘肃省",
    "青海省",
    "台湾省",
    "内蒙古自治区",
    "广西壮族自治区",
    "西藏自治区",
    "宁夏回族自治区",
    "新疆维吾尔自治区",
    "香港特别行政区",
    "澳门特别行政区",
}
# Columns whose values are computed at run time, not from the data.
VOLATILE = {"_ingested_at", "_batch_id", "record_key"}


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("std") / "landing"
    generate_landing(path, PEOPLE, seed=5, days=2)
    return path


def _records(settings: Settings) -> pd.DataFrame:
    """The daily pipeline's steps up to the unified records (``int_customer_records``): ingest, dbt
    staging, the Python lookups, dbt intermediate. Linkage, erasure and the golden tables come
    after them and read them; these tests measure what those steps are given."""
    run_id = new_run_id()
    with runlock.holding(settings, run_id):
        start_run(settings, run_id)
        ingest_steps(settings, run_id)
        dbt_staging_step(settings, run_id)
        standardize_step(settings, run_id)
        dbt_build_step(settings, run_id)
    with connect(settings) as wh:
        return wh.query_df("select * from intermediate.int_customer_records order by source, source_id")


@pytest.fixture(scope="module")
def duckdb_records(landing: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    home = tmp_path_factory.mktemp("std-duckdb")
    return _records(Settings.from_env(env={}, home=home, landing=landing))


@pytest.fixture(scope="module")
def truth(landing: Path, duckdb_records: pd.DataFrame) -> pd.DataFrame:
    xref = pd.read_csv(landing / "_truth" / "truth.csv", dtype=str)
    people = pd.read_csv(landing / "_truth" / "people.csv", dtype=str, keep_default_na=False)
    joined = duckdb_records.merge(xref, on=["source", "source_id"], how="left", validate="1:1")
    assert joined["person_id"].notna().all(), "every unified record is a known person record"
    return joined.merge(people, on="person_id", suffixes=("", "_truth"))


def _digits(value: object) -> str:
    text = "".join(ch for ch in str(value or "") if ch.isdigit() or "０" <= ch <= "９")
    text = text.translate({0xFF10 + i: 0x30 + i for i in range(10)})
    return re.sub(r"^(0086|86)(?=1\d{10}$)", "", text)


def test_valid_phones_become_the_right_e164(truth: pd.DataFrame):
    canonical = truth["mobile"].str.removeprefix("+86")
    variant_of_canonical = truth["phone_raw"].map(_digits) == canonical
    subset = truth[variant_of_canonical]
    assert len(subset) > PEOPLE  # most records carry a formatting variant of the person's mobile
    correct = (subset["phone_e164"] == subset["mobile"]).mean()
    assert correct >= 0.99, subset.loc[subset["phone_e164"] != subset["mobile"], ["phone_raw", "phone_e164"]].head(20)
    assert truth["phone_e164"].dropna().str.fullmatch(r"\+\d{8,15}").all()


def test_region_aliases_become_standard_names(truth: pd.DataFrame):
    has_region = truth[truth["province_raw"].notna() | truth["city_raw"].notna()]
    assert len(has_region) > PEOPLE // 2
    resolved = has_region["province"].notna().mean()
    assert resolved >= 0.99, has_region.loc[has_region["province"].isna(), ["province_raw", "city_raw"]].head(20)
    assert set(truth["province"].dropna()) <= STANDARD_PROVINCES
    # records of people who never moved carry (an alias of) their current region
    crm = has_region[has_region["source"] == "crm"]
    agree = (crm["province"] == crm["province_truth"]).mean()
    assert agree >= 0.9  # the rest are older records of people who moved since


def test_every_birth_date_format_parses(truth: pd.DataFrame):
    raw = truth[truth["birth_date_raw"].notna()]
    formats = {
        "iso": r"\d{4}-\d{1,2}-\d{1,2}",
        "slash": r"\d{4}/\d{1,2}/\d{1,2}",
        "compact": r"\d{8}",
        "chinese": r"\d{4}年\d{1,2}月\d{1,2}日",
        "month_day": r"\d{1,2}-\d{1,2}",
    }
    for name, pattern in formats.items():
        rows = raw[raw["birth_date_raw"].str.fullmatch(pattern)]
        assert len(rows) > 0, f"the generator wrote no {name} birth dates"
        assert rows["birth_issue"].ne("unparsed").all(), rows[rows["birth_issue"] == "unparsed"][
            "birth_date_raw"
        ].head()
    full = raw[raw["birth_precision"] == "full"]
    as_iso = pd.to_datetime(full["birth_date"]).dt.strftime("%Y-%m-%d")
    assert (as_iso == full["birth_date_truth"]).mean() >= 0.95
    month_day = raw[raw["birth_precision"] == "month_day"]
    assert month_day["birth_year"].isna().all() and month_day["birth_month"].notna().all()


def test_emails_names_and_codes(truth: pd.DataFrame):
    typo = truth[truth["email_raw"].fillna("").str.contains(r"qq\.con$|163\.cm$|gmial\.com$", regex=True)]
    assert len(typo) > 0 and typo["email_domain_corrected"].all() and typo["email_valid"].all()
    assert not truth["email"].dropna().str.contains(r"[A-Z\s]").any()
    han = truth[(truth["name_script"] == "han") & truth["name_issue"].isna()]  # 王先生 keeps only the surname
    assert not han["name_std"].str.contains(r"\s|陳|張|劉|黃|趙").any()
    assert han["name_pinyin"].str.fullmatch(r"[a-z]+( [a-z]+)+").mean() > 0.99
    crm = truth[truth["source"] == "crm"]
    assert set(crm["gender"].dropna()) <= {"M", "F"}
    assert (crm.loc[crm["gender"].notna(), "gender"] == crm.loc[crm["gender"].notna(), "gender_truth"]).mean() > 0.99
    assert crm["consent_marketing"].notna().mean() > 0.7
    assert set(crm["tier"].dropna()) == {"prospect", "regular", "vip"}


@pytest.mark.postgres
def test_same_results_on_duckdb_and_postgres(landing: Path, duckdb_records: pd.DataFrame, pg_dsn: str, tmp_path: Path):
    pg = _records(Settings.from_env(env={}, home=tmp_path / "home", landing=landing, target="postgres", pg_dsn=pg_dsn))
    assert list(pg.columns) == list(duckdb_records.columns)
    cols = [c for c in pg.columns if c not in VOLATILE]

    def canonical(v: object) -> str | None:
        # the drivers return the same values as different Python types (DuckDB: Timestamp for a
        # date, float for an integer column with NULLs; psycopg: date, int)
        if v is None:
            return None
        if isinstance(v, datetime):
            return v.isoformat()
        if isinstance(v, date):
            return datetime(v.year, v.month, v.day).isoformat()
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    def normalise(df: pd.DataFrame) -> pd.DataFrame:
        out = df[cols].astype(object).where(df[cols].notna(), None)
        return out.apply(lambda col: col.map(canonical)).reset_index(drop=True)

    left, right = normalise(duckdb_records), normalise(pg)
    diff = (left != right) & ~(left.isna() & right.isna())
    assert not diff.any().any(), {c: int(diff[c].sum()) for c in cols if diff[c].any()}
