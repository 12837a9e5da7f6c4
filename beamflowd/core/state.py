"""The replicated state machine: every node applies the same commands in the same order.

``StateMachine.apply(command)`` is deterministic and pure: no clock, no randomness, no I/O. Every time
stamp and random choice is made by the proposer and carried in the command; two replicas that apply
the same log hold identical state and report the same :meth:`StateMachine.digest`.

Commands arrive in their wire form (plain dicts of primitives with an ``op`` and a schema version ``v``);
their fields and meaning are defined in :mod:`beamflowd.core.commands`, the log format. ``apply`` decodes
each before it touches the state. Deterministic refusals (a malformed command, a failed precondition) are
:class:`Result` values, so one bad command in a batch never affects its neighbours; anything unexpected
raises :class:`FatalApplyError` and the node stops (fail-stop) rather than diverge from its replicas.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from beamflowd.core.backoff import should_retry
from beamflowd.core.commands import SCHEMA_VERSION as SCHEMA_VERSION  # re-exported for callers
from beamflowd.core.commands import (
    Abort,
    Cancel,
    ChaosMonkey,
    CommandError,
    Compensate,
    Fail,
    Gc,
    Heartbeat,
    ItemDone,
    Join,
    NodeDown,
    Redeliver,
    Signal,
    Skip,
    Start,
    Starts,
    Submit,
    Succeed,
    decode,
)
from beamflowd.core.scheduling import RUN, SKIP, WAIT, BranchOf, branch_in_output, verdict
from beamflowd.core.signals import SIGNAL_IDS_MAX, SIGNAL_PAYLOAD_BYTES_MAX, SIGNALS_BUFFERED_MAX
from beamflowd.core.spec import FOR_EACH_ITEMS_MAX, RetryPolicy, WorkflowSpec
from beamflowd.core.vocabulary import (
    CLOSING_EVENT_OF_STATUS,
    COMPENSATION_FAILED,
    COMPENSATION_PENDING,
    COMPENSATION_RETRY_WAIT,
    COMPENSATION_RUNNING,
    COMPENSATION_SUCCEEDED,
    DONE_STEP,
    ERROR_POISONED,
    EVENT_COMPENSATING,
    EVENT_COMPENSATION_ATTEMPT_FAILED,
    EVENT_COMPENSATION_STARTED,
    EVENT_REDELIVERED,
    EVENT_SIGNAL_BUFFERED,
    EVENT_SIGNAL_RECEIVED,
    EVENT_STEP_COMPENSATED,
    EVENT_STEP_SKIPPED,
    FINAL_ERRORS,
    NEEDS_POLICIES,
    NOTABLE_KINDS,
    STEP_CANCELLED,
    STEP_FAILED,
    STEP_PENDING,
    STEP_RETRY_WAIT,
    STEP_RUNNING,
    STEP_SKIPPED,
    STEP_SUCCEEDED,
    TERMINAL_STEP,
    TERMINAL_WORKFLOW,
    WORKFLOW_CANCELLED,
    WORKFLOW_COMPENSATED,
    WORKFLOW_COMPENSATION_FAILED,
    WORKFLOW_FAILED,
    WORKFLOW_RUNNING,
    WORKFLOW_SUCCEEDED,
)

#: Version of the snapshot layout (:meth:`StateMachine.to_plain`), independent of the command schema.
SNAPSHOT_VERSION = 1

#: Explicit limits (TigerBeetle-style): each bounds memory, snapshots and apply time.
MAX_EVENTS_PER_WORKFLOW = 200
MAX_REQUEST_IDS = 200_000
MAX_EVENT_MESSAGE = 1_000
#: Cluster-wide feed of notable events (failures, retries, reassignments, node deaths) for dashboards.
MAX_NOTABLE_EVENTS = 200
#: Length of a definition's content address (hex digits of SHA-256): 96 bits, collisions out of reach.
SPEC_HASH_HEX_DIGITS = 24
#: How much of an exception's text a refusal quotes.
REFUSAL_DETAIL_CHARS_MAX = 200

# Event tuple layout: (seq, ts_ms, type, step_id, attempt, message, node)
Event = tuple[int, int, str, str, int, str, str]
# Buffered signal tuple layout: (sid, name, payload_json, ts_ms)
BufferedSignal = tuple[str, str, str, int]
# Notable tuple layout: (ts_ms, type, workflow_id, workflow_name, step_id, message, node)
Notable = tuple[int, str, str, str, str, str, str]


class FatalApplyError(Exception):
    """An unexpected exception while applying ``op`` (a bug, MemoryError, a broken invariant).

    Not a result: the state may be half-changed, so the node must stop before it acknowledges anything and
    restart from its log, rather than carry on with a state its replicas may not share.
    """

    def __init__(self, op: str, cause: BaseException) -> None:
        super().__init__(f"{op}: {type(cause).__name__}: {cause}")
        self.op = op
        self.cause = cause


@dataclass(frozen=True, slots=True)
class Result:
    """Outcome of one command. ``code`` is a gRPC-like code name: OK, NOT_FOUND, ALREADY_EXISTS, ..."""

    code: str
    message: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.code == "OK"


@dataclass(slots=True)
class StepState:
    id: str
    status: str = STEP_PENDING
    attempts: int = 0
    output_json: str = ""
    error: str = ""
    error_class: str = ""
    started_ms: int = 0
    ended_ms: int = 0
    #: Committed time of the next retry (retry_wait) or the durable wake-up time (running sleep).
    next_ms: int = 0
    #: Times an attempt of this step killed the process running it (a redelivery after its owner died, or a
    #: crashed worker); at the limit the step is poisoned.
    deliveries: int = 0
    #: A for_each step's instance outputs (JSON text, "" while not done), kept across its attempts.
    items: list[str] = field(default_factory=list)

    def to_plain(self) -> list[Any]:
        plain: list[Any] = [
            self.id,
            self.status,
            self.attempts,
            self.output_json,
            self.error,
            self.error_class,
            self.started_ms,
            self.ended_ms,
            self.next_ms,
        ]
        if self.deliveries or self.items:
            plain.append(self.deliveries)  # absent when 0: states from before the count encode as they did
        if self.items:
            plain.append(list(self.items))  # absent unless a for_each step
        return plain

    @classmethod
    def from_plain(cls, p: list[Any]) -> StepState:
        step = cls(*p)
        step.items = list(step.items)
        return step


@dataclass(slots=True)
class WorkflowState:
    id: str
    name: str
    spec: WorkflowSpec
    #: Key of the definition in ``StateMachine.specs`` (shared by all workflows of one definition).
    spec_hash: str
    input_json: str
    owner: str
    created_ms: int
    updated_ms: int
    request_id: str
    status: str = WORKFLOW_RUNNING
    epoch: int = 1
    error: str = ""
    steps: dict[str, StepState] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    next_seq: int = 1
    #: Signals received before a ``wait`` step took them, oldest first (at most SIGNALS_BUFFERED_MAX).
    signals: list[BufferedSignal] = field(default_factory=list)
    #: Ids of the signals accepted (delivered or buffered), oldest first: a retried signal is a duplicate.
    signal_ids: list[str] = field(default_factory=list)
    #: Saga: after a final failure, ``[step_id, status, attempts, next_ms, error]`` of each compensation to
    #: run, newest completion first (COMPENSATION_* statuses). Empty: not compensating.
    compensations: list[list[Any]] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_WORKFLOW

    def to_plain(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "spec": self.spec_hash,
            "input": self.input_json,
            "owner": self.owner,
            "created": self.created_ms,
            "updated": self.updated_ms,
            "rid": self.request_id,
            "status": self.status,
            "epoch": self.epoch,
            "error": self.error,
            "steps": [s.to_plain() for s in self.steps.values()],
            "events": [list(e) for e in self.events],
            "next_seq": self.next_seq,
            # Absent when unused: workflows that never got a signal encode (and digest) as before.
            **({"signals": [list(x) for x in self.signals]} if self.signals else {}),
            **({"signal_ids": list(self.signal_ids)} if self.signal_ids else {}),
            **({"compensations": [list(c) for c in self.compensations]} if self.compensations else {}),
        }

    @classmethod
    def from_plain(cls, p: Mapping[str, Any], spec: WorkflowSpec) -> WorkflowState:
        wf = cls(
            id=p["id"],
            name=p["name"],
            spec=spec,
            spec_hash=p["spec"],
            input_json=p["input"],
            owner=p["owner"],
            created_ms=p["created"],
            updated_ms=p["updated"],
            request_id=p["rid"],
            status=p["status"],
            epoch=p["epoch"],
            error=p["error"],
            next_seq=p["next_seq"],
        )
        for sp in p["steps"]:
            step = StepState.from_plain(sp)
            wf.steps[step.id] = step
        wf.events = [(e[0], e[1], e[2], e[3], e[4], e[5], e[6]) for e in p["events"]]
        wf.signals = [(x[0], x[1], x[2], x[3]) for x in p.get("signals", ())]
        wf.signal_ids = list(p.get("signal_ids", ()))
        wf.compensations = [list(c) for c in p.get("compensations", ())]
        return wf


@dataclass(slots=True)
class Member:
    id: str
    raft_addr: str
    grpc_addr: str
    joined_ms: int
    alive: bool = True
    last_heartbeat_ms: int = 0

    def to_plain(self) -> list[Any]:
        return [self.id, self.raft_addr, self.grpc_addr, self.joined_ms, self.alive, self.last_heartbeat_ms]


class StateMachine:
    """All replicated state. Not thread-safe: the Raft wrapper serializes access with a lock."""

    #: Check :func:`beamflowd.core.invariants.check_invariants` after every applied command or batch.
    #: Process-wide (``beamflowd --debug-invariants``, the test harness), set before any node starts, so
    #: that journal replay at start-up is checked too. O(state) per entry: a debugging aid.
    debug_invariants: ClassVar[bool] = False

    def __init__(self) -> None:
        self.workflows: dict[str, WorkflowState] = {}
        self.members: dict[str, Member] = {}
        #: Non-terminal workflows per owner, kept incrementally so placement is O(nodes).
        self.owned: dict[str, int] = {}
        #: Ids of non-terminal workflows per owner (a set: iterate it sorted, never in set order).
        self.owned_ids: dict[str, set[str]] = {}
        #: Definitions by hash of their canonical form, with the number of workflows using each.
        self.specs: dict[str, SpecEntry] = {}
        #: request id -> workflow id, FIFO-bounded; makes retried submits idempotent.
        self.request_ids: dict[str, str] = {}
        self.counters: dict[str, int] = {
            "submitted": 0,
            "succeeded": 0,
            "failed": 0,
            "cancelled": 0,
            "stale_rejected": 0,
            "retries_scheduled": 0,
            "steps_succeeded": 0,
            "steps_failed": 0,
            "reassigned": 0,
            "nodes_down": 0,
            "collected": 0,
        }
        self.notable: list[Notable] = []
        #: Bumped by every command that may change the state: keys caches such as the digest (not state).
        self.revision = 0
        #: Chaos monkey setting, replicated so it outlives any node (see _chaos_monkey); {} when off.
        self.chaos_monkey: dict[str, Any] = {}
        #: Ids of workflows touched since the last :meth:`drain_changed` (not part of the state).
        self._changed: set[str] = set()

    # ------------------------------------------------------------------ apply
    def apply(self, plain: Mapping[str, Any]) -> Result:
        """Apply one command (wire form). Deterministic: depends only on the state and the command."""
        result = self._apply(plain)
        if StateMachine.debug_invariants:
            self._check_invariants(str(plain.get("op")))
        return result

    def apply_all(self, plains: Iterable[Mapping[str, Any]]) -> list[Result]:
        """Apply a batch (one Raft entry); with ``debug_invariants``, check the state after it."""
        results = [self._apply(p) for p in plains]
        if StateMachine.debug_invariants:
            self._check_invariants("batch")
        return results

    def _apply(self, plain: Mapping[str, Any]) -> Result:
        try:
            cmd = decode(plain)
        except CommandError as exc:
            return Result("INVALID_ARGUMENT", str(exc))  # refused before anything changed
        try:
            result = _HANDLERS[type(cmd)](self, cmd)
        except Exception as exc:
            raise FatalApplyError(cmd.OP, exc) from exc
        if not isinstance(cmd, Heartbeat) or result.data.get("revived"):
            # Heartbeats normally leave the state as it was; everything else may have changed it.
            self.revision += 1
        return result

    def _check_invariants(self, op: str) -> None:
        # Imported here: the checker reads this module's types, so a module-level import would be circular.
        from beamflowd.core.invariants import check_invariants

        try:
            check_invariants(self)
        except AssertionError as exc:
            raise FatalApplyError(op, exc) from exc

    def drain_changed(self) -> set[str]:
        changed, self._changed = self._changed, set()
        return changed

    # --------------------------------------------------------------- handlers
    # Each takes its decoded command (beamflowd/core/commands.py documents the fields). Preconditions that
    # fail are results; a handler checks them all before its first change to the state.
    def _join(self, cmd: Join) -> Result:
        member = self.members.get(cmd.node)
        if member is None:
            self.members[cmd.node] = Member(cmd.node, cmd.raft, cmd.grpc, cmd.ts, True, cmd.ts)
            self.owned.setdefault(cmd.node, 0)
        else:
            member.raft_addr, member.grpc_addr = cmd.raft, cmd.grpc
            member.alive, member.last_heartbeat_ms = True, cmd.ts
        self._adopt_orphans(cmd.ts, cmd.node)
        return Result("OK")

    def _place(self) -> str | None:
        """Least-loaded live member, ties broken by id: deterministic and spreads new work."""
        best: tuple[int, str] | None = None
        for node_id in sorted(self.members):
            if not self.members[node_id].alive:
                continue
            key = (self.owned.get(node_id, 0), node_id)
            if best is None or key < best:
                best = key
        return None if best is None else best[1]

    def _submit(self, cmd: Submit) -> Result:
        rid, wf_id = cmd.rid, cmd.wf
        previous = self.request_ids.get(rid)
        if previous is not None:
            wf = self.workflows.get(previous)
            return Result("OK", data={"wf": previous, "owner": wf.owner if wf else "", "existing": True})
        if wf_id in self.workflows:
            return Result("ALREADY_EXISTS", f"workflow {wf_id!r} already exists")
        placed = self._place()
        if placed is None:
            return Result("UNAVAILABLE", "no live node to own the workflow")
        owner = placed
        spec_hash = cmd.spec_hash or spec_digest(cmd.spec)
        entry = self.specs.get(spec_hash)
        if entry is None:
            try:
                spec = _checked_spec(cmd.spec)
            except (KeyError, TypeError, ValueError) as exc:
                detail = f"{exc!r:.{REFUSAL_DETAIL_CHARS_MAX}}"
                return Result("INVALID_ARGUMENT", f"submit.spec: not a valid definition ({detail})")
            entry = self.specs[spec_hash] = SpecEntry(spec, cmd.spec, 0)
        entry.refs += 1
        spec = entry.spec
        ts = cmd.ts
        wf = WorkflowState(
            id=wf_id,
            name=spec.name,
            spec=spec,
            spec_hash=spec_hash,
            input_json=cmd.input,
            owner=owner,
            created_ms=ts,
            updated_ms=ts,
            request_id=rid,
        )
        for step in spec.steps:
            wf.steps[step.id] = StepState(step.id)
        self.workflows[wf_id] = wf
        self._own(wf, owner)
        self._remember_request(rid, wf_id)
        self.counters["submitted"] += 1
        self._event(wf, ts, "submitted", "", 0, f"owner {owner}", cmd.node)
        self._start_ready(wf, cmd.start, ts, cmd.node)
        return Result("OK", data={"wf": wf_id, "owner": owner, "existing": False})

    def _start_ready(self, wf: WorkflowState, starts: Starts, ts: int, node: str) -> None:
        """Start first attempts the proposer found ready, in the same entry (saves a round trip).

        Each is checked like a ``start`` command; one that is not ready is skipped, and the owner's
        actor starts it later with its own command.
        """
        for step_id, wake in starts:
            step = wf.steps.get(step_id)
            if step is None or step.status != STEP_PENDING or wf.terminal:
                continue
            if step_verdict(wf, step_id) == RUN:
                self._mark_started(wf, step, 1, ts, wake, node)

    def _remember_request(self, rid: str, wf_id: str) -> None:
        self.request_ids[rid] = wf_id
        while len(self.request_ids) > MAX_REQUEST_IDS:
            del self.request_ids[next(iter(self.request_ids))]

    def _fenced_workflow(
        self,
        cmd: Start | Succeed | Fail | Redeliver | Abort | Skip | ItemDone | Compensate,
        what: str,
        step: str = "",
        attempt: int = 0,
    ) -> tuple[WorkflowState | None, Result | None]:
        """The workflow exists, is not terminal, and ``cmd`` carries its current epoch (else counted)."""
        wf = self.workflows.get(cmd.wf)
        if wf is None:
            return None, Result("NOT_FOUND", f"workflow {cmd.wf!r} not found")
        if wf.terminal:
            return wf, Result("FAILED_PRECONDITION", f"workflow is {wf.status}")
        if cmd.epoch != wf.epoch:
            self.counters["stale_rejected"] += 1
            self._event(
                wf,
                cmd.ts,
                "stale_result_rejected",
                step,
                attempt,
                f"{what}epoch {cmd.epoch} from {cmd.node} is not current ({wf.epoch})",
                cmd.node,
            )
            return wf, Result("ABORTED", f"stale epoch {cmd.epoch} (current {wf.epoch})")
        return wf, None

    def _fenced(
        self, cmd: Start | Succeed | Fail | Redeliver | ItemDone
    ) -> tuple[WorkflowState | None, StepState | None, Result | None]:
        """Common checks of step commands: the workflow is fenced (above) and the step exists."""
        wf, err = self._fenced_workflow(cmd, "", cmd.step, cmd.attempt)
        if err is not None:
            return wf, None, err
        assert wf is not None
        step = wf.steps.get(cmd.step)
        if step is None:
            return wf, None, Result("NOT_FOUND", f"step {cmd.step!r} not found")
        return wf, step, None

    def _start(self, cmd: Start) -> Result:
        wf, step, err = self._fenced(cmd)
        if err is not None:
            return err
        assert wf is not None and step is not None
        attempt = cmd.attempt
        if step.status not in (STEP_PENDING, STEP_RETRY_WAIT) or attempt != step.attempts + 1:
            return Result(
                "FAILED_PRECONDITION", f"step {step.id} is {step.status} at attempt {step.attempts}"
            )
        if step_verdict(wf, step.id) != RUN:
            needs = ", ".join(wf.spec.step(step.id).needs)
            return Result("FAILED_PRECONDITION", f"step {step.id}: its needs ({needs}) do not let it run")
        self._mark_started(wf, step, attempt, cmd.ts, cmd.wake, cmd.node)
        return Result("OK")

    def _mark_started(
        self, wf: WorkflowState, step: StepState, attempt: int, ts: int, wake: int, node: str
    ) -> None:
        step.status, step.attempts = STEP_RUNNING, attempt
        step.started_ms, step.next_ms, step.error, step.error_class = ts, wake, "", ""
        wf.updated_ms = ts
        self._event(wf, ts, "step_started", step.id, attempt, "", node)
        name = wf.spec.step(step.id).signal
        if name is not None:  # a wait step takes the oldest signal buffered for it, in the same entry
            for i, (sid, buffered_name, payload, _) in enumerate(wf.signals):
                if buffered_name == name:
                    del wf.signals[i]
                    self._deliver(wf, step, sid, payload, ts, node)
                    break

    def _check_running(self, step: StepState, attempt: int) -> Result | None:
        if step.status != STEP_RUNNING or step.attempts != attempt:
            return Result(
                "FAILED_PRECONDITION",
                f"step {step.id} is {step.status} at attempt {step.attempts}, not running {attempt}",
            )
        return None

    def _running(
        self, cmd: Succeed | Fail | Redeliver | ItemDone
    ) -> tuple[WorkflowState, StepState] | Result:
        """The workflow and step a result is for, or why the result does not apply (fenced, not running)."""
        wf, step, err = self._fenced(cmd)
        if err is not None:
            return err
        assert wf is not None and step is not None
        return self._check_running(step, cmd.attempt) or (wf, step)

    def _succeed(self, cmd: Succeed) -> Result:
        found = self._running(cmd)
        if isinstance(found, Result):
            return found
        wf, step = found
        ts = cmd.ts
        if step.items:
            # A for_each step that recorded instances succeeds by its last instance (item_done), not here.
            return Result("FAILED_PRECONDITION", f"step {step.id} fans out: its instances complete it")
        branches = wf.spec.step(step.id).branches
        if branches and branch_in_output(cmd.output) not in branches:
            # A choice must name one of its branches, or its dependents could never be decided.
            return Result(
                "INVALID_ARGUMENT",
                f'succeed.output: choice {step.id} must output {{"branch": one of {list(branches)}}}',
            )
        step.status, step.output_json, step.ended_ms, step.next_ms = STEP_SUCCEEDED, cmd.output, ts, 0
        wf.updated_ms = ts
        self.counters["steps_succeeded"] += 1
        self._event(wf, ts, "step_succeeded", step.id, step.attempts, "", cmd.node)
        if all(s.status in DONE_STEP for s in wf.steps.values()):
            self._finish(wf, WORKFLOW_SUCCEEDED, ts, "", cmd.node)
        else:
            self._start_ready(wf, cmd.start, ts, cmd.node)
        return Result("OK")

    def _signal(self, cmd: Signal) -> Result:
        """Deliver a signal to the running ``wait`` step for it, or buffer it until one starts (bounded).

        Refused, changing nothing: an unknown or ended workflow, a name no step waits for, no step that is
        or will be waiting for it, a payload over the limit, a full buffer. A repeated ``sid`` is OK, once.
        """
        wf = self.workflows.get(cmd.wf)
        if wf is None:
            return Result("NOT_FOUND", f"workflow {cmd.wf!r} not found")
        if cmd.sid in wf.signal_ids:
            return Result("OK", data={"delivered": False, "duplicate": True, "step": ""})
        if wf.terminal:
            return Result("FAILED_PRECONDITION", f"workflow {wf.id} is {wf.status}: it takes no more signals")
        size = len(cmd.payload.encode("utf-8", errors="surrogatepass"))
        if size > SIGNAL_PAYLOAD_BYTES_MAX:
            return Result(
                "RESOURCE_EXHAUSTED",
                f"signal.payload: {size} bytes, over the limit of {SIGNAL_PAYLOAD_BYTES_MAX} bytes",
            )
        waiting = [s for s in wf.spec.steps if s.signal == cmd.name]
        if not waiting:
            return Result(
                "INVALID_ARGUMENT", f"signal.name: no step of workflow {wf.id} waits for {cmd.name!r}"
            )
        running = [s for s in waiting if wf.steps[s.id].status == STEP_RUNNING]
        if not running and all(wf.steps[s.id].status in TERMINAL_STEP for s in waiting):
            return Result(
                "FAILED_PRECONDITION", f"no step of workflow {wf.id} is or will be waiting for {cmd.name!r}"
            )
        if not running and len(wf.signals) >= SIGNALS_BUFFERED_MAX:
            return Result(
                "RESOURCE_EXHAUSTED",
                f"workflow {wf.id} already holds {len(wf.signals)} buffered signals"
                f" (limit {SIGNALS_BUFFERED_MAX} per workflow)",
            )
        wf.signal_ids.append(cmd.sid)
        if len(wf.signal_ids) > SIGNAL_IDS_MAX:
            del wf.signal_ids[0]
        wf.updated_ms = cmd.ts
        if running:
            step = wf.steps[running[0].id]
            self._deliver(wf, step, cmd.sid, cmd.payload, cmd.ts, cmd.node)
            return Result("OK", data={"delivered": True, "duplicate": False, "step": step.id})
        wf.signals.append((cmd.sid, cmd.name, cmd.payload, cmd.ts))
        self._event(wf, cmd.ts, EVENT_SIGNAL_BUFFERED, "", 0, f"{cmd.name} ({cmd.sid})", cmd.node)
        return Result("OK", data={"delivered": False, "duplicate": False, "step": ""})

    def _deliver(
        self, wf: WorkflowState, step: StepState, sid: str, payload: str, ts: int, node: str
    ) -> None:
        """A running wait step takes a signal: its payload is the output, and the step has succeeded."""
        step.status, step.output_json, step.ended_ms, step.next_ms = STEP_SUCCEEDED, payload, ts, 0
        self.counters["steps_succeeded"] += 1
        name = wf.spec.step(step.id).signal
        self._event(wf, ts, EVENT_SIGNAL_RECEIVED, step.id, step.attempts, f"{name} ({sid})", node)
        self._event(wf, ts, "step_succeeded", step.id, step.attempts, "", node)
        if all(s.status in DONE_STEP for s in wf.steps.values()):
            self._finish(wf, WORKFLOW_SUCCEEDED, ts, "", node)

    def _item_done(self, cmd: ItemDone) -> Result:
        """Record one for_each instance's output; the last one makes the step succeed with the list."""
        found = self._running(cmd)
        if isinstance(found, Result):
            return found
        wf, step = found
        if wf.spec.step(step.id).for_each is None:
            return Result("FAILED_PRECONDITION", f"step {step.id} has no for_each")
        if not 0 < cmd.count <= FOR_EACH_ITEMS_MAX or not 0 <= cmd.index < cmd.count:
            return Result(
                "INVALID_ARGUMENT",
                f"item_done: index {cmd.index} of {cmd.count} items (at most {FOR_EACH_ITEMS_MAX})",
            )
        if step.items and len(step.items) != cmd.count:
            return Result(
                "FAILED_PRECONDITION", f"step {step.id} has {len(step.items)} items, not {cmd.count}"
            )
        try:
            json.loads(cmd.output)  # joined into the step's output, which must stay JSON
        except ValueError:
            return Result("INVALID_ARGUMENT", "item_done.output: not JSON text (an instance's output)")
        if step.items and step.items[cmd.index]:
            return Result("OK", data={"duplicate": True, "done": False})
        if not step.items:
            step.items = [""] * cmd.count
        step.items[cmd.index] = cmd.output
        wf.updated_ms = cmd.ts
        self._changed.add(wf.id)
        if not all(step.items):
            return Result("OK", data={"duplicate": False, "done": False})
        ts = cmd.ts
        step.status, step.output_json = STEP_SUCCEEDED, "[" + ",".join(step.items) + "]"
        step.ended_ms, step.next_ms = ts, 0
        self.counters["steps_succeeded"] += 1
        self._event(wf, ts, "step_succeeded", step.id, step.attempts, f"{cmd.count} items", cmd.node)
        if all(s.status in DONE_STEP for s in wf.steps.values()):
            self._finish(wf, WORKFLOW_SUCCEEDED, ts, "", cmd.node)
        return Result("OK", data={"duplicate": False, "done": True})

    def _skip(self, cmd: Skip) -> Result:
        """A pending step will never run. Its needs must be done; if they would let it run, only a false
        ``when`` (the proposer's evaluation) can skip it, so the step must have one."""
        wf, err = self._fenced_workflow(cmd, "skip with ", cmd.step)
        if err is not None:
            return err
        assert wf is not None
        step = wf.steps.get(cmd.step)
        if step is None:
            return Result("NOT_FOUND", f"step {cmd.step!r} not found")
        if step.status != STEP_PENDING:
            return Result("FAILED_PRECONDITION", f"step {step.id} is {step.status}, not pending")
        decided = step_verdict(wf, step.id)
        if decided == WAIT:
            return Result("FAILED_PRECONDITION", f"step {step.id}: its needs are not done")
        if decided == RUN and wf.spec.step(step.id).when is None:
            return Result("FAILED_PRECONDITION", f"step {step.id} has no condition and its needs let it run")
        ts = cmd.ts
        step.status, step.ended_ms = STEP_SKIPPED, ts
        wf.updated_ms = ts
        self._event(wf, ts, EVENT_STEP_SKIPPED, step.id, 0, cmd.reason, cmd.node)
        if all(s.status in DONE_STEP for s in wf.steps.values()):
            self._finish(wf, WORKFLOW_SUCCEEDED, ts, "", cmd.node)
        return Result("OK", data={"verdict": SKIP if decided == SKIP else "condition"})

    def _fail(self, cmd: Fail) -> Result:
        found = self._running(cmd)
        if isinstance(found, Result):
            return found
        wf, step = found
        ts, node = cmd.ts, cmd.node
        if wf.spec.step(step.id).signal is not None and not 0 < step.next_ms <= ts:
            # A wait step only fails by its committed deadline passing (the proposer's clock says so).
            return Result("FAILED_PRECONDITION", f"step {step.id} waits for a signal and has not timed out")
        error = cmd.error[:MAX_EVENT_MESSAGE]
        error_class = cmd.error_class
        policy: RetryPolicy = wf.spec.step(step.id).retry
        step.error, step.error_class, step.ended_ms = error, error_class, ts
        wf.updated_ms = ts
        self.counters["steps_failed"] += 1
        self._event(wf, ts, "step_failed", step.id, step.attempts, f"[{error_class}] {error}", node)
        if cmd.deliveries_max is None:
            # An attempt that ended normally did not kill anything: poison is consecutive process deaths, so
            # a long run under node kills (each redelivering whatever was running) never adds up to it.
            step.deliveries = 0
        else:
            step.deliveries += 1
            if step.deliveries >= cmd.deliveries_max:
                self._poison(
                    wf,
                    step,
                    ts,
                    node,
                    f"its attempts killed the process running them {step.deliveries} times",
                )
                return Result("OK", data={"retry": False, "poisoned": True})
        if should_retry(policy, step.attempts, error_class) and cmd.retry_at > 0:
            step.status, step.next_ms = STEP_RETRY_WAIT, cmd.retry_at
            self.counters["retries_scheduled"] += 1
            self._event(
                wf,
                ts,
                "retry_scheduled",
                step.id,
                step.attempts + 1,
                f"in {max(0, cmd.retry_at - ts)}ms",
                node,
            )
            return Result("OK", data={"retry": True})
        step.status, step.next_ms = STEP_FAILED, 0
        how = "failed terminally" if error_class in FINAL_ERRORS else "failed"  # final: not undone or re-run
        self._fail_or_compensate(
            wf,
            ts,
            f"step {step.id} {how} after {step.attempts} attempt(s): [{error_class}] {error}",
            node,
            error_class,
        )
        return Result("OK", data={"retry": False})

    def _redeliver(self, cmd: Redeliver) -> Result:
        found = self._running(cmd)
        if isinstance(found, Result):
            return found
        wf, step = found
        if step.deliveries != cmd.seen:
            return Result("OK", data={"poisoned": False, "duplicate": True})
        step.deliveries += 1
        wf.updated_ms = cmd.ts
        message = f"delivery {step.deliveries + 1} to {cmd.node or '?'}: {cmd.reason}"
        self._event(wf, cmd.ts, EVENT_REDELIVERED, step.id, step.attempts, message, cmd.node)
        if step.deliveries >= cmd.deliveries_max:
            self._poison(wf, step, cmd.ts, cmd.node, f"{step.deliveries} deliveries killed their node")
            return Result("OK", data={"poisoned": True})
        return Result("OK", data={"poisoned": False})

    def _poison(self, wf: WorkflowState, step: StepState, ts: int, node: str, why: str) -> None:
        """The step fails for good, whatever its retry policy says: running it again would only kill again."""
        step.status, step.next_ms, step.ended_ms = STEP_FAILED, 0, ts
        step.error, step.error_class = f"poisoned: {why}"[:MAX_EVENT_MESSAGE], ERROR_POISONED
        self._fail_or_compensate(wf, ts, f"step {step.id} is poisoned: {why}", node, ERROR_POISONED)

    def _fail_or_compensate(
        self, wf: WorkflowState, ts: int, error: str, node: str, error_class: str
    ) -> None:
        """A final failure: the workflow fails, or (saga) first runs the compensations of its succeeded
        steps, newest completion first. A terminal failure (FINAL_ERRORS) is never compensated."""
        done = _compensable(wf)
        if not done or error_class in FINAL_ERRORS:
            self._finish(wf, WORKFLOW_FAILED, ts, error, node)
            return
        for step in wf.steps.values():
            if step.status not in TERMINAL_STEP:
                step.status, step.next_ms = STEP_CANCELLED, 0
        wf.error, wf.updated_ms = error[:MAX_EVENT_MESSAGE], ts
        wf.compensations = [[sid, COMPENSATION_PENDING, 0, 0, ""] for _, _, sid in sorted(done, reverse=True)]
        order = ", ".join(c[0] for c in wf.compensations)
        self._event(wf, ts, EVENT_COMPENSATING, "", 0, f"{error}; compensating {order}", node)

    def _compensate(self, cmd: Compensate) -> Result:
        """One compensation's start or result; only the next one (newest completion first) may move."""
        wf, err = self._fenced_workflow(cmd, "compensate with ", cmd.step, cmd.attempt)
        if err is not None:
            return err
        assert wf is not None
        if not wf.compensations:
            return Result("FAILED_PRECONDITION", f"workflow {wf.id} is not compensating")
        entry = next(c for c in wf.compensations if c[1] != COMPENSATION_SUCCEEDED)
        sid, status, attempts = entry[0], entry[1], entry[2]
        if cmd.step != sid:
            return Result("FAILED_PRECONDITION", f"compensations run newest first: the next one is {sid}'s")
        ts = cmd.ts
        if cmd.phase == "start":
            if status not in (COMPENSATION_PENDING, COMPENSATION_RETRY_WAIT) or cmd.attempt != attempts + 1:
                return Result(
                    "FAILED_PRECONDITION", f"compensation of {sid} is {status} at attempt {attempts}"
                )
            entry[1], entry[2], entry[3] = COMPENSATION_RUNNING, cmd.attempt, 0
            wf.updated_ms = ts
            self._event(wf, ts, EVENT_COMPENSATION_STARTED, sid, cmd.attempt, "", cmd.node)
            return Result("OK")
        if status != COMPENSATION_RUNNING or cmd.attempt != attempts:
            return Result("FAILED_PRECONDITION", f"compensation of {sid} is {status} at attempt {attempts}")
        wf.updated_ms = ts
        if cmd.phase == "succeed":
            entry[1] = COMPENSATION_SUCCEEDED
            self._event(wf, ts, EVENT_STEP_COMPENSATED, sid, attempts, "", cmd.node)
            if all(c[1] == COMPENSATION_SUCCEEDED for c in wf.compensations):
                self._finish(wf, WORKFLOW_COMPENSATED, ts, wf.error, cmd.node)
            return Result("OK")
        error = cmd.error[:MAX_EVENT_MESSAGE]
        self._event(
            wf, ts, EVENT_COMPENSATION_ATTEMPT_FAILED, sid, attempts, f"[{cmd.error_class}] {error}", cmd.node
        )
        compensate = wf.spec.step(sid).compensate
        assert compensate is not None
        if should_retry(compensate.retry, attempts, cmd.error_class) and cmd.retry_at > 0:
            entry[1], entry[3], entry[4] = COMPENSATION_RETRY_WAIT, cmd.retry_at, error
            return Result("OK", data={"retry": True})
        entry[1], entry[4] = COMPENSATION_FAILED, error
        message = f"{wf.error}; compensation of {sid} failed after {attempts} attempt(s)"
        message += f": [{cmd.error_class}] {error}"
        self._finish(wf, WORKFLOW_COMPENSATION_FAILED, ts, message[:MAX_EVENT_MESSAGE], cmd.node)
        return Result("OK", data={"retry": False})

    def _cancel(self, cmd: Cancel) -> Result:
        wf = self.workflows.get(cmd.wf)
        if wf is None:
            return Result("NOT_FOUND", f"workflow {cmd.wf!r} not found")
        if wf.terminal:
            return Result("OK", data={"cancelled": False})
        reason = (cmd.reason or "cancelled by request")[:MAX_EVENT_MESSAGE]
        if cmd.compensate and wf.compensations:
            return Result("OK", data={"cancelled": False, "compensating": True})  # already undoing
        if cmd.compensate and _compensable(wf):
            self._fail_or_compensate(wf, cmd.ts, reason, cmd.node, "cancelled")
            return Result("OK", data={"cancelled": True, "compensating": True})
        self._finish(wf, WORKFLOW_CANCELLED, cmd.ts, reason, cmd.node)
        return Result("OK", data={"cancelled": True})

    def _finish(self, wf: WorkflowState, status: str, ts: int, error: str, node: str) -> None:
        assert not wf.terminal, "a terminal workflow never changes"
        wf.status, wf.error, wf.updated_ms = status, error, ts
        for step in wf.steps.values():
            if step.status not in TERMINAL_STEP:
                step.status, step.next_ms = STEP_CANCELLED, 0
        self._disown(wf)
        self.counters[status] = self.counters.get(status, 0) + 1  # saga outcomes: counted once they happen
        kind = CLOSING_EVENT_OF_STATUS[status]
        self._event(wf, ts, kind, "", 0, error, node)

    def _own(self, wf: WorkflowState, owner: str) -> None:
        wf.owner = owner
        self.owned[owner] = self.owned.get(owner, 0) + 1
        self.owned_ids.setdefault(owner, set()).add(wf.id)

    def _disown(self, wf: WorkflowState) -> None:
        self.owned[wf.owner] -= 1
        assert self.owned[wf.owner] >= 0, "owned count went negative"
        self.owned_ids[wf.owner].discard(wf.id)

    def _heartbeat(self, cmd: Heartbeat) -> Result:
        """Liveness is judged by the leader on its own clock; the log only records revivals."""
        member = self.members.get(cmd.node)
        if member is None:
            return Result("NOT_FOUND", f"node {cmd.node!r} has not joined")
        if not member.alive:
            member.alive, member.last_heartbeat_ms = True, cmd.ts
            self._adopt_orphans(cmd.ts, cmd.node)
            return Result("OK", data={"revived": True})
        return Result("OK", data={"revived": False})

    def _node_down(self, cmd: NodeDown) -> Result:
        """Mark a node dead and move its workflows, one by one, to the least-loaded live nodes.

        The in-flight attempt of each moved workflow stays `running` with the same attempt number:
        the new owner executes it again with the same idempotency key; a new epoch fences the old owner.
        """
        member = self.members.get(cmd.node)
        if member is None:
            return Result("NOT_FOUND", f"node {cmd.node!r} has not joined")
        if not member.alive:
            return Result("OK", data={"moved": 0})
        if cmd.since is not None and cmd.since != member.last_heartbeat_ms:
            # It revived or rejoined since it was judged.
            return Result("OK", data={"moved": 0, "stale": True})
        member.alive = False
        self.counters["nodes_down"] += 1
        self._notable(cmd.ts, "node_down", "", "", "", f"node {cmd.node} declared down", cmd.by)
        moved = self._move_workflows_of(cmd.node, cmd.ts, cmd.by)
        return Result("OK", data={"moved": moved})

    def _adopt_orphans(self, ts: int, by: str) -> None:
        """Workflows left on dead nodes when nobody was alive go to whoever is alive now."""
        for node_id in sorted(self.owned_ids):
            member = self.members.get(node_id)
            if member is None or not member.alive:
                self._move_workflows_of(node_id, ts, by)

    def _move_workflows_of(self, dead: str, ts: int, by: str) -> int:
        """Move ``dead``'s non-terminal workflows one by one to the least-loaded live node, epoch + 1.

        Sorted ids, never set order: replicas must move the same workflows to the same nodes.
        """
        moved = 0
        for wf_id in sorted(self.owned_ids.get(dead, ())):
            new_owner = self._place()
            if new_owner is None:
                break  # no live node left: the workflows wait for a node to come back
            wf = self.workflows[wf_id]
            self._disown(wf)
            self._own(wf, new_owner)
            wf.epoch += 1
            wf.updated_ms = ts
            moved += 1
            message = f"owner {dead} is down: moved to {new_owner} (epoch {wf.epoch})"
            self._event(wf, ts, "reassigned", "", 0, message, by)
        self.counters["reassigned"] += moved
        return moved

    def _abort(self, cmd: Abort) -> Result:
        """The owner gives up on a workflow (e.g. its actor crashed too often). Fenced by epoch."""
        wf, err = self._fenced_workflow(cmd, "abort with ")
        if err is not None:
            return err
        assert wf is not None
        self._finish(wf, WORKFLOW_FAILED, cmd.ts, cmd.reason[:MAX_EVENT_MESSAGE], cmd.node)
        return Result("OK")

    def _gc(self, cmd: Gc) -> Result:
        """Forget terminal workflows last updated before `before`, and the oldest beyond `keep_max`.

        At most ``cmd.limit`` (default ``GC_BATCH_MAX``) per command, so one entry's apply time is bounded.
        """
        terminal = [wf for wf in self.workflows.values() if wf.terminal]
        excess = max(0, len(terminal) - cmd.keep_max)
        doomed = [wf.id for i, wf in enumerate(terminal) if i < excess or wf.updated_ms < cmd.before]
        collected = doomed[: cmd.limit]
        for wf_id in collected:
            wf = self.workflows.pop(wf_id)
            if self.request_ids.get(wf.request_id) == wf_id:
                del self.request_ids[wf.request_id]  # a retried old request must not find a reused id
            entry = self.specs[wf.spec_hash]
            entry.refs -= 1
            if entry.refs == 0:
                del self.specs[wf.spec_hash]
        self.counters["collected"] += len(collected)
        return Result("OK", data={"collected": len(collected)})

    def _event(
        self, wf: WorkflowState, ts: int, kind: str, step: str, attempt: int, message: str, node: str
    ) -> None:
        wf.events.append((wf.next_seq, ts, kind, step, attempt, message[:MAX_EVENT_MESSAGE], node))
        wf.next_seq += 1
        if len(wf.events) > MAX_EVENTS_PER_WORKFLOW:
            del wf.events[0]
        self._changed.add(wf.id)
        if kind in NOTABLE_KINDS:
            self._notable(ts, kind, wf.id, wf.name, step, message, node)

    def _notable(
        self, ts: int, kind: str, wf_id: str, wf_name: str, step: str, message: str, node: str
    ) -> None:
        self.notable.append((ts, kind, wf_id, wf_name, step, message[:MAX_EVENT_MESSAGE], node))
        if len(self.notable) > MAX_NOTABLE_EVENTS:
            del self.notable[0]

    # ---------------------------------------- chaos monkey setting (read by beamflowd/chaos.py on each node)
    def _chaos_monkey(self, cmd: ChaosMonkey) -> Result:
        """Store the cluster-wide chaos monkey setting (replicated, so it survives node deaths).

        Every node's monkey reads it and injects into its own actors and steps; the random draws happen
        there, never here. ``enabled`` false clears it. Times are the proposer's (``ts``, ``until_ms``).
        """
        if not cmd.enabled:
            self.chaos_monkey = {}
        else:
            self.chaos_monkey = {
                "profile": cmd.profile,
                "kill_nodes": cmd.kill_nodes,
                "partitions": cmd.partitions,
                "since_ms": cmd.ts,
                "until_ms": cmd.until_ms,
                "by": cmd.node,
            }
        return Result("OK", data=dict(self.chaos_monkey))

    def running_count(self) -> int:
        c = self.counters
        saga = c.get(WORKFLOW_COMPENSATED, 0) + c.get(WORKFLOW_COMPENSATION_FAILED, 0)
        return c["submitted"] - c["succeeded"] - c["failed"] - c["cancelled"] - saga

    # ---------------------------------------------------------------- queries
    def iter_newest_first(self) -> Iterator[WorkflowState]:
        return reversed(self.workflows.values())

    def owned_by(self, node: str) -> int:
        return self.owned.get(node, 0)

    # ------------------------------------------------------ snapshot & digest
    def to_plain(self, bulk: bool = True) -> dict[str, Any]:
        """The whole state as plain data; ``bulk=False`` leaves out workflows and request ids (a snapshot
        copies those its own way)."""
        return {
            "v": SNAPSHOT_VERSION,
            "members": [m.to_plain() for m in self.members.values()],
            "specs": [[h, self.specs[h].plain] for h in sorted(self.specs)],
            "workflows": [wf.to_plain() for wf in self.workflows.values()] if bulk else [],
            "request_ids": list(self.request_ids.items()) if bulk else [],
            "counters": dict(self.counters),
            "notable": [list(n) for n in self.notable],
            "chaos_monkey": dict(self.chaos_monkey),
        }

    @classmethod
    def from_plain(cls, p: Mapping[str, Any]) -> StateMachine:
        if p.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot schema {p.get('v')!r} is not {SNAPSHOT_VERSION}")
        sm = cls()
        for mp in p["members"]:
            sm.members[mp[0]] = Member(*mp)
            sm.owned.setdefault(mp[0], 0)
        for spec_hash, plain in p["specs"]:
            sm.specs[spec_hash] = SpecEntry(WorkflowSpec.from_plain(plain), plain, 0)
        for wp in p["workflows"]:
            entry = sm.specs[wp["spec"]]
            entry.refs += 1
            wf = WorkflowState.from_plain(wp, entry.spec)
            sm.workflows[wf.id] = wf
            if not wf.terminal:
                sm._own(wf, wf.owner)
        sm.request_ids = {rid: wf for rid, wf in p["request_ids"]}
        sm.counters.update(p["counters"])
        sm.notable = [(n[0], n[1], n[2], n[3], n[4], n[5], n[6]) for n in p["notable"]]
        sm.chaos_monkey = dict(p.get("chaos_monkey", {}))  # absent in snapshots older than the monkey
        # A snapshot that breaks an invariant (corrupt, or mis-migrated) must not start a node.
        from beamflowd.core.invariants import check_invariants  # circular at module level

        check_invariants(sm)
        return sm

    def load(self, other: StateMachine) -> None:
        """Replace this state in place (snapshot restore keeps references held by others valid)."""
        self.workflows, self.members, self.owned = other.workflows, other.members, other.owned
        self.owned_ids = other.owned_ids
        self.request_ids, self.counters = other.request_ids, other.counters
        self.specs = other.specs
        self.notable = other.notable
        self.chaos_monkey = other.chaos_monkey
        self._changed = set(self.workflows)
        self.revision += 1

    def digest(self) -> str:
        """SHA-256 of the canonical encoding: equal on replicas that applied the same log."""
        return hashlib.sha256(encode_plain(self.to_plain())).hexdigest()


