"""``mdm``: the platform's command line. Every command calls the same functions as the DAGs."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

from customer_mdm import __version__
from customer_mdm.config import Settings
from customer_mdm.errors import MdmError, RunLocked

#: bounds of the --limit options (rows listed)
LIMIT = click.IntRange(min=1, max=100_000)


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    base = dict(ctx.obj or {})
    base.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.from_env(**base)


class _Cli(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MdmError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=_Cli)
@click.version_option(__version__, "-V", "--version", prog_name="mdm", message="%(prog)s %(version)s")
@click.option("--home", type=click.Path(path_type=Path), help="State directory (default: $MDM_HOME or ./.mdm).")
@click.option("--target", type=str, help="Warehouse: duckdb (default) or postgres (env MDM_TARGET).")
@click.option("-v", "--verbose", is_flag=True, help="Show debug logging.")
@click.pass_context
def main(ctx: click.Context, home: Path | None, target: str | None, verbose: bool) -> None:
    """Customer master-data platform: ingest, standardise, link and publish golden customers."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = {k: v for k, v in {"home": home, "target": target}.items() if v is not None}


# ----------------------------------------------------------------------------- run
def print_summary(summary: dict[str, Any]) -> None:
    ok = summary["status"] == "success"
    click.secho(
        f"\nrun {summary['run_id']}: {summary['status'].upper()}  (target {summary['target']}, {summary['seconds']}s)",
        fg="green" if ok else "red",
        bold=True,
    )
    click.echo(f"landing zone: {summary['landing']}")
    header = f"  {'feed':<18}{'files new':>10}{'skipped':>9}{'quarant.':>9}{'rows loaded':>13}{'rows quar.':>12}"
    click.echo(header)
    for name, f in summary["feeds"].items():
        click.echo(
            f"  {name:<18}{f['files_ingested']:>10}{f['files_skipped']:>9}"
            f"{f['files_quarantined'] + f['files_changed']:>9}{f['rows_loaded']:>13,}{f['rows_quarantined']:>12,}"
        )
    click.echo(
        f"  {'total':<18}{'':>10}{'':>9}{summary['files_quarantined']:>9}"
        f"{summary['rows_loaded']:>13,}{summary['rows_quarantined']:>12,}"
    )
    click.echo("steps:")
    for name, info in summary["steps"].items():
        line = f"  {name:<26} {info['status']:<8} {info.get('seconds', 0):>8.1f}s"
        if "counts" in info:
            line += "  " + ", ".join(f"{k}={v}" for k, v in sorted(info["counts"].items()))
        click.echo(line)
        if info.get("error"):
            click.secho(f"      {info['error'].splitlines()[0][:300]}", fg="red")
    for step_name in summary.get("missing_steps", []):
        click.secho(f"  {step_name:<26} did not run", fg="red")
    link = summary["steps"].get("link", {})
    if link.get("status") == "success":
        click.echo(
            f"linkage ({link['mode']}, model {link['model_version']}): {link['records']:,} records -> "
            f"{link['golden_ids']:,} golden customers (largest {link['largest_cluster']} records), "
            f"{link['review_queue']:,} pair(s) for review (`mdm review list`)"
        )
    erasure = summary["steps"].get("erasure", {})
    if erasure.get("status") == "success" and (erasure.get("requests") or erasure.get("tombstone_matches")):
        click.echo(
            f"erasure: {erasure['erased']} request(s) erased, {erasure['not_found']} not found, "
            f"{erasure['invalid']} invalid; tombstone matches dropped: {erasure['tombstone_matches'] or 'none'}"
        )
        for r in erasure["requests"][:20]:
            rows = sum(r["rows_deleted"].values())
            click.echo(f"  {r['request_id']}: {r['status']} ({r['records']} record(s), {rows} row(s) deleted)")
    quality = summary.get("quality", {})
    for gate, info in quality.get("gates", {}).items():
        colour = "red" if info["blocking_failures"] else ("yellow" if info["warnings"] else "green")
        click.secho(
            f"quality {gate}: {len(info['blocking_failures'])} blocking failure(s), {len(info['warnings'])} warning(s)",
            fg=colour,
        )
        for label in info["blocking_failures"][:10]:
            click.secho(f"      blocking: {label}", fg="red")
    if quality.get("data_docs"):
        click.echo(f"Data Docs: {quality['data_docs']}")
    if quality.get("scorecard_report"):
        click.echo(f"quality scorecard: {quality['scorecard_report']}")
    files = [q for q in summary["quarantine"] if q["kind"] == "file"]
    if summary["quarantine"]:
        click.secho(
            f"quarantined: {len(files)} file(s), {summary['rows_quarantined']} row(s) (see `mdm quarantine`)",
            fg="yellow",
        )
        for q in files[:20]:
            click.echo(f"  {q['file']}: {q['reason']}")


