"""The hub's commands: ``mdm serve``, ``mdm api-token``, ``mdm export reminders``,
``mdm privacy export`` (registered in customer_mdm.cli)."""

from __future__ import annotations

import click

from customer_mdm.config import Settings


def _settings(ctx: click.Context) -> Settings:
    return Settings.from_env(**dict(ctx.obj or {}))


# ----------------------------------------------------------------------------- serve
@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0 in compose).")
@click.option("--port", type=click.IntRange(1, 65535), default=8700, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
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


def register(main: click.Group) -> None:
    """Add the hub's commands to ``mdm`` (one call in customer_mdm.cli)."""
    main.add_command(serve)
    for name in ("api_token", "privacy"):
        command = globals().get(name)
        if command is not None:
            main.add_command(command)
    export = main.commands.get("export")
    reminders = globals().get("export_reminders")
    if isinstance(export, click.Group) and reminders is not None:
        export.add_command(reminders)
