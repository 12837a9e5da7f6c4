"""A background thread that holds a ``WatchStats`` stream with fail-over, for ``beamctl top``.

Why a thread: the screen must keep answering keys and show "reconnecting" while the stream is blocked on a
dead or frozen node; a blocking gRPC stream in the main loop could not. The thread only ever publishes the
latest snapshot (one slot, under a lock): a slow screen never queues snapshots up.

Fail-over: a stream that breaks (node killed: UNAVAILABLE/CANCELLED) or goes silent for longer than
``stall_s`` (node frozen) is dropped and the next endpoint in ``--endpoints`` order is tried; after a full
pass without success the thread waits a moment and starts again. It runs until :meth:`StatsFeed.stop`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from beamctl.errors import CliError, one_line
from beamctl.security import PLAINTEXT, Security, open_channel
from beamflowd.api.gen.beamflow.v1 import stats_pb2, stats_pb2_grpc
from beamflowd.core.channels import CHANNEL_OPTIONS

#: Pause after a full pass over the endpoints without a stream.
PASS_PAUSE_S = 0.5
#: A stream silent for this many intervals (plus a second) is treated as dead.
STALL_INTERVALS = 3


@dataclass
class FeedState:
    """What the screen reads: the newest snapshot and how the connection is doing."""

    snapshot: stats_pb2.StatsSnapshot | None = None
    size_bytes: int = 0
    endpoint: str = ""
    status: str = "connecting"  # connecting | live | reconnecting
    error: str = ""
    received_at: float = 0.0
    #: Monotonic counter of received snapshots (the screen redraws when it moves).
    sequence: int = 0
    refresh_s: float = 0.0


class StatsFeed:
    def __init__(
        self,
        endpoints: Sequence[str],
        interval_ms: int = 1000,
        max_events: int = 20,
        security: Security = PLAINTEXT,
    ) -> None:
        self.endpoints = tuple(endpoints)
        self.security = security
        self.interval_s = interval_ms / 1000
        self.request = stats_pb2.WatchStatsRequest(interval_ms=interval_ms, max_events=max_events)
        self.stall_s = STALL_INTERVALS * self.interval_s + 1.0
        self._lock = threading.Lock()
        self._state = FeedState()
        self._stop = threading.Event()
        self._stream: Any = None
        self._intervals: deque[float] = deque(maxlen=10)
        self._thread = threading.Thread(target=self._run, name="stats-feed", daemon=True)
        self._channels: dict[str, grpc.Channel] = {}

    # ------------------------------------------------------------------ API
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Cancel the stream and wait (bounded) for the thread; safe to call twice."""
        self._stop.set()
        self._cancel_stream()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def state(self) -> FeedState:
        with self._lock:
            return FeedState(**vars(self._state))

    def check_stall(self) -> bool:
        """Called by the screen: drop a stream that went silent (frozen node). True if it did."""
        with self._lock:
            live = self._state.status == "live"
            silent = time.monotonic() - self._state.received_at
        if live and silent > self.stall_s:
            self._set(status="reconnecting", error=f"no update for {silent:.1f}s")
            self._cancel_stream()
            return True
        return False

    # ------------------------------------------------------------ internals
    def _set(self, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self._state, key, value)

    def _cancel_stream(self) -> None:
        stream = self._stream
        if stream is not None:
            stream.cancel()

    def _channel(self, endpoint: str) -> grpc.Channel:
        channel = self._channels.get(endpoint)
        if channel is None:
            channel = self._channels[endpoint] = open_channel(endpoint, self.security, CHANNEL_OPTIONS)
        return channel

    def _run(self) -> None:
        index = 0
        failures_in_pass = 0
        while not self._stop.is_set():  # one stream per iteration; ends with stop()
            endpoint = self.endpoints[index]
            got_any = self._follow(endpoint)
            if self._stop.is_set():
                return
            index = (index + 1) % len(self.endpoints)
            failures_in_pass = 0 if got_any else failures_in_pass + 1
            if failures_in_pass >= len(self.endpoints):
                failures_in_pass = 0
                self._stop.wait(PASS_PAUSE_S)

    def _follow(self, endpoint: str) -> bool:
        """Read one stream until it breaks; True if it delivered at least one snapshot."""
        got_any = False
        try:
            channel = self._channel(endpoint)
        except CliError as err:  # unreadable --cacert, or a token that would go out in plaintext
            self._set(status="reconnecting", error=err.message)
            return False
        stub = stats_pb2_grpc.StatsServiceStub(channel)  # type: ignore[no-untyped-call, unused-ignore]
        # The first snapshot must arrive within a few intervals, or this endpoint counts as dead.
        stream = stub.WatchStats(self.request, wait_for_ready=False)
        self._stream = stream
        watchdog = threading.Timer(self.stall_s + 1.0, lambda: None if got_any else stream.cancel())
        watchdog.daemon = True
        watchdog.start()
        try:
            for response in stream:
                now = time.monotonic()
                with self._lock:
                    if self._state.received_at and got_any:
                        self._intervals.append(now - self._state.received_at)
                    self._state.snapshot = response.snapshot
                    self._state.size_bytes = response.ByteSize()
                    self._state.endpoint = endpoint
                    self._state.status = "live"
                    self._state.error = ""
                    self._state.received_at = now
                    self._state.sequence += 1
                    if self._intervals:
                        self._state.refresh_s = sum(self._intervals) / len(self._intervals)
                got_any = True
            error = f"{endpoint}: stream ended"
        except grpc.RpcError as err:
            code = err.code()
            name = code.name if code is not None else "error"
            error = f"{endpoint}: {name}: {one_line(err.details() or '')}"
        finally:
            watchdog.cancel()
            self._stream = None
            stream.cancel()
        if not self._stop.is_set():
            self._set(status="reconnecting", error=error)
        return got_any