def _dags_runs(settings: Settings, run_id: str, full: bool, quiet: bool, no_governance: bool) -> int:
    """The daily DAG, then the governance DAG, through ``airflow dags test``; the exit code."""
    from customer_mdm.airflow_runner import dags_test

    code = dags_test(
        settings,
        "mdm_daily",
        conf={"mdm_run_id": run_id, "full": full},
        extra_env={"MDM_TASK_RETRIES": "0"},
        stream=not quiet,
    )
    if code == 0 and not no_governance:  # the scheduler runs it on the golden asset; `dags test` does not
        code = dags_test(
            settings,
            "mdm_governance",
            conf={"mdm_run_id": run_id},
            extra_env={"MDM_TASK_RETRIES": "0"},
            stream=not quiet,
        )
    return code


@main.command()
@click.option("--landing", type=click.Path(path_type=Path), help="Landing zone (default: $MDM_LANDING).")
@click.option("--no-airflow", is_flag=True, help="Run the steps in this process instead of through Airflow.")
@click.option("--quiet", is_flag=True, help="Do not stream Airflow's log (it is kept in $MDM_HOME/airflow/logs).")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option(
    "--no-governance",
    is_flag=True,
    help="Run only the daily pipeline, not the governance outputs (worklist, segments, scorecard, report) "
    "that the scheduler runs after each publication.",
)
@click.option("--full", is_flag=True, help="Rescore every record instead of only new and changed ones.")
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(min=0),
    help="Seconds to wait for another run's lock before giving up (default $MDM_RUN_LOCK_WAIT or 0: refuse at once).",
)
@click.pass_context
def run(
    ctx: click.Context,
    landing: Path | None,
    no_airflow: bool,
    quiet: bool,
    as_json: bool,
    no_governance: bool,
    full: bool,
    wait_seconds: float | None,
) -> None:
    """Run the daily pipeline (through Airflow's `dags test`) and print the run summary."""
    from customer_mdm.ingest.loader import check_landing
    from customer_mdm.pipeline import new_run_id, run_summary
    from customer_mdm.warehouse import connect

    settings = _settings(ctx, landing=landing, run_lock_wait=wait_seconds)
    check_landing(settings)
    settings.ensure_dirs()
    with connect(settings):  # fail early and clearly on an unreachable warehouse
        pass
    run_id = new_run_id()
    started = time.perf_counter()
    if no_airflow:
        from customer_mdm.pipeline import run_inline

        try:
            run_inline(settings, run_id, full=full, governance=not no_governance)
        except RunLocked:
            raise
        except MdmError as exc:
            click.secho(str(exc), fg="red", err=True)
    else:
        from customer_mdm.runlock import holding

        with holding(settings, run_id):  # the DAG's start task finds the lock taken for this run id
            code = _dags_runs(settings, run_id, full, quiet, no_governance)
        if code != 0:
            click.secho(
                f"airflow dags test exited with {code}; log: {settings.airflow_home / 'logs' / 'mdm_daily-last.log'}",
                fg="red",
                err=True,
            )
    try:
        summary = run_summary(settings, run_id)
    except KeyError:
        raise MdmError(
            f"the run did not start (no {run_id} in ops.runs); see "
            f"{settings.airflow_home / 'logs' / 'mdm_daily-last.log'}"
        ) from None
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    if as_json:
        click.echo(json.dumps(summary, default=str, ensure_ascii=False, indent=2))
    else:
        print_summary(summary)
    if summary["status"] != "success":
        sys.exit(1)


