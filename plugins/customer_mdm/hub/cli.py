"""The hub's commands: ``mdm serve``, ``mdm api-token``, ``mdm export reminders``,
``mdm privacy export`` (registered in customer_mdm.cli)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import click

from customer_mdm.config import Settings


def _settings(ctx: click.Context) -> Settings:
    return Settings.from_env(**dict(ctx.obj or {}))


# ----------------------------------------------------------------------------- serve
@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0 in compose).")
@click.option("--port", type=click.IntRange(1, 65535), default=8700, show_default=True, help="TCP port to listen on.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker processes.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int) -> None:
    """Serve the hub API (and the web console) against the configured warehouse and MDM_HOME."""
    import os

    import uvicorn

    settings = _settings(ctx)
    from customer_mdm.hub.store import ensure_store

    ensure_store(settings)
    # every worker builds its own app from the environment: put the settings there
    os.environ.update(settings.env())
    uvicorn.run(
        "customer_mdm.hub.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # its lines carry query strings (personal values); the app logs route templates
        log_level="info",
        timeout_graceful_shutdown=10,
    )


# ----------------------------------------------------------------------------- api tokens
@click.group("api-token")
def api_token() -> None:
    """API tokens for the hub's /v1 endpoints (stored hashed; scopes match, read, self_service,
    privacy, steward)."""


@api_token.command("create")
@click.option("--name", required=True, help="Who uses it (a system, e.g. shop-signup).")
@click.option("--scopes", required=True, help="Comma separated: match,read,self_service,privacy,steward.")
@click.pass_context
def api_token_create(ctx: click.Context, name: str, scopes: str) -> None:
    """Create a token and print it once (only its sha256 is stored)."""
    from customer_mdm.hub.auth import create_token, parse_scopes

    token = create_token(_settings(ctx), name, parse_scopes(scopes))
    click.echo(token)
    click.echo(f"token {name!r} created; it is shown only now: store it in the client's secret store", err=True)


@api_token.command("revoke")
@click.argument("name")
@click.pass_context
def api_token_revoke(ctx: click.Context, name: str) -> None:
    """Revoke token NAME (effective on its next request)."""
    from customer_mdm.errors import MdmError
    from customer_mdm.hub.auth import revoke_token

    if not revoke_token(_settings(ctx), name):
        raise MdmError(f"no active token named {name!r} (mdm api-token list)")
    click.echo(f"token {name!r} revoked")


@api_token.command("list")
@click.pass_context
def api_token_list(ctx: click.Context) -> None:
    """Tokens: name, scopes, created, revoked."""
    from customer_mdm.hub.auth import list_tokens

    for t in list_tokens(_settings(ctx)):
        state = f"revoked {t['revoked_at']}" if t["revoked_at"] else "active"
        click.echo(f"{t['name']:<24} {t['scopes']:<40} created {t['created_at']}  {state}")


# ----------------------------------------------------------------------------- privacy export
@click.group()
def privacy() -> None:
    """Data-subject requests: export (right of access and portability)."""


@privacy.command("export")
@click.argument("golden_id")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="JSON file to write.")
@click.pass_context
def privacy_export(ctx: click.Context, golden_id: str, out: Path) -> None:
    """Everything held about GOLDEN_ID (golden record, source records, consent statements, orders,
    golden-id history) as JSON, from the published serving tables."""
    from customer_mdm.errors import MdmError
    from customer_mdm.hub.api import current_golden_id, subject_export
    from customer_mdm.hub.serving import ServingReader
    from customer_mdm.hub.store import ensure_store, open_store, record_access

    settings = _settings(ctx)
    reader = ServingReader(settings)
    current = current_golden_id(reader, golden_id)
    body = subject_export(reader, current) if current else None
    if body is None:
        raise MdmError("no such golden customer in the published tables (unknown, erased, or nothing published yet)")
    body["requested_golden_id"] = golden_id
    from customer_mdm.private_files import open_private

    with open_private(out, "w", encoding="utf-8") as handle:  # personal data: 0600
        handle.write(json.dumps(body, ensure_ascii=False, indent=2, default=str))
    ensure_store(settings)
    with open_store(settings) as store:
        record_access(store, f"cli:{getpass.getuser()}", "export", "mdm privacy export", 200, [current])
    click.echo(f"wrote {out} ({len(body['source_records'])} source records, {len(body['orders'])} orders)")


# ----------------------------------------------------------------------------- reminders
@click.command("reminders")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="CSV file for the messaging tool.")
@click.pass_context
def export_reminders(ctx: click.Context, out: Path) -> None:
    """Customers to remind to confirm or update their data, by channel, where consent allows and
    not reminded within MDM_REMINDER_INTERVAL_DAYS (default 30)."""
    from customer_mdm.hub.reminders import export_reminders as run_export

    result = run_export(_settings(ctx), out)
    click.echo(f"wrote {out}: {result['rows']} reminders ({result['skipped_recent']} reminded recently, skipped)")


def register(main: click.Group) -> None:
    """Add the hub's commands to ``mdm`` (one call in customer_mdm.cli)."""
    main.add_command(serve)
    main.add_command(api_token)
    existing = main.commands.get("privacy")
    if isinstance(existing, click.Group):  # `mdm privacy check` lives in customer_mdm.cli
        existing.add_command(privacy_export)
    else:
        main.add_command(privacy)
    export = main.commands.get("export")
    reminders = globals().get("export_reminders")
    if isinstance(export, click.Group) and reminders is not None:
        export.add_command(reminders)
