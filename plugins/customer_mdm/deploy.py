"""Deployment helpers run by docker-compose's ``airflow-init`` service (and the production smoke test).

Airflow 3.3's default auth manager is the simple auth manager: users and roles come from
``[core] simple_auth_manager_users`` (``admin:admin``), passwords from the JSON file named by
``[core] simple_auth_manager_passwords_file``; a user missing from the file gets a random password
printed in the api-server's log. ``airflow-admin`` writes the admin's password from the
environment into that file, so the admin logs in with the password set in ``.env``::

    AIRFLOW_ADMIN_USER=admin AIRFLOW_ADMIN_PASSWORD=... python -m customer_mdm.deploy airflow-admin
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m customer_mdm.deploy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("airflow-admin", help="set the Airflow admin's password from AIRFLOW_ADMIN_PASSWORD")
    args = parser.parse_args(argv)
    try:
        if args.command == "airflow-admin":
            path = airflow_admin()
            print(f"Airflow admin password set in {path}")
    except MdmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
