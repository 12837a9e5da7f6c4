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
import heapq
import itertools
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
    DlqClose,
    Expire,
    Fail,
    Gc,
    Heartbeat,
    ItemDone,
    Join,
    MemberAdd,
    MemberRemove,
    NodeDown,
    Pause,
    Redeliver,
    Resume,
    Retry,
    Signal,
    Skip,
    Start,
    Starts,
    Submit,
    Succeed,
    decode,
)
from beamflowd.core.multiset_hash import MultisetHash, element_hash
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
    DLQ_KIND_COMPENSATION_FAILED,
    DLQ_KIND_WORKFLOW_FAILED,
    DLQ_MAX_DEFAULT,
    DLQ_OPEN,
    DLQ_PENDING,
    DLQ_RESOLVED,
    DLQ_RETRYING,
    DLQ_STATES,
    DONE_STEP,
    ERROR_DEADLINE_EXCEEDED,
    ERROR_POISONED,
    EVENT_COMPENSATING,
    EVENT_COMPENSATION_ATTEMPT_FAILED,
    EVENT_COMPENSATION_STARTED,
    EVENT_DEAD_LETTERED,
    EVENT_DEADLINE_EXCEEDED,
    EVENT_MEMBER_ADDED,
    EVENT_MEMBER_REMOVED,
    EVENT_PAUSED,
    EVENT_REDELIVERED,
    EVENT_RESUMED,
    EVENT_RETRIED,
    EVENT_SIGNAL_BUFFERED,
    EVENT_SIGNAL_RECEIVED,
    EVENT_STEP_COMPENSATED,
    EVENT_STEP_SKIPPED,
    FINAL_ERRORS,
    ID_CONFLICT_USE_EXISTING,
    ID_REUSE_FAILED_ONLY,
    ID_REUSE_REJECT,
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
    WORKFLOW_PAUSED,
    WORKFLOW_RUNNING,
    WORKFLOW_SUCCEEDED,
)
from beamflowd.core.workflow_index import ALL, ListKey, WorkflowIndex

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


