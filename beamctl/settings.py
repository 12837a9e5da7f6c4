"""What one invocation asked for: endpoints, timeout, output format, credentials.

Why a module of its own: the root callback and every ``--help`` need these, and they must load without
grpc, protobuf or rich (a CLI that scripts call in a loop pays its import time on every call).
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

import typer

from beamctl.errors import CliError, ExitCode

DEFAULT_ENDPOINTS = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
ENDPOINTS_ENV = "BEAMFLOW_ENDPOINTS"
CACERT_ENV = "BEAMFLOW_CACERT"
CERT_ENV = "BEAMFLOW_CERT"
KEY_ENV = "BEAMFLOW_KEY"
TOKEN_ENV = "BEAMFLOW_TOKEN"


class OutputFormat(enum.StrEnum):
    """Values of ``-o/--output``."""

    table = "table"
    json = "json"
    yaml = "yaml"


@dataclass(frozen=True)
class Security:
    """The credentials of one beamctl invocation; empty = plaintext without a token (loopback clusters)."""

    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if bool(self.cert) != bool(self.key):
            raise CliError("--cert and --key go together (a client certificate and its key)", ExitCode.USAGE)
        if self.token is not None and (not self.token or any(c.isspace() for c in self.token)):
            raise CliError("--token: empty or contains whitespace", ExitCode.USAGE)

    @property
    def tls(self) -> bool:
        return bool(self.cacert or self.cert)

    def __repr__(self) -> str:  # never print the token
        return (
            f"Security(cacert={self.cacert!r}, cert={self.cert!r}, token={'set' if self.token else 'none'})"
        )


#: No TLS, no token: what a loopback dev cluster needs.
PLAINTEXT = Security()


@dataclass(frozen=True)
class Settings:
    """Global options of one invocation, carried in the Typer context object."""

    endpoints: tuple[str, ...]
    timeout: float
    output: str = "table"
    security: Security = PLAINTEXT


def parse_endpoints(text: str) -> tuple[str, ...]:
    """Split ``host:port,host:port``; refuse malformed entries early (exit 2) rather than as a gRPC error."""
    endpoints = tuple(part.strip() for part in text.split(",") if part.strip())
    if not endpoints:
        raise CliError("no endpoints given: use --endpoints host:port[,host:port...]", ExitCode.USAGE)
    for endpoint in endpoints:
        host, sep, port = endpoint.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise CliError(f"invalid endpoint {endpoint!r}: expected host:port", ExitCode.USAGE)
    return endpoints


def default_endpoints() -> str:
    """``BEAMFLOW_ENDPOINTS`` or the local 3-node default."""
    return os.environ.get(ENDPOINTS_ENV) or DEFAULT_ENDPOINTS


def settings_of(ctx: typer.Context) -> Settings:
    """The global options set by the root callback; defaults when a sub-app is invoked on its own."""
    settings = ctx.find_object(Settings)
    if settings is None:
        return Settings(endpoints=parse_endpoints(default_endpoints()), timeout=10.0)
    return settings
