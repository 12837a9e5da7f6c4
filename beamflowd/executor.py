"""Workflow actors: one asyncio task per workflow this node owns, driven by committed state.

The log is the source of truth (the OTP idea): an actor reads its workflow's committed state, proposes
the next transitions (start an attempt, record its result) and sleeps until the state changes or a
committed time (retry, durable timer) arrives. Nothing here polls per workflow; the applier wakes
actors through :meth:`Executor.on_changed`.

An attempt that was committed as running but is not running here (after a restart or a
reassignment) is executed again with the same attempt number and idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from beamflowd.breakers import Breakers
from beamflowd.clock import now_ms
from beamflowd.config import MAX_DELIVERIES_DEFAULT
from beamflowd.core.backoff import retry_delay_ms
from beamflowd.core.commands import (
    Abort,
    Compensate,
    Expire,
    Fail,
    ItemDone,
    Redeliver,
    Skip,
    Start,
    Submit,
    Succeed,
)
from beamflowd.core.expressions import resolve
from beamflowd.core.scheduling import (
    RUN,
    SKIP,
    branch_in_output,
    condition_holds,
    first_starts,
    skip_reason,
    verdict,
    wake_time,
)
from beamflowd.core.spec import FOR_EACH_CONCURRENCY_DEFAULT, FOR_EACH_ITEMS_MAX, StepSpec, WorkflowSpec
from beamflowd.core.state import Result, WorkflowState
from beamflowd.core.vocabulary import (
    COMPENSATION_PENDING,
    COMPENSATION_RETRY_WAIT,
    COMPENSATION_RUNNING,
    COMPENSATION_SUCCEEDED,
    DLQ_MAX_DEFAULT,
    ERROR_CIRCUIT_OPEN,
    ERROR_PERMANENT,
    ERROR_TERMINAL,
    EVENT_REASSIGNED,
    EVENT_STEP_STARTED,
    PROCESS_KILLING_ERRORS,
    STEP_PENDING,
    STEP_RETRY_WAIT,
    STEP_RUNNING,
    STEP_SUCCEEDED,
    WORKFLOW_RUNNING,
)
from beamflowd.proposer import ProposeError, Proposer
from beamflowd.replication import ReplicatedState
from beamflowd.steps import STEP_KINDS
from beamflowd.steps.base import StepContext, StepError, encode_output

log = logging.getLogger(__name__)

#: Pipelined instant steps: how many results a chain may run ahead of its latest committed one.
SPECULATION_DEPTH_MAX = 4
#: How long a result waits for its speculative successors' results, to commit them in the same entry (a
#: slower successor proposes alone, right after): a chain of instant steps then costs one commit.
SPECULATION_HOLD_S = 0.002
#: A run-ahead actor (see :meth:`Executor.propose_submit`) waits this long for its submit to apply (the
#: proposer's own deadline), then leaves; a submit that applies later gets an actor of its own then.
RUN_AHEAD_WAIT_S = 10.0

#: A speculative attempt's results (its own, then its successors'), handed to its parent, and the future
#: through which the parent returns their committed outcomes (None: not committed in one go).
Handoff = asyncio.Future[tuple[list["Succeed | Fail"], asyncio.Future[list["Result | None"]]]]


@dataclass(frozen=True, slots=True)
class StepView:
    status: str
    attempts: int
    next_ms: int
    output_json: str
    deliveries: int = 0
    #: Attempts before the workflow's latest retry (the retry policy counts from there).
    base: int = 0
    #: A for_each step's instance outputs so far ("" while not done).
    items: tuple[str, ...] = ()
    #: When the step's own ``deadline`` runs out (0: none, or not started): the actor proposes ``Expire``.
    deadline_ms: int = 0


@dataclass(frozen=True, slots=True)
class WorkflowView:
    """An immutable copy of what an actor needs, taken under the state lock."""

    id: str
    status: str
    owner: str
    epoch: int
    terminal: bool
    spec: WorkflowSpec
    input_json: str
    steps: Mapping[str, StepView]
    #: Paused: running attempts finish, no new one starts (the actor is woken again by the resume).
    paused: bool = False
    #: When the workflow's timeout runs out (0: none): the actor then proposes ``Expire``.
    deadline_ms: int = 0
    #: Saga: (step, status, attempts, next_ms) of each compensation, newest completion first; () if none.
    compensations: tuple[tuple[str, str, int, int], ...] = ()

    @classmethod
    def of(cls, wf: WorkflowState) -> WorkflowView:
        return cls(
            wf.id,
            wf.status,
            wf.owner,
            wf.epoch,
            wf.terminal,
            wf.spec,
            wf.input_json,
            {
                s.id: StepView(
                    s.status,
                    s.attempts,
                    s.next_ms,
                    s.output_json,
                    s.deliveries,
                    s.base,
                    tuple(s.items),
                    wf.step_deadline_ms(s),
                )
                for s in wf.steps.values()
            },
            paused=bool(wf.paused),
            deadline_ms=wf.deadline_ms,
            compensations=tuple((c[0], c[1], c[2], c[3]) for c in wf.compensations),
        )


def runs_at_once(step: StepSpec) -> bool:
    """Whether an attempt of ``step`` may run ahead of the commit that starts it: a body that runs as soon
    as it starts (no signal to wait for, no fan-out, no deadline to watch)."""
    return step.signal is None and step.for_each is None and not step.deadline_ms and step.run in STEP_KINDS


class Actor:
    """Drives one workflow. Restarted by the executor from committed state if it crashes."""

    def __init__(self, executor: Executor, workflow_id: str, ahead_until: float = 0.0) -> None:
        self.executor = executor
        self.workflow_id = workflow_id
        #: Loop time until which the workflow may not be committed yet (a run-ahead actor): until then,
        #: finding no workflow means "wait for the submit", not "gone".
        self.ahead_until = ahead_until
        self.wake = asyncio.Event()
        #: Running attempt tasks by (epoch, step, attempt). A finished task leaves the map: if committed state
        #: still shows that attempt running (its result never committed), the next pass runs it again.
        self.attempts: dict[tuple[int, str, int], asyncio.Task[None]] = {}
        self.starting: set[tuple[str, int]] = set()
        #: The epoch whose deadline this actor is proposing (one ``Expire`` in flight at a time).
        self.expiring: int | None = None
        self.task: asyncio.Task[None] | None = None
        self.background: set[asyncio.Task[None]] = set()
        #: An exception escaping an attempt crashes the actor (the supervisor restarts it).
        self.crash: BaseException | None = None

    async def run(self) -> None:
        ex = self.executor
        loop = asyncio.get_running_loop()
        try:
            while True:
                self.wake.clear()
                if self.crash is not None:
                    raise self.crash
                view = ex.view(self.workflow_id)
                if view is None and loop.time() < self.ahead_until:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), self.ahead_until - loop.time())
                    continue
                self.ahead_until = 0.0  # committed (or given up on): from now on, no workflow means gone
                if view is None or view.terminal or view.owner != ex.node_id:
                    return
                next_due = self._advance(view)
                timeout = None if next_due is None else max(0.0, (next_due - now_ms()) / 1000)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout)
        finally:
            for task in self.attempts.values():
                task.cancel()

    def _advance(self, view: WorkflowView) -> int | None:
        """Start what is ready; return the earliest committed time to wake up at, if any."""
        now = now_ms()
        next_due: int | None = None
        for old in [k for k in self.attempts if k[0] != view.epoch]:
            self.attempts.pop(old).cancel()  # fenced anyway: results of an older epoch are rejected
        if view.compensations:
            return self._advance_compensations(view, now)
        if view.deadline_ms:
            if now >= view.deadline_ms:
                if self.expiring != view.epoch:
                    self.expiring = view.epoch
                    self._keep(asyncio.create_task(self._expire(view)))
                return None  # nothing new starts past the deadline; the committed Expire ends the actor
            next_due = view.deadline_ms
        for step_id, st in view.steps.items():
            if not st.deadline_ms or st.status not in (STEP_RUNNING, STEP_RETRY_WAIT):
                continue
            if now >= st.deadline_ms:
                if self.expiring != view.epoch:
                    self.expiring = view.epoch
                    self._keep(asyncio.create_task(self._expire(view, step_id)))
                return None  # the step (and so the workflow) fails: nothing new starts
            next_due = st.deadline_ms if next_due is None else min(next_due, st.deadline_ms)
        for step in view.spec.steps:
            st = view.steps[step.id]
            if st.status == STEP_RUNNING and step.signal is not None:
                # A wait step runs no body: a signal completes it (in apply); only its deadline is ours.
                if st.next_ms and st.next_ms <= now:
                    key = (step.id, -st.attempts)
                    if key not in self.starting:
                        self.starting.add(key)
                        self._keep(asyncio.create_task(self._wait_timed_out(view, step, st.attempts, key)))
                elif st.next_ms:
                    next_due = st.next_ms if next_due is None else min(next_due, st.next_ms)
                continue
            if st.status == STEP_RUNNING:
                running = (view.epoch, step.id, st.attempts)
                if running not in self.attempts:
                    redelivery = self.executor.redelivery_reason(view.id, running)
                    task = asyncio.create_task(
                        self._attempt(view, step, st.attempts, st.next_ms, redelivery=redelivery)
                    )
                    task.add_done_callback(functools.partial(self._attempt_done, running))
                    self.attempts[running] = task
                continue
            if view.paused:
                continue  # no new attempt while paused; the resume commits a change that wakes the actor
            if st.status == STEP_RETRY_WAIT and st.next_ms > now:
                next_due = st.next_ms if next_due is None else min(next_due, st.next_ms)
                continue
            if st.status == STEP_PENDING:
                decided, reason = self._decide(view, step)
                if decided == SKIP:
                    key = (step.id, 0)
                    if key not in self.starting:
                        self.starting.add(key)
                        self._keep(asyncio.create_task(self._skip(view, step, reason)))
                    continue
                ready = decided == RUN
            else:
                ready = st.status == STEP_RETRY_WAIT  # it ran before, so its needs let it run
            if ready:
                key = (step.id, st.attempts + 1)
                if key not in self.starting:
                    self.starting.add(key)
                    self._keep(asyncio.create_task(self._start(view, step, st.attempts + 1)))
        return next_due

    def _advance_compensations(self, view: WorkflowView, now: int) -> int | None:
        """Saga: start or run the next compensation (one at a time, newest completion first)."""
        sid, status, attempts, next_ms = next(c for c in view.compensations if c[1] != COMPENSATION_SUCCEEDED)
        step = view.spec.step(sid)
        if status == COMPENSATION_RETRY_WAIT and next_ms > now:
            return next_ms
        if status in (COMPENSATION_PENDING, COMPENSATION_RETRY_WAIT):
            key = (sid, -10_000 - attempts)
            if key not in self.starting:
                self.starting.add(key)
                start = Compensate(
                    wf=view.id, epoch=view.epoch, step=sid, attempt=attempts + 1, phase="start", ts=now_ms(),
                    node=self.executor.node_id,
                )  # fmt: skip
                self._keep(asyncio.create_task(self._propose_then_wake(start, key)))
        elif status == COMPENSATION_RUNNING:
            running = (view.epoch, f"compensate:{sid}", attempts)
            if running not in self.attempts:
                task = asyncio.create_task(self._run_compensation(view, step, attempts))
                task.add_done_callback(functools.partial(self._attempt_done, running))
                self.attempts[running] = task
        return None

    async def _propose_then_wake(self, cmd: Compensate, key: tuple[str, int]) -> None:
        try:
            await self.executor.proposer.propose(cmd)
        except ProposeError as exc:
            log.warning("compensation start of %s/%s not committed: %s", cmd.wf, cmd.step, exc.message)
            await asyncio.sleep(0.2)
        finally:
            self.starting.discard(key)
            self.wake.set()

    async def _run_compensation(self, view: WorkflowView, step: StepSpec, attempt: int) -> None:
        """Run one attempt of a step's compensation (its own kind, params, timeout and retry policy)."""
        ex = self.executor
        compensate = step.compensate
        assert compensate is not None
        scope = _scope(view)
        ts = now_ms()
        try:
            params = resolve(compensate.params, scope)
            ctx = StepContext(
                workflow_id=view.id,
                step_id=step.id,
                attempt=attempt,
                idempotency_key=f"{view.id}/{step.id}/compensate/{attempt}",
                input=scope["input"],
                results=scope["steps"],
                node_id=ex.node_id,
                allow_exec=ex.allow_exec,
                args=params,
            )
            timeout_ms = compensate.timeout_ms  # the workflow's timeout is a deadline, not an attempt's
            timeout = timeout_ms / 1000 if timeout_ms else ex.default_step_timeout
            while not ex.quorum_fresh():
                await ex.quorum_ok.wait()
            async with ex.attempt_slots:
                await asyncio.wait_for(STEP_KINDS[compensate.run].run(ctx, params), timeout)
            phase, error, error_class = "succeed", "", ""
        except StepError as exc:
            phase, error, error_class = "fail", exc.message, exc.error_class
        except TimeoutError:
            phase, error, error_class = "fail", "compensation timed out", "timeout"
        except ValueError as exc:
            phase, error, error_class = "fail", str(exc), "permanent"
        ts = now_ms()
        delay = retry_delay_ms(compensate.retry, attempt, random.random())
        cmd = Compensate(
            wf=view.id,
            epoch=view.epoch,
            step=step.id,
            attempt=attempt,
            phase=phase,
            ts=ts,
            node=ex.node_id,
            error=error,
            error_class=error_class,
            retry_at=ts + max(delay, 1) if phase == "fail" else 0,
        )
        await self._commit(cmd, view, step, attempt)
        self.wake.set()

    def _decide(self, view: WorkflowView, step: StepSpec) -> tuple[str, str]:
        """Whether a pending step waits, runs or is skipped (with why), from committed state.

        The condition is evaluated here, by the proposer, and only its outcome is committed (``Skip``). One
        that fails to evaluate lets the step start: its attempt fails it (permanent) with the message.
        """

        def branch_of(step_id: str) -> str | None:
            need = view.steps[step_id]
            return branch_in_output(need.output_json) if need.status == STEP_SUCCEEDED else None

        decided = verdict(view.spec, step, lambda n: view.steps[n].status, branch_of)
        if decided == SKIP:
            return SKIP, skip_reason(view.spec, step, branch_of)
        if decided == RUN and step.when is not None:
            try:
                if not condition_holds(step, _scope(view)):
                    return SKIP, f"when {step.when} is false"
            except ValueError:
                return RUN, ""
        return decided, ""

    async def _skip(self, view: WorkflowView, step: StepSpec, reason: str) -> None:
        cmd = Skip(
            wf=view.id, epoch=view.epoch, step=step.id, reason=reason, ts=now_ms(), node=self.executor.node_id
        )
        try:
            await self.executor.proposer.propose(cmd)
        except ProposeError as exc:
            log.warning("skip of %s/%s not committed: %s", view.id, step.id, exc.message)
            await asyncio.sleep(0.2)
        finally:
            self.starting.discard((step.id, 0))
            self.wake.set()

    async def _wait_timed_out(
        self, view: WorkflowView, step: StepSpec, attempt: int, key: tuple[str, int]
    ) -> None:
        """The committed deadline of a wait passed without its signal: the step fails for good."""
        ts = now_ms()
        cmd = Fail(
            wf=view.id,
            epoch=view.epoch,
            step=step.id,
            attempt=attempt,
            error=f"no signal {step.signal!r} before the wait's timeout",
            error_class="timeout",
            ts=ts,
            node=self.executor.node_id,
            retry_at=0,
        )
        try:
            await self.executor.proposer.propose(cmd)
        except ProposeError as exc:
            log.warning("timeout of %s/%s not committed: %s", view.id, step.id, exc.message)
            await asyncio.sleep(0.2)
        finally:
            self.starting.discard(key)
            self.wake.set()

    def _keep(self, task: asyncio.Task[None]) -> None:
        """Hold a strong reference until the task ends (the event loop keeps only weak ones)."""
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def _attempt_done(self, key: tuple[int, str, int], task: asyncio.Task[None]) -> None:
        if self.attempts.get(key) is task:
            del self.attempts[key]
            # The attempt woke the actor before it ended, and the actor may already have looked (and seen this
            # key still taken). Wake it again now that the key is free, or a dropped result would stall it.
            self.wake.set()
        if not task.cancelled() and task.exception() is not None and self.crash is None:
            self.crash = task.exception()
            self.wake.set()

    async def _expire(self, view: WorkflowView, step: str | None = None) -> None:
        """Propose that the workflow's deadline (or ``step``'s) passed (this node's clock in ``ts``; apply
        checks it)."""
        ex = self.executor
        cmd = Expire(
            wf=view.id, epoch=view.epoch, ts=now_ms(), node=ex.node_id, dlq_max=ex.dlq_max, step=step
        )
        try:
            result = await ex.proposer.propose(cmd)
            if not result.ok:
                log.warning("expire %s refused: %s %s", view.id, result.code, result.message)
                await asyncio.sleep(0.5)  # e.g. a stale epoch: the next pass sees the new state
        except ProposeError as exc:
            log.warning("expire %s not committed: %s", view.id, exc.message)
            await asyncio.sleep(0.5)
        finally:
            self.expiring = None
            self.wake.set()

    async def _start(self, view: WorkflowView, step: StepSpec, attempt: int) -> None:
        ts = now_ms()
        cmd = Start(
            wf=view.id,
            epoch=view.epoch,
            step=step.id,
            attempt=attempt,
            ts=ts,
            wake=wake_time(step, _scope(view), ts),
            node=self.executor.node_id,
        )
        try:
            await self.executor.proposer.propose(cmd)
        except ProposeError as exc:
            log.warning(
                "start %s/%s#%d not committed: %s",
                view.id,
                step.id,
                attempt,
                exc.message,
                extra={"workflow": view.id, "step": step.id, "attempt": attempt},
            )
            await asyncio.sleep(0.2)
        finally:
            self.starting.discard((step.id, attempt))
            self.wake.set()

    async def _attempt(
        self,
        view: WorkflowView,
        step: StepSpec,
        attempt: int,
        wake_ms: int,
        *,
        redelivery: str | None = None,
        depth: int = 0,
        handoff: Handoff | None = None,
    ) -> None:
        """Run one attempt and propose its result. ``depth`` > 0: a speculative attempt (see
        :meth:`_speculate`), whose ``view`` is the committed one plus the results proposed before it, and
        which hands its result to its parent through ``handoff`` while the parent still holds its own."""
        ex = self.executor
        try:
            if redelivery is not None and not await self._redeliver(view, step, attempt, redelivery):
                return
            ex.executed.setdefault(view.id, set()).add((view.epoch, step.id, attempt))
            if wake_ms:
                delay = (wake_ms - now_ms()) / 1000
                if delay > 0:
                    await asyncio.sleep(delay)
            # Self-fencing: without a quorum for a lease, no new side effects start on this node. This early
            # wait keeps fenced attempts from taking slots; the decisive check is right before the body runs.
            await ex.quorum_ok.wait()
            async with ex.attempt_slots:
                cmd = await self._execute(view, step, attempt)
            if cmd is None:
                return
            children: list[Handoff] = []
            if isinstance(cmd, Succeed) and cmd.start and depth < SPECULATION_DEPTH_MAX:
                children = self._speculate(view, cmd, depth + 1)
            result = await self.propose_chain(cmd, children, handoff)
            if result is None:  # not committed in one go: alone, with the bounded retries
                result = await self._commit(cmd, view, step, attempt)
            if depth and (result is None or not result.ok):
                ex.speculation_refused += 1  # the actor runs it again once committed state shows it running
        finally:
            if handoff is not None and not handoff.done():
                handoff.cancel()  # nothing to hand over: the parent stops holding its result for this one
            self.wake.set()

    async def propose_chain(
        self,
        cmd: Submit | Succeed | Fail,
        children: list[Handoff],
        handoff: Handoff | None,
        raise_head: bool = False,
    ) -> Result | None:
        """Queue ``cmd`` and the results its speculative children hand over within
        ``SPECULATION_HOLD_S``, in one go (so in log order, one Raft entry), or hand them all to this
        attempt's own parent; ``cmd``'s result, None if its proposal failed (the caller retries it) or,
        with ``raise_head``, the ProposeError it failed with."""
        loop = asyncio.get_running_loop()
        chain: list[Submit | Succeed | Fail] = [cmd]
        backs: list[tuple[int, int, asyncio.Future[list[Result | None]]]] = []
        results: list[Result | None] = []
        head_error: BaseException | None = None
        try:
            hold_until = loop.time() + SPECULATION_HOLD_S
            for child in children:
                remaining = hold_until - loop.time()
                if not child.done() and remaining > 0:
                    await asyncio.wait([child], timeout=remaining)
                if not child.done():
                    child.cancel()  # too slow: it proposes alone when done
                if child.cancelled():
                    continue
                handed, back = child.result()
                backs.append((len(chain), len(handed), back))
                chain.extend(handed)
            if handoff is not None and not handoff.done():
                assert not isinstance(cmd, Submit)  # a submit heads its chain: nobody to hand it to
                mine: asyncio.Future[list[Result | None]] = loop.create_future()
                handoff.set_result(([c for c in chain if not isinstance(c, Submit)], mine))
                results = await mine
            else:
                # No await between these: the proposer flushes them together, in this order.
                pending = [self.executor.proposer.enqueue(c) for c in chain]
                outcomes = await asyncio.gather(*pending, return_exceptions=True)
                results = [o if isinstance(o, Result) else None for o in outcomes]
                if raise_head and isinstance(outcomes[0], BaseException):
                    head_error = outcomes[0]
        finally:
            for child in children:
                if not child.done():
                    child.cancel()
            for first, count, back in backs:
                if not back.done():
                    part = results[first : first + count]
                    back.set_result(part if len(part) == count else [None] * count)
        if head_error is not None:
            raise head_error
        return results[0] if results else None

    def _speculate(self, view: WorkflowView, cmd: Succeed, depth: int) -> list[Handoff]:
        """Pipelined instant steps: run the steps ``cmd`` starts now, before ``cmd`` commits.

        Each runs as the attempt ``cmd`` will start (``attempts + 1``) on the view ``cmd`` will commit, in
        ``self.attempts`` under its committed key, so the actor does not start it again once ``cmd``
        applies. Its result is fenced like any other (epoch and running attempt): if ``cmd`` did not commit
        first, the result is refused, the task ends, and the actor runs the attempt again (same key) once
        the state shows it running. Only steps that start at once qualify (no timer, wait, fan-out,
        deadline, pause or saga); docs/design.md "Pipelined instant steps" says why this is safe.
        """
        if view.paused or view.compensations or view.status != WORKFLOW_RUNNING:
            return []
        now = now_ms()
        if view.deadline_ms and now >= view.deadline_ms:
            return []
        steps = dict(view.steps)
        done = steps[cmd.step]
        steps[cmd.step] = dataclasses.replace(done, status=STEP_SUCCEEDED, output_json=cmd.output, next_ms=0)
        chosen: list[tuple[StepSpec, int]] = []
        for step_id, wake in cmd.start:
            st = steps.get(step_id)
            if st is None or st.status != STEP_PENDING:
                return []  # the committed view disagrees with the proposal: let the normal path decide
            steps[step_id] = dataclasses.replace(
                st, status=STEP_RUNNING, attempts=st.attempts + 1, next_ms=wake
            )
            step = view.spec.step(step_id)
            if (
                wake == 0
                and runs_at_once(step)
                and (view.epoch, step_id, st.attempts + 1) not in self.attempts
            ):
                chosen.append((step, st.attempts + 1))
        ahead = dataclasses.replace(view, steps=steps)
        handoffs: list[Handoff] = []
        for step, attempt in chosen:
            handoff: Handoff = asyncio.get_running_loop().create_future()
            self.run_attempt(ahead, step, attempt, depth=depth, handoff=handoff)
            handoffs.append(handoff)
        return handoffs

    def run_attempt(
        self,
        view: WorkflowView,
        step: StepSpec,
        attempt: int,
        *,
        depth: int = 0,
        handoff: Handoff | None = None,
    ) -> None:
        """Run ``attempt`` of ``step`` ahead of the commit that starts it, in ``self.attempts`` under its
        committed key (so the actor does not start it again once that commit applies)."""
        key = (view.epoch, step.id, attempt)
        task = asyncio.create_task(self._attempt(view, step, attempt, 0, depth=depth, handoff=handoff))
        task.add_done_callback(functools.partial(self._attempt_done, key))
        self.attempts[key] = task
        self.executor.speculated += 1

    async def _redeliver(self, view: WorkflowView, step: StepSpec, attempt: int, reason: str) -> bool:
        """Count this delivery in the committed state before running the attempt again; False: do not run
        it (poisoned, or the state moved on). Not committed (no quorum): the next pass tries again."""
        ex = self.executor
        cmd = Redeliver(
            wf=view.id,
            epoch=view.epoch,
            step=step.id,
            attempt=attempt,
            reason=reason,
            deliveries_max=ex.max_deliveries,
            seen=view.steps[step.id].deliveries,
            ts=now_ms(),
            node=ex.node_id,
            dlq_max=ex.dlq_max,
        )
        try:
            result = await ex.proposer.propose(cmd)
        except ProposeError as exc:
            log.warning(
                "redelivery of %s/%s#%d not committed: %s",
                view.id,
                step.id,
                attempt,
                exc.message,
                extra={"workflow": view.id, "step": step.id, "attempt": attempt},
            )
            await asyncio.sleep(0.5)
            return False
        if result.ok and result.data.get("poisoned"):
            log.error(
                "workflow %s: step %s is poisoned (%s)",
                view.id,
                step.id,
                reason,
                extra={"workflow": view.id, "step": step.id, "attempt": attempt},
            )
        return result.ok and not result.data.get("poisoned")

    async def _execute(self, view: WorkflowView, step: StepSpec, attempt: int) -> Succeed | Fail | None:
        """Run one attempt; its result as the command to commit (None: a fan-out's last instance did)."""
        ex = self.executor
        scope = _scope(view)
        try:
            condition_holds(step, scope)  # raises if the condition cannot be evaluated: the step fails
            # The step's timeout bounds one attempt; the workflow's timeout is a deadline (Expire).
            timeout_ms = step.timeout_ms
            timeout = timeout_ms / 1000 if timeout_ms else ex.default_step_timeout
            # Chaos hook (beamflowd/chaos.py): injected latency, errors, timeouts; None when chaos is off.
            if ex.step_faults is not None:
                await ex.step_faults(view.id, step.id, attempt)
            if step.for_each is not None:
                fanned = await self._fan_out(view, step, attempt, scope, timeout)
                if fanned is None:
                    return None
                encoded = fanned
            else:
                encoded = await self._run_body(view, step, attempt, scope, timeout, None)
            ts = now_ms()
            # Steps this success makes ready start in the same entry (the state machine re-checks them).
            statuses = {sid: s.status for sid, s in view.steps.items()}
            statuses[step.id] = STEP_SUCCEEDED
            scope["steps"][step.id] = json.loads(encoded)
            starts = first_starts(view.spec, statuses.__getitem__, scope, ts)
            return Succeed(
                wf=view.id,
                epoch=view.epoch,
                step=step.id,
                attempt=attempt,
                output=encoded,
                ts=ts,
                node=ex.node_id,
                start=starts,
            )
        except CircuitOpen as exc:  # failed fast: retried no earlier than the breaker half-opens
            return self._failure(view, step, attempt, exc.message, exc.error_class, exc.wait_ms)
        except StepError as exc:
            return self._failure(view, step, attempt, exc.message, exc.error_class)
        except TimeoutError:
            return self._failure(view, step, attempt, "step timed out", "timeout")
        except ValueError as exc:  # expression evaluation on bad data: the author's error, not transient
            return self._failure(view, step, attempt, str(exc), "permanent")

    async def _run_body(
        self,
        view: WorkflowView,
        step: StepSpec,
        attempt: int,
        scope: dict[str, Any],
        timeout: float,
        item: tuple[int, Any] | None,
    ) -> str:
        """Run the step's kind once (or one for_each instance: ``(index, item)``); its encoded output."""
        ex = self.executor
        key = f"{view.id}/{step.id}/{attempt}"
        if item is not None:
            scope = {**scope, "index": item[0], "item": item[1]}
            key = f"{key}/{item[0]}"
        params = resolve(step.params, scope)
        ctx = StepContext(
            workflow_id=view.id,
            step_id=step.id,
            attempt=attempt,
            idempotency_key=key,
            input=scope["input"],
            results=scope["steps"],
            node_id=ex.node_id,
            allow_exec=ex.allow_exec,
            args=params,
        )
        name = breaker_name(step, params)
        breaker = None if name is None else ex.breakers.get(name)
        if breaker is not None:
            wait_s = breaker.retry_after(time.monotonic())
            if wait_s is not None:
                raise CircuitOpen(name or "", wait_s)
        # Self-fencing at the last moment: the slot is held and nothing has touched the outside world yet.
        while not ex.quorum_fresh():
            await ex.quorum_ok.wait()
        try:
            output = await ex.timed_attempt(step.run, STEP_KINDS[step.run].run(ctx, params), timeout)
        except (StepError, TimeoutError) as exc:
            if breaker is not None and getattr(exc, "error_class", "timeout") not in _NOT_THE_INTEGRATION:
                breaker.record(time.monotonic(), ok=False)
            raise
        if breaker is not None:
            breaker.record(time.monotonic(), ok=True)
        return encode_output(output)

    async def _fan_out(
        self, view: WorkflowView, step: StepSpec, attempt: int, scope: dict[str, Any], timeout: float
    ) -> str | None:
        """Run the missing instances of a for_each step, at most ``concurrency`` at once, committing each
        result (``ItemDone``); the last commit completes the step (None). An empty list: its output "[]".
        The first failed instance cancels the others and raises (the step fails per its retry policy)."""
        assert step.for_each is not None
        items = resolve(step.for_each, scope)
        if not isinstance(items, list):
            raise StepError(f"for_each: expected a list, got {type(items).__name__}", "permanent")
        if len(items) > FOR_EACH_ITEMS_MAX:
            raise StepError(
                f"for_each: {len(items)} items, over the limit of {FOR_EACH_ITEMS_MAX}", "permanent"
            )
        if not items:
            return "[]"
        done = view.steps[step.id].items
        if done and len(done) != len(items):
            raise StepError(f"for_each: {len(items)} items now, {len(done)} recorded", "permanent")
        slots = asyncio.Semaphore(step.concurrency or FOR_EACH_CONCURRENCY_DEFAULT)

        async def one(index: int, item: Any) -> None:
            async with slots:
                encoded = await self._run_body(view, step, attempt, scope, timeout, (index, item))
            cmd = ItemDone(
                wf=view.id,
                epoch=view.epoch,
                step=step.id,
                attempt=attempt,
                index=index,
                count=len(items),
                output=encoded,
                ts=now_ms(),
                node=self.executor.node_id,
            )
            await self._commit(cmd, view, step, attempt)

        tasks = [asyncio.create_task(one(i, x)) for i, x in enumerate(items) if not (done and done[i])]
        if not tasks:
            return None  # every instance committed: the last one completed the step
        try:
            finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in finished:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
        return None

    async def _commit(
        self, cmd: Succeed | Fail | ItemDone | Compensate, view: WorkflowView, step: StepSpec, attempt: int
    ) -> Result | None:
        """Propose a result; its committed outcome, None if dropped. Bounded: after ~50 failed proposals it
        is dropped; the step is still committed as running, so the actor runs this attempt again (same
        idempotency key) once its task has ended."""
        for _ in range(50):
            try:
                return await self.executor.proposer.propose(cmd)
            except ProposeError as exc:
                log.warning(
                    "result of %s/%s#%d not committed yet: %s",
                    view.id,
                    step.id,
                    attempt,
                    exc.message,
                    extra={"workflow": view.id, "step": step.id, "attempt": attempt},
                )
                await asyncio.sleep(0.5)
        return None

    def _failure(
        self,
        view: WorkflowView,
        step: StepSpec,
        attempt: int,
        message: str,
        error_class: str,
        min_delay_ms: int = 0,
    ) -> Fail:
        ts = now_ms()
        # Backoff counts the attempts since the workflow's latest retry, as the retry policy does.
        delay = max(
            retry_delay_ms(step.retry, attempt - view.steps[step.id].base, random.random()), min_delay_ms
        )
        return Fail(
            wf=view.id,
            epoch=view.epoch,
            step=step.id,
            attempt=attempt,
            error=message,
            error_class=error_class,
            ts=ts,
            node=self.executor.node_id,
            retry_at=ts + max(delay, 1),
            # An attempt that killed its worker counts as a delivery (poison detection).
            deliveries_max=self.executor.max_deliveries if error_class in PROCESS_KILLING_ERRORS else None,
            dlq_max=self.executor.dlq_max,
        )


