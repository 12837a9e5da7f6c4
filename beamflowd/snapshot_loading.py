"""Loading a snapshot without stalling the Raft tick thread.

A snapshot the leader sends arrives on the tick thread, inside the append that carries its last piece.
Decoding 100,000 workflows takes seconds; on the tick thread that silences the node (no acks, no
heartbeats), the leader's connection to it times out and the transfer starts again. So pysyncobj gets the
snapshot's metadata at once, the state is decoded on a loader thread, and the entries committed meanwhile
are queued (:class:`PendingLoad`) and applied on top of it, in order, as soon as it is in place. Results of
queued entries are :class:`DeferredResults`: a caller waiting for one gets it once it exists.

After any restore, each finished workflow's own invariants are checked in the background
(:func:`verify_finished_workflows`): they are most of a restore's cost, and nothing acts on a finished
workflow before that but reads and GC. A violation stops the node, as one found during a restore would.
Checking a finished workflow reads all of it, so this is also what decodes the workflows a restore left
packed (:mod:`beamflowd.core.packed_workflows`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from beamflowd.core.invariants import check_workflow
from beamflowd.core.state import Result, StateMachine
from beamflowd.state_lock import StateLock

log = logging.getLogger(__name__)

#: Entries queued behind a snapshot that is still decoding; past this the tick thread waits for the load
#: (back-pressure instead of unbounded memory). Decoding takes seconds, commits come at ~1,000 entries/s.
PENDING_ENTRIES_MAX = 100_000
#: Tests only: seconds the loader thread waits before decoding a received snapshot, so that a test can
#: have entries queue behind it. Unset (0) in production.
LOAD_DELAY_ENV = "BEAMFLOW_TEST_SNAPSHOT_LOAD_DELAY_S"
#: The interpreter's thread switch interval while a loader decodes (the default is 5 ms).
LOADING_SWITCH_INTERVAL_S = 0.0005
#: Finished workflows checked per hold of the state lock (a few ms: applies wait for the lock). A
#: workflow restored packed is decoded by its check (~20 us at 100,000 workflows).
VERIFY_CHUNK = 250


class DeferredResults:
    """Results of one entry applied behind a decoding snapshot; :meth:`then` runs a callback with them
    once they exist (at once if they already do; otherwise on the loader thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: list[Result] | None = None
        self._waiters: list[Callable[[list[Result]], None]] = []

    def then(self, callback: Callable[[list[Result]], None]) -> None:
        with self._lock:
            results = self._results
            if results is None:
                self._waiters.append(callback)
                return
        callback(results)

    def resolve(self, results: list[Result]) -> None:
        with self._lock:
            assert self._results is None, "an entry's results are resolved once"
            self._results = results
            waiters, self._waiters = self._waiters, []
        for callback in waiters:
            callback(results)


@dataclass
class PendingLoad:
    """A received snapshot at Raft ``index`` being decoded, and the entries committed after it."""

    index: int
    #: (commands, their deferred results, the entry's Raft index), in commit order.
    queued: list[tuple[list[Mapping[str, Any]], DeferredResults, int]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    #: pysyncobj asked for a snapshot of ours meanwhile (refused: the state is behind its index).
    snapshot_refused: bool = False


@contextlib.contextmanager
def tick_thread_first() -> Iterator[None]:
    """While a loader decodes (or a verifier checks), keep the Raft tick thread's waits for the GIL short.

    The tick thread gives the GIL up and takes it back many times per message (every socket call, every
    poll); behind a thread that computes, each take waits out the switch interval (5 ms by default), so
    a node decoding a snapshot answered its leader too slowly and called elections. 0.5 ms keeps those
    waits short for a small cost to the decoder.
    """
    global _switch_users, _switch_default
    # Loader and verifier threads may overlap: the first one in saves the interval, the last out restores it.
    with _switch_lock:
        if _switch_users == 0:
            _switch_default = sys.getswitchinterval()
            sys.setswitchinterval(LOADING_SWITCH_INTERVAL_S)
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_default)


_switch_lock = threading.Lock()
_switch_users = 0  # threads inside tick_thread_first()
_switch_default = 0.005  # the interval to restore (CPython's default until the first one saves it)


def pause_before_loading() -> None:
    """Wait ``$BEAMFLOW_TEST_SNAPSHOT_LOAD_DELAY_S`` seconds (tests; at most a minute)."""
    delay_s = min(60.0, float(os.environ.get(LOAD_DELAY_ENV, "0") or 0))
    if delay_s > 0:
        time.sleep(delay_s)


def verify_finished_workflows(
    lock: StateLock, sm: StateMachine, on_violation: Callable[[Exception], None]
) -> tuple[int, float]:
    """Check the invariants of each workflow finished when called, a chunk per hold of ``lock``;
    (workflows checked, seconds). Workflows collected or changed meanwhile are checked as they are now."""
    started = time.monotonic()
    with lock:
        ids = [wf.id for wf in sm.workflows.values() if wf.terminal]
    checked = 0
    for first in range(0, len(ids), VERIFY_CHUNK):
        with lock.chunk():
            live = {n for n, m in sm.members.items() if m.alive}
            for wf_id in ids[first : first + VERIFY_CHUNK]:
                wf = sm.workflows.get(wf_id)
                if wf is None:
                    continue
                try:
                    check_workflow(sm, wf, live)
                except AssertionError as exc:  # InvariantViolation
                    on_violation(exc)
                    return checked, time.monotonic() - started
                checked += 1
    return checked, time.monotonic() - started
