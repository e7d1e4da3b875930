"""Run dbt on the project in ``dbt_project/`` against the configured warehouse.

dbt runs as a child process (the ``dbt`` executable of this virtualenv) so its global state and
logging never leak into the Airflow task or the CLI. Its artefacts (``run_results.json``,
``manifest.json``, logs) live under ``$MDM_HOME/dbt`` so the checkout stays clean and two state
directories never collide. The connection comes from ``dbt_project/profiles.yml``, which reads
only environment variables; :meth:`Settings.env` provides them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from customer_mdm.config import Settings
from customer_mdm.errors import MdmError

log = logging.getLogger(__name__)


class DbtFailed(MdmError):
    """dbt reported errors or failing tests."""


@dataclass
class DbtResult:
    command: str
    success: bool
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)  # status -> nodes
    failures: list[str] = field(default_factory=list)  # "unique_id: message"

    def to_dict(self) -> dict[str, object]:
        return {
            "command": self.command,
            "success": self.success,
            "seconds": round(self.seconds, 3),
            "counts": self.counts,
            "failures": self.failures,
        }


def dbt_executable() -> str:
    local = Path(sys.executable).with_name("dbt")
    if local.exists():
        return str(local)
    found = shutil.which("dbt")
    if not found:
        raise MdmError("dbt is not installed in this environment: run `make install`")
    return found


def _read_results(target_path: Path, command: str = "build") -> tuple[dict[str, int], list[str]]:
    # `dbt source freshness` writes sources.json; every other command run_results.json
    results_file = target_path / ("sources.json" if command.startswith("source") else "run_results.json")
    if not results_file.exists():
        return {}, []
    data = json.loads(results_file.read_text(encoding="utf-8"))
    counts: dict[str, int] = {}
    failures: list[str] = []
    for node in data.get("results", []):
        status = str(node.get("status"))
        counts[status] = counts.get(status, 0) + 1
        if status in ("error", "fail", "runtime error"):
            failures.append(f"{node.get('unique_id')}: {(node.get('message') or '').strip()[:500]}")
    return counts, failures


def run_dbt(
    settings: Settings, command: str = "build", extra_args: list[str] | None = None, check: bool = True
) -> DbtResult:
    """Run ``dbt <command>`` (build, run, test, source freshness, docs generate ...)."""
    state = settings.dbt_state_dir
    target_path = state / "target"
    state.mkdir(parents=True, exist_ok=True)
    args = [
        dbt_executable(),
        *command.split(),
        "--project-dir",
        str(settings.dbt_project_dir),
        "--profiles-dir",
        str(settings.dbt_project_dir),
        "--target",
        settings.target,
        "--target-path",
        str(target_path),
        "--log-path",
        str(state / "logs"),
        *(extra_args or []),
    ]
    env = {**os.environ, **settings.env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    (target_path / "run_results.json").unlink(missing_ok=True)
    (target_path / "sources.json").unlink(missing_ok=True)
    log.info("running %s", " ".join(args[1:3]))
    started = time.perf_counter()
    proc = subprocess.run(args, env=env, cwd=settings.dbt_project_dir, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    for line in proc.stdout.splitlines():
        log.info("dbt | %s", line)
    counts, failures = _read_results(target_path, command)
    result = DbtResult(command, proc.returncode == 0, seconds, counts, failures)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        if not failures:
            failures.append(tail)
        if check:
            raise DbtFailed(
                f"dbt {command} failed ({len(failures)} problem(s)):\n  "
                + "\n  ".join(failures)
                + f"\nFull log: {state / 'logs' / 'dbt.log'}"
            )
    return result
