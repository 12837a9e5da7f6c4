"""Channels from this node to its peers' gRPC ports: one cached channel per address, fast reconnects."""

from __future__ import annotations

import grpc

#: A restarted peer must be seen again within a second, not after gRPC's default backoff (up to 120 s);
#: loopback and cluster traffic never goes through an HTTP proxy.
PEER_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_http_proxy", 0),
]


class PeerChannels:
    """Shared by the cluster, stats and chaos services of one node (event-loop thread only)."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}

    def get(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(
                address, options=PEER_CHANNEL_OPTIONS
            )
        return channel

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
