"""The static scorecard report: ``$MDM_HOME/reports/scorecard/index.html``.

One self-contained HTML file (inline CSS and SVG; no server, no CDN, no JavaScript) that a
governance lead opens in a browser or gets as a mail attachment:

* the headline of each quality dimension for the latest run, with the change since the run before;
* one line chart per dimension over the recorded runs: overall and per source;
* every metric of the latest run per scope, with arrows against the previous run (green when
  it got better, red when worse; for duplicate and failure rates lower is better);
* the governance work waiting: re-verification worklist and consistency report counts, with CSV
  extracts next to the report (``reverification_worklist.csv``, ``consistency_report.csv``:
  ids, reasons, due dates and record ids, no personal values: those stay in the warehouse);
* a relative link to the Great Expectations Data Docs (``reports/data_docs/index.html``) when
  they have been built.
"""

from __future__ import annotations

import html
import logging
import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from customer_mdm import plan
from customer_mdm.config import Settings
from customer_mdm.governance.scorecard import (
    DIMENSIONS,
    HEADLINES,
    HISTORY_TABLE,
    OVERALL,
    metric_info,
    read_history,
)
from customer_mdm.warehouse import _check_ident, connect

log = logging.getLogger(__name__)

#: line colours: overall first, then the reference sources, then a fallback palette
SCOPE_COLOURS = {
    OVERALL: "#1f3a93",
    "crm": "#e4572e",
    "ecommerce": "#17a398",
    "callcenter": "#f3a712",
    "store_pos": "#8e44ad",
}
_FALLBACK_COLOURS = ("#2e86de", "#c0392b", "#27ae60", "#7f8c8d", "#d35400", "#16a085")
_SOURCE_ORDER = tuple(plan.person_sources())  # the plan's person sources, in its order

_CSS = """
:root { --ink: #1d2733; --muted: #5f6b7a; --line: #dfe3e8; --bg: #f6f7f9; --card: #ffffff;
        --good: #1e8449; --bad: #c0392b; --flat: #7f8c8d; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 14px/1.5 -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", Helvetica, Arial, sans-serif; }
header { background: #1f3a93; color: #fff; padding: 20px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header p { margin: 0; opacity: .85; }
header a { color: #fff; }
main { max-width: 1220px; margin: 0 auto; padding: 20px 32px 48px; }
h2 { font-size: 17px; margin: 32px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); gap: 12px; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.tile .dim { text-transform: capitalize; color: var(--muted); font-size: 12px; letter-spacing: .04em; }
.tile .val { font-size: 26px; font-weight: 600; }
.tile .what { color: var(--muted); font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 14px; }
figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
figcaption { font-weight: 600; text-transform: capitalize; }
figcaption span { font-weight: 400; color: var(--muted); text-transform: none; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 10px 0 0; padding: 0;
          list-style: none; font-size: 12px; }
.legend li::before { content: ""; display: inline-block; width: 12px; height: 3px; margin-right: 6px;
                     vertical-align: middle; background: var(--c); }
table { border-collapse: collapse; width: 100%; background: var(--card); border: 1px solid var(--line); }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { background: #eef1f5; font-weight: 600; }
td.l, th.l { text-align: left; }
tr.head td { font-weight: 600; }
td.dim { text-transform: capitalize; font-weight: 600; }
.up { color: var(--good); } .down { color: var(--bad); } .same { color: var(--flat); }
.delta { font-size: 12px; margin-left: 4px; }
.muted { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 14px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
.card h3 { margin: 0 0 8px; font-size: 15px; }
.card table { border: 0; }
footer { color: var(--muted); font-size: 12px; margin-top: 36px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; }
dt { font-weight: 600; text-transform: capitalize; }
dd { margin: 0; }
"""

_DIMENSION_DOCS = {
    "completeness": "Share of each source's key fields that are filled.",
    "validity": "Share of delivered phones, emails, regions and birth dates that are valid.",
    "accuracy": "Of the contacts with a known outcome, the share whose last contact event is verified.",
    "consistency": "Share of persons with several records whose records agree on birth date, gender and name.",
    "uniqueness": "Duplicate records before linkage (1 - golden ids / records); lower is better.",
    "timeliness": "Share of golden fields confirmed within their freshness policy.",
}


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.{digits}f} %"


def _scope_order(scopes: Sequence[str]) -> list[str]:
    known = [s for s in (OVERALL, *_SOURCE_ORDER) if s in scopes]
    return known + sorted(s for s in scopes if s not in known)


def scope_colours(scopes: Sequence[str]) -> dict[str, str]:
    colours, spare = {}, iter(_FALLBACK_COLOURS * 4)
    for scope in _scope_order(scopes):
        colours[scope] = SCOPE_COLOURS.get(scope) or next(spare)
    return colours


