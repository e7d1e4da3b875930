"""The suite files: valid GX 1.x suites, a severity and a reason on every expectation, in step
with the landing contract (sources.FEEDS) and the reference data."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from customer_mdm.config import Settings
from customer_mdm.quality.suites import LAYERS, SuiteError, load_layer, load_suite, provinces, suite_parameters
from customer_mdm.sources import FEEDS, LINEAGE_COLUMNS

EXPECTATIONS = Path(__file__).resolve().parents[2] / "expectations"


def suite_files() -> list[Path]:
    return sorted(p for layer in LAYERS for p in (EXPECTATIONS / layer).glob("*.json"))


def severities(spec_expectations: list[dict]) -> dict[tuple[str, str], str]:
    return {
        (e["type"], ",".join(e["kwargs"].get("column_list", [e["kwargs"].get("column", "")]))): e["meta"]["severity"]
        for e in spec_expectations
    }


def test_every_suite_file_is_a_gx_suite_with_a_severity_and_a_reason_on_every_expectation():
    import great_expectations as gx

    files = suite_files()
    assert {p.parent.name for p in files} == set(LAYERS)
    assert len(files) == len(FEEDS) + 1 + 2
    for path in files:
        document = json.loads(path.read_text(encoding="utf-8"))
        suite = gx.ExpectationSuite(**document)
        assert suite.name == f"{path.parent.name}.{path.stem}"
        assert len(suite.expectations) == len(document["expectations"]) > 0, path  # GX skipped none
        for expectation in suite.expectations:
            assert expectation.meta["severity"] in ("blocking", "warning"), (path, expectation)
            assert expectation.meta["why"].strip(), (path, expectation)
        assert load_suite(path).name == suite.name


def test_one_raw_suite_per_feed_in_step_with_the_contract(duckdb_settings: Settings):
    specs = {s.asset: s for s in load_layer(duckdb_settings, "raw")}
    assert set(specs) == {f.name for f in FEEDS}
    for f in FEEDS:
        spec = specs[f.name]
        assert spec.table == f.raw_table
        exists = {e["kwargs"]["column"] for e in spec.table_expectations if e["type"] == "expect_column_to_exist"}
        assert exists == set(f.columns) | set(LINEAGE_COLUMNS), f.name
        sev = severities(list(spec.table_expectations))
        if f.key:
            assert sev[("expect_column_values_to_not_be_null", f.key)] == "blocking"
            assert sev[("expect_column_values_to_match_regex", f.key)] == "blocking"
        for column in f.required:
            assert ("expect_column_values_to_not_be_null", column) in sev, (f.name, column)
        for column in ("_source_file", "_batch_id", "_row_number", "_ingested_at"):
            assert sev[("expect_column_values_to_not_be_null", column)] == "blocking"
        (counts,) = spec.derived["manifest_row_counts"]
        assert counts["type"] == "expect_column_pair_values_to_be_equal"
        assert counts["meta"]["severity"] == "blocking"


def test_standardised_and_golden_severities(duckdb_settings: Settings):
    (std,) = load_layer(duckdb_settings, "standardised")
    sev = severities(list(std.table_expectations))
    assert sev[("expect_compound_columns_to_be_unique", "source,source_id")] == "blocking"
    assert sev[("expect_column_values_to_not_be_null", "record_key")] == "blocking"
    assert sev[("expect_column_values_to_be_in_set", "source")] == "blocking"
    for column in ("phone_e164", "email"):
        assert sev[("expect_column_values_to_match_regex", column)] == "warning"
    for key in (
        ("expect_column_values_to_be_in_set", "gender"),
        ("expect_column_values_to_be_in_set", "province"),
        ("expect_column_values_to_be_between", "birth_date"),
    ):
        assert sev[key] == "warning"
    golden = {s.asset: s for s in load_layer(duckdb_settings, "golden")}
    dim, xref = golden["dim_customer"], golden["customer_xref"]
    sev = severities(list(dim.table_expectations))
    assert sev[("expect_column_values_to_be_unique", "golden_id")] == "blocking"
    assert sev[("expect_column_values_to_not_be_null", "name")] == "warning"
    conflicts = dim.derived["birth_date_conflicts"]
    assert sorted((e["meta"]["severity"], e["kwargs"]["mostly"]) for e in conflicts) == [
        ("blocking", 0.99),
        ("warning", 0.999),
    ]
    sev = severities(list(xref.table_expectations))
    assert sev[("expect_column_values_to_be_unique", "record_id")] == "blocking"
    assert sev[("expect_column_values_to_not_be_null", "golden_id")] == "blocking"
    assert sev[("expect_column_values_to_be_in_set", "assignment")] == "blocking"
    assert sev[("expect_column_values_to_be_between", "match_probability")] == "warning"
    assert [e["meta"]["severity"] for e in xref.derived["xref_orphans"]] == ["blocking"]


def test_suite_parameters_come_from_the_reference_data(duckdb_settings: Settings):
    params = suite_parameters(date(2026, 11, 23))
    assert params["today"] == "2026-11-23"
    assert len(params["provinces"]) == 34 and "上海市" in params["provinces"] and "沪" not in params["provinces"]
    assert params["provinces"] == provinces()
    (std,) = load_layer(duckdb_settings, "standardised")
    (province,) = [e for e in std.table_expectations if e["kwargs"].get("column") == "province"]
    assert province["kwargs"]["value_set"] == {"$PARAMETER": "provinces"}


@pytest.mark.parametrize(
    "meta, problem",
    [
        ({"why": "because"}, "meta.severity"),
        ({"severity": "fatal", "why": "because"}, "meta.severity"),
        ({"severity": "warning"}, "meta.why"),
        ({"severity": "warning", "why": "because", "dataset": "nope"}, "unknown meta.dataset"),
    ],
)
def test_a_suite_with_a_bad_expectation_is_rejected(tmp_path: Path, meta: dict, problem: str):
    path = tmp_path / "golden" / "thing.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps(
            {
                "name": "golden.thing",
                "meta": {"table": "marts.thing", "key_columns": ["id"]},
                "expectations": [
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}, "meta": meta}
                ],
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(SuiteError, match=problem) as err:
        load_suite(path)
    assert str(path) in str(err.value)
