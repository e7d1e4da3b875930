"""`python -m customer_mdm.deploy airflow-admin` (docker-compose's airflow-init service) sets the
admin's password for Airflow's simple auth manager from the environment."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from customer_mdm.deploy import write_password
from customer_mdm.errors import ConfigError


def run_admin(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    base |= {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "auth" / "passwords.json"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ops:admin,analyst:viewer",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
    }
    return subprocess.run(
        [sys.executable, "-m", "customer_mdm.deploy", "airflow-admin"],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sets_the_admin_password_from_the_environment(tmp_path: Path):
    ok = run_admin(tmp_path, AIRFLOW_ADMIN_USER="ops", AIRFLOW_ADMIN_PASSWORD='s3cr"et')
    assert ok.returncode == 0, ok.stderr
    path = tmp_path / "auth" / "passwords.json"
    assert json.loads(path.read_text()) == {"ops": 's3cr"et'}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    analyst = {"AIRFLOW_ADMIN_USER": "analyst", "AIRFLOW_ADMIN_PASSWORD": "x"}  # pragma: allowlist secret
    not_admin = run_admin(tmp_path, **analyst)
    assert not_admin.returncode == 1
    assert "'analyst' is not an admin" in not_admin.stderr
    missing = run_admin(tmp_path, AIRFLOW_ADMIN_USER="ops")
    assert missing.returncode == 1 and "AIRFLOW_ADMIN_PASSWORD is not set" in missing.stderr
    assert json.loads(path.read_text()) == {"ops": 's3cr"et'}, "a failed call changes nothing"


def test_write_password_keeps_other_users_and_rejects_a_broken_file(tmp_path: Path):
    path = tmp_path / "passwords.json"
    path.write_text('{"viewer": "v"}\n')
    write_password(path, "admin", "a")
    assert json.loads(path.read_text()) == {"viewer": "v", "admin": "a"}
    path.write_text("not json")
    with pytest.raises(ConfigError, match="not a JSON object"):
        write_password(path, "admin", "a")
    with pytest.raises(ConfigError, match="needs a name and a password"):
        write_password(path, "admin", "")