# ----------------------------------------------------------------------------- status & inspection
def _has_table(settings: Settings, table: str, nothing: str) -> bool:
    """False, after saying so (``nothing``), when there is no warehouse or no ``table`` yet."""
    from customer_mdm.warehouse import connect

    if settings.target == "duckdb" and not settings.warehouse_file.exists():
        click.echo(f"{nothing}: no warehouse at {settings.warehouse_file} (run `mdm run`)")
        return False
    with connect(settings, read_only=True) as wh:
        if not wh.table_exists(table):
            click.echo(f"{nothing} (run `mdm run`)")
            return False
    return True


@main.command()
@click.option("--limit", type=LIMIT, default=10, show_default=True, help="How many runs to show, newest first.")
@click.pass_context
def status(ctx: click.Context, limit: int) -> None:
    """Show the last runs."""
    from customer_mdm.warehouse import connect

    settings = _settings(ctx)
    if not _has_table(settings, "ops.runs", "no runs yet"):
        return
    with connect(settings, read_only=True) as wh:
        rows = wh.query(
            "select run_id, status, started_at, finished_at, summary from ops.runs order by started_at desc limit ?",
            [limit],
        )
    click.echo(
        f"{'run':<34}{'status':<9}{'started (UTC)':<21}{'secs':>7}{'rows':>11}{'quar. rows':>11}{'quar. files':>12}"
    )
    for run_id, st, started, finished, summary in rows:
        s = json.loads(summary) if summary else {}
        secs = f"{(finished - started).total_seconds():.0f}" if finished else "-"
        click.echo(
            f"{run_id:<34}{st:<9}{str(started)[:19]:<21}{secs:>7}{s.get('rows_loaded', 0):>11,}"
            f"{s.get('rows_quarantined', 0):>11,}{s.get('files_quarantined', 0):>12,}"
        )


@main.command()
@click.option("--run", "run_id", help="Only this run (a run id from `mdm status`).")
@click.option("--limit", type=LIMIT, default=50, show_default=True, help="How many rows to show, newest first.")
@click.pass_context
def quarantine(ctx: click.Context, run_id: str | None, limit: int) -> None:
    """List quarantined files and rows with their reasons."""
    from customer_mdm.warehouse import connect

    settings = _settings(ctx)
    if not _has_table(settings, "ops.quarantine", "nothing quarantined yet"):
        return
    with connect(settings, read_only=True) as wh:
        where, params = ("where run_id = ?", [run_id]) if run_id else ("", [])
        rows = wh.query(
            f"select quarantined_at, feed, source_file, kind, row_number, reason, kept_at from ops.quarantine "
            f"{where} order by quarantined_at desc, source_file, row_number limit ?",
            [*params, limit],
        )
    for at, feed_name, file, kind, row, reason, kept in rows:
        where_ = f"{file}" + (f" row {row}" if row is not None else "")
        click.echo(
            f"{str(at)[:19]}  {feed_name:<18} {kind:<4} {where_}: {reason}" + (f"  [kept: {kept}]" if kept else "")
        )


