"""The match-weight waterfall of one pair: how each comparison of the linkage model moved the
score, from the prior to the pair's stored match weight.

Each comparison's level is found by evaluating the model's own level conditions (the Splink
settings, DuckDB SQL) on the two prepared records in an in-memory DuckDB; its weight is
``log2(m / u)`` of that level (0 for the null level). What the term-frequency adjustments add
(they depend on person counts of the whole warehouse) is the difference between the stored
match weight of the pair (``mdm.pairs``) and prior + comparisons, shown as its own bar, so the
bars always add up to the weight the link step used.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb
import pandas as pd

from customer_mdm.config import Settings


def _prior_weight(settings: dict[str, Any]) -> float:
    p = float(settings.get("probability_two_random_records_match") or 1e-6)
    return math.log2(p / (1 - p))


def waterfall(
    settings: Settings, left: dict[str, Any], right: dict[str, Any], stored_weight: float | None, n_records: int
) -> list[dict[str, Any]]:
    """Bars ``{"name", "level", "weight", "cumulative"}``: prior, one per comparison, term
    frequencies (when the stored weight is known), the total."""
    from customer_mdm.linkage.model import load_current, prepare_records

    model = load_current(settings.models_dir / "linkage")
    splink = model.settings_for(max(n_records, 2))
    prepared = prepare_records(pd.DataFrame([left, right]))
    prepared = prepared.assign(_side=[0, 1][: len(prepared)])
    if len(prepared) != 2:
        raise ValueError("a waterfall needs two records")
    select = ", ".join(f'l."{c}" as "{c}_l", r."{c}" as "{c}_r"' for c in prepared.columns if c != "_side")
    bars: list[dict[str, Any]] = [{"name": "prior", "level": "", "weight": _prior_weight(splink)}]
    con = duckdb.connect()
    try:
        con.register("prepared", prepared)
        con.execute(
            f"create table pair_frame as select {select} from prepared as l, prepared as r "
            "where l._side = 0 and r._side = 1"
        )
        cases = []
        for i, comp in enumerate(splink["comparisons"]):
            whens = " ".join(
                f"when {'true' if lv['sql_condition'].strip().upper() == 'ELSE' else lv['sql_condition']} then {j}"
                for j, lv in enumerate(comp["comparison_levels"])
            )
            cases.append(f"case {whens} else -1 end as c{i}")
        found = con.execute(f"select {', '.join(cases)} from pair_frame").fetchall()[0]
    finally:
        con.close()
    for comp, j in zip(splink["comparisons"], found, strict=True):
        levels = comp["comparison_levels"]
        name = comp.get("output_column_name") or comp.get("comparison_description") or "?"
        if j < 0:
            bars.append({"name": name, "level": "", "weight": 0.0})
            continue
        lv = levels[j]
        weight = 0.0
        if not lv.get("is_null_level") and lv.get("m_probability") and lv.get("u_probability"):
            weight = math.log2(float(lv["m_probability"]) / float(lv["u_probability"]))
        bars.append({"name": name, "level": lv.get("label_for_charts") or lv["sql_condition"], "weight": weight})
    computed = sum(b["weight"] for b in bars)
    if stored_weight is not None and not math.isnan(stored_weight):
        bars.append({"name": "term_frequency", "level": "", "weight": float(stored_weight) - computed})
        computed = float(stored_weight)
    running = 0.0
    for b in bars:
        running += b["weight"]
        b["cumulative"] = running
    bars.append({"name": "total", "level": "", "weight": computed, "cumulative": computed, "total": True})
    return bars
