"""The build fingerprint: what makes a dbt layer rebuild in full (customer_mdm.dbt.build_fingerprint)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from customer_mdm.config import Settings
from customer_mdm.dbt import build_fingerprint
from customer_mdm.standardize import step as std_step

LAYERS = ("staging", "build", "golden")


@pytest.fixture
def project_copy(tmp_path: Path) -> Settings:
    """Settings whose dbt project is a copy of the real one (without dbt's own output)."""
    source = Settings.from_env(env={}, home=tmp_path / "home").dbt_project_dir
    shutil.copytree(source, tmp_path / "root" / "dbt_project", ignore=shutil.ignore_patterns("target", "logs"))
    return Settings.from_env(env={}, home=tmp_path / "home", project_root=tmp_path / "root")


def fingerprints(settings: Settings) -> dict[str, str]:
    return {layer: build_fingerprint(settings, layer) for layer in LAYERS}


def test_same_files_same_fingerprint_wherever_the_checkout_is(project_copy: Settings, tmp_path: Path) -> None:
    real = Settings.from_env(env={}, home=tmp_path / "home")
    assert fingerprints(project_copy) == fingerprints(real)
    assert len(set(fingerprints(real).values())) == 2  # staging does not read the std lookups


@pytest.mark.parametrize(
    "path",
    [
        "dbt_project.yml",
        "models/staging/stg_crm__customers.sql",
        "models/marts/golden/_golden__models.yml",
        "macros/cross_db.sql",
        "seeds/ref_code_values.csv",
        "tests/generic/exactly_one_latest.sql",
    ],
)
def test_any_project_file_changes_every_layer(project_copy: Settings, path: str) -> None:
    before = fingerprints(project_copy)
    file = project_copy.dbt_project_dir / path
    file.write_bytes(file.read_bytes() + b"\n")
    after = fingerprints(project_copy)
    assert all(after[layer] != before[layer] for layer in LAYERS)


def test_new_file_changes_it_and_droppings_do_not(project_copy: Settings) -> None:
    before = fingerprints(project_copy)
    project = project_copy.dbt_project_dir
    (project / "target").mkdir()
    (project / "target" / "manifest.json").write_text("{}")
    (project / "models" / ".stg_crm__customers.sql.swp").write_text("editor")
    (project / "profiles.yml").write_text((project / "profiles.yml").read_text() + "\n")
    assert fingerprints(project_copy) == before
    (project / "models" / "staging" / "stg_new.sql").write_text("select 1 as x")
    assert fingerprints(project_copy)["staging"] != before["staging"]


def test_standardisation_version_changes_the_layers_that_read_it(
    project_copy: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = fingerprints(project_copy)
    monkeypatch.setattr(std_step, "std_version", lambda: "another-version")
    after = fingerprints(project_copy)
    assert after["staging"] == before["staging"]
    assert after["build"] != before["build"] and after["golden"] != before["golden"]
