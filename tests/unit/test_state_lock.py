"""A thread waiting for the state lock gets it before a background loop's next chunk, a busy loop or not."""

from __future__ import annotations

import threading
import time

from beamflowd.state_lock import StateLock

CHUNKS = 400
TAKES = 20
DEADLINE_S = 30.0


def busy(seconds: float) -> None:
    """Compute (holding the GIL) for about ``seconds``, as an encoder chunk does."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def chunks_passed_while_waiting(lock: StateLock, use_chunk: bool) -> int:
    """Run a loop of chunks back to back and a thread taking the lock now and then; the most chunks the
    loop completed while that thread waited for one take."""
    done = 0
    started = threading.Event()
    finished = threading.Event()

    def background() -> None:
        nonlocal done
        for _ in range(CHUNKS):
            with lock.chunk() if use_chunk else lock:
                done += 1
                started.set()
                busy(0.0005)
        finished.set()

    worst = 0
    loop = threading.Thread(target=background)
    loop.start()
    assert started.wait(DEADLINE_S)
    for _ in range(TAKES):
        if finished.is_set():
            break
        before = done
        with lock:
            worst = max(worst, done - before)
        time.sleep(0.002)
    loop.join(DEADLINE_S)
    assert finished.is_set(), "the background loop ends"
    return worst


def test_a_waiter_gets_the_lock_before_the_next_chunk() -> None:
    assert chunks_passed_while_waiting(StateLock(), use_chunk=True) <= 2


def test_the_waiting_count_returns_to_zero() -> None:
    lock = StateLock()
    chunks_passed_while_waiting(lock, use_chunk=True)
    assert lock.waiting == 0