def _delta(dimension: str, metric: str, now: float | None, before: float | None) -> str:
    """An arrow with the change in percentage points, coloured by whether it is an improvement."""
    if now is None or before is None or math.isnan(now) or math.isnan(before):
        return '<span class="delta same" title="no previous run">new</span>'
    change = 100 * (now - before)
    if abs(change) < 0.05:
        return '<span class="delta same" title="unchanged since the previous run">→ 0.0</span>'
    better = (change > 0) == metric_info(dimension, metric).higher_is_better
    arrow = "▲" if change > 0 else "▼"
    css = "up" if better else "down"
    word = "better" if better else "worse"
    return f'<span class="delta {css}" title="{word} than the previous run">{arrow} {abs(change):.1f}</span>'


# ----------------------------------------------------------------------------- charts
_STEPS = (0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25)


def nice_axis(values: Sequence[float]) -> tuple[float, float, float]:
    """(low, high, step) of a y axis between 0 and 1 with 3 to 6 round ticks around the values."""
    lo, hi = max(0.0, min(values)), min(1.0, max(values))
    span = max(hi - lo, 0.02)
    step = next((st for st in _STEPS if span / st <= 5), _STEPS[-1])
    low = max(0.0, math.floor(lo / step - 0.25) * step)
    high = min(1.0, math.ceil(hi / step + 0.25) * step)
    if high - low < 2 * step:
        high = min(1.0, low + 2 * step)
        low = max(0.0, high - 2 * step)
    return low, high, step


def line_chart(
    series: dict[str, list[float | None]],
    x_labels: Sequence[str],
    colours: dict[str, str],
    title: str,
    width: int = 560,
    height: int = 230,
) -> str:
    """An inline SVG line chart of shares (0-1) over runs: one line per series, dots per run."""
    left, right, top, bottom = 46, 12, 10, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs if v is not None and not math.isnan(v)]
    lo, hi, step = nice_axis(values) if values else (0.0, 1.0, 0.25)
    n = max(len(x_labels), 1)

    def x(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{_esc(title)}" font-family="inherit" font-size="11">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fbfcfd" stroke="#dfe3e8"/>',
    ]
    digits = 0 if step >= 0.01 else 1
    for k in range(round((hi - lo) / step) + 1):
        tick = lo + step * k
        yy = y(tick)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eceff3"/>')
        parts.append(
            f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#5f6b7a">{100 * tick:.{digits}f}%</text>'
        )
    every = max(1, math.ceil(n / 6))
    shown = list(range(0, n, every))
    if shown and shown[-1] != n - 1:
        if (n - 1) - shown[-1] < every / 2 and len(shown) > 1:
            shown.pop()  # too close to the last run's label
        shown.append(n - 1)
    for i in shown[: len(x_labels)]:
        anchor = "middle" if n == 1 else ("start" if i == 0 else ("end" if i == n - 1 else "middle"))
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="{anchor}" fill="#5f6b7a">'
            f"{_esc(x_labels[i])}</text>"
        )
    # overall last, so it is drawn on top
    for scope in sorted(series, key=lambda s: s == OVERALL):
        colour, vs = colours[scope], series[scope]
        width_px = 3 if scope == OVERALL else 2
        points = [(x(i), y(v)) for i, v in enumerate(vs) if v is not None and not math.isnan(v)]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="{width_px}" '
                'stroke-linejoin="round" stroke-linecap="round"/>'
            )
        for i, v in enumerate(vs):
            if v is None or math.isnan(v):
                continue
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="{width_px + 1.5}" fill="{colour}">'
                f"<title>{_esc(scope)} {_esc(x_labels[i])}: {_pct(v, 2)}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


# ----------------------------------------------------------------------------- governance work
def _governance_work(settings: Settings, schema: str, out_dir: Path) -> dict[str, Any]:
    """Counts of the worklist and consistency report, and their CSV extracts (no personal values)."""
    work: dict[str, Any] = {}
    if settings.target == "duckdb" and not settings.warehouse_file.exists():
        return work
    from customer_mdm.csv_export import write_csv  # formula-like cells neutralised (CSV injection)

    worklist, consistency = f"{schema}.reverification_worklist", f"{schema}.consistency_report"
    with connect(settings, read_only=True) as wh:
        if wh.table_exists(worklist):
            df = wh.query_df(
                "select golden_id, field, field_class, reason_code, reason, due_date, days_overdue, priority, "
                f"priority_rank, source_record, tier, as_of_utc from {worklist} "
                "order by priority_rank, due_date, golden_id, field"
            )
            work["worklist"] = df
            write_csv(df.drop(columns=["priority_rank"]), out_dir / "reverification_worklist.csv")
        if wh.table_exists(consistency):
            df = wh.query_df(
                "select golden_id, field, distinct_values, records_with_field, value_record_count, records, "
                f"sources, is_golden_value from {consistency} order by golden_id, field, records"
            )
            work["consistency"] = df
            write_csv(df, out_dir / "consistency_report.csv")
        if wh.table_exists(f"{schema}.customer_segments"):
            work["segments"] = wh.query_df(
                f"select lifecycle_stage, rfm_segment, count(*) as customers from {schema}.customer_segments "
                "group by lifecycle_stage, rfm_segment"
            )
    return work


