"""The governance tests' shared build helpers (imported by conftest.py and the test modules)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from customer_mdm.config import Settings
from customer_mdm.dbt import run_dbt
from customer_mdm.warehouse import connect

PEOPLE = 400
SEED = 7
#: an as_of months before the generated data ends (2026-11-19): older orders only, other due dates
PAST_AS_OF = "2026-06-30 12:00:00"
#: the governance models and their seeds, for builds outside the pipeline's golden step
GOVERNANCE_SELECT = ["--select", "path:models/marts/governance", "ref_freshness_policy", "ref_customer_review_cycles"]


@dataclass
class Built:
    settings: Settings
    landing: Path

    def query(self, sql: str) -> pd.DataFrame:
        with connect(self.settings, read_only=True) as wh:
            return wh.query_df(sql)

    @property
    def truth(self) -> pd.DataFrame:
        """The generator's truth for the records the warehouse holds: the persons of the
        generated erasure requests are erased by the pipeline, their records are gone."""
        truth = pd.read_csv(self.landing / "_truth" / "truth.csv", dtype=str)
        held = self.query("select distinct source, source_id from intermediate.int_customer_records")
        return truth.merge(held.astype(str), on=["source", "source_id"], how="inner")

    @property
    def people(self) -> pd.DataFrame:
        return pd.read_csv(self.landing / "_truth" / "people.csv", dtype=str, keep_default_na=False)


def build_governance(settings: Settings, as_of: str | None = None) -> None:
    """Build and test the governance models (and their seeds) on their own."""
    args = list(GOVERNANCE_SELECT)
    if as_of:
        args += ["--vars", json.dumps({"as_of": as_of})]
    run_dbt(settings, "build", args)