@main.command()
@click.option("--golden-id", help="Only this golden customer.")
@click.option("--since", type=click.DateTime(), help="Only changes at or after this UTC time (2026-11-20[ 13:00:00]).")
@click.option(
    "--action",
    type=click.Choice(["new", "merge", "split", "retire", "survivorship_change", "steward_decision", "erasure"]),
    help="Only changes of this kind.",
)
@click.option("--record", help="Only rows about this source record (source:source_id; matched by its pseudonym).")
@click.option("--limit", type=LIMIT, default=200, show_default=True, help="How many audit rows to show.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def audit(
    ctx: click.Context,
    golden_id: str | None,
    since: Any,
    action: str | None,
    record: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List the golden-record audit log (audit.golden_changes), newest first."""
    from customer_mdm.audit import list_changes
    from customer_mdm.warehouse import connect

    settings = _settings(ctx)
    with connect(settings, read_only=True) as wh:
        rows = list_changes(settings, wh, golden_id=golden_id, since=since, action=action, record=record, limit=limit)
    if rows.empty:
        click.echo("no audit rows match")
        return
    for r in rows.to_dict("records"):
        if as_json:
            click.echo(json.dumps(r, default=str, ensure_ascii=False))
            continue
        change = " -> ".join(str(v) for v in (r["old_value"], r["new_value"]) if v is not None)
        click.echo(
            f"{str(r['changed_at'])[:19]}  {r['action']:<19} {r['golden_id'] or '-':<14} {r['field'] or '':<17} "
            f"by {r['actor_kind']} {r['actor']}: {r['reason'] or ''}"
        )
        if change:
            click.echo(f"      {change[:400]}")


@main.command()
@click.pass_context
def erasures(ctx: click.Context) -> None:
    """List handled erasure requests (ops.erasure_requests): status and rows deleted."""
    from customer_mdm.privacy import erasure_report

    report = erasure_report(_settings(ctx))
    if report.empty:
        click.echo("no erasure request handled yet")
    for r in report.to_dict("records"):
        click.echo(
            f"{str(r['processed_at'])[:19]}  {r['request_id']:<20} {r['status']:<10} {r['identifier_type']:<10} "
            f"persons={r['persons']} records={r['records']} rows={r['rows_deleted']}"
        )


@main.group()
def privacy() -> None:
    """Where a person still is (check) and the retention policy (retention)."""


@privacy.command("check")
@click.argument("identifiers", nargs=-1, required=True)
@click.pass_context
def privacy_check(ctx: click.Context, identifiers: tuple[str, ...]) -> None:
    """Search every table and every file under MDM_HOME for IDENTIFIERS (TYPE=VALUE, TYPE one of
    mobile, email, crm_id, member_id, card_no; normalised like the matcher). Prints the places
    and counts, never the values; exits 1 when anything is found."""
    from customer_mdm.privacy_search import check, parse_identifiers

    hits = check(_settings(ctx), parse_identifiers(identifiers))
    for place, n in sorted(hits.places.items()):
        click.echo(f"  {place}: {n}")
    for place in hits.not_searched:
        click.echo(f"  not searched: {place}")
    click.echo(f"{hits.total} hit(s) in {len(hits.places)} place(s)")
    if hits.places:
        ctx.exit(1)


@main.command()
@click.option("--feed", "feed_names", multiple=True, help="Only these feeds (default: all).")
@click.pass_context
def ingest(ctx: click.Context, feed_names: tuple[str, ...]) -> None:
    """Ingest new landing files now, without Airflow."""
    from customer_mdm.ingest import ingest_feed
    from customer_mdm.ingest.loader import check_landing
    from customer_mdm.pipeline import new_run_id
    from customer_mdm.schema import ensure_schema
    from customer_mdm.sources import FEEDS
    from customer_mdm.warehouse import connect

    settings = _settings(ctx)
    check_landing(settings)
    settings.ensure_dirs()
    run_id = new_run_id()
    with connect(settings) as wh:
        ensure_schema(wh)
        for f in FEEDS:
            if feed_names and f.name not in feed_names:
                continue
            r = ingest_feed(settings, f.name, run_id, wh)
            click.echo(
                f"{f.name:<18} files new={r.count('ingested')} skipped={r.count('skipped')} "
                f"quarantined={r.count('quarantined') + r.count('changed')} rows={r.rows_loaded:,} "
                f"rows quarantined={r.rows_quarantined:,}"
            )


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def dbt(ctx: click.Context, dbt_args: tuple[str, ...]) -> None:
    """Run dbt against the configured warehouse, e.g. `mdm dbt build` or `mdm dbt source freshness`."""
    from customer_mdm.dbt import TWO_WORD_COMMANDS, generate_docs, run_dbt

    args = list(dbt_args) or ["build"]
    words = 2 if args[0] in TWO_WORD_COMMANDS and len(args) > 1 else 1  # `source freshness`, `docs generate`
    command, extra = " ".join(args[:words]), args[words:]
    settings = _settings(ctx)
    if command == "docs generate":
        site = generate_docs(settings, extra)
        click.echo(f"dbt docs site: {site / 'index.html'}")
        return
    result = run_dbt(settings, command, extra, check=False)
    click.echo(json.dumps(result.to_dict(), indent=2))
    if not result.success:
        sys.exit(1)


# ----------------------------------------------------------------------------- linkage
@main.group()
def export() -> None:
    """Export platform tables."""


@export.command("xref")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="CSV file to write.")
@click.pass_context
def export_xref(ctx: click.Context, out: Path) -> None:
    """Write the cross-reference (source, source_id, golden_id, match_probability, assignment) as CSV.

    Text cells starting with = + - @ get a leading ' so that a spreadsheet does not run them."""
    from customer_mdm.warehouse import connect

    settings = _settings(ctx)
    with connect(settings, read_only=True) as wh:
        if not wh.table_exists("mdm.xref"):
            raise MdmError("no cross-reference yet: run `mdm run` first")
        frame = wh.query_df(
            "select source, source_id, golden_id, match_probability, assignment, assigned_at_utc "
            "from mdm.xref order by source, source_id"
        )
    from customer_mdm.csv_export import write_csv

    write_csv(frame, out)  # cells a spreadsheet would run as formulas are neutralised
    click.echo(f"wrote {len(frame):,} rows ({frame['golden_id'].nunique():,} golden customers) to {out}")


class _BiViewChoice(click.Choice):  # type: ignore[type-arg]
    """The masked BI views, as ``customer_mdm.security.BI_VIEWS`` declares them, read when the
    option is shown or checked: the CLI starts without importing the security module."""

    def __init__(self) -> None:
        super().__init__((), case_sensitive=True)

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        from customer_mdm.security import BI_VIEW_NAMES  # heavy/optional: pandas, only for this option

        return BI_VIEW_NAMES

    @choices.setter
    def choices(self, value: object) -> None:
        """click.Choice sets its choices at creation: they are read from the views instead."""


@export.command("bi")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="CSV file to write.")
@click.option(
    "--view",
    type=_BiViewChoice(),
    default="dim_customer",
    show_default=True,
    help="Masked view of schema bi to write.",
)
@click.pass_context
def export_bi(ctx: click.Context, out: Path, view: str) -> None:
    """Write a masked BI view (phones, emails, names, addresses, birth dates masked) as CSV."""
    from customer_mdm.security import export_bi as write_bi

    rows = write_bi(_settings(ctx), view, out)
    click.echo(f"wrote {rows:,} rows of bi.{view} (masked) to {out}")


