"""The development tools (devtools/mdm_devtools) stay out of the runtime package and the Airflow image.

The runtime package ``customer_mdm`` never imports ``mdm_devtools`` (not even inside a function), the
runtime distribution that ``pip install .`` and docker/Dockerfile build finds no dev module, and the
image and the compose stack neither copy nor mount devtools/.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import tomllib
from pathlib import Path

import setuptools
import yaml

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_SOURCES = [*(ROOT / "plugins" / "customer_mdm").rglob("*.py"), *(ROOT / "dags").rglob("*.py")]
DEV = "mdm_devtools"


def _dev_references(path: Path) -> list[str]:
    """Imports of the dev package, and module names of it handed to importlib, in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value] if re.fullmatch(rf"{DEV}(\.\w+)*", node.value) else []
        found += [f"{path.name}:{node.lineno}: {name}" for name in names if name.split(".")[0] == DEV]
    return found


def test_the_runtime_package_imports_nothing_from_the_dev_package():
    assert len(RUNTIME_SOURCES) > 50
    found = [ref for path in RUNTIME_SOURCES for ref in _dev_references(path)]
    assert found == []


def test_the_check_sees_a_lazy_import(tmp_path: Path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f():\n    from mdm_devtools.generate import generate_landing\n\n"
        "def g():\n    import importlib\n    return importlib.import_module('mdm_devtools.bench')\n"
    )
    refs = [ref.split(": ")[1] for ref in _dev_references(probe)]
    assert refs == ["mdm_devtools.generate", "mdm_devtools.bench"]


def test_the_old_dev_modules_are_gone_from_the_runtime_package():
    package = ROOT / "plugins" / "customer_mdm"
    for module in ("generate.py", "bench.py", "hub/match_bench.py", "console/bench.py"):
        assert not (package / module).exists(), module
    # (a stale __pycache__ may linger in an old checkout's devtools/ folder: no source is what counts)
    assert not list((package / "devtools").rglob("*.py"))
    assert importlib.util.find_spec("mdm_devtools.generate") is not None


def _tree(root: Path) -> Path:
    for name in ("customer_mdm", "customer_mdm_dev"):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text("")
    return root


def test_the_runtime_distribution_carries_no_dev_package(tmp_path: Path):
    """What `pip install .` (and so the Airflow image) installs: the root pyproject's package finder."""
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = setuptools.find_packages(where=str(ROOT / find["where"][0]), include=find["include"])
    assert "customer_mdm" in packages and "customer_mdm.hub" in packages
    assert all(p == "customer_mdm" or p.startswith("customer_mdm.") for p in packages), packages
    # a package whose name merely starts with customer_mdm (customer_mdm_dev) would not be picked up
    assert setuptools.find_packages(where=str(_tree(tmp_path)), include=find["include"]) == ["customer_mdm"]
    assert not (ROOT / find["where"][0] / DEV).exists()
    dev = tomllib.loads((ROOT / "devtools" / "pyproject.toml").read_text())
    assert dev["project"]["name"] != "customer-mdm" and dev["project"]["scripts"] == {
        "mdm-dev": "mdm_devtools.cli:main"
    }


def test_the_image_and_the_stack_do_not_carry_the_dev_tools():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    copied = [line for line in dockerfile.splitlines() if line.startswith(("COPY", "ADD"))]
    assert copied and not any("devtools" in line or re.search(r"\s\.\s", line) for line in copied), copied
    assert "devtools" not in dockerfile
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = [str(v) for s in services["services"].values() for v in s.get("volumes", [])]
    mounts += [str(v) for v in services.get("x-airflow-common", {}).get("volumes", [])]
    assert not any("devtools" in m for m in mounts), mounts
    assert "devtools" not in (ROOT / "docker-compose.yml").read_text()


def test_make_install_puts_the_dev_tools_beside_the_runtime_package():
    makefile = (ROOT / "Makefile").read_text()
    assert '-e ".[dev]" -e ./devtools' in makefile
    assert "python -m mdm_devtools generate" in makefile  # make demo
    assert "python -m mdm_devtools.bench" in makefile  # make bench


def test_mdm_dev_generate_writes_a_landing_zone_and_mdm_has_no_generator(tmp_path: Path):
    from click.testing import CliRunner

    from customer_mdm.cli import main as mdm
    from mdm_devtools.cli import main as mdm_dev

    result = CliRunner().invoke(mdm_dev, ["generate", "--entities", "30", "--days", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "ground truth:" in result.output and list((tmp_path / "crm").glob("*.csv"))
    assert "generate" not in mdm.commands


def test_the_bench_table_names_its_command_and_machine():
    from mdm_devtools.bench import machine_header

    header = machine_header(["--sizes", "22000"])
    assert header.startswith("`python -m mdm_devtools.bench --sizes 22000` on 20")
    assert re.search(r"machine: \d+ cores \(.+\), \d+ GB RAM, .*Python 3\.11\.\d+, DuckDB \d", header), header
