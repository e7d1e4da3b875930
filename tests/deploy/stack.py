"""docker-compose.yml as data, for the tests: its services, and the environment its Airflow
containers get, with compose's variable substitution, turned into the environment of local
processes (the production smoke test starts the same components without Docker)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

#: the long-running Airflow components the smoke test starts as processes, as in the compose file
AIRFLOW_COMPONENTS = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
INIT_SERVICE = "airflow-init"

_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?|-|\?)(?P<arg>[^}]*))?\}")


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def substitute(value: str, variables: Mapping[str, str]) -> str:
    """Compose's interpolation: ``${X}``, ``${X:-default}``, ``${X:?error}``, ``$$`` for a literal ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = variables.get(name)
        if op in (":-", ":?") and not value:
            value = None
        if value is not None:
            return value
        if op in (":-", "-"):
            return arg or ""
        if op in (":?", "?"):
            raise KeyError(f"compose requires {name}: {arg}")
        return ""

    return _VARIABLE.sub(replace, value)


def service_environment(name: str, variables: Mapping[str, str]) -> dict[str, str]:
    """The environment of one service, substituted as ``docker compose`` does from ``.env``."""
    env = compose()["services"][name].get("environment") or {}
    return {key: substitute(str(value), variables) for key, value in env.items()}


def service_command(name: str, variables: Mapping[str, str]) -> list[str]:
    """The service's command line as the apache/airflow image runs it (``airflow <command>``)."""
    service = compose()["services"][name]
    command = service["command"]
    args = [substitute(str(a), variables) for a in command] if isinstance(command, list) else shlex.split(command)
    entrypoint = service.get("entrypoint")
    if entrypoint:
        return [*(shlex.split(entrypoint) if isinstance(entrypoint, str) else entrypoint), *args]
    return ["airflow", *args]


def mounts(name: str) -> dict[str, str]:
    """container path -> host path (relative to the checkout) or volume name."""
    result = {}
    for volume in compose()["services"][name].get("volumes", []):
        source, target = volume.removesuffix(":ro").rsplit(":", 1)
        result[target] = source
    return result


def localise(env: Mapping[str, str], replacements: Mapping[str, str]) -> dict[str, str]:
    """Rewrite container host names and paths in every value (longest match first)."""
    ordered = sorted(replacements.items(), key=lambda kv: len(kv[0]), reverse=True)
    out = {}
    for key, value in env.items():
        for old, new in ordered:
            value = value.replace(old, new)
        out[key] = value
    return out