# ----------------------------------------------------------------------------- security
@main.group()
def roles() -> None:
    """PostgreSQL roles: mdm_pipeline, mdm_steward, bi_reader (see README, Security and privacy)."""


@roles.command("apply")
@click.option(
    "--admin-dsn",
    envvar="MDM_PG_ADMIN_DSN",
    default=None,
    help="Superuser or CREATEROLE connection that creates the roles (env MDM_PG_ADMIN_DSN); "
    "default: the pipeline's own MDM_PG_DSN.",
)
@click.option(
    "--reassign-ownership",
    is_flag=True,
    help="Make mdm_pipeline the owner of the platform schemas and their tables (needs --admin-dsn).",
)
@click.pass_context
def roles_apply(ctx: click.Context, admin_dsn: str | None, reassign_ownership: bool) -> None:
    """Create the roles and masked BI views and converge their grants (idempotent).

    Passwords: MDM_PG_PIPELINE_PASSWORD, MDM_PG_STEWARD_PASSWORD, MDM_PG_BI_PASSWORD (a role
    without one is created NOLOGIN; an existing role is left as it is).
    """
    from customer_mdm.security import apply

    settings = _settings(ctx)
    if settings.target != "postgres":
        raise MdmError("roles exist on PostgreSQL only (MDM_TARGET=postgres); on DuckDB use `mdm export bi`")
    if reassign_ownership and not admin_dsn:
        raise MdmError("--reassign-ownership needs --admin-dsn (a superuser connection)")
    summary = apply(settings, admin_dsn=admin_dsn, reassign=reassign_ownership)
    for role, state in summary["roles"].items():
        click.echo(f"{role:<14} {state}")
    click.echo(f"masked views: {', '.join(summary['views']) or 'none yet (nothing published)'}")
    click.echo(f"schemas granted: {', '.join(summary.get('schemas', []))}")
    for item in summary.get("reassigned", []):
        click.echo(f"owner -> mdm_pipeline: {item}")
    for warning in summary["warnings"]:
        click.secho(f"warning: {warning}", fg="yellow", err=True)


