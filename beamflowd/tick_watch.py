"""Watch the Raft tick thread: when it stops ticking for longer than an election timeout could bear, say
where it is stuck.

Everything Raft does here (heartbeats, votes, applying entries) runs on pysyncobj's one tick thread: a pause
of a few hundred milliseconds there is an election on a peer. The garbage collector's pauses are logged by
:mod:`beamflowd.gc_pauses`; this catches every other kind (a long apply, a lock held elsewhere, a thread
that keeps the GIL) the way etcd warns that "the leader failed to send out heartbeat on time": a watcher
thread notices the silence and logs the tick thread's stack at that moment, once per stall, and the stall's
length when it ends.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from types import FrameType

#: A stall this long is reported (the shortest election timeout is 300 ms).
STALL_WARN_S = 0.25
#: How often the watcher looks.
CHECK_PERIOD_S = 0.05
#: Frames of the stuck thread's stack in the warning (innermost last).
STACK_FRAMES_MAX = 12

log = logging.getLogger(__name__)


class TickWatch:
    """:meth:`beat` on every tick (cheap); a daemon thread reports the silences between beats."""

    def __init__(
        self, stall_warn_s: float = STALL_WARN_S, blocker: Callable[[], int | None] = lambda: None
    ) -> None:
        """``blocker()`` names the thread holding what the tick thread may wait for (the state lock)."""
        self.stall_warn_s = stall_warn_s
        self._blocker = blocker
        self.stalls = 0
        self.longest_stall_s = 0.0
        self._last_beat = time.monotonic()
        self._thread_id: int | None = None
        self._reported_at: float | None = None  # the beat a reported stall followed
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="tick-watch", daemon=True)

    def start(self) -> None:
        self._last_beat = time.monotonic()
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()

    def beat(self) -> None:
        """Tick thread: it is alive now."""
        now = time.monotonic()
        if self._thread_id is None:
            self._thread_id = threading.get_ident()
        reported, self._reported_at = self._reported_at, None
        if reported is not None:
            took = now - reported
            self.longest_stall_s = max(self.longest_stall_s, took)
            log.warning("the raft tick thread ticked again after %.0f ms", took * 1000)
        self._last_beat = now

    def _watch(self) -> None:
        while not self._stop.wait(CHECK_PERIOD_S):
            last = self._last_beat
            if self._reported_at == last or time.monotonic() - last < self.stall_warn_s:
                continue
            self._reported_at = last
            self.stalls += 1
            frames = sys._current_frames()
            blocker = self._blocker()
            held = ""
            if blocker is not None and blocker != self._thread_id and blocker in frames:
                stack = _stack(frames[blocker])
                held = f"\nthe thread holding the state lock ({_name(blocker)}) is at:\n{stack}"
            log.warning(
                "the raft tick thread has not ticked for %.0f ms (a peer may call an election), at:\n%s%s",
                (time.monotonic() - last) * 1000,
                _stack(frames.get(self._thread_id or -1)),
                held,
            )


def _stack(frame: FrameType | None) -> str:
    if frame is None:
        return "(unknown)"
    return "".join(traceback.format_stack(frame, limit=STACK_FRAMES_MAX)).rstrip()


def _name(thread_id: int) -> str:
    return next((t.name for t in threading.enumerate() if t.ident == thread_id), str(thread_id))