#: Failures that say nothing about the integration's health (the breaker does not count them).
_NOT_THE_INTEGRATION = frozenset({ERROR_PERMANENT, ERROR_TERMINAL, ERROR_CIRCUIT_OPEN})


class CircuitOpen(StepError):
    """The step's breaker is open on this node: fail fast, retry once it half-opens."""

    def __init__(self, name: str, wait_s: float) -> None:
        super().__init__(f"circuit_open: breaker {name!r} is open for {wait_s:.1f}s more", ERROR_CIRCUIT_OPEN)
        self.wait_ms = max(1, round(wait_s * 1000))


def breaker_name(step: StepSpec, params: Mapping[str, Any]) -> str | None:
    """The step's breaker: its ``breaker``, else an http step's host (one breaker per host), else none."""
    if step.breaker is not None:
        return step.breaker
    if step.run == "http" and isinstance(params.get("url"), str):
        host = urlsplit(params["url"]).hostname
        return f"http:{host}" if host else None
    return None


def _scope(view: WorkflowView) -> dict[str, Any]:
    """What expressions see: the workflow input and the outputs of succeeded steps."""
    return {
        "input": json.loads(view.input_json) if view.input_json else {},
        "steps": {
            sid: json.loads(s.output_json) if s.output_json else None
            for sid, s in view.steps.items()
            if s.status == STEP_SUCCEEDED
        },
    }