@dataclass(slots=True)
class SpecEntry:
    spec: WorkflowSpec
    plain: dict[str, Any]
    refs: int


def spec_digest(plain: Mapping[str, Any]) -> str:
    """Content address of a definition: the first hex digits of SHA-256 over its canonical JSON."""
    return hashlib.sha256(encode_plain(plain)).hexdigest()[:SPEC_HASH_HEX_DIGITS]


def encode_plain(plain: Mapping[str, Any]) -> bytes:
    """Canonical JSON: sorted keys, no whitespace. Used for the digest and for snapshots."""
    return json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()


def _checked_spec(plain: Mapping[str, Any]) -> WorkflowSpec:
    """Parse a definition carried by a submit, refusing one that apply could trip over later.

    The proposer validated it; this guards the state against a bad entry (a bug, an old proposer), since an
    exception in a later apply would stop every replica. Raises KeyError, TypeError or ValueError.
    """
    spec = WorkflowSpec.from_plain(plain)
    ids = {step.id for step in spec.steps}
    if len(ids) != len(spec.steps):
        raise ValueError("duplicate step ids")
    for step in spec.steps:
        missing = [need for need in step.needs if need not in ids]
        if missing:
            raise ValueError(f"step {step.id} needs unknown steps {missing}")
        if step.needs_policy not in NEEDS_POLICIES:
            raise ValueError(f"step {step.id}: unknown needs_policy {step.needs_policy!r}")
        _ = step.signal  # a wait step's params parse (ParamError is a ValueError)
        for branch in step.branches:  # a choice's params parse (ParamError is a ValueError)
            if branch not in ids or step.id not in spec.step(branch).needs:
                raise ValueError(f"choice {step.id}: branch {branch!r} is not a dependent of it")
    return spec


