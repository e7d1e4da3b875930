"""``mdm user``: console users (the password is read from stdin, never from an argument)."""

from __future__ import annotations

import sys

import click

from customer_mdm.config import Settings


@click.group("user")
def user() -> None:
    """Console users (sign-in to /console of `mdm serve`)."""


@user.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["steward", "governance", "admin"]),
    required=True,
    help="What the user may see and do in the console.",
)
@click.option(
    "--language",
    type=click.Choice(["en", "zh"]),
    default="en",
    show_default=True,
    help="Console language (English or Simplified Chinese).",
)
@click.option("--replace", is_flag=True, help="Reset the password and role of an existing user.")
@click.pass_context
def user_add(ctx: click.Context, name: str, role: str, language: str, replace: bool) -> None:
    """Add a console user; the password is the first line of stdin (at least 10 characters)."""
    from customer_mdm.console.auth import add_user
    from customer_mdm.console.store import connect_store

    if sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    settings = Settings.from_env(**dict(ctx.obj or {}))
    with connect_store(settings) as store:
        add_user(store, name, role, password, language=language, replace=replace)
    click.echo(f"user {name} ({role}) {'reset' if replace else 'added'}")
