"""Read barriers, coalesced: at most one barrier commit in flight per node, however many reads ask.

Before a node answers NOT_FOUND it commits a barrier (its own heartbeat) and waits until it is applied here:
every entry committed before it is then applied too (see ``WorkflowServicer.caught_up``). One commit per
read would let a client asking for unknown ids in a loop write to the replicated log at its own rate. So
reads share rounds, as etcd batches its ReadIndex requests: a read that arrives while a round is in flight
waits for the next one, which is proposed when that round ends (a barrier must be proposed after the read
arrived, or it proves nothing about what was committed before the read). Barrier commits are therefore
bounded by one per commit round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class ReadBarrier:
    """``await barrier.wait(timeout_s)`` returns once a barrier proposed after the call has been applied;
    raises what the proposal raised, or ``TimeoutError``."""

    def __init__(self, propose: Callable[[], Awaitable[object]]) -> None:
        self._propose = propose
        self._running: asyncio.Task[None] | None = None
        self._next: asyncio.Future[None] | None = None
        self.rounds = 0

    async def wait(self, timeout_s: float) -> None:
        await asyncio.wait_for(asyncio.shield(self._join_next_round()), timeout_s)

    def _join_next_round(self) -> asyncio.Future[None]:
        round_done = self._next
        if round_done is None:
            round_done = self._next = asyncio.get_running_loop().create_future()
            # Nobody waits for an outcome when every reader timed out: mark its exception as seen.
            round_done.add_done_callback(lambda f: f.cancelled() or f.exception())
        if self._running is None:
            self._running = asyncio.get_running_loop().create_task(self._run())
        return round_done

    async def _run(self) -> None:
        """Rounds back to back while reads wait for one. A round takes every read that joined before it
        starts: its proposal is made after they all arrived."""
        try:
            while self._next is not None:
                round_done, self._next = self._next, None
                self.rounds += 1
                try:
                    await self._propose()
                except Exception as exc:
                    round_done.set_exception(exc)
                else:
                    round_done.set_result(None)
        finally:
            self._running = None
