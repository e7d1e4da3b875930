"""Run dbt on the project in ``dbt_project/`` against the configured warehouse.

dbt runs in this process through its programmatic entry point (``dbtRunner``): a Python process
pays dbt's imports (about 4 s) once, not once per dbt command, which is most of a small
incremental run's dbt time. Its console output is forwarded to this module's logger, never
printed; its environment (profiles.yml reads only environment variables) is set for the
invocation and restored after. ``MDM_DBT_SUBPROCESS=1`` runs the ``dbt`` executable of this
virtualenv as a child process instead (the same arguments and artefacts). Its artefacts (``run_results.json``,
``manifest.json``, logs) live under ``$MDM_HOME/dbt`` so the checkout stays clean and two state
directories never collide. The connection comes from ``dbt_project/profiles.yml``, which reads
only environment variables; :meth:`Settings.env` provides them.

The models are incremental (``dbt_project/macros/incremental.sql``); :func:`build_fingerprint`
says when a layer must be rebuilt in full (``--full-refresh``) because the project or the
standardisation changed. Before every dbt command the tables the project reads besides its
sources are created if missing (``customer_mdm.schema.ensure_dbt_tables``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from customer_mdm import plan
from customer_mdm.config import Settings
from customer_mdm.errors import MdmError
from customer_mdm.warehouse import released

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


#: What a dbt layer's tables are built from: a change to any of these files rebuilds them in full.
FINGERPRINT_PATHS = ("dbt_project.yml", "models", "macros", "seeds", "tests")
#: Layers whose models read the std.* lookups, directly or through other models.
STD_LAYERS = frozenset({"build", "golden"})


def build_fingerprint(settings: Settings, layer: str) -> str:
    """Digest of the dbt project files (models, macros, seeds, tests, ``dbt_project.yml``), of the
    plan's dbt vars (the person feeds) and, for the layers that read the standardisation lookups,
    of ``std_version()``. A layer whose stored fingerprint differs is rebuilt with ``--full-refresh``."""
    root = settings.dbt_project_dir
    digest = hashlib.sha256()
    digest.update(b"vars\0" + json.dumps(plan.dbt_vars(), sort_keys=True).encode())
    for name in FINGERPRINT_PATHS:
        path = root / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            rel = file.relative_to(root)
            if any(part.startswith(".") for part in rel.parts):
                continue  # editor and OS droppings
            digest.update(rel.as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    if layer in STD_LAYERS:
        from customer_mdm.standardize.step import std_version

        digest.update(b"std_version\0" + std_version().encode())
    return digest.hexdigest()[:16]


def ensure_dbt_tables(settings: Settings) -> None:
    """Create the ops/mdm tables the dbt project reads, if missing (best effort: a warehouse
    that cannot be reached is dbt's to report)."""
    from customer_mdm.schema import ensure_dbt_tables as ensure
    from customer_mdm.warehouse import connect

    try:
        with connect(settings) as wh:
            ensure(wh)
    except Exception as exc:  # noqa: BLE001 - dbt itself says what is wrong with the connection
        log.warning("could not create the dbt bookkeeping tables: %s", exc)


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


#: dbt commands that run the project's SQL (and so read ops.dbt_window and mdm.golden_dirty)
_RUNS_SQL = frozenset({"build", "run", "test", "seed", "snapshot", "show", "compile", "docs"})
#: dbt commands that parse the project (and so need the plan's vars, :func:`with_plan_vars`)
_PARSES = _RUNS_SQL | {"source", "parse", "ls", "list", "run-operation"}
#: dbt commands of two words (``dbt source freshness``, ``dbt docs generate``)
TWO_WORD_COMMANDS = frozenset({"source", "docs"})
#: the files of the static dbt docs site (``dbt docs generate``)
DOCS_FILES = ("index.html", "manifest.json", "catalog.json")


_DBT_LOCK = threading.Lock()  # dbt's flags and adapter registry are process-global: one command at a time


def _release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open after a command.

    dbt-duckdb holds one database connection per process in a class attribute and never closes
    it (its environment's ``close`` does nothing; a dbt process normally exits right after).
    Left open, it keeps the warehouse file open with dbt's configuration, and this process's next
    connection with another one (``read_only``) fails.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # dbt-duckdb not installed: a PostgreSQL-only deployment
        return
    env = getattr(DuckDBConnectionManager, "_ENV", None)
    conn = getattr(env, "conn", None)
    if conn is not None:
        conn.close()
        env.conn = None  # type: ignore[union-attr]
    DuckDBConnectionManager.close_all_connections()


def _invoke_in_process(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run one dbt command in this process; returns (exit code as the CLI gives it, console text)."""
    from dbt.cli.main import dbtRunner

    lines: list[str] = []

    def forward(event: object) -> None:
        info = getattr(event, "info", None)
        if info is not None and info.level in ("info", "warn", "error") and info.msg:
            text = str(info.msg)
            lines.append(text)
            log.info("dbt | %s", text)

    # console output off (it would mix into `mdm ... --json`); the file log keeps everything
    quiet = ["--log-level", "none", "--log-level-file", "debug", "--no-use-colors"]
    with _DBT_LOCK:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            outcome = dbtRunner(callbacks=[forward]).invoke([*quiet, *args])
        finally:
            _release_duckdb()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    if outcome.exception is not None:
        lines.append(f"{type(outcome.exception).__name__}: {outcome.exception}")
        return 2, "\n".join(lines)
    return (0 if outcome.success else 1), "\n".join(lines)


def _run_dbt_process(args: list[str], overrides: dict[str, str], settings: Settings) -> tuple[int, str]:
    """Run dbt in this process, or (``MDM_DBT_SUBPROCESS=1``) as a child process."""
    if os.environ.get("MDM_DBT_SUBPROCESS", "").lower() in ("1", "true", "yes"):
        env = {**os.environ, **overrides}
        proc = subprocess.run(args, env=env, cwd=settings.dbt_project_dir, capture_output=True, text=True)
        returncode, output = proc.returncode, proc.stdout + proc.stderr
        for line in proc.stdout.splitlines():
            log.info("dbt | %s", line)
    else:
        returncode, output = _invoke_in_process(args[1:], overrides)
    return returncode, output


def with_plan_vars(extra_args: list[str]) -> list[str]:
    """``extra_args`` with the plan's dbt vars (:func:`customer_mdm.plan.dbt_vars`) merged into its
    ``--vars`` (a caller's own vars win)."""
    args = list(extra_args)
    merged: dict[str, object] = dict(plan.dbt_vars())
    if "--vars" in args:
        at = args.index("--vars")
        merged.update(json.loads(args[at + 1]))
        del args[at : at + 2]
    return [*args, "--vars", json.dumps(merged, sort_keys=True)]


def run_dbt(
    settings: Settings,
    command: str = "build",
    extra_args: list[str] | None = None,
    check: bool = True,
    ensure_tables: bool = True,
) -> DbtResult:
    """Run ``dbt <command>`` (build, run, test, source freshness, docs generate ...).
    ``ensure_tables=False``: the caller has created the tables the project reads already."""
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
        *(with_plan_vars(extra_args or []) if command.split()[0] in _PARSES else (extra_args or [])),
    ]
    overrides = {**settings.env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    if ensure_tables and command.split()[0] in _RUNS_SQL:
        ensure_dbt_tables(settings)
    (target_path / "run_results.json").unlink(missing_ok=True)
    (target_path / "sources.json").unlink(missing_ok=True)
    log.info("running dbt %s", command)
    started = time.perf_counter()
    with released(settings):  # dbt opens the DuckDB file itself, with its own configuration
        returncode, output = _run_dbt_process(args, overrides, settings)
    seconds = time.perf_counter() - started
    counts, failures = _read_results(target_path, command)
    result = DbtResult(command, returncode == 0, seconds, counts, failures)
    if returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-30:])
        if not failures:
            failures.append(tail)
        if check:
            raise DbtFailed(
                f"dbt {command} failed ({len(failures)} problem(s)):\n  "
                + "\n  ".join(failures)
                + f"\nFull log: {state / 'logs' / 'dbt.log'}"
            )
    return result


def generate_docs(settings: Settings, extra_args: list[str] | None = None) -> Path:
    """``dbt docs generate`` (the catalogue: models, sources, exposures, columns with their types
    read from the warehouse, the lineage graph), then the static site's files copied into
    :attr:`Settings.dbt_docs_dir` (``$MDM_HOME/dbt/docs``), replaced whole so a reader never sees
    half a site. Returns that directory."""
    run_dbt(settings, "docs generate", extra_args)
    target = settings.dbt_state_dir / "target"
    missing = [name for name in DOCS_FILES if not (target / name).exists()]
    if missing:
        raise DbtFailed(f"dbt docs generate wrote no {', '.join(missing)} in {target}")
    site = settings.dbt_docs_dir
    staging = site.with_name(site.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in DOCS_FILES:
        shutil.copy2(target / name, staging / name)
    old = site.with_name(site.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if site.exists():
        site.rename(old)
    staging.rename(site)
    shutil.rmtree(old, ignore_errors=True)
    log.info("dbt docs site written to %s", site)
    return site
