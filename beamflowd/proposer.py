"""Group commit on the asyncio side: everything queued while earlier batches are in flight becomes one Raft
entry, and each caller's future gets its own :class:`~beamflowd.core.state.Result`.

Each command is pickled once when proposed: that rejects one that cannot cross the log (its caller gets
an ``INVALID_ARGUMENT`` result, its neighbours are unaffected) and measures it, so batches are capped by
bytes as well as by count. The flush loop never dies: a batch that still fails to serialise is split into
its commands, each retried alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from beamflowd.core.commands import Command
from beamflowd.core.state import Result
from beamflowd.replication import Outcome, ReplicatedState

log = logging.getLogger(__name__)

#: Group commit limits: at most this many commands per Raft entry, this many entries in flight.
MAX_BATCH_COMMANDS = 1000
MAX_BATCHES_IN_FLIGHT = 4
#: A batch waits for the newest one in flight to settle, until at most this long after that one left, so
#: that what is queued meanwhile leaves as one larger entry: every entry costs a sync on each node and a
#: message each way per follower, so fewer entries per command is what throughput needs
#: (docs/performance.md, "One entry in flight"). A commit slower than this (a lost or stalled batch, a
#: slow disk or network) lets batches overlap, up to MAX_BATCHES_IN_FLIGHT: a stuck batch never holds this
#: node's proposals back.
OVERLAP_AFTER_S = 0.05
#: Default byte cap of one Raft entry (sum of the commands' pickled sizes).
RAFT_BATCH_BYTES_MAX = 1 << 20
#: Bound on the proposer queue: beyond it, proposals fail fast with RESOURCE_EXHAUSTED.
MAX_QUEUED_COMMANDS = 50_000
#: A batch whose callback pysyncobj never delivers (a lost forwarded command with no leader change) gives
#: its slot back this long after its last command's deadline.
ORPHANED_BATCH_GRACE_S = 1.0
#: Pause before a batch that may not have committed is proposed again (an election takes a few 100 ms).
RETRY_PAUSE_S = 0.05


async def _done(result: Result) -> Result:
    return result


async def _failed(error: ProposeError) -> Result:
    raise error


class ProposeError(Exception):
    """A proposal that could not be committed before its deadline; ``code`` is a gRPC code name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Pending:
    command: Mapping[str, Any]
    future: asyncio.Future[Result]
    deadline: float
    size_bytes: int


def command_size(command: Mapping[str, Any]) -> int:
    """Pickled size of ``command``; raises if it cannot be pickled (what pysyncobj would do later)."""
    return len(pickle.dumps(command, protocol=pickle.HIGHEST_PROTOCOL))