@main.group()
def review() -> None:
    """Steward review of uncertain matches."""


@review.command("list")
@click.option("--limit", type=LIMIT, default=20, show_default=True, help="How many pairs to show.")
@click.pass_context
def review_list(ctx: click.Context, limit: int) -> None:
    """Show pairs awaiting a decision, most likely matches first, with both records side by side."""
    from customer_mdm.warehouse import connect

    settings = _settings(ctx)
    fields = ["name_std", "gender", "birth_date", "phone_e164", "email", "province", "city", "street"]
    with connect(settings, read_only=True) as wh:
        if not wh.table_exists("mdm.review_queue"):
            click.echo("no review queue yet: run `mdm run` first")
            return
        total = wh.scalar("select count(*) from mdm.review_queue")
        queue = wh.query_df(
            "select record_id_l, record_id_r, match_probability, golden_id_l, golden_id_r from mdm.review_queue "
            "order by match_probability desc, record_id_l, record_id_r limit ?",
            [limit],
        )
        ids = sorted(set(queue["record_id_l"]) | set(queue["record_id_r"]))
        recs = (
            wh.query_df(
                f"select source || ':' || source_id as record_id, {', '.join(fields)} "
                "from intermediate.int_customer_records"
            )
            .set_index("record_id")
            .reindex(ids)
            if ids
            else None
        )
    click.echo(
        f"{total:,} pair(s) awaiting review; decide with `mdm review decide LEFT RIGHT --match|--no-match --by NAME`"
    )
    for row in queue.itertuples(index=False):
        same = "same golden id" if row.golden_id_l == row.golden_id_r else "different golden ids"
        click.secho(f"\n{row.record_id_l}  <->  {row.record_id_r}   p={row.match_probability:.3f} ({same})", bold=True)
        assert recs is not None
        for f in fields:
            left, right = _shown(recs.loc[row.record_id_l, f]), _shown(recs.loc[row.record_id_r, f])
            mark = " " if left == right else "*"
            click.echo(f"  {mark} {f:<11} {left:<32} {right}")


