"""How beamctl dials a node: TLS from ``--cacert/--cert/--key`` (etcdctl's names) and a bearer ``--token``.

TLS is on as soon as a CA or a client certificate is given (``--cacert`` alone: verify the server only;
with ``--cert/--key``: mutual TLS). The token goes in ``authorization: Bearer ...`` metadata on every call
and is never sent in plaintext to a non-loopback endpoint.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import grpc

from beamctl.errors import CliError, ExitCode

# Re-exported: the light definitions live in beamctl.settings (loaded by --help without grpc).
from beamctl.settings import CACERT_ENV as CACERT_ENV
from beamctl.settings import CERT_ENV as CERT_ENV
from beamctl.settings import KEY_ENV as KEY_ENV
from beamctl.settings import PLAINTEXT as PLAINTEXT
from beamctl.settings import TOKEN_ENV as TOKEN_ENV
from beamctl.settings import Security as Security


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