def _count_table(rows: list[tuple[str, int]], headers: tuple[str, str]) -> str:
    body = "".join(f'<tr><td class="l">{_esc(k)}</td><td>{v:,}</td></tr>' for k, v in rows)
    return (
        f'<table><thead><tr><th class="l">{_esc(headers[0])}</th><th>{_esc(headers[1])}</th></tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _work_section(work: dict[str, Any], schema: str) -> str:
    cards = []
    wl = work.get("worklist")
    if wl is not None:
        by_priority = [(p, int((wl["priority"] == p).sum())) for p in ("high", "medium", "low")]
        by_reason = sorted(wl["reason_code"].value_counts().items(), key=lambda kv: (-kv[1], kv[0]))
        customers = wl["golden_id"].nunique()
        cards.append(
            '<div class="card"><h3>Re-verification worklist</h3>'
            f"<p>{len(wl):,} fields of {customers:,} customers are due. "
            '<a href="reverification_worklist.csv">Download the worklist (CSV)</a> · '
            f"warehouse table <code>{schema}.reverification_worklist</code></p>"
            + _count_table(by_priority, ("priority", "fields"))
            + "<p></p>"
            + _count_table([(str(k), int(v)) for k, v in by_reason], ("reason", "fields"))
            + "</div>"
        )
    cr = work.get("consistency")
    if cr is not None:
        persons = cr[["golden_id", "field"]].drop_duplicates()
        by_field = sorted(persons["field"].value_counts().items())
        cards.append(
            '<div class="card"><h3>Consistency report</h3>'
            f"<p>{persons['golden_id'].nunique():,} customers whose records disagree on a field that should agree. "
            '<a href="consistency_report.csv">Download the report (CSV)</a> · '
            f"warehouse table <code>{schema}.consistency_report</code> (with the values)</p>"
            + _count_table([(str(k), int(v)) for k, v in by_field], ("field", "customers"))
            + "</div>"
        )
    seg = work.get("segments")
    if seg is not None and not seg.empty:
        stages = seg.groupby("lifecycle_stage")["customers"].sum()
        order = [s for s in ("vip", "active", "lapsed", "prospect") if s in stages.index]
        cards.append(
            '<div class="card"><h3>Customer segments</h3>'
            f"<p>Lifecycle stages (warehouse table <code>{schema}.customer_segments</code>, with RFM scores).</p>"
            + _count_table([(s, int(stages[s])) for s in order], ("lifecycle stage", "customers"))
            + "</div>"
        )
    if not cards:
        return '<p class="muted">The governance dbt models have not been built yet.</p>'
    return '<div class="cards">' + "".join(cards) + "</div>"


# ----------------------------------------------------------------------------- the page
def _run_label(ts: pd.Timestamp) -> str:
    return ts.strftime("%m-%d %H:%M")


def _render(history: pd.DataFrame, work: dict[str, Any], data_docs: str | None, target: str, schema: str) -> str:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    runs = history.groupby("run_id")["measured_at"].min().sort_values()
    run_ids = list(runs.index)
    latest_id = run_ids[-1] if run_ids else None
    previous_id = run_ids[-2] if len(run_ids) > 1 else None
    scopes = _scope_order(sorted(history["scope"].unique())) if not history.empty else [OVERALL]
    colours = scope_colours(scopes)
    value = {
        (r.run_id, r.scope, r.dimension, r.metric): float(r.value)
        for r in history[["run_id", "scope", "dimension", "metric", "value"]].itertuples(index=False)
    }

    links = []
    if data_docs:
        links.append(f'<a href="{_esc(data_docs)}">Validation reports (Data Docs)</a>')
    links += ['<a href="#charts">Trends</a>', '<a href="#latest">All metrics</a>', '<a href="#work">Work waiting</a>']
    subtitle = (
        f"Latest run <b>{_esc(latest_id)}</b> measured {_esc(runs.iloc[-1].strftime('%Y-%m-%d %H:%M'))} UTC · "
        f"{len(run_ids)} run(s) recorded · warehouse {_esc(target)}"
        if latest_id
        else "No scorecard recorded yet"
    )
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Customer data quality scorecard</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header><h1>Customer data quality scorecard</h1>",
        f"<p>{subtitle}</p><p>{' · '.join(links)}</p></header><main>",
    ]
    if latest_id is None:
        out.append(
            f'<p class="muted">{HISTORY_TABLE} is empty: record a run with '
            "<code>customer_mdm.governance.record_scorecard</code>.</p>"
        )

    # headline tiles
    if latest_id:
        out.append("<h2>Today</h2><div class='tiles'>")
        for dim in DIMENSIONS:
            metric = HEADLINES[dim]
            now = value.get((latest_id, OVERALL, dim, metric))
            if now is None:
                continue
            before = value.get((previous_id, OVERALL, dim, metric)) if previous_id else None
            lower = "" if metric_info(dim, metric).higher_is_better else " (lower is better)"
            out.append(
                f'<div class="tile"><div class="dim">{_esc(dim)}</div>'
                f'<div class="val">{_pct(now)} {_delta(dim, metric, now, before)}</div>'
                f'<div class="what">{_esc(metric_info(dim, metric).label)}{lower}</div></div>'
            )
        out.append("</div>")

    # trend charts
    out.append('<h2 id="charts">Trends over runs</h2><div class="charts">')
    labels = [_run_label(ts) for ts in runs]
    for dim in DIMENSIONS:
        metric = HEADLINES[dim]
        series = {
            scope: [value.get((rid, scope, dim, metric)) for rid in run_ids]
            for scope in scopes
            if any((rid, scope, dim, metric) in value for rid in run_ids)
        }
        if not series:
            continue
        legend = "".join(f'<li style="--c:{colours[s]}">{_esc(s)}</li>' for s in series)
        out.append(
            f"<figure><figcaption>{_esc(dim)} <span>· {_esc(metric_info(dim, metric).label)}</span></figcaption>"
            + line_chart(series, labels, colours, f"{dim}: {metric}")
            + f'<ul class="legend">{legend}</ul></figure>'
        )
    out.append("</div>")

    # every metric of the latest run
    if latest_id:
        latest = history[history["run_id"] == latest_id]
        out.append(
            '<h2 id="latest">All metrics of the latest run</h2>'
            '<p class="muted">Arrows: change in percentage points since the previous run; '
            "green is better, red is worse (for duplicate and failure rates lower is better).</p>"
        )
        header = "".join(f"<th>{_esc(s)}</th>" for s in scopes)
        out.append(
            f'<table><thead><tr><th class="l">dimension</th><th class="l">metric</th>{header}</tr></thead><tbody>'
        )
        for dim in DIMENSIONS:
            metrics = list(dict.fromkeys(latest.loc[latest["dimension"] == dim, "metric"]))
            metrics.sort(key=lambda m: (m != HEADLINES[dim], m))
            for i, metric in enumerate(metrics):
                cells = []
                for scope in scopes:
                    now = value.get((latest_id, scope, dim, metric))
                    if now is None:
                        cells.append('<td class="muted">·</td>')
                        continue
                    before = value.get((previous_id, scope, dim, metric)) if previous_id else None
                    cells.append(f"<td>{_pct(now)}{_delta(dim, metric, now, before)}</td>")
                cls = ' class="head"' if metric == HEADLINES[dim] else ""
                dim_cell = f'<td class="l dim">{_esc(dim)}</td>' if i == 0 else '<td class="l"></td>'
                out.append(
                    f"<tr{cls}>{dim_cell}<td class='l'>{_esc(metric_info(dim, metric).label)}</td>{''.join(cells)}</tr>"
                )
        out.append("</tbody></table>")

    out.append(f'<h2 id="work">Work waiting</h2>{_work_section(work, schema)}')

    docs = "".join(f"<dt>{_esc(d)}</dt><dd>{_esc(t)}</dd>" for d, t in _DIMENSION_DOCS.items())
    out.append(
        f"<footer><h2>Definitions</h2><dl>{docs}</dl>"
        f"<p>History: warehouse table <code>{HISTORY_TABLE}</code> (one row per run, scope, dimension and "
        "metric; <code>governance.scorecard_latest</code> is the newest run). "
        f"Generated {generated} by customer_mdm.governance.report.</p></footer>"
    )
    out.append("</main></body></html>")
    return "\n".join(out)


def write_report(settings: Settings, governance_schema: str = "governance", max_runs: int = 90) -> Path:
    """Write ``settings.reports_dir / "scorecard" / "index.html"`` (and the CSV extracts); return its path."""
    out_dir = settings.reports_dir / "scorecard"
    out_dir.mkdir(parents=True, exist_ok=True)
    history = read_history(settings, runs=max_runs)
    schema = _check_ident(governance_schema)
    work = _governance_work(settings, schema, out_dir)
    docs_index = settings.reports_dir / "data_docs" / "index.html"
    data_docs = Path(os.path.relpath(docs_index, out_dir)).as_posix() if docs_index.exists() else None
    page = _render(history, work, data_docs, settings.target, schema)
    target = out_dir / "index.html"
    tmp = target.with_name(".index.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    log.info("scorecard report written to %s", target)
    return target