#: Where ``items`` is in a step's plain form (:meth:`StepState.to_plain`): after ``base``.
STEP_ITEMS_AT = 11


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
    #: Attempts made before the workflow's latest retry: attempt numbers continue past it (idempotency keys
    #: are never reused) while the retry policy counts only ``attempts - base``.
    base: int = 0
    #: A for_each step's instance outputs (JSON text, "" while not done), kept across its attempts.
    items: list[str] = field(default_factory=list)
    #: Start time of the first attempt since the latest retry, kept only for a step with a ``deadline``
    #: (0 otherwise): the step's deadline counts from it.
    first_ms: int = 0

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
        if self.deliveries or self.base or self.items or self.first_ms:
            plain.append(self.deliveries)  # absent when 0: states from before the count encode as they did
        if self.base or self.items or self.first_ms:
            plain.append(self.base)  # absent when 0: states from before retries encode as they did
        if self.items or self.first_ms:
            plain.append(list(self.items))  # absent unless a for_each step (or a later field is set)
        if self.first_ms:
            plain.append(self.first_ms)  # absent when 0: states without step deadlines encode as they did
        return plain

    @classmethod
    def from_plain(cls, p: list[Any]) -> StepState:
        step = cls(*p)
        if len(p) > STEP_ITEMS_AT:
            step.items = list(step.items)  # not shared with ``p``
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
    #: Times the workflow was retried (``Retry`` is fenced by it).
    retries: int = 0
    #: The workflow it was resubmitted from ("" if none).
    origin: str = ""
    #: Paused (``Pause``): no new attempt starts; "" when not paused, else why (never empty when paused).
    paused: str = ""
    #: Time of the latest retry (0: never retried): the deadline counts from it.
    retried_ms: int = 0
    #: Labels set at submit (``{key: value}``, bounded by ``commands.LABELS_MAX``).
    labels: dict[str, str] = field(default_factory=dict)
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

    @property
    def listed_status(self) -> str:
        """The status clients see and filter by: ``paused`` for a paused running workflow."""
        return WORKFLOW_PAUSED if self.paused else self.status

    @property
    def deadline_ms(self) -> int:
        """When the workflow's ``timeout`` runs out (counted from submit or the latest retry); 0: none."""
        if not self.spec.timeout_ms:
            return 0
        return (self.retried_ms or self.created_ms) + self.spec.timeout_ms

    def step_deadline_ms(self, step: StepState) -> int:
        """When ``step``'s ``deadline`` runs out (counted from its first attempt since the latest retry);
        0: it has none, or has not started since."""
        deadline_ms = self.spec.step(step.id).deadline_ms
        if not deadline_ms or step.attempts <= step.base:
            return 0
        return step.first_ms + deadline_ms

    def to_plain(self) -> dict[str, Any]:
        plain = {
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
        if self.retries:
            plain["retries"] = self.retries  # absent when 0: states from before retries encode as they did
        if self.origin:
            plain["origin"] = self.origin  # likewise absent unless resubmitted
        if self.paused:
            plain["paused"] = self.paused  # likewise absent unless paused
        if self.retried_ms:
            plain["retried_ms"] = self.retried_ms
        if self.labels:
            plain["labels"] = dict(self.labels)
        return plain

    @classmethod
    def from_plain(cls, p: Mapping[str, Any], spec: WorkflowSpec) -> WorkflowState:
        # Positional, every field in declaration order: a restore builds 100,000 of these before the node
        # serves, and keywords or defaults filled in then overwritten cost twice as much.
        get = p.get
        signals = get("signals")
        labels = get("labels")
        compensations = get("compensations")
        return cls(
            p["id"],
            p["name"],
            spec,
            p["spec"],
            p["input"],
            p["owner"],
            p["created"],
            p["updated"],
            p["rid"],
            p["status"],
            p["epoch"],
            p["error"],
            {sp[0]: StepState.from_plain(sp) for sp in p["steps"]},
            list(map(tuple, p["events"])),  # 7-tuples, as encoded
            p["next_seq"],
            get("retries", 0),
            get("origin", ""),
            get("paused", ""),
            get("retried_ms", 0),
            dict(labels) if labels else {},
            [(x[0], x[1], x[2], x[3]) for x in signals] if signals else [],
            list(get("signal_ids", ())),
            [list(c) for c in compensations] if compensations else [],
        )


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
        #: Ids removed by ``member_remove``: refused at ``join`` until added again.
        self.removed: set[str] = set()
        #: Ids of workflows touched since the last :meth:`drain_changed` (not part of the state).
        self._changed: set[str] = set()
        # Derived from the state, never encoded: see _rebuild_derived.
        #: The digest's running parts, so a digest costs O(changed), not O(state).
        self._wf_hash: dict[str, int] = {}
        self._wf_sum = MultisetHash()
        self._rid_sum = MultisetHash()
        self._spec_sum = MultisetHash()
        #: Workflows whose entry in ``_wf_sum`` is stale until the next :meth:`digest`.
        self._digest_stale: set[str] = set()
        #: After a restore, the restored lines of workflows unchanged since whose share is not in
        #: ``_wf_sum`` yet, and request ids whose share is not in ``_rid_sum`` yet: hashing them all took a
        #: second before the node served, so :meth:`settle_restored` adds them later (:meth:`digest` first).
        self._unsettled_lines: dict[str, bytes] = {}
        self._unsettled_requests: dict[str, str] = {}
        #: Workflows by status and name, for lists and counts that cost O(page), not O(state).
        self.index = WorkflowIndex()
        #: ``(finished_ms, id)`` of finished workflows, a heap: GC by completion takes from its front.
        #: An entry whose workflow is gone or changed since is dropped when GC meets it.
        self.finished_heap: list[tuple[int, str]] = []
        #: The dead-letter queue: entry id -> entry, oldest first (see :meth:`_dead_letter`).
        self.dlq: dict[str, DlqEntry] = {}
        #: workflow id -> its open (pending or retrying) entry; derived from ``dlq``.
        self.dlq_open: dict[str, str] = {}
        #: Entries ever made (the next id); final failures not queued because the queue was full of open ones.
        self.dlq_seq = 0
        self.dlq_overflow = 0
        #: Finished workflows running again after a retry, by the status they had: keeps the (monotonic)
        #: finish counters consistent with the workflows (``counters[s] - reopened[s]`` are in status s).
        self.reopened: dict[str, int] = {}

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
        wf_id = getattr(cmd, "wf", None)
        if isinstance(wf_id, str):
            self._touch(wf_id)  # whatever the handler changed of it, even without an event
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
        if cmd.node in self.removed:
            return Result(
                "FAILED_PRECONDITION",
                f"node {cmd.node!r} was removed from the cluster; add it again (beamctl cluster member add)",
            )
        member = self.members.get(cmd.node)
        if member is None and cmd.existing:
            return Result(
                "FAILED_PRECONDITION",
                f"node {cmd.node!r} is not a member: add it first (beamctl cluster member add {cmd.node} "
                f"--raft {cmd.raft} --grpc {cmd.grpc})",
            )
        if member is None:
            self.members[cmd.node] = Member(cmd.node, cmd.raft, cmd.grpc, cmd.ts, True, cmd.ts)
            self.owned.setdefault(cmd.node, 0)
        else:
            member.raft_addr, member.grpc_addr = cmd.raft, cmd.grpc
            member.alive, member.last_heartbeat_ms = True, cmd.ts
        self._adopt_orphans(cmd.ts, cmd.node)
        return Result("OK")

    def _place(self, prefer: str | None = None) -> str | None:
        """Least-loaded live member, ties broken by ``prefer`` and then by id: deterministic (``prefer``
        comes from the command) and spreads new work, since ``prefer`` wins only a tie."""
        best: tuple[int, bool, str] | None = None
        for node_id in sorted(self.members):
            if not self.members[node_id].alive:
                continue
            key = (self.owned.get(node_id, 0), node_id != prefer, node_id)
            if best is None or key < best:
                best = key
        return None if best is None else best[2]

    def _submit(self, cmd: Submit) -> Result:
        rid, wf_id = cmd.rid, cmd.wf
        previous = self.request_ids.get(rid)
        if previous is not None:
            wf = self.workflows.get(previous)
            return Result("OK", data={"wf": previous, "owner": wf.owner if wf else "", "existing": True})
        old = self.workflows.get(wf_id)
        if old is not None:
            refusal = self._id_taken(cmd, old)
            if refusal is not None:
                return refusal
        pinned = self.members.get(cmd.owner) if cmd.owner is not None else None
        placed = pinned.id if pinned is not None and pinned.alive else self._place(cmd.prefer)
        if placed is None:
            return Result("UNAVAILABLE", "no live node to own the workflow")
        if old is not None:
            self._forget(old)  # replaced (allowed by id_reuse); counted as collected
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
            self._spec_sum.add(_spec_element(spec_hash))
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
            origin=cmd.origin or "",
            labels={str(k): str(v) for k, v in (cmd.labels or {}).items()},
        )
        for step in spec.steps:
            wf.steps[step.id] = StepState(step.id)
        self.workflows[wf_id] = wf
        self._own(wf, owner)
        self._remember_request(rid, wf_id)
        self.counters["submitted"] += 1
        resubmitted = f", resubmitted from {cmd.origin}" if cmd.origin else ""
        self._event(wf, ts, "submitted", "", 0, f"owner {owner}{resubmitted}", cmd.node)
        self._start_ready(wf, cmd.start, ts, cmd.node)
        return Result("OK", data={"wf": wf_id, "owner": owner, "existing": False})

    def _id_taken(self, cmd: Submit, old: WorkflowState) -> Result | None:
        """Why a submit may not use the id of ``old`` (None: it replaces a finished one), per its policies."""
        if not old.terminal:
            if cmd.id_conflict == ID_CONFLICT_USE_EXISTING:
                return Result("OK", data={"wf": old.id, "owner": old.owner, "existing": True})
            return Result("ALREADY_EXISTS", f"workflow {old.id!r} already exists and is running")
        reuse = cmd.id_reuse or ID_REUSE_REJECT
        if reuse == ID_REUSE_REJECT or (reuse == ID_REUSE_FAILED_ONLY and old.status == WORKFLOW_SUCCEEDED):
            return Result("ALREADY_EXISTS", f"workflow {old.id!r} already exists ({old.status})")
        if old.id in self.dlq_open:
            entry = self.dlq_open[old.id]
            return Result("FAILED_PRECONDITION", f"workflow {old.id} has open dead-letter entry {entry}")
        return None

    def _forget(self, wf: WorkflowState) -> None:
        """Drop a finished workflow (collected by gc, or replaced by a submit reusing its id)."""
        del self.workflows[wf.id]
        self._touch(wf.id)
        if self.request_ids.get(wf.request_id) == wf.id:
            self._forget_request(wf.request_id)  # a retried old request must not find a reused id
        entry = self.specs[wf.spec_hash]
        entry.refs -= 1
        if entry.refs == 0:
            del self.specs[wf.spec_hash]
            self._spec_sum.remove(_spec_element(wf.spec_hash))
        self.counters["collected"] += 1

    def _start_ready(self, wf: WorkflowState, starts: Starts, ts: int, node: str) -> None:
        """Start first attempts the proposer found ready, in the same entry (saves a round trip).

        Each is checked like a ``start`` command; one that is not ready is skipped, and the owner's
        actor starts it later with its own command.
        """
        for step_id, wake in starts:
            step = wf.steps.get(step_id)
            if step is None or step.status != STEP_PENDING or wf.terminal or wf.paused:
                continue
            if step_verdict(wf, step_id) == RUN:
                self._mark_started(wf, step, step.attempts + 1, ts, wake, node)

    def _remember_request(self, rid: str, wf_id: str) -> None:
        if rid in self.request_ids:
            self._forget_request(rid)
        self.request_ids[rid] = wf_id
        self._rid_sum.add(_request_element(rid, wf_id))
        while len(self.request_ids) > MAX_REQUEST_IDS:
            self._forget_request(next(iter(self.request_ids)))

    def _forget_request(self, rid: str) -> None:
        wf_id = self.request_ids.pop(rid)
        if self._unsettled_requests.pop(rid, None) is None:  # else its share was never added
            self._rid_sum.remove(_request_element(rid, wf_id))

    def _fenced_workflow(
        self,
        cmd: Start | Succeed | Fail | Redeliver | Abort | Expire | Skip | ItemDone | Compensate,
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
        if wf.paused:
            return Result("FAILED_PRECONDITION", f"workflow {wf.id} is paused")
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
        if attempt == step.base + 1 and wf.spec.step(step.id).deadline_ms:
            step.first_ms = ts  # the step's deadline counts from here
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
                    cmd.dlq_max,
                )
                return Result("OK", data={"retry": False, "poisoned": True})
        if should_retry(policy, step.attempts - step.base, error_class) and cmd.retry_at > 0:
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
            f"step {step.id} {how} after {step.attempts - step.base} attempt(s): [{error_class}] {error}",
            node,
            error_class,
            cmd.dlq_max,
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
            why = f"{step.deliveries} deliveries killed their node"
            self._poison(wf, step, cmd.ts, cmd.node, why, cmd.dlq_max)
            return Result("OK", data={"poisoned": True})
        return Result("OK", data={"poisoned": False})

    def _poison(
        self, wf: WorkflowState, step: StepState, ts: int, node: str, why: str, dlq_max: int | None
    ) -> None:
        """The step fails for good, whatever its retry policy says: running it again would only kill again."""
        step.status, step.next_ms, step.ended_ms = STEP_FAILED, 0, ts
        step.error, step.error_class = f"poisoned: {why}"[:MAX_EVENT_MESSAGE], ERROR_POISONED
        self._fail_or_compensate(wf, ts, f"step {step.id} is poisoned: {why}", node, ERROR_POISONED, dlq_max)

    def _fail_or_compensate(
        self, wf: WorkflowState, ts: int, error: str, node: str, error_class: str, dlq_max: int | None
    ) -> None:
        """A final failure: the workflow fails, or (saga) first runs the compensations of its succeeded
        steps, newest completion first. A terminal failure (FINAL_ERRORS) is never compensated."""
        done = _compensable(wf)
        if not done or error_class in FINAL_ERRORS:
            self._finish(wf, WORKFLOW_FAILED, ts, error, node, dlq_max)
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
        entry = next((c for c in wf.compensations if c[1] != COMPENSATION_SUCCEEDED), None)
        if entry is None:
            return Result("FAILED_PRECONDITION", f"workflow {wf.id} has no compensation left to run")
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
        # Dead-lettered (kind compensation_failed) under the default bound: the command carries none.
        self._finish(
            wf, WORKFLOW_COMPENSATION_FAILED, ts, message[:MAX_EVENT_MESSAGE], cmd.node, DLQ_MAX_DEFAULT
        )
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
            self._fail_or_compensate(wf, cmd.ts, reason, cmd.node, "cancelled", None)
            return Result("OK", data={"cancelled": True, "compensating": True})
        self._finish(wf, WORKFLOW_CANCELLED, cmd.ts, reason, cmd.node)
        return Result("OK", data={"cancelled": True})

    def _finish(
        self, wf: WorkflowState, status: str, ts: int, error: str, node: str, dlq_max: int | None = None
    ) -> None:
        """End the workflow; a final failure with ``dlq_max`` (or a failed retry) is dead-lettered."""
        assert not wf.terminal, "a terminal workflow never changes"
        wf.status, wf.error, wf.updated_ms = status, error, ts
        wf.paused = ""  # a finished workflow is not paused (a retry starts it unpaused)
        for step in wf.steps.values():
            if step.status not in TERMINAL_STEP:
                step.status, step.next_ms = STEP_CANCELLED, 0
        self._disown(wf)
        heapq.heappush(self.finished_heap, (ts, wf.id))
        self.counters[status] = self.counters.get(status, 0) + 1  # saga outcomes: counted once they happen
        final = status in (WORKFLOW_FAILED, WORKFLOW_COMPENSATION_FAILED)
        if wf.id in self.dlq_open or (final and dlq_max is not None):
            self._dead_letter(wf, ts, node, dlq_max)
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
        self._finish(wf, WORKFLOW_FAILED, cmd.ts, cmd.reason[:MAX_EVENT_MESSAGE], cmd.node, cmd.dlq_max)
        return Result("OK")

    def _gc(self, cmd: Gc) -> Result:
        """Forget terminal workflows finished before `before`, and the oldest beyond `keep_max`.

        At most ``cmd.limit`` (default ``GC_BATCH_MAX``) per command, so one entry's apply time is bounded.
        """
        collected = self._gc_by_completion(cmd) if cmd.by_completion else self._gc_by_scan(cmd)
        return Result("OK", data={"collected": collected})

    def _gc_by_completion(self, cmd: Gc) -> int:
        """O(collected): the oldest finished workflows first, stopping at the first one still kept."""
        finished = self.finished_heap
        terminal = self._finished_count()
        collected = 0
        while finished and collected < cmd.limit:
            finished_ms, wf_id = finished[0]
            wf = self.workflows.get(wf_id)
            if wf is None or not wf.terminal or wf.updated_ms != finished_ms or wf_id in self.dlq_open:
                # Collected already, changed since it finished, or kept for its open dead-letter entry
                # (closing the entry files it again).
                heapq.heappop(finished)
                continue
            if terminal - collected <= cmd.keep_max and finished_ms >= cmd.before:
                break
            heapq.heappop(finished)
            self._forget(wf)
            collected += 1
        return collected

    def _gc_by_scan(self, cmd: Gc) -> int:
        """The first version's rule, kept for its log entries: O(workflows), oldest submitted first."""
        # A workflow with an open dead-letter entry is kept until the entry is closed.
        terminal = [wf for wf in self.workflows.values() if wf.terminal and wf.id not in self.dlq_open]
        excess = max(0, len(terminal) - cmd.keep_max)
        doomed = [wf for i, wf in enumerate(terminal) if i < excess or wf.updated_ms < cmd.before]
        for wf in doomed[: cmd.limit]:
            self._forget(wf)
        return min(len(doomed), cmd.limit)

    def _touch(self, wf_id: str) -> None:
        """``wf_id`` changed, appeared or went: what is derived from it must be brought up to date."""
        self._digest_stale.add(wf_id)
        self._unsettled_lines.pop(wf_id, None)  # its share is now the digest's to work out
        self.index.touch(wf_id)

    def _event(
        self, wf: WorkflowState, ts: int, kind: str, step: str, attempt: int, message: str, node: str
    ) -> None:
        wf.events.append((wf.next_seq, ts, kind, step, attempt, message[:MAX_EVENT_MESSAGE], node))
        wf.next_seq += 1
        if len(wf.events) > MAX_EVENTS_PER_WORKFLOW:
            del wf.events[0]
        self._changed.add(wf.id)
        self._touch(wf.id)
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

    # ------------------------------------------------- dead-letter queue and retry from the failed step
    def _dead_letter(self, wf: WorkflowState, ts: int, node: str, dlq_max: int | None) -> None:
        """Record a failed (or cancelled) end of ``wf`` in the dead-letter queue.

        Its open entry (a retry that failed again) goes back to pending, or resolved if it succeeded now;
        otherwise a new entry, after collecting the oldest closed entry when ``dlq_max`` are kept. A queue
        full of open entries counts the failure in ``dlq_overflow`` instead (never silently dropped).
        """
        failed = next((s for s in wf.steps.values() if s.status == STEP_FAILED), None)
        step_id = failed.id if failed else ""
        error_class = failed.error_class if failed else ""
        attempts = failed.attempts - failed.base if failed else 0
        entry_id = self.dlq_open.get(wf.id)
        if entry_id is not None:
            entry = self.dlq[entry_id]
            entry.updated_ms = ts
            if wf.status == WORKFLOW_SUCCEEDED:
                entry.state, entry.reason = DLQ_RESOLVED, "the workflow succeeded after a retry"
                del self.dlq_open[wf.id]
                return
            entry.state, entry.failures = DLQ_PENDING, entry.failures + 1
            entry.step, entry.error_class, entry.error, entry.attempts = (
                step_id,
                error_class,
                wf.error,
                attempts,
            )
            self._event(wf, ts, EVENT_DEAD_LETTERED, step_id, 0, f"entry {entry.id} is pending again", node)
            return
        assert dlq_max is not None
        limit = max(dlq_max, 1)
        while len(self.dlq) >= limit:
            oldest = next((e for e in self.dlq.values() if e.state not in DLQ_OPEN), None)
            if oldest is None:
                self.dlq_overflow += 1
                message = f"dead-letter queue full ({len(self.dlq)} open entries): not queued"
                self._notable(ts, EVENT_DEAD_LETTERED, wf.id, wf.name, step_id, message, node)
                return
            del self.dlq[oldest.id]
        self.dlq_seq += 1
        entry = DlqEntry(
            id=f"dlq-{self.dlq_seq}",
            wf=wf.id,
            name=wf.name,
            kind=(
                DLQ_KIND_COMPENSATION_FAILED
                if wf.status == WORKFLOW_COMPENSATION_FAILED
                else DLQ_KIND_WORKFLOW_FAILED
            ),
            state=DLQ_PENDING,
            step=step_id,
            error_class=error_class,
            error=wf.error,
            attempts=attempts,
            created_ms=ts,
            updated_ms=ts,
        )
        self.dlq[entry.id] = entry
        self.dlq_open[wf.id] = entry.id
        self._event(wf, ts, EVENT_DEAD_LETTERED, step_id, 0, f"entry {entry.id}", node)

    def _retry(self, cmd: Retry) -> Result:
        """Run a finished, unsuccessful workflow again from its failed step (see :class:`Retry`)."""
        wf = self.workflows.get(cmd.wf)
        if wf is None:
            return Result("NOT_FOUND", f"workflow {cmd.wf!r} not found")
        if wf.retries == cmd.seen + 1:  # this retry, proposed again after an unknown outcome
            return Result("OK", data={"epoch": wf.epoch, "duplicate": True, "owner": wf.owner})
        if not wf.terminal:
            return Result(
                "FAILED_PRECONDITION", f"workflow {wf.id} is {wf.status}: only a finished one is retried"
            )
        if wf.status == WORKFLOW_SUCCEEDED and cmd.from_step is None:
            return Result(
                "FAILED_PRECONDITION", f"workflow {wf.id} succeeded: give from_step to run steps again"
            )
        if cmd.seen != wf.retries:
            return Result(
                "ABORTED", f"workflow {wf.id} was retried since (retries {wf.retries}, seen {cmd.seen})"
            )
        if cmd.from_step is not None and cmd.from_step not in wf.steps:
            return Result("NOT_FOUND", f"retry.from_step: workflow {wf.id} has no step {cmd.from_step!r}")
        owner = wf.owner if wf.owner in self.members and self.members[wf.owner].alive else self._place()
        if owner is None:
            return Result("UNAVAILABLE", "no live node to own the workflow")
        reset = {s.id for s in wf.steps.values() if s.status != STEP_SUCCEEDED}
        if cmd.from_step is not None:
            reset |= downstream_steps(wf.spec, cmd.from_step)
        previous = wf.status
        self.reopened[previous] = self.reopened.get(previous, 0) + 1
        wf.status, wf.error, wf.updated_ms = WORKFLOW_RUNNING, "", cmd.ts
        wf.compensations = []  # a saga cut short (cancelled, aborted) belongs to the run that ended
        wf.epoch += 1
        wf.retries += 1
        wf.retried_ms = cmd.ts
        self._own(wf, owner)
        for step in wf.steps.values():
            if step.id in reset:
                step.status, step.base, step.next_ms, step.deliveries = STEP_PENDING, step.attempts, 0, 0
                step.output_json, step.error, step.error_class = "", "", ""
                step.started_ms = step.ended_ms = step.first_ms = 0
        entry_id = self.dlq_open.get(wf.id)
        if entry_id is not None:
            entry = self.dlq[entry_id]
            entry.state, entry.retries, entry.updated_ms = DLQ_RETRYING, entry.retries + 1, cmd.ts
        rerun = ", ".join(s for s in wf.steps if s in reset)
        reason = cmd.reason or "retried by request"
        message = f"{previous} -> running (epoch {wf.epoch}, owner {owner}); re-run {rerun}: {reason}"
        self._event(wf, cmd.ts, EVENT_RETRIED, cmd.from_step or "", 0, message, cmd.node)
        return Result(
            "OK", data={"epoch": wf.epoch, "duplicate": False, "owner": owner, "entry": entry_id or ""}
        )

    def _dlq_close(self, cmd: DlqClose) -> Result:
        """An operator closes a pending entry (final: a closed entry never reopens)."""
        entry = self.dlq.get(cmd.entry)
        if entry is None:
            return Result("NOT_FOUND", f"dead-letter entry {cmd.entry!r} not found")
        if entry.state == cmd.state:
            return Result("OK", data={"changed": False})
        if entry.state != DLQ_PENDING:
            return Result("FAILED_PRECONDITION", f"entry {entry.id} is {entry.state}, not pending")
        entry.state, entry.reason, entry.updated_ms, entry.by = cmd.state, cmd.reason, cmd.ts, cmd.node
        del self.dlq_open[entry.wf]
        wf = self.workflows.get(entry.wf)
        if wf is not None and wf.terminal:
            heapq.heappush(self.finished_heap, (wf.updated_ms, wf.id))  # collectable again
        self._notable(cmd.ts, f"dlq_{cmd.state}", entry.wf, entry.name, entry.step, cmd.reason, cmd.node)
        return Result("OK", data={"changed": True})

    def _pause(self, cmd: Pause) -> Result:
        """No new attempts until resumed; running ones finish. Idempotent (a paused one stays as it is)."""
        wf = self.workflows.get(cmd.wf)
        if wf is None:
            return Result("NOT_FOUND", f"workflow {cmd.wf!r} not found")
        if wf.terminal:
            return Result(
                "FAILED_PRECONDITION", f"workflow {wf.id} is {wf.status}: only a running one pauses"
            )
        if wf.paused:
            return Result("OK", data={"changed": False})
        wf.paused = (cmd.reason or "paused by request")[:MAX_EVENT_MESSAGE]
        wf.updated_ms = cmd.ts
        self._event(wf, cmd.ts, EVENT_PAUSED, "", 0, wf.paused, cmd.node)
        return Result("OK", data={"changed": True})

    def _resume(self, cmd: Resume) -> Result:
        """Attempts may start again. Idempotent; a finished workflow is FAILED_PRECONDITION."""
        wf = self.workflows.get(cmd.wf)
        if wf is None:
            return Result("NOT_FOUND", f"workflow {cmd.wf!r} not found")
        if wf.terminal:
            return Result("FAILED_PRECONDITION", f"workflow {wf.id} is {wf.status}")
        if not wf.paused:
            return Result("OK", data={"changed": False})
        wf.paused, wf.updated_ms = "", cmd.ts
        self._event(wf, cmd.ts, EVENT_RESUMED, "", 0, "", cmd.node)
        return Result("OK", data={"changed": True})

    def _expire(self, cmd: Expire) -> Result:
        """The deadline passed (by the proposer's clock in ``ts``): running and waiting attempts are
        abandoned (their late results find the workflow finished), the workflow fails and is dead-lettered."""
        wf, err = self._fenced_workflow(cmd, "expire with ")
        if err is not None:
            return err
        assert wf is not None
        if cmd.step is not None:
            return self._expire_step(wf, cmd, cmd.step)
        deadline = wf.deadline_ms
        if not deadline:
            return Result("FAILED_PRECONDITION", f"workflow {wf.id} has no deadline (no timeout)")
        if cmd.ts < deadline:
            return Result(
                "FAILED_PRECONDITION", f"deadline of {wf.id} is {deadline}, not reached at {cmd.ts}"
            )
        stopped = []
        for step in wf.steps.values():
            if step.status in (STEP_RUNNING, STEP_RETRY_WAIT):
                step.status, step.next_ms, step.ended_ms = STEP_FAILED, 0, cmd.ts
                step.error, step.error_class = "the workflow's deadline passed", ERROR_DEADLINE_EXCEEDED
                stopped.append(step.id)
        timeout_s = (wf.spec.timeout_ms or 0) / 1000
        message = f"deadline exceeded: timeout {timeout_s:g}s passed" + (
            f" while {', '.join(stopped)} ran" if stopped else ""
        )
        self._event(wf, cmd.ts, EVENT_DEADLINE_EXCEEDED, "", 0, message, cmd.node)
        self._finish(wf, WORKFLOW_FAILED, cmd.ts, message, cmd.node, cmd.dlq_max)
        return Result("OK", data={"stopped": stopped})

    def _expire_step(self, wf: WorkflowState, cmd: Expire, step_id: str) -> Result:
        """A step's ``deadline`` passed (by ``cmd.ts``) while it ran or waited to retry: it fails with
        ``deadline_exceeded``, whatever its retry policy says, and so does the workflow (dead-lettered)."""
        step = wf.steps.get(step_id)
        if step is None:
            return Result("NOT_FOUND", f"step {step_id!r} not found")
        deadline = wf.step_deadline_ms(step)
        if not deadline:
            return Result("FAILED_PRECONDITION", f"step {step_id} has no deadline running")
        if step.status not in (STEP_RUNNING, STEP_RETRY_WAIT):
            return Result("FAILED_PRECONDITION", f"step {step_id} is {step.status}")
        if cmd.ts < deadline:
            return Result(
                "FAILED_PRECONDITION", f"deadline of step {step_id} is {deadline}, not reached at {cmd.ts}"
            )
        deadline_s = (wf.spec.step(step_id).deadline_ms or 0) / 1000
        attempts = step.attempts - step.base
        message = f"step deadline {deadline_s:g}s passed after {attempts} attempt(s)"
        step.status, step.next_ms, step.ended_ms = STEP_FAILED, 0, cmd.ts
        step.error, step.error_class = message, ERROR_DEADLINE_EXCEEDED
        self.counters["steps_failed"] += 1
        self._event(wf, cmd.ts, EVENT_DEADLINE_EXCEEDED, step_id, step.attempts, message, cmd.node)
        error = f"step {step_id} failed: [{ERROR_DEADLINE_EXCEEDED}] {message}"
        self._finish(wf, WORKFLOW_FAILED, cmd.ts, error, cmd.node, cmd.dlq_max)
        return Result("OK", data={"stopped": [step_id]})

    def _dlq_plain(self) -> dict[str, Any]:
        """The queue's part of :meth:`to_plain`, absent while unused (old logs keep their digests)."""
        if not (self.dlq or self.dlq_seq or self.dlq_overflow or self.reopened):
            return {}
        return {
            "dlq": {
                "entries": [e.to_plain() for e in self.dlq.values()],
                "seq": self.dlq_seq,
                "overflow": self.dlq_overflow,
                "reopened": dict(self.reopened),
            }
        }

    def dlq_counts(self) -> dict[str, int]:
        """Dead-letter entries by state (``dlq_pending``, ...), ``dlq_overflow`` and ``reopened``: for the
        dashboard's counters. O(entries), bounded by ``dlq_max``."""
        counts = {f"dlq_{state}": 0 for state in sorted(DLQ_STATES)}
        for entry in self.dlq.values():
            counts[f"dlq_{entry.state}"] += 1
        counts["dlq_overflow"] = self.dlq_overflow
        counts["reopened"] = sum(self.reopened.values())
        return counts

    def running_count(self) -> int:
        c = self.counters
        saga = c.get(WORKFLOW_COMPENSATED, 0) + c.get(WORKFLOW_COMPENSATION_FAILED, 0)
        reopened = sum(self.reopened.values())
        return c["submitted"] - c["succeeded"] - c["failed"] - c["cancelled"] - saga + reopened

    # ---------------------------------------------------------------- queries
    def find(self, query: Query) -> Iterator[WorkflowState]:
        """Workflows matching ``query``, newest first. Only the smallest index list the query's status,
        name and labels select is visited, so a page costs O(log n + page) plus what other filters skip."""
        self.index.refresh(self.workflows)
        key = self._list_for(query)
        for wf_id in self.index.newest_first(key):
            wf = self.workflows[wf_id]
            if query.matches(wf):
                yield wf

    def page(self, query: Query, offset: int, size: int) -> tuple[list[WorkflowState], int]:
        """A page of :meth:`find` and how many match in all: O(log n + page) when the query is one index
        list exactly (a status, a name, both, or one label), else O(that list)."""
        self.index.refresh(self.workflows)
        key = self._list_for(query)
        if query.selects_exactly(key):
            ids = itertools.islice(self.index.newest_first(key, offset), size)
            return [self.workflows[wf_id] for wf_id in ids], self.index.size(key)
        page, total = [], 0
        for wf in self.find(query):
            if offset <= total < offset + size:
                page.append(wf)
            total += 1
        return page, total

    def count(self, query: Query) -> int:
        return self.page(query, 0, 0)[1]

    def _list_for(self, query: Query) -> ListKey:
        keys: list[ListKey] = [("label", f"{k}={v}") for k, v in query.labels]
        if query.status and query.name:
            keys.append(("status+name", f"{query.status}/{query.name}"))
        elif query.status:
            keys.append(("status", query.status))
        elif query.name:
            keys.append(("name", query.name))
        return min(keys, key=self.index.size) if keys else ALL

    def owned_by(self, node: str) -> int:
        return self.owned.get(node, 0)

    def gc_due(self, before: int, keep_max: int) -> bool:
        """Whether a ``gc`` by completion would forget anything (O(nodes); may say yes needlessly)."""
        due = self._finished_count() > keep_max
        return due or bool(self.finished_heap and self.finished_heap[0][0] < before)

    def _finished_count(self) -> int:
        """Finished workflows in state: O(nodes), since ``owned`` counts every unfinished one."""
        return len(self.workflows) - sum(self.owned.values())

    # ------------------------------------------------------ snapshot & digest
    def to_plain(self, bulk: bool = True) -> dict[str, Any]:
        """The whole state as plain data; ``bulk=False`` leaves out workflows and request ids (a snapshot
        copies those its own way)."""
        plain = self._small_plain()
        plain["specs"] = [[h, self.specs[h].plain] for h in sorted(self.specs)]
        plain["workflows"] = [wf.to_plain() for wf in self.workflows.values()] if bulk else []
        plain["request_ids"] = list(self.request_ids.items()) if bulk else []
        return plain

    def _small_plain(self) -> dict[str, Any]:
        """The parts of the state whose size is bounded by a constant (the digest encodes them whole)."""
        return {
            "v": SNAPSHOT_VERSION,
            "members": [m.to_plain() for m in self.members.values()],
            "counters": dict(self.counters),
            "notable": [list(n) for n in self.notable],
            "chaos_monkey": dict(self.chaos_monkey),
            # Only when used, so states without removals keep their encoding and digest.
            **({"removed": sorted(self.removed)} if self.removed else {}),
        } | self._dlq_plain()

    @classmethod
    def from_plain(
        cls,
        p: Mapping[str, Any],
        encoded: Mapping[str, bytes] | None = None,
        *,
        check_finished: bool = True,
        packed: Iterable[tuple[list[Any], bytes]] = (),
    ) -> StateMachine:
        """The state :meth:`to_plain` gave; ``encoded`` may hold each workflow's canonical encoding (as a
        snapshot file keeps them), which spares hashing them again for the digest.

        ``packed``: more workflows, each as its summary and canonical line
        (:mod:`beamflowd.core.packed_workflows`); finished ones are decoded in full only when first read.

        ``check_finished=False``: each finished workflow's own invariants are left to the caller, who
        checks them later (:func:`~beamflowd.core.invariants.check_workflow`); the rest is checked here.
        """
        from beamflowd.core.packed_workflows import restore_workflow  # circular at module level

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
        for summary, line in packed:
            entry = sm.specs[summary[2]]
            entry.refs += 1
            wf = restore_workflow(summary, line, entry.spec)
            sm.workflows[wf.id] = wf
            if not wf.terminal:
                sm._own(wf, wf.owner)
        sm.request_ids = {rid: wf for rid, wf in p["request_ids"]}
        sm.counters.update(p["counters"])
        sm.notable = [(n[0], n[1], n[2], n[3], n[4], n[5], n[6]) for n in p["notable"]]
        sm.chaos_monkey = dict(p.get("chaos_monkey", {}))  # absent in snapshots older than the monkey
        sm._rebuild_derived(encoded or {})
        sm.removed = set(p.get("removed", ()))
        dlq = p.get("dlq")  # absent in snapshots without dead letters or retries
        if dlq is not None:
            for ep in dlq["entries"]:
                dead = DlqEntry.from_plain(ep)
                sm.dlq[dead.id] = dead
                if dead.state in DLQ_OPEN:
                    sm.dlq_open[dead.wf] = dead.id
            sm.dlq_seq, sm.dlq_overflow = dlq["seq"], dlq["overflow"]
            sm.reopened = dict(dlq["reopened"])
        # A snapshot that breaks an invariant (corrupt, or mis-migrated) must not start a node.
        from beamflowd.core.invariants import check_invariants  # circular at module level

        check_invariants(sm, finished_workflows=check_finished)
        return sm

    def load(self, other: StateMachine) -> None:
        """Replace this state in place (snapshot restore keeps references held by others valid)."""
        self.workflows, self.members, self.owned = other.workflows, other.members, other.owned
        self.owned_ids = other.owned_ids
        self.request_ids, self.counters = other.request_ids, other.counters
        self.specs = other.specs
        self.notable = other.notable
        self.chaos_monkey = other.chaos_monkey
        self._wf_hash, self._wf_sum = other._wf_hash, other._wf_sum
        self._rid_sum, self._spec_sum = other._rid_sum, other._spec_sum
        self._digest_stale, self.finished_heap = other._digest_stale, other.finished_heap
        self._unsettled_lines, self._unsettled_requests = other._unsettled_lines, other._unsettled_requests
        self.index = other.index
        self.removed = other.removed
        self.dlq, self.dlq_open = other.dlq, other.dlq_open
        self.dlq_seq, self.dlq_overflow, self.reopened = other.dlq_seq, other.dlq_overflow, other.reopened
        self._changed = set(self.workflows)
        self.revision += 1

    def _rebuild_derived(self, encoded: Mapping[str, bytes]) -> None:
        """Recompute what is derived from the state (after a restore): O(state), once."""
        self._wf_hash, self._wf_sum = {}, MultisetHash()
        self._digest_stale = {wf_id for wf_id in self.workflows if wf_id not in encoded}
        self._unsettled_lines = {wf_id: line for wf_id, line in encoded.items() if wf_id in self.workflows}
        self._rid_sum, self._spec_sum = MultisetHash(), MultisetHash()
        self._unsettled_requests = dict(self.request_ids)
        for spec_hash in self.specs:
            self._spec_sum.add(_spec_element(spec_hash))
        self.finished_heap = [(wf.updated_ms, wf.id) for wf in self.workflows.values() if wf.terminal]
        heapq.heapify(self.finished_heap)
        self.index.rebuild(self.workflows)

    def digest(self) -> str:
        """Equal on replicas that applied the same log; O(workflows changed since the last call).

        SHA-256 over the small parts of the state and order-free hashes of the large ones (workflows,
        request ids, definitions), each kept current by ``apply``. :meth:`full_digest` recomputes it from
        scratch; tests prove the two agree.
        """
        self.settle_restored()
        for wf_id in self._digest_stale:
            wf = self.workflows.get(wf_id)
            self._set_digest_element(wf_id, None if wf is None else _workflow_element(wf))
        self._digest_stale = set()
        return self._digest_of(self._wf_sum, self._rid_sum, self._spec_sum)

    def settle_restored(self, limit: int | None = None) -> int:
        """Add the digest shares of at most ``limit`` (None: all) restored workflows and request ids not
        added yet; returns how many are left. A background thread calls it a chunk per hold of the lock."""
        lines, requests = self._unsettled_lines, self._unsettled_requests
        budget = len(lines) + len(requests) if limit is None else limit
        while lines and budget > 0:
            wf_id, line = lines.popitem()
            self._set_digest_element(wf_id, element_hash(line))
            budget -= 1
        while requests and budget > 0:
            rid, wf_id = requests.popitem()
            self._rid_sum.add(_request_element(rid, wf_id))
            budget -= 1
        return len(lines) + len(requests)

    def settle_digest(self, wf_id: str, encoded: bytes) -> None:
        """``encoded`` is ``encode_plain(wf.to_plain())`` of workflow ``wf_id`` as it is now: take its
        digest contribution from it, so :meth:`digest` (called under the state lock, on the status path)
        does not encode the workflow again. Whoever encodes workflows anyway (the snapshot encoder) keeps
        the work :meth:`digest` has left to the few changed since."""
        if wf_id not in self._digest_stale:
            return
        self._digest_stale.discard(wf_id)
        self._set_digest_element(wf_id, element_hash(encoded))

    def _set_digest_element(self, wf_id: str, element: int | None) -> None:
        """Replace workflow ``wf_id``'s share of the running digest (``None``: it is gone)."""
        old = self._wf_hash.pop(wf_id, None)
        if old is not None:
            self._wf_sum.remove(old)
        if element is not None:
            self._wf_hash[wf_id] = element
            self._wf_sum.add(element)

    def full_digest(self) -> str:
        """:meth:`digest` computed from the whole state (O(state)): what the running digest must equal."""
        workflows, rids, specs = MultisetHash(), MultisetHash(), MultisetHash()
        for wf in self.workflows.values():
            workflows.add(_workflow_element(wf))
        for rid, wf_id in self.request_ids.items():
            rids.add(_request_element(rid, wf_id))
        for spec_hash in self.specs:
            specs.add(_spec_element(spec_hash))
        return self._digest_of(workflows, rids, specs)

    def _digest_of(self, workflows: MultisetHash, rids: MultisetHash, specs: MultisetHash) -> str:
        rest = self._small_plain()
        rest["specs"] = specs.hexdigest()
        rest["workflows"] = workflows.hexdigest()
        rest["request_ids"] = rids.hexdigest()
        return hashlib.sha256(encode_plain(rest)).hexdigest()

    def canonical_digest(self) -> str:
        """SHA-256 of the whole canonical encoding (O(state)): the first version's digest, which the
        recorded logs of ``tests/fixtures/recorded`` pin."""
        return hashlib.sha256(encode_plain(self.to_plain())).hexdigest()

    # ------------------------------------------------------------ membership
    def _member_add(self, cmd: MemberAdd) -> Result:
        """Known, not alive: placement ignores it until its own ``join`` (which also sets its heartbeat)."""
        member = self.members.get(cmd.node)
        if member is not None:
            if (member.raft_addr, member.grpc_addr) == (cmd.raft, cmd.grpc):
                return Result("OK", data={"added": False})
            return Result(
                "ALREADY_EXISTS",
                f"node: {cmd.node!r} is already a member (raft {member.raft_addr}, grpc {member.grpc_addr})",
            )
        for other in self.members.values():
            if other.raft_addr == cmd.raft:
                return Result("ALREADY_EXISTS", f"raft: {cmd.raft} is the address of member {other.id!r}")
            if other.grpc_addr == cmd.grpc:
                return Result("ALREADY_EXISTS", f"grpc: {cmd.grpc} is the address of member {other.id!r}")
        self.members[cmd.node] = Member(cmd.node, cmd.raft, cmd.grpc, cmd.ts, False, 0)
        self.owned.setdefault(cmd.node, 0)
        self.removed.discard(cmd.node)
        self._notable(cmd.ts, EVENT_MEMBER_ADDED, "", "", "", f"member {cmd.node} added", cmd.by)
        return Result("OK", data={"added": True})

    def _member_remove(self, cmd: MemberRemove) -> Result:
        """Its workflows move to live members as after a death (epoch + 1), then it is forgotten."""
        member = self.members.get(cmd.node)
        if member is None:
            return Result("OK", data={"removed": False, "moved": 0})
        others_alive = any(m.alive for n, m in self.members.items() if n != cmd.node)
        if not others_alive:
            return Result("FAILED_PRECONDITION", f"node: {cmd.node!r} is the last live member")
        member.alive = False
        moved = self._move_workflows_of(cmd.node, cmd.ts, cmd.by)
        del self.members[cmd.node]
        self.owned.pop(cmd.node, None)
        self.owned_ids.pop(cmd.node, None)
        self.removed.add(cmd.node)
        self._notable(cmd.ts, EVENT_MEMBER_REMOVED, "", "", "", f"member {cmd.node} removed", cmd.by)
        return Result("OK", data={"removed": True, "moved": moved})


