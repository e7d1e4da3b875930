"""The data contracts (contracts/*.odcs.yaml, Open Data Contract Standard) agree with the standard's
model and with the dbt model contracts they describe; the published marts and BI views that dbt
declares as sources agree with what the Python code publishes (customer_mdm.security.BI_VIEWS)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from open_data_contract_standard.model import OpenDataContractStandard

from customer_mdm.security import BI_VIEWS

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
GOLDEN_MODELS = ROOT / "dbt_project" / "models" / "marts" / "golden" / "_golden__models.yml"
MARTS = ROOT / "dbt_project" / "models" / "marts"
#: ODCS logical type of each physical type the dbt contracts use
LOGICAL = {
    "text": "string",
    "date": "date",
    "timestamp": "timestamp",
    "boolean": "boolean",
    "double precision": "number",
    "integer": "integer",
    "bigint": "integer",
}
PERSONAL = {"name", "name_pinyin", "gender", "birth_date", "phone", "email", "street", "company", "source_id"}


def dbt_models() -> dict[str, dict]:
    return {m["name"]: m for m in yaml.safe_load(GOLDEN_MODELS.read_text(encoding="utf-8"))["models"]}


def _tests(column: dict) -> set[str]:
    return {t if isinstance(t, str) else next(iter(t)) for t in column.get("data_tests", [])}


@pytest.mark.parametrize("model", ["dim_customer", "customer_xref"])
def test_contract_matches_the_standard_and_the_dbt_contract(model: str):
    contract = OpenDataContractStandard.from_file(str(CONTRACTS / f"{model}.odcs.yaml"))  # extra keys forbidden
    assert contract.apiVersion == "v3.1.0" and contract.kind == "DataContract" and contract.status == "active"
    assert contract.description and contract.description.purpose and contract.description.usage
    (table,) = contract.schema_ or []
    assert (table.name, table.physicalName, table.physicalType) == (model, f"marts.{model}", "table")

    dbt = dbt_models()[model]
    assert dbt["config"]["contract"]["enforced"] is True, "the dbt model must enforce its contract"
    dbt_columns = [(c["name"], c["data_type"]) for c in dbt["columns"]]
    odcs_columns = [(p.name, p.physicalType) for p in table.properties or []]
    assert odcs_columns == dbt_columns, "the ODCS contract lists the dbt contract's columns, in order, same types"
    for prop, column in zip(table.properties or [], dbt["columns"], strict=True):
        assert prop.logicalType == LOGICAL[column["data_type"]], prop.name
        tests = _tests(column)
        assert bool(prop.required) == ("not_null" in tests), f"{prop.name}: required <-> not_null"
        assert bool(prop.unique) == ("unique" in tests), f"{prop.name}: unique <-> unique test"
        if prop.name in PERSONAL or prop.name.endswith("_source_record"):
            assert prop.classification == "restricted", f"{prop.name} is personal data"
    keys = [p.name for p in table.properties or [] if p.primaryKey]
    assert len(keys) == 1 and {"unique", "not_null"} <= _tests(next(c for c in dbt["columns"] if c["name"] == keys[0]))


def test_xref_golden_id_refers_to_the_golden_table():
    contract = OpenDataContractStandard.from_file(str(CONTRACTS / "customer_xref.odcs.yaml"))
    golden_id = next(p for p in contract.schema_[0].properties if p.name == "golden_id")
    assert [(r.type, r.to) for r in golden_id.relationships] == [("foreignKey", "dim_customer.golden_id")]


def test_a_contract_that_drifts_from_dbt_is_caught(tmp_path: Path):
    """The check above compares real columns: a renamed column or a changed type differs."""
    contract = yaml.safe_load((CONTRACTS / "dim_customer.odcs.yaml").read_text(encoding="utf-8"))
    contract["schema"][0]["properties"][1]["physicalType"] = "varchar(10)"
    parsed = OpenDataContractStandard(**contract)
    dbt_columns = [(c["name"], c["data_type"]) for c in dbt_models()["dim_customer"]["columns"]]
    assert [(p.name, p.physicalType) for p in parsed.schema_[0].properties] != dbt_columns
    contract["surprise"] = 1  # the standard forbids unknown top-level keys
    with pytest.raises(ValueError, match="surprise"):
        OpenDataContractStandard(**contract)


def test_published_and_bi_sources_are_what_python_publishes():
    sources = {s["name"]: s for s in yaml.safe_load((MARTS / "_published__sources.yml").read_text())["sources"]}
    bi = sources["bi"]
    assert bi["schema"] == "bi"
    declared = {t["name"]: t["meta"]["base_tables"] for t in bi["tables"]}
    assert declared == {v.name: list(v.requires) for v in BI_VIEWS}, "bi source = security.BI_VIEWS"
    published = sources["published"]
    assert published["schema"] == "marts"
    assert {t["name"] for t in published["tables"]} == {"dim_customer", "customer_xref"}
    exposures = {e["name"]: e for e in yaml.safe_load((MARTS / "_exposures.yml").read_text())["exposures"]}
    assert set(exposures) == {"bi_views", "hub_api", "marketing_audience"}
    bi_deps = set(exposures["bi_views"]["depends_on"])
    assert {f"source('bi', '{v.name}')" for v in BI_VIEWS} <= bi_deps, "every BI view is in the exposure"