class Executor:
    """Owns the actors of this node and keeps them in line with committed ownership."""

    def __init__(
        self,
        node_id: str,
        raft: ReplicatedState,
        proposer: Proposer,
        *,
        allow_exec: bool,
        default_step_timeout: float,
        max_concurrent_attempts: int,
        quorum_ok: asyncio.Event,
        quorum_fresh: Callable[[], bool] | None = None,
        max_restarts: int = 5,
        max_deliveries: int = MAX_DELIVERIES_DEFAULT,
        restart_window: float = 30.0,
        dlq_max: int = DLQ_MAX_DEFAULT,
        breakers: Breakers | None = None,
    ) -> None:
        self.node_id = node_id
        self.raft = raft
        self.proposer = proposer
        self.allow_exec = allow_exec
        self.default_step_timeout = default_step_timeout
        self.attempt_slots = asyncio.Semaphore(max_concurrent_attempts)
        self.quorum_ok = quorum_ok
        #: Checked right before a step body starts (the event alone may be one heartbeat interval stale).
        self.quorum_fresh = quorum_fresh or quorum_ok.is_set
        self.max_restarts = max_restarts
        #: Deliveries after which a step whose attempts keep killing their process is poisoned.
        self.max_deliveries = max_deliveries
        #: Carried in every final failure: the dead-letter queue's bound (``dlq_max``).
        self.dlq_max = dlq_max
        #: This node's circuit breakers (per integration; not replicated).
        self.breakers = breakers or Breakers()
        #: Wall-clock start of this process: an attempt started before it was interrupted by a restart.
        self.boot_ms = now_ms()
        #: Attempts this process has run, by workflow: running one of those again is no redelivery.
        self.executed: dict[str, set[tuple[int, str, int]]] = {}
        self.restart_window = restart_window
        self.actors: dict[str, Actor] = {}
        #: Workflows whose submit this node proposes with their root steps run ahead, until it answers.
        self._ahead: set[str] = set()
        self.restarts = 0
        #: Attempts started ahead of the commit that starts them (pipelined instant steps).
        self.speculated = 0
        #: Speculative results the state machine refused (their step was not committed as running yet).
        self.speculation_refused = 0
        #: Chaos hook: awaited before each step attempt runs; may sleep or raise StepError.
        self.step_faults: Callable[[str, str, int], Awaitable[None]] | None = None
        #: Metrics hook: (step kind, outcome ok|error|timeout, seconds) after each attempt's body ran.
        self.step_observer: Callable[[str, str, float], None] | None = None
        self._restart_times: dict[str, list[float]] = {}
        self._aborts: set[asyncio.Task[None]] = set()
        self._closed = False

    async def timed_attempt(self, kind: str, body: Awaitable[Any], timeout: float) -> Any:
        """Run a step body under its timeout and report how long it took (not when the node stops it)."""
        started = time.monotonic()
        outcome = "error"
        try:
            # In this task (wait_for would wrap the body in a task of its own: a loop round trip per step).
            async with asyncio.timeout(timeout):
                output = await body
            outcome = "ok"
            return output
        except TimeoutError:
            outcome = "timeout"
            raise
        except asyncio.CancelledError:
            outcome = ""
            raise
        finally:
            if outcome and self.step_observer is not None:
                self.step_observer(kind, outcome, time.monotonic() - started)

    def view(self, workflow_id: str) -> WorkflowView | None:
        with self.raft.read():
            wf = self.raft.sm.workflows.get(workflow_id)
            return None if wf is None else WorkflowView.of(wf)

    def redelivery_reason(self, wf_id: str, key: tuple[int, str, int]) -> str | None:
        """Why a running attempt this process never ran is running again, or None for a fresh one.

        It is a redelivery when the workflow was reassigned after the attempt started (its owner was declared
        dead), or when the attempt started before this process did (the node restarted while running it).
        """
        if key in self.executed.get(wf_id, ()):
            return None
        _epoch, step_id, attempt = key
        with self.raft.read():
            wf = self.raft.sm.workflows.get(wf_id)
            if wf is None:
                return None
            step = wf.steps.get(step_id)
            started_ms = step.started_ms if step is not None else 0
            reassigned = ""
            for event in reversed(wf.events):
                if event[2] == EVENT_STEP_STARTED and event[3] == step_id and event[4] == attempt:
                    break
                if event[2] == EVENT_REASSIGNED:
                    reassigned = event[5]
        if reassigned:
            return f"attempt {attempt} was running when {reassigned}"
        if started_ms < self.boot_ms:
            return f"{self.node_id} restarted while running attempt {attempt}"
        return None

    def scan(self) -> None:
        """Adopt every workflow committed as ours (start-up, restore from snapshot)."""
        with self.raft.read():
            mine = set(self.raft.sm.owned_ids.get(self.node_id, ()))
        self.on_changed(mine)

    def on_changed(self, workflow_ids: set[str]) -> None:
        """Called on the event loop after each applied batch with the workflows it touched."""
        if self._closed:
            return
        unowned: list[str] = []
        for wf_id in workflow_ids:
            actor = self.actors.get(wf_id)
            if actor is not None:
                actor.wake.set()
            else:
                unowned.append(wf_id)
        # One hold of the state lock, and no workflow read: after a restore all 100,000 workflows changed,
        # and reading each of them (100 holds of 1,000, each queued behind the restore verifier's chunks)
        # held up the node's join. ``owned_ids`` is exactly the running workflows per owner (an invariant).
        if unowned:
            with self.raft.read():
                owned = self.raft.sm.owned_ids.get(self.node_id)
                mine = [wf_id for wf_id in unowned if wf_id in owned] if owned else []
            for wf_id in mine:
                self._spawn(wf_id)

    def _spawn(self, wf_id: str, ahead_until: float = 0.0) -> Actor:
        actor = Actor(self, wf_id, ahead_until)
        self.actors[wf_id] = actor
        actor.task = asyncio.create_task(actor.run(), name=f"actor:{wf_id}")
        actor.task.add_done_callback(lambda t: self._on_actor_exit(wf_id, actor, t))
        return actor

    async def propose_submit(self, cmd: Submit, spec: WorkflowSpec) -> Result | None:
        """Commit ``cmd`` with its new workflow's instant root steps run ahead of it, their results in the
        same Raft entry as the submit (or right behind it, if slower than ``SPECULATION_HOLD_S``): a lone
        workflow of instant steps then costs one commit instead of two. None: nothing ran ahead (the
        caller proposes the submit itself); raises ProposeError as the proposer would.

        Only when this node proposes it as the leader it knows and is among the least loaded (so the
        submit places it here), and only for an id this node just generated (no other workflow can hold
        it). Safe as pipelined steps are (docs/design.md "Running ahead of the submit"): the attempts are
        the ones the submit starts (epoch 1, attempt 1), a result is fenced by epoch and running attempt,
        and one for a submit that did not commit first is refused (NOT_FOUND) and changes nothing; the
        actor then runs the attempt again once the committed state shows it running.
        """
        pinned = dataclasses.replace(cmd, owner=self.node_id)
        started = self._run_ahead(pinned, spec)
        if started is None:
            return None
        actor, handoffs = started
        self._ahead.add(cmd.wf)
        try:
            return await actor.propose_chain(pinned, handoffs, None, raise_head=True)
        finally:
            self._ahead.discard(cmd.wf)

    def _run_ahead(self, cmd: Submit, spec: WorkflowSpec) -> tuple[Actor, list[Handoff]] | None:
        """Start the root attempts ``cmd`` starts, in an actor that waits for ``cmd`` to apply."""
        if self._closed or cmd.wf in self.actors or cmd.prefer != self.node_id or spec.timeout_ms:
            return None
        with self.raft.read():
            sm = self.raft.sm
            if cmd.wf in sm.workflows or cmd.rid in sm.request_ids:
                return None  # a repeated request answers with its first workflow: nothing to run here
            # The submit pins the workflow here (``Submit.owner``): run ahead only while this node,
            # counting the submits it has in flight, stays among the least loaded, so pinning keeps the
            # spread that placement would give.
            others = [sm.owned.get(n, 0) for n, m in sm.members.items() if m.alive and n != self.node_id]
            member = sm.members.get(self.node_id)
            load = sm.owned.get(self.node_id, 0) + len(self._ahead)
            if member is None or not member.alive or (others and load > min(others)):
                return None
        steps = {step.id: StepView(STEP_PENDING, 0, 0, "") for step in spec.steps}
        chosen: list[StepSpec] = []
        for step_id, wake in cmd.start:
            steps[step_id] = StepView(STEP_RUNNING, 1, wake, "")
            step = spec.step(step_id)
            if wake == 0 and runs_at_once(step):
                chosen.append(step)
        if not chosen:
            return None
        loop = asyncio.get_running_loop()
        view = WorkflowView(cmd.wf, WORKFLOW_RUNNING, self.node_id, 1, False, spec, cmd.input, steps)
        actor = self._spawn(cmd.wf, ahead_until=loop.time() + RUN_AHEAD_WAIT_S)
        handoffs: list[Handoff] = []
        for step in chosen:
            handoff: Handoff = loop.create_future()
            actor.run_attempt(view, step, 1, depth=1, handoff=handoff)
            handoffs.append(handoff)
        return actor, handoffs

    def _on_actor_exit(self, wf_id: str, actor: Actor, task: asyncio.Task[None]) -> None:
        if self.actors.get(wf_id) is actor:
            del self.actors[wf_id]
        if self._closed or task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._supervise(wf_id, exc)
        else:
            self.executed.pop(wf_id, None)
            # The actor left (terminal / not ours); re-check in case state changed as it exited.
            self.on_changed({wf_id})

    def _supervise(self, wf_id: str, exc: BaseException) -> None:
        """Restart a crashed actor from committed state, at most max_restarts times per window."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        recent = [t for t in self._restart_times.get(wf_id, []) if now - t < self.restart_window]
        recent.append(now)
        self._restart_times[wf_id] = recent
        self.restarts += 1
        if len(recent) <= self.max_restarts:
            log.error(
                "actor %s crashed (%s: %s); restart %d/%d from committed state",
                wf_id,
                type(exc).__name__,
                exc,
                len(recent),
                self.max_restarts,
                extra={"workflow": wf_id},
            )
            loop.call_later(0.05 * len(recent), self.on_changed, {wf_id})
            return
        del self._restart_times[wf_id]
        self.executed.pop(wf_id, None)  # the workflow is being failed: nothing of it runs here again
        reason = (
            f"actor crashed {len(recent)} times within {self.restart_window:g}s; last error: "
            f"{type(exc).__name__}: {exc}"
        )
        log.error("workflow %s: %s; failing it", wf_id, reason, extra={"workflow": wf_id})
        view = self.view(wf_id)
        if view is None or view.terminal or view.owner != self.node_id:
            return
        cmd = Abort(
            wf=wf_id, epoch=view.epoch, reason=reason, ts=now_ms(), node=self.node_id, dlq_max=self.dlq_max
        )
        task = asyncio.create_task(self._abort(cmd))
        self._aborts.add(task)
        task.add_done_callback(self._aborts.discard)

    async def _abort(self, cmd: Abort) -> None:
        try:
            await self.proposer.propose(cmd)
        except ProposeError as exc:
            log.error("could not fail workflow %s: %s", cmd.wf, exc.message, extra={"workflow": cmd.wf})
            self.on_changed({cmd.wf})

    def crash_actor(self, wf_id: str, reason: str) -> bool:
        """Chaos: crash one actor as an escaping exception would. Returns False if it is not here."""
        actor = self.actors.get(wf_id)
        if actor is None:
            return False
        actor.crash = RuntimeError(reason)
        actor.wake.set()
        return True

    async def close(self) -> None:
        self._closed = True
        tasks = [a.task for a in self.actors.values() if a.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.actors.clear()
