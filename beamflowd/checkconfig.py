"""``beamflowd check-config FILE``: validate a node's TOML config before deploying it, print what it means.

Checks what a start would check (keys, addresses, the loopback/TLS/auth rules) and what a start would only
find later: that the tokens file parses and that the TLS certificate and key load and belong together.
Prints the effective configuration, defaults included, with the Raft password masked. Exit 0 valid, 2 not.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from typing import Any

from beamflowd.config import ConfigError, NodeConfig, build_config, load_toml

_SECRET_KEYS = frozenset({"raft_password"})


def _check_tls(config: NodeConfig) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if not (config.tls_cert and config.tls_key):
        return
    try:
        with open(config.tls_cert, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"tls_cert: {config.tls_cert!r} is not a PEM certificate: {exc}") from None
    try:
        with open(config.tls_key, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"tls_key: {config.tls_key!r} is not an unencrypted PEM private key: {exc}"
        ) from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise ConfigError("tls_key: does not belong to the certificate in tls_cert")
    for key_name in ("tls_client_ca", "tls_peer_ca"):
        path = getattr(config, key_name)
        if path:
            try:
                with open(path, "rb") as f:
                    x509.load_pem_x509_certificates(f.read())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{key_name}: {path!r} is not a PEM CA bundle: {exc}") from None


def check(path: str) -> NodeConfig:
    """The validated config of ``path``; ConfigError names the first problem."""
    config = build_config(load_toml(path), {})
    if config.tokens_file:
        from beamflowd.api.auth import parse_tokens

        with open(config.tokens_file, encoding="utf-8") as f:
            parse_tokens(f.read(), config.tokens_file)
    _check_tls(config)
    return config


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def render(config: NodeConfig) -> str:
    """The effective configuration as TOML (unset optional keys as comments, secrets masked)."""
    lines = []
    for field in dataclasses.fields(config):
        if field.name == "extra":
            continue
        value = getattr(config, field.name)
        if value is None:
            lines.append(f"# {field.name} = (not set)")
        elif field.name in _SECRET_KEYS:
            lines.append(f'{field.name} = "<set>"')
        else:
            lines.append(f"{field.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: beamflowd check-config FILE", file=sys.stderr)
        return 2
    try:
        config = check(argv[0])
    except ConfigError as exc:
        print(f"beamflowd: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as exc:
        print(f"beamflowd: error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render(config))
    print(f"# {argv[0]}: valid", file=sys.stderr)
    return 0
