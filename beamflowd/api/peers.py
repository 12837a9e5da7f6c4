"""Channels from this node to its peers' gRPC ports: one cached channel per address, fast reconnects.

Credentials are per process (one node per process): the node calls :func:`configure` once at start-up,
before its services open any channel, and every :class:`PeerChannels` dials with them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from beamflowd.core.channels import CHANNEL_OPTIONS


@dataclass(frozen=True)
class PeerSecurity:
    """TLS credentials (None: plaintext, loopback only) and the bearer token sent on every peer call."""

    credentials: grpc.ChannelCredentials | None = None
    token: str | None = None

    def __repr__(self) -> str:  # never print the token
        return f"PeerSecurity(tls={self.credentials is not None}, token={'set' if self.token else 'none'})"


_security = PeerSecurity()


def configure(security: PeerSecurity) -> None:
    """Set the credentials of every peer channel opened from now on."""
    global _security
    _security = security


class _BearerInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds ``authorization: Bearer <token>`` to each call (works over TLS and loopback plaintext alike)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._header)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


def open_channel(address: str, security: PeerSecurity) -> grpc.aio.Channel:
    interceptors = [_BearerInterceptor(security.token)] if security.token else None
    if security.credentials is not None:
        return grpc.aio.secure_channel(
            address, security.credentials, options=CHANNEL_OPTIONS, interceptors=interceptors
        )
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS, interceptors=interceptors)


class PeerChannels:
    """Shared by the cluster, stats and chaos services of one node (event-loop thread only)."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}

    def get(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = open_channel(address, _security)
        return channel

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
