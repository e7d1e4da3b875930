"""The match-weight waterfall of one pair: how each comparison of the linkage model moved the
score, from the prior to the pair's stored match weight.

:func:`from_matcher` (used first): the hub's match-on-entry engine (customer_mdm.hub.matching)
holds every published record prepared and the model compiled with its term-frequency
parameters; scoring the left record against the right one gives each comparison's level and
weight, term frequencies included, in microseconds.

:func:`waterfall` (when the matcher is unavailable): each comparison's level is found by
evaluating the model's own level conditions (the Splink settings, DuckDB SQL) on the two
prepared records in an in-memory DuckDB; its weight is ``log2(m / u)`` of that level (0 for the
null level).

Either way the bars add up to the stored match weight of the pair (``mdm.pairs``): what the
comparisons do not explain (term-frequency adjustments, which depend on person counts of the
run that scored the pair) is its own bar.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb
import pandas as pd

from customer_mdm.config import Settings


def _bars(prior: float, comparisons: list[dict[str, Any]], stored_weight: float | None) -> list[dict[str, Any]]:
    bars: list[dict[str, Any]] = [{"name": "prior", "level": "", "weight": prior}, *comparisons]
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


def from_matcher(reader: Any, left: str, right: str, stored_weight: float | None) -> list[dict[str, Any]] | None:
    """The waterfall from the match-on-entry engine of the current serving version; ``None`` when
    a record is not in it. The residual bar (``term_frequency``) is then what differs from the
    stored weight (person counts of the run that scored the pair)."""
    import numpy as np

    from customer_mdm.hub.matching import get_matcher

    matcher = get_matcher(reader)
    keys = matcher.index.record_keys
    pos = []
    for rid in (left, right):
        i = int(np.searchsorted(keys, rid))
        if i >= len(keys) or keys[i] != rid:
            return None
        pos.append(i)
    model = matcher._model()
    prior = model.prior_weight(matcher.index.n_records)
    score = matcher.score_pair(matcher.index.row(pos[0]), pos[1], model, prior)
    comparisons = [
        {"name": e["comparison"], "level": e["level"], "weight": float(e["match_weight"])} for e in score.explanation
    ]
    bars = _bars(prior, comparisons, stored_weight)
    if abs(bars[-2]["weight"]) < 1e-9 and bars[-2]["name"] == "term_frequency":
        bars.pop(-2)
    return bars


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
    comparisons = []
    for comp, j in zip(splink["comparisons"], found, strict=True):
        levels = comp["comparison_levels"]
        name = comp.get("output_column_name") or comp.get("comparison_description") or "?"
        if j < 0:
            comparisons.append({"name": name, "level": "", "weight": 0.0})
            continue
        lv = levels[j]
        weight = 0.0
        if not lv.get("is_null_level") and lv.get("m_probability") and lv.get("u_probability"):
            weight = math.log2(float(lv["m_probability"]) / float(lv["u_probability"]))
        comparisons.append({"name": name, "level": lv.get("label_for_charts") or lv["sql_condition"], "weight": weight})
    return _bars(_prior_weight(splink), comparisons, stored_weight)
