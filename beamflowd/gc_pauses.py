"""The cyclic garbage collector stops every thread, the Raft tick thread included: watch it and keep it short.

A full collection walks every tracked object; with 50,000 workflows in state that is ~300,000 objects and
250-500 ms on a shared 2-core machine, longer than the shortest election timeout. Three measures:

- :func:`watch` logs every collection longer than ``PAUSE_WARN_S`` (and counts them), so an election or a
  suspected node can be traced to a pause;
- :func:`freeze_long_lived` moves everything alive into the permanent generation, which later collections
  skip. The replication adapter calls it after each snapshot and restore, when what is alive is mostly
  replicated state that lives until GC forgets it (freed then by reference counting: it holds no cycles).
  The price: cyclic garbage among objects alive at a freeze is never reclaimed; what is alive at a freeze
  besides the state is a few thousand objects of in-flight requests and actors.
- :func:`collect_less_often` raises the thresholds: at Python's defaults (700, 10, 10) a node under load
  collected ~40 times a second, ~300 ms per 3,000 workflows (more than applying their commands), with full
  collections of 90-140 ms; nearly every young object is freed by reference counting anyway
  (docs/performance.md, "Collecting less often").
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

PAUSE_WARN_S = 0.1
#: Container allocations (net of frees) before a young collection; young collections before a middle one;
#: middle ones before a full one (which Python also puts off until a quarter of the heap is new).
#: Cyclic garbage waits at most one young round: ~20,000 objects, a few MiB.
GC_THRESHOLDS = (20_000, 20, 10)

log = logging.getLogger(__name__)


class PauseWatch:
    """Times each collection (gc callbacks run on the collecting thread, with the GIL held)."""

    def __init__(self) -> None:
        self.long_pauses = 0
        self.longest_s = 0.0
        self._started: dict[int, float] = {}
        self._lock = threading.Lock()

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        thread = threading.get_ident()
        if phase == "start":
            self._started[thread] = time.perf_counter()
            return
        started = self._started.pop(thread, None)
        if started is None:
            return
        took = time.perf_counter() - started
        if took >= PAUSE_WARN_S:
            with self._lock:
                self.long_pauses += 1
                self.longest_s = max(self.longest_s, took)
            log.warning(
                "garbage collection of generation %s took %.0f ms (%s collected); every thread waited",
                info.get("generation"),
                took * 1000,
                info.get("collected"),
            )


_watch: PauseWatch | None = None


def watch() -> PauseWatch:
    """Install the pause watch once per process and return it."""
    global _watch
    if _watch is None:
        _watch = PauseWatch()
        gc.callbacks.append(_watch)
    return _watch


def collect_less_often() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_long_lived() -> None:
    gc.freeze()


@contextlib.contextmanager
def building_long_lived() -> Iterator[None]:
    """For building a large, acyclic, long-lived structure at once (a restore): collections would only
    walk it. What was built is frozen before collections resume: otherwise the first young collection
    after would walk all of it (seen: 400 ms at 100,000 workflows, every thread stopped)."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
