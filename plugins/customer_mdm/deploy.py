"""Deployment helpers run by docker-compose's ``airflow-init`` service (and the production smoke test).

Airflow 3.3's default auth manager is the simple auth manager: users and roles come from
``[core] simple_auth_manager_users`` (``admin:admin``), passwords from the JSON file named by
``[core] simple_auth_manager_passwords_file``; a user missing from the file gets a random password
printed in the api-server's log. ``airflow-admin`` writes the admin's password from the
environment into that file, so the admin logs in with the password set in ``.env``::

    AIRFLOW_ADMIN_USER=admin AIRFLOW_ADMIN_PASSWORD=... python -m customer_mdm.deploy airflow-admin

``check-secrets`` is the compose stack's first service (``secrets-check``; PostgreSQL and so every
other service waits for it): it refuses to start the stack while a secret is empty, still the
``.env.example`` placeholder (``change-me...``: a JWT secret everybody knows forges api-server
tokens) or too weak (short, or a Fernet key that is not one). It names the variable and never
prints a value. Secrets of optional features (steward and BI passwords, Flower's basic auth) are
checked when set, or always with ``--require NAME``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from customer_mdm.errors import ConfigError, MdmError


def passwords_file() -> Path:
    """The simple auth manager's password file, as Airflow's configuration names it."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    return Path(SimpleAuthManager.get_generated_password_file())


def configured_users() -> dict[str, str]:
    """username -> role from ``[core] simple_auth_manager_users``."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    return {user.username: str(user.role) for user in SimpleAuthManager.get_users()}


def write_password(path: Path, username: str, password: str) -> None:
    """Set one user's password in the JSON password file, keeping the other users'; file mode 0600."""
    if not username or not password:
        raise ConfigError("the Airflow admin needs a name and a password (AIRFLOW_ADMIN_USER, AIRFLOW_ADMIN_PASSWORD)")
    path.parent.mkdir(parents=True, exist_ok=True)
    passwords: dict[str, str] = {}
    if path.exists() and path.read_text().strip():
        try:
            passwords = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not a JSON object of user -> password: {exc}") from exc
    passwords[username] = password
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(passwords, fh)
        fh.write("\n")
    tmp.replace(path)


def airflow_admin(env: dict[str, str] | None = None) -> Path:
    """Give ``$AIRFLOW_ADMIN_USER`` (default admin) the password ``$AIRFLOW_ADMIN_PASSWORD``."""
    env = dict(os.environ) if env is None else env
    username = env.get("AIRFLOW_ADMIN_USER", "").strip() or "admin"
    password = env.get("AIRFLOW_ADMIN_PASSWORD", "")
    if not password:
        raise ConfigError("AIRFLOW_ADMIN_PASSWORD is not set: put it in .env (see .env.example)")
    users = configured_users()
    if users.get(username) != "admin":
        raise ConfigError(
            f"{username!r} is not an admin in AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS ({users}); "
            f"set it to {username}:admin"
        )
    path = passwords_file()
    write_password(path, username, password)
    return path


PASSWORD, KEY, FERNET, BASIC_AUTH = "password", "key", "fernet", "basic_auth"
#: the stack's secrets: variable -> kind (password: >= 12 characters; key: >= 32; fernet: a Fernet key)
REQUIRED_SECRETS: dict[str, str] = {
    "POSTGRES_PASSWORD": PASSWORD,
    "AIRFLOW_DB_PASSWORD": PASSWORD,
    "MDM_PG_PASSWORD": PASSWORD,
    "AIRFLOW_ADMIN_PASSWORD": PASSWORD,
    "AIRFLOW_FERNET_KEY": FERNET,
    "AIRFLOW_JWT_SECRET": KEY,
    "AIRFLOW_API_SECRET_KEY": KEY,
}
#: checked when set (or with --require)
OPTIONAL_SECRETS: dict[str, str] = {
    "MDM_PG_STEWARD_PASSWORD": PASSWORD,
    "MDM_PG_BI_PASSWORD": PASSWORD,
    "MDM_PG_PIPELINE_PASSWORD": PASSWORD,
    "FLOWER_BASIC_AUTH": BASIC_AUTH,
}
MIN_LENGTH = {PASSWORD: 12, KEY: 32}
#: marks of a value copied from .env.example or a tutorial
PLACEHOLDER_MARKS = ("change-me", "changeme", "change_me", "placeholder", "replace-me", "your-", "xxxx", "example")


def _secret_problem(name: str, kind: str, value: str) -> str | None:
    if not value.strip():
        return f"{name} is empty"
    lowered = value.lower()
    if any(mark in lowered for mark in PLACEHOLDER_MARKS):
        return f"{name} is still a placeholder (as in .env.example): set a real secret"
    if kind == BASIC_AUTH:
        user, _, password = value.partition(":")
        if not user or not password:
            return f"{name} must be USER:PASSWORD"
        return _secret_problem(name, PASSWORD, password)
    if kind == FERNET:
        try:
            from cryptography.fernet import Fernet

            Fernet(value.encode())
        except (ValueError, TypeError):
            return f"{name} is not a Fernet key: generate one with Fernet.generate_key() (see .env.example)"
        return None
    if len(value) < MIN_LENGTH[kind]:
        return f"{name} is shorter than {MIN_LENGTH[kind]} characters: generate one (see .env.example)"
    if len(set(value)) < 6:
        return f"{name} is too simple (fewer than 6 different characters)"
    return None


def check_secrets(env: dict[str, str] | None = None, require: tuple[str, ...] = ()) -> list[str]:
    """The problems of the stack's secrets (empty when all is well); values are never quoted."""
    env = dict(os.environ) if env is None else env
    problems = []
    for name, kind in {**REQUIRED_SECRETS, **OPTIONAL_SECRETS}.items():
        value = env.get(name, "")
        if name in OPTIONAL_SECRETS and name not in require and not value:
            continue
        problem = _secret_problem(name, kind, value)
        if problem:
            problems.append(problem)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m customer_mdm.deploy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("airflow-admin", help="set the Airflow admin's password from AIRFLOW_ADMIN_PASSWORD")
    check = sub.add_parser("check-secrets", help="refuse empty, placeholder or weak secrets in the environment")
    check.add_argument("--require", action="append", default=[], help="an optional secret that must be set")
    args = parser.parse_args(argv)
    try:
        if args.command == "check-secrets":
            problems = check_secrets(require=tuple(args.require))
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            if problems:
                print("refusing to start: fix these in .env (see .env.example)", file=sys.stderr)
                return 1
            print("secrets: ok")
        if args.command == "airflow-admin":
            path = airflow_admin()
            print(f"Airflow admin password set in {path}")
    except MdmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
