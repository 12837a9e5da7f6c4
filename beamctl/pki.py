"""Throwaway PKI and tokens for trying TLS and auth: ``beamctl dev certs`` and ``beamctl dev token``.

Certificates are made with the ``cryptography`` package (ECDSA P-256): one CA, one certificate per node
(CN = node id, server and client use, so nodes can dial each other with mutual TLS) and one per client
(CN = name, client use: map it to a role with ``cert_roles``). Not for production: the CA key sits beside
the certificates.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from beamctl.errors import CliError, ExitCode

ROLES = ("reader", "operator", "admin")
#: Bytes of randomness in a token and in its salt.
TOKEN_BYTES = 32
SALT_BYTES = 16
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only (keys, tokens files)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _sans(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def make_certs(
    directory: Path,
    nodes: Sequence[str],
    clients: Sequence[str],
    hosts: Sequence[str],
    days: int,
) -> list[Path]:
    """Write ca.pem, <node>.pem/<node>-key.pem and <client>.pem/<client>-key.pem; returns the files."""
    for name in (*nodes, *clients):
        if not _NAME.match(name):
            raise CliError(f"certificate name {name!r}: use 1-64 of A-Z a-z 0-9 _ . @ -", ExitCode.USAGE)
    if len(set(nodes) | set(clients)) != len(nodes) + len(clients):
        raise CliError("node and client names must all differ (they name the files)", ExitCode.USAGE)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("beamflow dev CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    written = [directory / "ca.pem", directory / "ca-key.pem"]
    written[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(written[1], _key_pem(ca_key))
    server_names = _sans([*hosts, "127.0.0.1", "localhost"])
    for name, is_node in [*((n, True) for n in nodes), *((c, False) for c in clients)]:
        key = ec.generate_private_key(ec.SECP256R1())
        usages = (
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            if is_node
            else [ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        if is_node:
            builder = builder.add_extension(x509.SubjectAlternativeName(server_names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_private(key_path, _key_pem(key))
        written += [cert_path, key_path]
    return written


def token_line(name: str, role: str, token: str, salt: bytes) -> str:
    """The tokens-file line for ``token``: ``name:role:salt:sha256`` (sha256 over salt, then token)."""
    digest = hashlib.sha256(salt + token.encode()).hexdigest()
    return f"{name}:{role}:{salt.hex()}:{digest}"


def add_token(path: Path, name: str, role: str) -> str:
    """Append a new entry for ``name`` to the tokens file (created 0600); returns the token, shown once."""
    if not _NAME.match(name):
        raise CliError(f"token name {name!r}: use 1-64 of A-Z a-z 0-9 _ . @ -", ExitCode.USAGE)
    if role not in ROLES:
        raise CliError(f"--role: one of {', '.join(ROLES)}", ExitCode.USAGE)
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    for line in existing.splitlines():
        if line.strip().split(":", 1)[0] == name:
            raise CliError(f"{path} already has an entry named {name!r}", ExitCode.CONFLICT)
    token = "bft_" + secrets.token_urlsafe(TOKEN_BYTES)
    line = token_line(name, role, token, secrets.token_bytes(SALT_BYTES))
    text = existing + ("" if not existing or existing.endswith("\n") else "\n") + line + "\n"
    _write_private(path, text.encode())
    return token
