"""No credential in the repository: every tracked (or new, not ignored) file is scanned for things
that look like passwords, keys and tokens; `.env.example` documents every variable the platform
reads, with placeholder values only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from customer_mdm.security import ADMIN_DSN_ENV, PASSWORD_ENV
from mdm_devtools.secret_scan import repository_files, scan_files, scan_text

ROOT = Path(__file__).resolve().parents[2]


def test_no_credential_in_the_repository():
    files = repository_files(ROOT)
    assert len(files) > 100 and ROOT / "docker-compose.yml" in files and ROOT / ".env.example" in files
    findings = scan_files(ROOT, files)
    assert not findings, "looks like a committed credential:\n" + "\n".join(map(str, findings))


# the samples are assembled at runtime, so that this file itself holds no credential-like text
LEAKS = [
    ("app.py", "DSN = 'postgresql://mdm_pipeline:" + "Tr0ub4dor" + "@db:5432/mdm'"),
    ("app.py", "conn = connect(host='db', pass" + "word='Tr0ub4dor')"),
    ("app.py", "    pass" + "word: str = 'hunter2',"),
    ("app.py", "parser.add_argument('--pass" + "word', default='hunter2')"),
    ("settings.yml", "  pass" + "word: hunter2"),
    ("settings.yml", '  "api_' + 'token": "0a1b' + '2c3d4e5f"'),
    (".env", "MDM_PG_PASS" + "WORD=hunter2"),
    (".env", "export AWS_SECRET_ACCESS_" + "KEY=wJalrXUtnFEMI"),
    ("init.sql", "create role x login pass" + "word 'hunter2';"),
    ("airflow.cfg", "sql_alchemy_conn = postgresql+psycopg2://airflow:" + "s3cr3t" + "@pg/airflow"),
    ("key.pem", "-----BEGIN RSA PRIVATE" + " KEY-----"),
    ("notes.md", "token AKIA" + "ABCDEFGHIJKLMNOP"),
]
SAFE = [
    ("README.md", "export MDM_PG_DSN=postgresql://mdm_pipeline:PASSWORD@localhost:5432/mdm"),
    ("docker-compose.yml", "    MDM_PG_DSN: postgresql://mdm_pipeline:${MDM_PG_PASSWORD}@postgres:5432/mdm"),
    ("docker-compose.yml", "      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}"),
    (".env.example", "MDM_PG_PASSWORD=change-me-pipeline"),
    (".env.example", "MDM_PG_BI_PASSWORD="),
    ("profiles.yml", "      password: \"{{ env_var('MDM_PG_PASSWORD', '') }}\""),
    ("postgres-init.sql", "create role airflow login pass" + "word :'airflow_password';"),
    ("app.py", "password = os.environ.get('MDM_PG_BI_PASSWORD') or None"),
    ("app.py", "f\"create role {name} login password '{password}'\""),
    ("app.py", "return f'postgresql://{user}:{pw}@127.0.0.1:{port}/{db}'"),
    ("app.py", '_PASSWORD_FAILED = "password authentication failed"'),
    ("app.py", "other = connect(password='hunter2')  # pragma: allowlist secret"),
    ("app.py", "url = 'https://example.com/a:b@c'"),
]


@pytest.mark.parametrize(("path", "line"), LEAKS)
def test_the_scanner_finds_credentials(path: str, line: str):
    assert scan_text(line, path), line


@pytest.mark.parametrize(("path", "line"), SAFE)
def test_the_scanner_lets_placeholders_and_references_pass(path: str, line: str):
    assert scan_text(line, path) == [], line


def test_findings_never_print_the_secret():
    (finding,) = scan_text("conn = connect(pass" + "word='Tr0ub4dor')", "app.py")
    assert "Tr0ub4dor" not in str(finding) and "<redacted>" in str(finding)


def test_env_example_documents_every_variable_with_placeholders():
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, flags=re.M))
    used: set[str] = set()
    for path in [
        *(ROOT / "plugins").rglob("*.py"),
        *(ROOT / "devtools").rglob("*.py"),
        ROOT / "dbt_project" / "profiles.yml",
        ROOT / "docker-compose.yml",
    ]:
        used |= set(re.findall(r"\b(MDM_[A-Z0-9_]+)\b", path.read_text(encoding="utf-8")))
    used |= {"POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "AIRFLOW_ADMIN_PASSWORD", ADMIN_DSN_ENV}
    used |= set(PASSWORD_ENV.values())
    assert used - documented == set(), "add these to .env.example"
    for line in example.splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*(?:PASSWORD|DSN|SECRET|TOKEN)[A-Z0-9_]*)=(.*)$", line)
        if match:
            value = match.group(2)
            assert value == "" or "change-me" in value or "PASSWORD" in value, line
    assert scan_text(example, ".env.example") == []


def test_the_warehouse_dsn_may_come_from_an_airflow_connection():
    from customer_mdm.config import AIRFLOW_CONN_ENV, Settings

    uri = "postgres://mdm_pipeline:" + "p%40ss" + "@db.internal:5432/mdm"
    env = {"MDM_TARGET": "postgres", AIRFLOW_CONN_ENV: uri}
    assert Settings.from_env(env=env).pg_dsn == uri.replace("postgres://", "postgresql://")
    given = "p@" + "ss"
    conn = {"conn_type": "postgres", "login": "mdm_pipeline", "password": given, "host": "db", "port": 5432}
    settings = Settings.from_env(env={**env, AIRFLOW_CONN_ENV: json.dumps({**conn, "schema": "mdm"})})
    assert settings.pg_params() == {
        "user": "mdm_pipeline",
        "password": given,
        "host": "db",
        "port": "5432",
        "dbname": "mdm",
    }
    # MDM_PG_DSN wins
    assert Settings.from_env(env={**env, "MDM_PG_DSN": "postgresql://x@y/z"}).pg_dsn == "postgresql://x@y/z"
