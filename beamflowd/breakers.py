"""Circuit breakers per integration, per node (as in resilience4j): not replicated state.

A step names its breaker (``breaker: payments``; an ``http`` step without one uses its URL's host). After
``failures`` failed attempts within ``window`` the breaker opens: attempts through it fail fast with class
``circuit_open`` without calling out, and their retry is committed no earlier than the moment it half-opens.
After ``open_for`` it lets attempts through as probes; ``half_open_successes`` successes close it, a failure
opens it again. Each node judges the integration from its own attempts, so a breaker never needs a commit
and a node that cannot reach a service does not stop the others from using it.

Times are the caller's monotonic seconds (tests pass their own clock).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, Final

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"
#: Breakers one node keeps; beyond, the least recently used closed one is forgotten (a step may name a host
#: from an expression, so names are not bounded by the definitions).
BREAKERS_MAX: Final = 1_000


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """Node configuration (``breaker_*`` in the node's TOML)."""

    failures: int = 5
    window_s: float = 60.0
    open_for_s: float = 30.0
    half_open_successes: int = 3


@dataclass(slots=True)
class Breaker:
    name: str
    settings: BreakerSettings
    state: str = CLOSED
    #: Times of recent failures (closed), at most ``failures`` of them.
    recent: collections.deque[float] = field(default_factory=collections.deque)
    opened_at: float = 0.0
    successes: int = 0
    #: Counters since the node started, for ``beamctl breakers list``.
    rejected: int = 0
    opened: int = 0

    def retry_after(self, now: float) -> float | None:
        """None if an attempt may go through now; else seconds until the breaker half-opens."""
        if self.state == OPEN:
            remaining = self.opened_at + self.settings.open_for_s - now
            if remaining > 0:
                self.rejected += 1
                return remaining
            self.state, self.successes = HALF_OPEN, 0
        return None

    def record(self, now: float, ok: bool) -> None:
        """The outcome of an attempt that went through."""
        s = self.settings
        if ok:
            if self.state == HALF_OPEN:
                self.successes += 1
                if self.successes >= s.half_open_successes:
                    self.state = CLOSED
                    self.recent.clear()
            return
        if self.state == HALF_OPEN:
            self._open(now)
            return
        self.recent.append(now)
        while self.recent and self.recent[0] < now - s.window_s:
            self.recent.popleft()
        while len(self.recent) > s.failures:
            self.recent.popleft()
        if self.state == CLOSED and len(self.recent) >= s.failures:
            self._open(now)

    def _open(self, now: float) -> None:
        self.state, self.opened_at, self.successes = OPEN, now, 0
        self.recent.clear()
        self.opened += 1

    def to_plain(self, now: float) -> dict[str, Any]:
        until = self.opened_at + self.settings.open_for_s - now if self.state == OPEN else 0.0
        return {
            "name": self.name,
            "state": self.state,
            "recent_failures": len(self.recent),
            "half_open_successes": self.successes,
            "open_for_s": max(0.0, until),
            "rejected": self.rejected,
            "opened": self.opened,
        }


class Breakers:
    """This node's breakers by name. Used from the event loop only (no lock)."""

    def __init__(self, settings: BreakerSettings | None = None) -> None:
        self.settings = settings or BreakerSettings()
        self._by_name: collections.OrderedDict[str, Breaker] = collections.OrderedDict()

    def get(self, name: str) -> Breaker:
        breaker = self._by_name.get(name)
        if breaker is None:
            breaker = self._by_name[name] = Breaker(name, self.settings)
            if len(self._by_name) > BREAKERS_MAX:
                closed = [n for n, b in self._by_name.items() if b.state == CLOSED and n != name]
                del self._by_name[closed[0] if closed else next(iter(self._by_name))]
        self._by_name.move_to_end(name)
        return breaker

    def snapshot(self, now: float) -> list[dict[str, Any]]:
        return [b.to_plain(now) for _, b in sorted(self._by_name.items())]
