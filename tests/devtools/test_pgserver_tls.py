"""A test PostgreSQL that serves TLS only: certificates made at test time (customer_mdm.tls), ssl=on,
``hostssl``-only pg_hba; clients connect with sslmode=verify-full, nothing else gets in."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest

from customer_mdm import tls
from mdm_devtools.pgserver import find_postgres_bin_dir
from mdm_devtools.pytest_fixtures import running_postgres

pytestmark = pytest.mark.postgres


def test_certificates_are_made_once_and_renewed_when_asked(tmp_path: Path):
    files = tls.init(tmp_path / "ca", tmp_path / "server", ["postgres", "localhost"])
    assert stat.S_IMODE(os.stat(files.server_key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "ca" / "ca.key").st_mode) == 0o600
    first = files.server_cert.read_bytes()
    tls.init(tmp_path / "ca", tmp_path / "server", ["postgres", "localhost"])
    assert files.server_cert.read_bytes() == first, "nothing due: kept"
    tls.init(tmp_path / "ca", tmp_path / "server", ["postgres", "localhost", "db.example.internal"])
    assert files.server_cert.read_bytes() != first, "other host names: reissued"
    ca = (tmp_path / "ca" / "ca.crt").read_bytes()
    tls.init(tmp_path / "ca", tmp_path / "server", ["postgres"], new_ca=True)
    assert (tmp_path / "ca" / "ca.crt").read_bytes() != ca and files.ca_cert.read_bytes() != ca


def test_the_server_refuses_anything_but_verified_tls(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path):
    certs = tmp_path_factory.mktemp("tls")
    os.chmod(certs, 0o755)
    files = tls.init(certs / "ca", certs / "server", ["localhost"])
    with running_postgres(tmp_path_factory, "pgtls", tls=files, bin_dir=find_postgres_bin_dir(require_ssl=True)) as pg:
        dsn = pg.dsn()
        assert "sslmode=verify-full" in dsn
        with psycopg.connect(dsn) as con:
            assert con.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchall() == [(True,)]
        base = dsn.split("?")[0]
        with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):  # TCP without TLS
            psycopg.connect(base + "?sslmode=disable").close()
        other_ca = tls.init(tmp_path / "ca", tmp_path / "server", ["localhost"]).ca_cert
        with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):  # not our CA
            psycopg.connect(f"{base}?sslmode=verify-full&sslrootcert={other_ca}").close()
        by_ip = base.replace("@localhost:", "@127.0.0.1:")
        with pytest.raises(psycopg.OperationalError, match="does not match host name"):  # not its name
            psycopg.connect(f"{by_ip}?sslmode=verify-full&sslrootcert={files.ca_cert}").close()
