"""How beamctl dials a node: TLS from ``--cacert/--cert/--key`` (etcdctl's names) and a bearer ``--token``.

TLS is on as soon as a CA or a client certificate is given (``--cacert`` alone: verify the server only;
with ``--cert/--key``: mutual TLS). The token goes in ``authorization: Bearer ...`` metadata on every call
and is never sent in plaintext to a non-loopback endpoint.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import grpc

from beamctl.errors import CliError, ExitCode

CACERT_ENV = "BEAMFLOW_CACERT"
CERT_ENV = "BEAMFLOW_CERT"
KEY_ENV = "BEAMFLOW_KEY"
TOKEN_ENV = "BEAMFLOW_TOKEN"


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


def _read(option: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CliError(f"{option}: cannot read {path!r}: {exc.strerror}", ExitCode.USAGE) from None


@functools.cache
def _credentials(cacert: str | None, cert: str | None, key: str | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read("--cacert", cacert) if cacert else None,
        private_key=_read("--key", key) if key else None,
        certificate_chain=_read("--cert", cert) if cert else None,
    )


def _is_loopback(endpoint: str) -> bool:
    host = endpoint.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str]] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: Any


class BearerInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Adds the bearer header to each call; works over TLS and loopback plaintext alike."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> _Details:
        metadata = [*(details.metadata or ()), self._header]
        return _Details(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)


def open_channel(endpoint: str, security: Security, options: Sequence[tuple[str, Any]]) -> grpc.Channel:
    """A channel to ``endpoint`` with this invocation's TLS and token."""
    if security.tls:
        channel = grpc.secure_channel(
            endpoint, _credentials(security.cacert, security.cert, security.key), options=list(options)
        )
    else:
        if security.token and not _is_loopback(endpoint):
            raise CliError(
                f"refusing to send --token in plaintext to {endpoint}: give --cacert (and --cert/--key)",
                ExitCode.USAGE,
            )
        channel = grpc.insecure_channel(endpoint, options=list(options))
    if security.token:
        return grpc.intercept_channel(channel, BearerInterceptor(security.token))
    return channel


#: No TLS, no token: what a loopback dev cluster needs.
PLAINTEXT = Security()
