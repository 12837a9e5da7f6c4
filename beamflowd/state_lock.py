"""The state lock, fair to whoever waits for it.

The Raft tick thread applies entries under the lock that readers and background workers (the snapshot
encoder, the restore verifier) also take. CPython's ``Lock`` is not fair: a thread that releases it and
takes it straight back, as a loop working in chunks does, wins against a thread already waiting, which
must first be woken and then get the GIL. The tick thread then waited out whole loops of chunks (0.9-1.2 s
at 100,000 workflows, caught by :mod:`beamflowd.tick_watch`): no heartbeats for that long, and a peer
called an election. Background loops take each chunk with :meth:`StateLock.chunk`, which first lets every
thread already waiting have its turn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

#: A chunk waits at most this long for the threads already waiting to take the lock (a waiter that is
#: itself descheduled must not stop background work).
YIELD_MAX_S = 0.02
YIELD_POLL_S = 0.0002


class StateLock:
    """A mutex (``with lock:``) that counts its waiters, and :meth:`chunk` for loops that must let them in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guard = threading.Lock()  # for the count: ``+=`` is not atomic across threads
        self._waiting = 0
        #: The thread holding the lock (for the tick watch: who keeps the tick thread waiting).
        self.holder: int | None = None

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            with self._guard:
                self._waiting += 1
            try:
                self._lock.acquire()
            finally:
                with self._guard:
                    self._waiting -= 1
        self.holder = threading.get_ident()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.holder = None
        self._lock.release()

    @property
    def waiting(self) -> int:
        """Threads blocked taking the lock now."""
        return self._waiting

    @contextmanager
    def chunk(self) -> Iterator[None]:
        """Hold the lock for one chunk of background work, taken after the threads already waiting for it."""
        if self._waiting:
            deadline = time.monotonic() + YIELD_MAX_S
            while self._waiting and time.monotonic() < deadline:
                time.sleep(YIELD_POLL_S)
        with self:
            yield