#: Command class -> its handler. Keyed by class, so a command can only reach the handler of its own type.
_HANDLERS: dict[type[Any], Callable[[StateMachine, Any], Result]] = {
    Join: StateMachine._join,
    Submit: StateMachine._submit,
    Start: StateMachine._start,
    Succeed: StateMachine._succeed,
    Fail: StateMachine._fail,
    Redeliver: StateMachine._redeliver,
    Cancel: StateMachine._cancel,
    Heartbeat: StateMachine._heartbeat,
    NodeDown: StateMachine._node_down,
    Abort: StateMachine._abort,
    Gc: StateMachine._gc,
    ChaosMonkey: StateMachine._chaos_monkey,
    Skip: StateMachine._skip,
    Signal: StateMachine._signal,
    ItemDone: StateMachine._item_done,
    Compensate: StateMachine._compensate,
}


def _compensable(wf: WorkflowState) -> list[tuple[int, int, str]]:
    """``(end time, definition index, step id)`` of the succeeded steps that have a compensation."""
    return [
        (step.ended_ms, index, step.id)
        for index, step in enumerate(wf.steps.values())
        if step.status == STEP_SUCCEEDED and wf.spec.step(step.id).compensate is not None
    ]


def committed_branch(wf: WorkflowState) -> BranchOf:
    """:data:`BranchOf` over a workflow's committed outputs (a succeeded choice's output names its branch)."""

    def branch_of(step_id: str) -> str | None:
        step = wf.steps[step_id]
        return branch_in_output(step.output_json) if step.status == STEP_SUCCEEDED else None

    return branch_of


def step_verdict(wf: WorkflowState, step_id: str) -> str:
    """What the committed state of its needs says about ``step_id`` (scheduling.verdict)."""
    spec = wf.spec
    return verdict(spec, spec.step(step_id), lambda n: wf.steps[n].status, committed_branch(wf))
