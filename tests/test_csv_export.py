"""CSV injection: exported CSV cells that a spreadsheet would run as formulas are neutralised."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from customer_mdm.cli import main
from customer_mdm.config import Settings
from customer_mdm.csv_export import FORMULA_PREFIXES, neutralise_cell, write_csv
from customer_mdm.linkage.step import ensure_tables
from customer_mdm.warehouse import connect

ATTACKS = ["=cmd|' /C calc'!A0", "+SUM(1+1)*cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)", "\t=1+1"]


def _dangerous(cell: str) -> bool:
    return cell.startswith(FORMULA_PREFIXES) and not cell.lstrip("+-").replace(".", "", 1).isdigit()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=20), st.sampled_from(ATTACKS), st.integers(), st.none()), max_size=10))
def test_no_written_cell_can_run_as_a_formula_and_nothing_else_changes(values: list[object]):
    out = [neutralise_cell(v) for v in values]
    for before, after in zip(values, out, strict=True):
        if isinstance(before, str) and _dangerous(before):
            assert after == "'" + before
        else:
            assert after == before
        assert not (isinstance(after, str) and _dangerous(after))


def test_write_csv_keeps_numbers_and_phones(tmp_path: Path):
    frame = pd.DataFrame({"name": [*ATTACKS, "王伟"], "phone": ["+8613812345678", "-1", "3.5", "", None, "x"]})
    frame["n"] = [-1, 2, 3, 4, 5, 6]
    rows = list(csv.reader((write_csv(frame, tmp_path / "a.csv")).open(encoding="utf-8")))
    assert [r[0] for r in rows[1:]] == ["'" + a for a in ATTACKS] + ["王伟"]
    assert [r[1] for r in rows[1:]] == ["+8613812345678", "-1", "3.5", "", "", "x"]
    assert [r[2] for r in rows[1:]] == ["-1", "2", "3", "4", "5", "6"]


def test_mdm_export_xref_neutralises_injected_source_ids(tmp_path: Path):
    settings = Settings.from_env(env={}, home=tmp_path / "home", landing=tmp_path)
    with connect(settings) as wh:
        ensure_tables(wh)
        for i, attack in enumerate(ATTACKS):
            wh.execute(
                "insert into mdm.xref (record_id, source, source_id, golden_id, match_probability, assignment) "
                "values (?, 'crm', ?, ?, 0.9, 'model')",
                [f"crm:{attack}", attack, f"G{i}"],
            )
    out = tmp_path / "xref.csv"
    result = CliRunner().invoke(
        main, ["--home", str(settings.home), "export", "xref", "--out", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    cells = [row[1] for row in list(csv.reader(out.open(encoding="utf-8")))[1:]]
    assert sorted(cells) == sorted("'" + a for a in ATTACKS)