@dataclass(frozen=True, slots=True)
class Query:
    """Filters of ``workflow list`` / ``count`` (all must hold; empty ones match everything)."""

    #: A status as clients see it (``paused`` for a paused running workflow), or "".
    status: str = ""
    name: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    #: Creation time bounds in ms (0: none): ``created_after <= created < created_before``.
    created_after_ms: int = 0
    created_before_ms: int = 0
    #: A step that failed, and/or an error class of a failed step.
    failed_step: str = ""
    error_class: str = ""

    def matches(self, wf: WorkflowState) -> bool:
        if self.status and wf.listed_status != self.status:
            return False
        if self.name and wf.name != self.name:
            return False
        if any(wf.labels.get(k) != v for k, v in self.labels):
            return False
        if wf.created_ms < self.created_after_ms or (
            self.created_before_ms and wf.created_ms >= self.created_before_ms
        ):
            return False
        if self.failed_step or self.error_class:
            failed = [s for s in wf.steps.values() if s.status == STEP_FAILED]
            if self.failed_step and not any(s.id == self.failed_step for s in failed):
                return False
            if self.error_class and not any(s.error_class == self.error_class for s in failed):
                return False
        return True

    def selects_exactly(self, key: ListKey) -> bool:
        """Whether the index list ``key`` holds exactly the workflows this query matches."""
        rest = (self.created_after_ms, self.created_before_ms, self.failed_step, self.error_class)
        if any(rest):
            return False
        kind, value = key
        if kind == "label":
            return not self.status and not self.name and [f"{k}={v}" for k, v in self.labels] == [value]
        if self.labels:
            return False
        return {
            "all": not self.status and not self.name,
            "status": bool(self.status) and not self.name,
            "name": bool(self.name) and not self.status,
            "status+name": bool(self.status and self.name),
        }[kind]


