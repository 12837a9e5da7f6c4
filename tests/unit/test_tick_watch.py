"""The tick watch names where a stalled tick thread is stuck, once per stall, and how long it stalled."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from beamflowd.state_lock import StateLock
from beamflowd.tick_watch import TickWatch

STALL_S = 0.4
WARN_S = 0.1
DEADLINE_S = 10.0


def stuck_in_a_long_apply(watch: TickWatch, release: threading.Event) -> None:
    release.wait(DEADLINE_S)


def test_a_stall_is_reported_once_with_its_stack_then_its_length(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="beamflowd.tick_watch")
    watch = TickWatch(stall_warn_s=WARN_S)
    release = threading.Event()

    def tick_thread() -> None:
        watch.beat()
        stuck_in_a_long_apply(watch, release)
        watch.beat()

    watch.start()
    try:
        ticker = threading.Thread(target=tick_thread)
        ticker.start()
        deadline = time.monotonic() + DEADLINE_S
        while watch.stalls == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(STALL_S)  # stay stuck well past the first report: it must not repeat
        release.set()
        ticker.join(DEADLINE_S)
    finally:
        watch.stop()
    stalled = [r.getMessage() for r in caplog.records if "has not ticked" in r.getMessage()]
    assert len(stalled) == 1, stalled
    assert "stuck_in_a_long_apply" in stalled[0]
    assert watch.stalls == 1
    assert watch.longest_stall_s >= STALL_S
    assert any("ticked again after" in r.getMessage() for r in caplog.records)


def test_a_thread_that_keeps_ticking_is_never_reported(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="beamflowd.tick_watch")
    watch = TickWatch(stall_warn_s=WARN_S)
    watch.start()
    try:
        end = time.monotonic() + 5 * WARN_S
        while time.monotonic() < end:
            watch.beat()
            time.sleep(WARN_S / 10)
    finally:
        watch.stop()
    assert watch.stalls == 0
    assert not caplog.records


def holding_the_state_lock(lock: StateLock, held: threading.Event, release: threading.Event) -> None:
    with lock:
        held.set()
        release.wait(DEADLINE_S)


def test_a_tick_thread_waiting_for_the_state_lock_is_reported_with_the_holder(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="beamflowd.tick_watch")
    lock = StateLock()
    watch = TickWatch(stall_warn_s=WARN_S, blocker=lambda: lock.holder)
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=holding_the_state_lock, args=(lock, held, release), name="greedy-reader")

    def tick_thread() -> None:
        watch.beat()
        with lock:
            pass
        watch.beat()

    ticker = threading.Thread(target=tick_thread)
    watch.start()
    holder.start()
    try:
        assert held.wait(DEADLINE_S)
        ticker.start()
        deadline = time.monotonic() + DEADLINE_S
        while watch.stalls == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        release.set()
        holder.join(DEADLINE_S)
        if ticker.is_alive():
            ticker.join(DEADLINE_S)
        watch.stop()
    stalled = [r.getMessage() for r in caplog.records if "has not ticked" in r.getMessage()]
    assert len(stalled) == 1, stalled
    assert "the thread holding the state lock (greedy-reader)" in stalled[0]
    assert "holding_the_state_lock" in stalled[0]
