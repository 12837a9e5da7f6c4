"""Properties every state must have, whatever log led to it: checked in the product, not only in tests.

Run after every snapshot restore (a corrupt or mis-migrated snapshot must not start a node), and after
every applied Raft entry when the daemon runs with ``--debug-invariants`` (the test harness does). A
violation raises :class:`InvariantViolation`; inside ``apply`` that is fatal (fail-stop), because a
state that breaks them is a bug that could make replicas diverge.

The checks are O(state): too slow to run on every entry of a production cluster, cheap enough per restore.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from beamflowd.core.scheduling import RUN, WAIT, branch_in_output
from beamflowd.core.signals import SIGNAL_IDS_MAX, SIGNALS_BUFFERED_MAX
from beamflowd.core.spec import FOR_EACH_ITEMS_MAX
from beamflowd.core.state import MAX_EVENTS_PER_WORKFLOW, MAX_NOTABLE_EVENTS, step_verdict
from beamflowd.core.vocabulary import (
    COMPENSATION_FAILED,
    COMPENSATION_PENDING,
    COMPENSATION_RETRY_WAIT,
    COMPENSATION_RUNNING,
    COMPENSATION_SUCCEEDED,
    DLQ_KINDS,
    DLQ_OPEN,
    DLQ_PENDING,
    DLQ_RETRYING,
    DLQ_STATES,
    DONE_STEP,
    ERROR_POISONED,
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

if TYPE_CHECKING:
    from beamflowd.core.state import StateMachine, WorkflowState

#: Steps in these statuses have run at least once, so everything they need had succeeded.
RAN = frozenset({STEP_RUNNING, STEP_RETRY_WAIT, STEP_SUCCEEDED, STEP_FAILED})


class InvariantViolation(AssertionError):
    """The state breaks a property that every reachable state has: a bug, never a user error."""


def check_invariants(sm: StateMachine, *, finished_workflows: bool = True) -> None:
    """Raise :class:`InvariantViolation` naming the first broken property of ``sm``.

    ``finished_workflows=False`` checks every property of the state as a whole and of each running
    workflow, but leaves each finished workflow's own properties to :func:`check_workflow` later: after a
    restore they are most of the cost and nothing acts on them but reads and GC.
    """
    live_members = {n for n, m in sm.members.items() if m.alive}
    tally = _Tally()
    in_heap = set(sm.finished_heap)
    dlq_open = sm.dlq_open
    # One pass over the workflows for everything the whole-state checks count: a restore of 100,000
    # workflows runs this before the node serves.
    for wf in sm.workflows.values():
        tally.by_status[wf.status] += 1
        tally.refs[wf.spec_hash] += 1
        if not wf.terminal:
            tally.owned_ids.setdefault(wf.owner, []).append(wf.id)
            check_workflow(sm, wf, live_members)
            continue
        if finished_workflows:
            check_workflow(sm, wf, live_members)
        if (wf.updated_ms, wf.id) not in in_heap and wf.id not in dlq_open:
            _fail(
                f"finished workflow {wf.id} (without an open dead letter) is missing from the heap"
                " GC takes them from"
            )
    _check_whole(sm, tally)


@dataclass
class _Tally:
    """What :func:`_check_whole` needs counted over all workflows."""

    #: Workflows per status.
    by_status: Counter[str] = field(default_factory=Counter)
    #: Ids of the running workflows per owner.
    owned_ids: dict[str, list[str]] = field(default_factory=dict)
    #: Workflows per definition hash.
    refs: Counter[str] = field(default_factory=Counter)


def check_workflow(sm: StateMachine, wf: WorkflowState, live_members: set[str] | None = None) -> None:
    """Raise :class:`InvariantViolation` naming the first broken property of one workflow of ``sm``."""
    if live_members is None:
        live_members = {n for n, m in sm.members.items() if m.alive}
    where = f"workflow {wf.id}"
    if list(wf.steps) != [s.id for s in wf.spec.steps]:
        _fail(f"{where}: steps {list(wf.steps)} differ from its definition's")
    statuses = {s.status for s in wf.steps.values()}
    if not wf.terminal:
        if wf.status != WORKFLOW_RUNNING:
            _fail(f"{where}: unknown status {wf.status!r}")
        if wf.owner not in sm.members:
            _fail(f"{where}: owned by non-member {wf.owner!r}")
        if live_members and wf.owner not in live_members:
            _fail(f"{where}: owned by dead {wf.owner} while {sorted(live_members)} are alive")
        if statuses & {STEP_FAILED, STEP_CANCELLED} and not wf.compensations:
            _fail(f"{where}: running with failed or cancelled steps {sorted(statuses)}")
    elif wf.paused:
        _fail(f"{where}: {wf.status} but paused")
    elif not statuses <= TERMINAL_STEP:
        _fail(f"{where}: {wf.status} with unfinished steps {sorted(statuses)}")
    if (wf.status == WORKFLOW_SUCCEEDED) != (statuses <= DONE_STEP):
        _fail(f"{where}: status {wf.status} with steps {sorted(statuses)}")
    for step in wf.steps.values():
        spec = wf.spec.step(step.id)
        if not 0 <= step.base <= step.attempts <= step.base + spec.retry.max_attempts:
            _fail(
                f"{where} step {step.id}: {step.attempts} attempts ({step.base} before a retry),"
                f" at most {spec.retry.max_attempts} since"
            )
        if step.status in RAN:
            if step.attempts < 1:
                _fail(f"{where} step {step.id}: {step.status} without an attempt")
            if step_verdict(wf, step.id) != RUN:
                _fail(f"{where} step {step.id}: {step.status} but its needs {spec.needs} do not let it run")
        if step.status == STEP_PENDING and step.attempts != step.base:
            _fail(f"{where} step {step.id}: pending after {step.attempts} attempts ({step.base} before)")
        if step.deliveries < 0 or (step.deliveries and step.attempts < 1):
            _fail(f"{where} step {step.id}: {step.deliveries} deliveries after {step.attempts} attempts")
        if step.status == STEP_SKIPPED:
            # A skipped step never ran since it was last reset (a retry keeps the attempts of earlier runs
            # as its base), and was skipped only once its needs were done: by its needs, or (when they let
            # it run) by its own false condition.
            if step.attempts != step.base or step.output_json:
                _fail(f"{where} step {step.id}: skipped after {step.attempts} attempts ({step.base} before)")
            decided = step_verdict(wf, step.id)
            if decided == WAIT or (decided == RUN and spec.when is None):
                _fail(f"{where} step {step.id}: skipped, its needs say {decided}, it has no condition")
        if spec.branches and step.status == STEP_SUCCEEDED:
            taken = branch_in_output(step.output_json)
            if taken not in spec.branches:
                _fail(f"{where} choice {step.id}: output names {taken!r}, not one of {spec.branches}")
            for branch in spec.branches:  # exactly one branch may run
                if branch != taken and wf.steps[branch].status in RAN:
                    _fail(f"{where} choice {step.id} took {taken} but branch {branch} ran")
        if step.items:
            if spec.for_each is None or len(step.items) > FOR_EACH_ITEMS_MAX or step.attempts < 1:
                _fail(f"{where} step {step.id}: {len(step.items)} items recorded")
            if step.status == STEP_SUCCEEDED and (
                not all(step.items) or step.output_json != "[" + ",".join(step.items) + "]"
            ):
                _fail(f"{where} step {step.id}: succeeded without every item's output, in order")
        if step.error_class == ERROR_POISONED and step.status != STEP_FAILED:
            _fail(f"{where} step {step.id}: poisoned but {step.status}")
        if step.first_ms and (not spec.deadline_ms or step.attempts <= step.base):
            _fail(f"{where} step {step.id}: a deadline start without a deadline or an attempt")
    _check_compensations(wf, where)
    if len(wf.signals) > SIGNALS_BUFFERED_MAX or len(wf.signal_ids) > SIGNAL_IDS_MAX:
        _fail(f"{where}: {len(wf.signals)} buffered signals, {len(wf.signal_ids)} signal ids")
    waiting_for = {
        s.signal for s in wf.spec.steps if s.signal is not None and wf.steps[s.id].status == STEP_RUNNING
    }
    for sid, name, _, _ in wf.signals:
        if name in waiting_for:
            _fail(f"{where}: signal {sid} ({name}) is buffered while a step waits for it")
        if not any(s.signal == name for s in wf.spec.steps):
            _fail(f"{where}: signal {sid} ({name}) is buffered but no step waits for it")
    if len(wf.events) > MAX_EVENTS_PER_WORKFLOW:
        _fail(f"{where}: {len(wf.events)} events, at most {MAX_EVENTS_PER_WORKFLOW}")
    seqs = [e[0] for e in wf.events]
    if not all(a < b for a, b in itertools.pairwise(seqs)) or (seqs and seqs[-1] != wf.next_seq - 1):
        _fail(f"{where}: event sequence numbers out of order (next {wf.next_seq})")


def _check_whole(sm: StateMachine, tally: _Tally) -> None:
    """The properties of the state as a whole, given what :func:`check_invariants` counted."""
    owners = {n: len(ids) for n, ids in tally.owned_ids.items()}
    by_status = tally.by_status
    if {n: c for n, c in sm.owned.items() if c} != owners:
        _fail(f"owned counts {sm.owned} differ from the workflows' owners {owners}")
    if any(c < 0 for c in sm.owned.values()):
        _fail(f"negative owned count in {sm.owned}")
    indexed = {n: sorted(ids) for n, ids in sm.owned_ids.items() if ids}
    if indexed != {n: sorted(ids) for n, ids in tally.owned_ids.items()}:
        _fail("owned_ids index differs from the workflows' owners")
    if {h: e.refs for h, e in sm.specs.items()} != dict(tally.refs):
        _fail("definition reference counts differ from the workflows using them")
    if len(sm.notable) > MAX_NOTABLE_EVENTS:
        _fail(f"{len(sm.notable)} notable events, at most {MAX_NOTABLE_EVENTS}")
    if sm.removed & set(sm.members):
        _fail(f"removed members {sorted(sm.removed & set(sm.members))} are still members")
    collected = sm.counters["collected"]
    submitted = sm.counters["submitted"]
    if submitted != len(sm.workflows) + collected:
        _fail(f"submitted {submitted} != {len(sm.workflows)} workflows + {collected} collected")
    finished = sum(sm.counters.get(s, 0) for s in TERMINAL_WORKFLOW) - sum(sm.reopened.values())
    if finished != sum(by_status[s] for s in TERMINAL_WORKFLOW) + collected:
        _fail(f"finished counters {finished} differ from finished workflows + {collected} collected")
    if not collected:  # gc forgets workflows but not what the counters saw
        for status in sorted(TERMINAL_WORKFLOW):
            if sm.counters.get(status, 0) - sm.reopened.get(status, 0) != by_status[status]:
                _fail(f"counter {status} is {sm.counters.get(status, 0)}, {by_status[status]} workflows are")
        for rid, wf_id in sm.request_ids.items():
            submitted_wf = sm.workflows.get(wf_id)
            if submitted_wf is None or submitted_wf.request_id != rid:
                _fail(f"request id {rid} maps to {wf_id}, which was not submitted with it")
    _check_dead_letters(sm)


def _check_dead_letters(sm: StateMachine) -> None:
    """Open entries index their workflows one to one; a pending entry keeps a finished, unsuccessful
    workflow, a retrying one a running workflow; closed entries are in no index."""
    open_ids = {e.wf: e.id for e in sm.dlq.values() if e.state in DLQ_OPEN}
    if open_ids != sm.dlq_open:
        _fail(f"dead-letter index {sm.dlq_open} differs from the open entries {open_ids}")
    for entry in sm.dlq.values():
        where = f"dead-letter entry {entry.id}"
        if entry.state not in DLQ_STATES or entry.kind not in DLQ_KINDS:
            _fail(f"{where}: unknown state {entry.state!r} or kind {entry.kind!r}")
        if not entry.id.startswith("dlq-") or int(entry.id[4:]) > sm.dlq_seq:
            _fail(f"{where}: id beyond the sequence {sm.dlq_seq}")
        if entry.state not in DLQ_OPEN:
            continue
        wf = sm.workflows.get(entry.wf)
        if wf is None:
            _fail(f"{where}: {entry.state} but its workflow {entry.wf} was collected")
        elif entry.state == DLQ_PENDING and wf.status not in (
            WORKFLOW_FAILED,
            WORKFLOW_CANCELLED,
            WORKFLOW_COMPENSATION_FAILED,
        ):
            _fail(f"{where}: pending while its workflow is {wf.status}")
        elif entry.state == DLQ_RETRYING and wf.status != WORKFLOW_RUNNING:
            _fail(f"{where}: retrying while its workflow is {wf.status}")
    if sm.dlq_overflow < 0 or any(n < 0 for n in sm.reopened.values()):
        _fail(f"negative dead-letter overflow {sm.dlq_overflow} or reopened count {sm.reopened}")


#: The order a saga's compensations may be in: done ones, at most one in progress (or failed), then pending.
_DONE, _MOVING, _PENDING = (
    {COMPENSATION_SUCCEEDED},
    {COMPENSATION_RUNNING, COMPENSATION_RETRY_WAIT, COMPENSATION_FAILED},
    {COMPENSATION_PENDING},
)


def _check_compensations(wf: WorkflowState, where: str) -> None:
    """Compensations of succeeded steps with a ``compensate``, once each, newest completion first, one at
    a time; all succeeded exactly when the workflow is compensated, one failed when compensation_failed."""
    if not wf.compensations:
        if wf.status in (WORKFLOW_COMPENSATED, WORKFLOW_COMPENSATION_FAILED):
            _fail(f"{where}: {wf.status} without compensations")
        return
    ids = [c[0] for c in wf.compensations]
    if len(set(ids)) != len(ids):
        _fail(f"{where}: a step is compensated twice in {ids}")
    ended = []
    for sid, status, attempts, _, _ in wf.compensations:
        step = wf.steps[sid]
        compensate = wf.spec.step(sid).compensate
        if step.status != STEP_SUCCEEDED or compensate is None:
            _fail(f"{where}: compensation of {sid}, which is {step.status} or has nothing to compensate")
            return
        if not 0 <= attempts <= compensate.retry.max_attempts or (status == COMPENSATION_PENDING) != (
            attempts == 0
        ):
            _fail(f"{where}: compensation of {sid} is {status} after {attempts} attempts")
        ended.append(step.ended_ms)
    if ended != sorted(ended, reverse=True):
        _fail(f"{where}: compensations {ids} are not in reverse order of completion")
    kinds = [c[1] for c in wf.compensations]
    moving = [i for i, k in enumerate(kinds) if k in _MOVING]
    first_pending = next((i for i, k in enumerate(kinds) if k in _PENDING), len(kinds))
    if (
        len(moving) > 1
        or any(k in _DONE for k in kinds[first_pending:])
        or (moving and moving[0] > first_pending)
    ):
        _fail(f"{where}: compensations out of order: {kinds}")
    if (wf.status == WORKFLOW_COMPENSATED) != all(k in _DONE for k in kinds):
        _fail(f"{where}: {wf.status} with compensations {kinds}")
    if (wf.status == WORKFLOW_COMPENSATION_FAILED) != (COMPENSATION_FAILED in kinds):
        _fail(f"{where}: {wf.status} with compensations {kinds}")


def _fail(message: str) -> None:
    raise InvariantViolation(message)