@dataclass(slots=True)
class DlqEntry:
    """A workflow that failed for good, waiting for an operator (retry, resolve or abandon)."""

    id: str
    wf: str
    name: str
    kind: str
    state: str
    #: The failed step ("" when the workflow was aborted), its error class and attempts (since a retry).
    step: str
    error_class: str
    error: str
    attempts: int
    created_ms: int
    updated_ms: int
    #: Times its workflow failed again after a retry, and was retried.
    failures: int = 1
    retries: int = 0
    #: Why it was closed, and by which node.
    reason: str = ""
    by: str = ""

    def to_plain(self) -> list[Any]:
        return [
            self.id,
            self.wf,
            self.name,
            self.kind,
            self.state,
            self.step,
            self.error_class,
            self.error,
            self.attempts,
            self.created_ms,
            self.updated_ms,
            self.failures,
            self.retries,
            self.reason,
            self.by,
        ]

    @classmethod
    def from_plain(cls, p: list[Any]) -> DlqEntry:
        return cls(*p)


@dataclass(slots=True)
class SpecEntry:
    spec: WorkflowSpec
    plain: dict[str, Any]
    refs: int


def spec_digest(plain: Mapping[str, Any]) -> str:
    """Content address of a definition: the first hex digits of SHA-256 over its canonical JSON."""
    return hashlib.sha256(encode_plain(plain)).hexdigest()[:SPEC_HASH_HEX_DIGITS]


def _workflow_element(wf: WorkflowState) -> int:
    return element_hash(encode_plain(wf.to_plain()))


def _request_element(rid: str, wf_id: str) -> int:
    return element_hash(f"{rid}\0{wf_id}".encode())


def _spec_element(spec_hash: str) -> int:
    return element_hash(spec_hash.encode())


def encode_plain(plain: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace. Used for the digest and for snapshots."""
    return json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()


def downstream_steps(spec: WorkflowSpec, step_id: str) -> set[str]:
    """``step_id`` and every step that needs it, directly or not (definition order is topological)."""
    found = {step_id}
    for step in spec.steps:
        if any(need in found for need in step.needs):
            found.add(step.id)
    return found


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
    MemberAdd: StateMachine._member_add,
    MemberRemove: StateMachine._member_remove,
    Abort: StateMachine._abort,
    Gc: StateMachine._gc,
    ChaosMonkey: StateMachine._chaos_monkey,
    Retry: StateMachine._retry,
    DlqClose: StateMachine._dlq_close,
    Pause: StateMachine._pause,
    Resume: StateMachine._resume,
    Expire: StateMachine._expire,
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
