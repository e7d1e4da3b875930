"""Certificates for PostgreSQL in transit: a private CA and the server's certificate.

The compose stack's PostgreSQL serves TLS only (``hostssl`` lines only in its ``pg_hba.conf``),
and every client connects with ``sslmode=verify-full`` and the CA's certificate, so a client
talks to the real server (its name is in the certificate) over an encrypted channel. The
``pg-tls`` one-off service creates the files at the stack's first start::

    python -m customer_mdm.tls init --ca-dir /tls/ca --server-dir /tls/server \\
        --client-dir /tls/clients --hosts postgres,localhost --owner 999:999

``init`` is idempotent: it creates the CA (``ca.crt``, ``ca.key``, 10 years) when missing and
(re)issues the server certificate (``server.crt``, ``server.key``, 1 year) when it is missing,
expires within :data:`RENEW_DAYS` days, names other hosts or was not signed by the CA; it then
sets owners and modes PostgreSQL accepts (key 0600, owned by the server's user). Rotation:
``--renew`` issues a new server certificate now; ``--new-ca`` replaces the CA too (then every
client needs the new ``ca.crt``: restart the stack). Keys are ECDSA P-256.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path

#: a server certificate expiring within this many days is reissued by ``init``
RENEW_DAYS = 30
CA_DAYS = 3650
SERVER_DAYS = 365


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


def _name(common_name: str):  # type: ignore[no-untyped-def]
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _new_key():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(ca_dir: Path, common_name: str = "customer-mdm PostgreSQL CA") -> None:
    """A new self-signed CA in ``ca_dir`` (``ca.crt``, ``ca.key`` mode 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(ca_dir / "ca.key", _pem_key(key), 0o600)
    _write(ca_dir / "ca.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _san(hosts: list[str]):  # type: ignore[no-untyped-def]
    from cryptography import x509

    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_server_cert(ca_dir: Path, server_dir: Path, hosts: list[str], days: int = SERVER_DAYS) -> None:
    """A server certificate for ``hosts`` (DNS names or IP addresses) signed by the CA in ``ca_dir``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    _write(server_dir / "server.key", _pem_key(key), 0o600)
    _write(server_dir / "server.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _server_cert_ok(ca_dir: Path, server_dir: Path, hosts: list[str]) -> bool:
    from cryptography import x509

    try:
        ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
        cert = x509.load_pem_x509_certificate((server_dir / "server.crt").read_bytes())
        (server_dir / "server.key").stat()
    except (OSError, ValueError):
        return False
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # noqa: BLE001 - any failure means: issue a new one
        return False
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return left > dt.timedelta(days=RENEW_DAYS) and san == _san(hosts)


def init(
    ca_dir: Path,
    server_dir: Path,
    hosts: list[str],
    *,
    renew: bool = False,
    new_ca: bool = False,
    owner: tuple[int, int] | None = None,
    client_dir: Path | None = None,
) -> TlsFiles:
    """Create what is missing or due (see the module docstring); returns the paths. The clients'
    copy of the CA certificate goes to ``client_dir`` (default: beside the server's files)."""
    if new_ca or not (ca_dir / "ca.crt").exists() or not (ca_dir / "ca.key").exists():
        make_ca(ca_dir)
        renew = True
    if renew or not _server_cert_ok(ca_dir, server_dir, hosts):
        make_server_cert(ca_dir, server_dir, hosts)
    if owner is not None:
        for name in ("server.key", "server.crt"):
            os.chown(server_dir / name, *owner)
    client_dir = client_dir or server_dir
    _write(client_dir / "ca.crt", (ca_dir / "ca.crt").read_bytes(), 0o644)
    return TlsFiles(client_dir / "ca.crt", server_dir / "server.crt", server_dir / "server.key")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m customer_mdm.tls", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("init", help="create the CA and the server certificate when missing or due")
    cmd.add_argument("--ca-dir", type=Path, required=True)
    cmd.add_argument("--server-dir", type=Path, required=True)
    cmd.add_argument("--client-dir", type=Path, help="where the clients' copy of ca.crt goes (default: --server-dir)")
    cmd.add_argument("--hosts", required=True, help="comma-separated host names / IP addresses of the server")
    cmd.add_argument("--owner", help="UID:GID to own the server's key and certificate (PostgreSQL's user)")
    cmd.add_argument("--renew", action="store_true", help="issue a new server certificate now")
    cmd.add_argument("--new-ca", action="store_true", help="replace the CA too (clients need the new ca.crt)")
    args = parser.parse_args(argv)
    owner = tuple(int(x) for x in args.owner.split(":")) if args.owner else None
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    files = init(
        args.ca_dir,
        args.server_dir,
        hosts,
        renew=args.renew,
        new_ca=args.new_ca,
        owner=owner,  # type: ignore[arg-type]
        client_dir=args.client_dir,
    )
    print(f"TLS files ready: {files.server_cert} (hosts {', '.join(hosts)}), clients use {files.ca_cert}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