def _shown(value: Any) -> str:
    """A value as printed: empty for null, NaN and NaT (never ``nan`` or ``NaT``); dates as dates."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat(sep=" ")
    return str(value)


@review.command("decide")
@click.argument("left")
@click.argument("right")
@click.option("--match/--no-match", "is_match", required=True, help="Same person, or never merge them.")
@click.option(
    "--by",
    "decided_by",
    help="A display note naming who decides; the audit trail records the authenticated principal "
    "(the PostgreSQL login, or the operating-system user on DuckDB), not this text.",
)
@click.option("--note", default=None, help="Why.")
@click.pass_context
def review_decide(
    ctx: click.Context, left: str, right: str, is_match: bool, decided_by: str | None, note: str | None
) -> None:
    """Record a steward decision on two records (source:source_id); later runs honour it. The
    decision is recorded under the authenticated principal (PostgreSQL login, or OS user on DuckDB)."""
    from customer_mdm.linkage.step import record_decision

    settings = _settings(ctx)
    record_decision(settings, left, right, "match" if is_match else "no_match", decided_by, note)
    click.echo(f"recorded: {left} {'MATCH' if is_match else 'NO MATCH'} {right}; it takes effect on the next run")


@main.command()
@click.pass_context
def train(ctx: click.Context) -> None:
    """Train a new linkage model version on the current records and make it current."""
    from customer_mdm.linkage.training import train_and_publish

    click.echo(json.dumps(train_and_publish(_settings(ctx)), indent=2))


# ----------------------------------------------------------------------------- backup & restore
@main.command()
@click.option(
    "--dest", type=click.Path(path_type=Path), help="Backup directory (default: $MDM_BACKUP_DIR or $MDM_HOME/backups)."
)
@click.option("--list", "list_only", is_flag=True, help="List the snapshots in the backup directory instead.")
@click.option(
    "--rotate-key",
    is_flag=True,
    help="Re-encrypt the retained snapshots written under MDM_BACKUP_OLD_KEY (or MDM_BACKUP_OLD_KEY_FILE) "
    "with MDM_BACKUP_KEY instead of taking a backup (docs/security.md).",
)
@click.pass_context
def backup(ctx: click.Context, dest: Path | None, list_only: bool, rotate_key: bool) -> None:
    """Snapshot the golden tables and the linkage state (encrypted Parquet + authenticated manifest)."""
    from customer_mdm import keys
    from customer_mdm.backup import OLD_KEY, BackupConfig, Sealer, list_snapshots
    from customer_mdm.backup import backup as run_backup
    from customer_mdm.backup import rotate_key as run_rotation

    settings = _settings(ctx)
    config = BackupConfig.from_env(settings)
    if rotate_key:
        old = Sealer(keys.backup_secret(settings, create=False, spec=OLD_KEY))
        new = Sealer.from_env(settings, create=True)
        if old.key_id == new.key_id:
            raise MdmError("MDM_BACKUP_OLD_KEY and MDM_BACKUP_KEY are the same key: nothing to rotate")
        directories = [dest] if dest else [d for d in (config.dest, config.copy_dir) if d is not None]
        done = run_rotation(settings, old, new, directories)
        click.echo(
            f"key rotation to key {new.key_id}: {len(done['rotated'])} snapshot(s) re-encrypted, "
            f"{len(done['current'])} already under the new key, {len(done['skipped'])} under neither key (left alone)"
        )
        return
    if list_only:
        directory = dest or config.dest
        snapshots = list_snapshots(directory, Sealer.from_env(settings))
        if not snapshots:
            click.echo(f"no snapshots in {directory} (under the configured backup key)")
            return
        click.echo(f"{'snapshot':<52}{'created (UTC)':<21}{'tables':>7}{'rows':>12}{'MB':>9}")
        for snap in reversed(snapshots):
            click.echo(
                f"{snap.name:<52}{snap.created_at[:19]:<21}{len(snap.manifest['tables']):>7}"
                f"{snap.rows:>12,}{snap.bytes / 1e6:>9.1f}"
            )
        return
    path = run_backup(settings, dest)
    snap = next(s for s in list_snapshots(path.parent, Sealer.from_env(settings)) if s.path == path)
    click.echo(f"backup written: {path} ({len(snap.manifest['tables'])} tables, {snap.rows:,} rows, encrypted)")
    if config.copy_dir:
        click.echo(f"copy verified: {config.copy_dir / path.name}")


@main.command()
@click.argument("snapshot")
@click.option("--force", is_flag=True, help="Replace the rows of tables that are not empty.")
@click.pass_context
def restore(ctx: click.Context, snapshot: str, force: bool) -> None:
    """Restore SNAPSHOT (a directory or a snapshot name) into the configured warehouse."""
    from customer_mdm.backup import restore as run_restore

    result = run_restore(_settings(ctx), snapshot, force=force)
    click.echo(f"restored {result.snapshot} in {result.seconds}s:")
    for table, rows in result.tables.items():
        click.echo(f"  {table:<32}{rows:>12,} rows" + ("  (replaced)" if table in result.replaced else ""))
    if result.artifacts:
        click.echo(f"linkage model files restored: {len(result.artifacts)}")
    if result.salt_installed:
        click.echo("the snapshot's erasure salt was installed as this warehouse's salt (back it up with the warehouse)")
    click.echo("erasure tombstones re-applied" if result.tombstones_applied else "no erasure tombstones to re-apply")


# ----------------------------------------------------------------------------- hub (mdm serve, api-token, ...)
from customer_mdm.hub.cli import register as _register_hub  # noqa: E402

_register_hub(main)

from customer_mdm.console.cli import user as _console_user  # noqa: E402

main.add_command(_console_user)


if __name__ == "__main__":  # pragma: no cover
    main()
