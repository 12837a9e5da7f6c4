"""How every client dials a node: ``beamctl``, its dashboard feed, and nodes calling each other.

Plain data (gRPC channel arguments), so both sides import it without importing each other: reconnect within
a second after a node restarts (gRPC's default backoff grows to two minutes), and never route cluster
traffic through an HTTP proxy taken from the environment.
"""

from __future__ import annotations

from typing import Final

CHANNEL_OPTIONS: Final[tuple[tuple[str, int], ...]] = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_http_proxy", 0),
)