class Proposer:
    """Group commit on the asyncio side: one Raft entry per batch, results routed per command."""

    def __init__(
        self,
        raft: ReplicatedState,
        loop: asyncio.AbstractEventLoop,
        batch_bytes_max: int = RAFT_BATCH_BYTES_MAX,
    ) -> None:
        self._raft = raft
        self._loop = loop
        self._batch_bytes_max = batch_bytes_max
        self._queue: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)
        self._in_flight = 0
        self._newest_sent_at = 0.0  # loop time the newest batch left
        self._settled = asyncio.Event()  # set whenever a batch in flight gets its outcome
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.commands = 0
        self.rejected = 0
        #: Proposals whose result came back committed, and those that failed (deadline, refusal, shutdown).
        self.committed = 0
        self.failed = 0
        #: Called with the number of commands of each batch sent to Raft (metrics); None = nobody listens.
        self.on_batch: Callable[[int], None] | None = None

    def start(self) -> None:
        self._task = self._loop.create_task(self._flush_forever(), name="proposer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for p in self._queue:
            if not p.future.done():
                p.future.set_exception(ProposeError("UNAVAILABLE", "node is shutting down"))
        self._queue.clear()

    async def propose(self, command: Command, timeout: float = 10.0, urgent: bool = False) -> Result:
        """Commit ``command`` and return its result; ProposeError(UNAVAILABLE) past ``timeout``.

        ``urgent`` (heartbeats, joins) jumps the queue, so liveness never waits behind a backlog of work.
        A command that cannot be pickled, or is larger than a whole batch may be, is refused at once with
        an ``INVALID_ARGUMENT`` result.
        """
        return await self.enqueue(command, timeout, urgent)

    def enqueue(self, command: Command, timeout: float = 10.0, urgent: bool = False) -> Awaitable[Result]:
        """:meth:`propose`, queued now: commands queued with no await between them are flushed in this
        order, in one Raft entry when the caps allow (a chain of results then costs one commit)."""
        plain = command.to_plain()
        refused = self._check(plain)
        if isinstance(refused, Result):
            return _done(refused)
        if len(self._queue) >= MAX_QUEUED_COMMANDS and not urgent:
            return _failed(ProposeError("RESOURCE_EXHAUSTED", "too many commands queued on this node"))
        fut: asyncio.Future[Result] = self._loop.create_future()
        pending = _Pending(plain, fut, self._loop.time() + timeout, refused)
        if urgent:
            self._queue.insert(0, pending)
        else:
            self._queue.append(pending)
        self._wakeup.set()
        return self._outcome(fut, timeout)

    async def _outcome(self, fut: asyncio.Future[Result], timeout: float) -> Result:
        try:
            result = await asyncio.wait_for(asyncio.shield(fut), timeout + 0.5)
        except ProposeError:
            self.failed += 1
            raise
        except (TimeoutError, asyncio.CancelledError) as exc:
            # The future may still get a result or an exception later: consume it so asyncio does not
            # log "exception was never retrieved".
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            if isinstance(exc, asyncio.CancelledError):
                raise
            self.failed += 1
            raise ProposeError(
                "UNAVAILABLE",
                "no quorum: the command was not committed in time "
                "(it may still commit; retrying with the same request id is safe)",
            ) from None
        self.committed += 1
        return result

    def _check(self, command: Mapping[str, Any]) -> int | Result:
        """The command's pickled size, or the INVALID_ARGUMENT result that refuses it."""
        op = command.get("op") if isinstance(command, Mapping) else None
        try:
            size = command_size(command)
        except Exception as exc:  # anything pickle raises: the command's content, not our state
            self.rejected += 1
            log.warning("refused a %r command that cannot be serialised: %s", op, exc)
            return Result(
                "INVALID_ARGUMENT", f"{op} command cannot be serialised: {type(exc).__name__}: {exc}"
            )
        if size > self._batch_bytes_max:
            self.rejected += 1
            return Result(
                "INVALID_ARGUMENT",
                f"{op} command is {size} bytes, more than raft_batch_bytes_max ({self._batch_bytes_max})",
            )
        return size

    def _take_batch(self) -> list[_Pending]:
        """The longest prefix of the queue within both the count and the byte cap (at least one)."""
        total = 0
        count = 0
        for p in self._queue[:MAX_BATCH_COMMANDS]:
            if count and total + p.size_bytes > self._batch_bytes_max:
                break
            total += p.size_bytes
            count += 1
        batch = self._queue[:count]
        del self._queue[:count]
        return batch

    async def _flush_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                await self._slots.acquire()
                if self._in_flight:
                    await self._settle_or_overlap()
                try:
                    self._flush_one()
                except Exception:
                    # Never let the loop die: every later proposal (heartbeats too) would time out.
                    log.exception("proposer flush failed")
                    self._slots.release()

    async def _settle_or_overlap(self) -> None:
        """Wait until a batch in flight settles or :data:`OVERLAP_AFTER_S` passed since the newest left."""
        wait_s = self._newest_sent_at + OVERLAP_AFTER_S - self._loop.time()
        if wait_s <= 0:  # only batches older than that in flight (lost or stalled): no wait
            return
        self._settled.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), wait_s)

    def _flush_one(self) -> None:
        batch = self._take_batch()
        now = self._loop.time()
        live = [p for p in batch if p.deadline > now and not p.future.done()]
        for p in batch:
            if p.deadline <= now and not p.future.done():
                p.future.set_exception(ProposeError("UNAVAILABLE", "no quorum before the deadline"))
        if not live:
            self._slots.release()
            return
        try:
            self._send(live)
        except Exception as exc:
            # Pickled alone when proposed, yet the batch does not serialise (a command changed since?):
            # refuse the ones that fail now, queue the rest again.
            self._slots.release()
            log.warning("a batch of %d command(s) failed to serialise (%s); checking each", len(live), exc)
            good = []
            for p in live:
                refused = self._check(p.command)
                if isinstance(refused, Result):
                    p.future.set_result(refused)
                else:
                    good.append(p)
            if len(good) == len(live):  # the batch fails as a whole but no command alone: give up on it
                for p in live:
                    p.future.set_result(Result("INVALID_ARGUMENT", f"batch cannot be serialised: {exc}"))
                return
            self._requeue(good)

    def _send(self, batch: list[_Pending]) -> None:
        settled = [False]  # the slot is given back exactly once: by the callback or by the watchdog

        def on_done(results: list[Result] | None, outcome: Outcome, reason: str) -> None:  # tick thread
            self._loop.call_soon_threadsafe(self._resolve, batch, results, outcome, reason, settled)

        self._raft.propose_batch([p.command for p in batch], on_done)
        self._in_flight += 1
        self._newest_sent_at = self._loop.time()
        self.batches += 1
        self.commands += len(batch)
        if self.on_batch is not None:
            self.on_batch(len(batch))

        def orphaned() -> None:
            if not settled[0]:
                log.warning("no outcome from raft for a batch of %d command(s); retrying them", len(batch))
                self._resolve(batch, None, Outcome.RETRY, "no outcome", settled)

        self._loop.call_at(max(p.deadline for p in batch) + ORPHANED_BATCH_GRACE_S, orphaned)

    def _resolve(
        self,
        batch: list[_Pending],
        results: list[Result] | None,
        outcome: Outcome,
        reason: str,
        settled: list[bool],
    ) -> None:
        if settled[0]:
            return  # the watchdog already gave up on this batch; a late outcome changes nothing
        settled[0] = True
        self._slots.release()
        self._in_flight -= 1
        self._settled.set()
        if outcome is Outcome.COMMITTED and results is not None:
            for p, r in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result(r)
            return
        if outcome is Outcome.RETRY:
            # Retry after a short pause (an election takes a few hundred ms); deadlines bound it.
            self._loop.call_later(RETRY_PAUSE_S, self._requeue, batch)
            return
        for p in batch:
            if not p.future.done():
                p.future.set_exception(ProposeError("UNAVAILABLE", f"raft refused the command ({reason})"))

    def _requeue(self, batch: list[_Pending]) -> None:
        self._queue[:0] = [p for p in batch if not p.future.done()]
        self._wakeup.set()
