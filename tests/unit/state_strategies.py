"""Hypothesis strategies for :class:`beamflowd.core.state.StateMachine` commands.

Commands are drawn one at a time from the *current* state (``draw_command(draw, sm, ts)``), so most
of them are plausible (the current epoch, the next attempt, a running step) and some are deliberately
wrong (stale epochs, repeated attempts, unknown workflows and steps, duplicate request and workflow ids).

Every op has one builder in ``OP_BUILDERS``. Builders construct commands through
:mod:`beamflowd.core.commands` (wrong values are wrong field values, never wrong shapes) and return their
wire form, which is what the log holds and ``StateMachine.apply`` takes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from hypothesis import strategies as st

from beamflowd.core import commands as c
from beamflowd.core.scheduling import RUN, WAIT
from beamflowd.core.spec import parse_workflow
from beamflowd.core.state import StateMachine, StepState, WorkflowState, step_verdict
from beamflowd.core.vocabulary import STEP_PENDING, STEP_RETRY_WAIT, STEP_RUNNING

#: A command in its wire form, as the log holds it.
Plain = dict[str, Any]
Builder = Callable[[st.DrawFn, StateMachine, int], Plain]
T = TypeVar("T")

NODES = ("n1", "n2", "n3")
WORKFLOW_IDS = tuple(f"w{i}" for i in range(6))
REQUEST_IDS = tuple(f"r{i}" for i in range(8))
MISSING_WF = "w-missing"
ERROR_CLASSES = ("transient", "timeout", "permanent", "validation", "crashed", "memory")

SEQUENTIAL_YAML = """
name: sequential
steps:
  - {id: a, run: noop}
  - {id: b, run: noop, needs: [a]}
  - {id: c, run: noop, needs: [b]}
"""

DIAMOND_YAML = """
name: diamond
steps:
  - {id: start, run: noop}
  - {id: left, run: noop, needs: [start]}
  - {id: right, run: noop, needs: [start]}
  - {id: join, run: noop, needs: [left, right]}
"""

RETRY_YAML = """
name: flaky
retry: {max_attempts: 1}
steps:
  - id: call
    run: noop
    retry: {max_attempts: 3, initial_interval: 1s, non_retryable: [validation]}
  - {id: after, run: noop, needs: [call]}
"""

TIMED_YAML = """
name: timed
timeout: 2s
steps:
  - {id: a, run: noop, retry: {max_attempts: 2}}
  - {id: b, run: noop, needs: [a]}
"""

#: A choice with a default, a branch's dependent (skipped when its branch is not taken), a join of both
#: branches that runs when either ran (needs_policy any), and a condition.
BRANCHES_YAML = """
name: branches
steps:
  - {id: score, run: noop}
  - id: route
    run: choice
    needs: [score]
    with:
      cases:
        - {when: "${{ input.x == `1` }}", next: fast}
      default: slow
  - {id: fast, run: noop, needs: [route]}
  - {id: slow, run: noop, needs: [route]}
  - {id: notify, run: noop, needs: [slow]}
  - {id: done, run: noop, needs: [fast, notify], needs_policy: any}
  - {id: audit, run: noop, needs: [score], when: "${{ input.x == `1` }}"}
  - {id: report, run: noop, needs: [audit, done], needs_policy: all_done}
"""

#: Two waits for the same signal (one with a durable timeout): signals before, during and after them.
APPROVAL_YAML = """
name: approval
steps:
  - {id: prepare, run: noop}
  - {id: approve, run: wait, needs: [prepare], with: {signal: approval, timeout: 1h}}
  - {id: confirm, run: wait, needs: [approve], with: {signal: approval}}
  - {id: done, run: noop, needs: [confirm]}
"""

#: A fan-out over the input's list, then a step after it.
FANOUT_YAML = """
name: fanout
steps:
  - {id: each, run: noop, for_each: "${{ input.items }}", concurrency: 2, retry: {max_attempts: 2}}
  - {id: after, run: noop, needs: [each]}
"""

#: A saga: two compensable steps, then one that may fail for good.
SAGA_YAML = """
name: saga
steps:
  - {id: book, run: noop, compensate: {run: noop, retry: {max_attempts: 2}}}
  - {id: charge, run: noop, needs: [book], compensate: {run: noop, retry: {max_attempts: 2}}}
  - {id: ship, run: noop, needs: [charge], retry: {max_attempts: 1}}
"""

BOUNDED_YAML = """
name: bounded
steps:
  - id: call
    run: noop
    timeout: 1s
    deadline: 2s
    retry: {max_attempts: 4, initial_interval: 1s}
  - {id: after, run: noop, needs: [call], deadline: 5s}
"""

SPECS: dict[str, dict[str, Any]] = {
    name: parse_workflow(text, source=name).to_plain()
    for name, text in (
        ("sequential", SEQUENTIAL_YAML),
        ("diamond", DIAMOND_YAML),
        ("flaky", RETRY_YAML),
        ("timed", TIMED_YAML),
        ("branches", BRANCHES_YAML),
        ("approval", APPROVAL_YAML),
        ("fanout", FANOUT_YAML),
        ("saga", SAGA_YAML),
        ("bounded", BOUNDED_YAML),
    )
}
#: Outputs a succeed may carry: a choice's name one of its branches (or, wrongly, something else).
PLAIN_OUTPUTS = ('{"ok":true}', "1", '""')
CHOICE_OUTPUTS = ('{"branch":"fast"}', '{"branch":"slow"}', '{"branch":"slow"}', '{"branch":"nope"}', "1")


class History(list[Plain]):
    """A command log that prints compactly (a definition by name) when hypothesis reports a failure."""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.compact())

    def __repr__(self) -> str:
        return self.compact()

    def compact(self) -> str:
        lines = []
        for i, cmd in enumerate(self):
            fields = {k: (v.get("name", "?") if k == "spec" else v) for k, v in cmd.items() if k != "v"}
            lines.append(f"  {i:3d} {fields}")
        return "History([\n" + "\n".join(lines) + "\n])"


def join_cmd(node: str, ts: int) -> Plain:
    raft, grpc = f"127.0.0.1:{7000 + int(node[1:])}", f"127.0.0.1:{8000 + int(node[1:])}"
    return c.Join(node=node, raft=raft, grpc=grpc, ts=ts).to_plain()


def submit_cmd(
    rid: str,
    wf: str,
    spec: str,
    ts: int,
    node: str = "n1",
    input_json: str = "{}",
    start: c.Starts = (),
) -> Plain:
    return c.Submit(
        rid=rid, wf=wf, spec=SPECS[spec], input=input_json, ts=ts, node=node, start=start
    ).to_plain()


_STEP_OPS: dict[str, type[c.Start | c.Succeed | c.Fail]] = {
    "start": c.Start,
    "succeed": c.Succeed,
    "fail": c.Fail,
}


def step_cmd(
    op: str, wf: str, epoch: int, step: str, attempt: int, ts: int, node: str = "n1", **extra: Any
) -> Plain:
    """A start/succeed/fail command; ``extra`` holds the op's own fields (output, error, wake, ...)."""
    cls = _STEP_OPS[op]
    return cls(wf=wf, epoch=epoch, step=step, attempt=attempt, ts=ts, node=node, **extra).to_plain()


def cancel_cmd(wf: str, ts: int, node: str = "n1", reason: str = "") -> Plain:
    return c.Cancel(wf=wf, ts=ts, reason=reason, node=node).to_plain()


# ---------------------------------------------------------------------------------------------- targets
# Builders are plain functions of ``draw`` (not strategies built per command): building strategies from
# fresh lambdas for every command makes hypothesis re-read their source, which dominated the run time.
def _pick(draw: st.DrawFn, options: Sequence[T]) -> T:
    return draw(st.sampled_from(options))


def _epoch(draw: st.DrawFn, current: int) -> int:
    """Mostly the current epoch; sometimes an old one (stale owner) or one from the future."""
    return max(0, current + _pick(draw, EPOCH_OFFSETS))


EPOCH_OFFSETS = (0,) * 10 + (-1, 1)
START_OFFSETS = (1,) * 8 + (0, 2)
RESULT_OFFSETS = (0,) * 8 + (1, -1)

Target = tuple[str, int, str, int]


def _targets(sm: StateMachine, useful: Callable[[WorkflowState, StepState], bool] | None) -> list[Target]:
    """(wf, epoch, step, attempts) of every step, or of the steps ``useful`` accepts."""
    return [
        (wf.id, wf.epoch, step.id, step.attempts)
        for wf in sm.workflows.values()
        for step in wf.steps.values()
        if useful is None or useful(wf, step)
    ]


def startable(wf: WorkflowState, step: StepState) -> bool:
    return (
        not wf.terminal
        and step.status in (STEP_PENDING, STEP_RETRY_WAIT)
        and step_verdict(wf, step.id) == RUN
    )


def skippable(wf: WorkflowState, step: StepState) -> bool:
    """Pending with its needs done: its needs skip it, or (with a condition) the proposer may."""
    return not wf.terminal and step.status == STEP_PENDING and step_verdict(wf, step.id) != WAIT


def running(wf: WorkflowState, step: StepState) -> bool:
    return not wf.terminal and step.status == STEP_RUNNING


def live(wf: WorkflowState, step: StepState) -> bool:
    return not wf.terminal


def bounded(wf: WorkflowState, step: StepState) -> bool:
    """A step whose own deadline is running (it started, and has not finished)."""
    return (
        not wf.terminal and step.status in (STEP_RUNNING, STEP_RETRY_WAIT) and bool(wf.step_deadline_ms(step))
    )


def _target(draw: st.DrawFn, sm: StateMachine, useful: Callable[[WorkflowState, StepState], bool]) -> Target:
    """Mostly a step where the op makes progress; sometimes any step, an unknown step or workflow."""
    preferred = _targets(sm, useful)
    every = _targets(sm, None)
    kinds = ["useful"] * 12 * bool(preferred) + ["any"] * 2 * bool(every) + ["nope"] * bool(every)
    kind = _pick(draw, [*kinds, "missing"])
    if kind == "useful":
        return _pick(draw, preferred)
    if kind == "any":
        return _pick(draw, every)
    if kind == "nope":
        wf = sm.workflows[_pick(draw, sorted(sm.workflows))]
        return (wf.id, wf.epoch, "nope", 0)
    return (MISSING_WF, 1, "a", 0)


# --------------------------------------------------------------------------------------------- builders
def _join(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    return join_cmd(_pick(draw, NODES), ts)


def _submit(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    spec = _pick(draw, sorted(SPECS))
    rid, wf, node = _pick(draw, REQUEST_IDS), _pick(draw, WORKFLOW_IDS), _pick(draw, NODES)
    input_json = _pick(draw, ["{}", '{"x":1}'])
    # The proposer starts the root steps in the same entry: usually exactly those, sometimes none or junk.
    steps = SPECS[spec]["steps"]
    roots = tuple((s["id"], 0) for s in steps if not s["needs"])
    every = tuple((s["id"], ts + 100) for s in steps)
    start = _pick(draw, [roots, roots, (), every, (("nope", 0),)])
    plain = submit_cmd(rid, wf, spec, ts, node, input_json, start)
    # Mostly no id policies (the old behaviour); sometimes each of them.
    reuse = _pick(
        draw, [None, None, None, "allow-duplicate", "allow-duplicate-failed-only", "reject-duplicate"]
    )
    conflict = _pick(draw, [None, None, None, "fail", "use-existing"])
    if reuse is not None:
        plain["id_reuse"] = reuse
    if conflict is not None:
        plain["id_conflict"] = conflict
    # The leader the proposer knew: usually a member, sometimes none or a node that is not (any more).
    prefer = _pick(draw, [None, *NODES, "gone"])
    if prefer is not None:
        plain["prefer"] = prefer
    # A proposer that ran the root steps ahead pins the workflow to itself, live member or not (any more).
    owner = _pick(draw, [None, None, None, *NODES, "gone"])
    if owner is not None:
        plain["owner"] = owner
    labels = _pick(draw, [None, None, {"team": "a"}, {"team": "b", "env": "prod"}])
    if labels is not None:
        plain["labels"] = labels
    return plain


def _start(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    wf, epoch, step, attempts = _target(draw, sm, startable)
    return step_cmd(
        "start",
        wf,
        _epoch(draw, epoch),
        step,
        attempts + _pick(draw, START_OFFSETS),
        ts,
        _pick(draw, NODES),
        wake=_pick(draw, [0, 0, ts + 500]),
    )


def _succeed(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    wf, epoch, step, attempts = _target(draw, sm, running)
    epoch, attempt = _epoch(draw, epoch), attempts + _pick(draw, RESULT_OFFSETS)
    node, output = _pick(draw, NODES), _pick(draw, PLAIN_OUTPUTS)
    start: c.Starts = ()
    if wf in sm.workflows and step in sm.workflows[wf].steps and sm.workflows[wf].spec.step(step).branches:
        output = _pick(draw, CHOICE_OUTPUTS)
    if wf in sm.workflows:  # the proposer starts the dependents it finds ready in the same entry
        dependents = tuple((s.id, 0) for s in sm.workflows[wf].spec.steps if step in s.needs)
        start = _pick(draw, [dependents, dependents, (), ((step, 0),)])
    return step_cmd("succeed", wf, epoch, step, attempt, ts, node, output=output, start=start)


def _fail(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    wf, epoch, step, attempts = _target(draw, sm, running)
    return step_cmd(
        "fail",
        wf,
        _epoch(draw, epoch),
        step,
        attempts + _pick(draw, RESULT_OFFSETS),
        ts,
        _pick(draw, NODES),
        error="boom",
        error_class=_pick(draw, ERROR_CLASSES),
        retry_at=_pick(draw, [ts + 1000, ts + 1000, ts + 1, 0]),
        deliveries_max=_pick(draw, [None, None, 2, 3]),
        dlq_max=_pick(draw, DLQ_MAXES),
    )


def _redeliver(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    wf, epoch, step, attempts = _target(draw, sm, running)
    workflow = sm.workflows.get(wf)
    counted = workflow.steps[step].deliveries if workflow is not None and step in workflow.steps else 0
    return c.Redeliver(
        wf=wf,
        epoch=_epoch(draw, epoch),
        step=step,
        attempt=attempts + _pick(draw, RESULT_OFFSETS),
        reason="n1 restarted while running it",
        deliveries_max=_pick(draw, [2, 3, 3]),
        seen=counted + _pick(draw, [0, 0, 0, -1]),  # now and then a retried duplicate
        ts=ts,
        node=_pick(draw, NODES),
        dlq_max=_pick(draw, DLQ_MAXES),
    ).to_plain()


def _skip(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    """Mostly a step whose needs are done (skipped by them, or by a false condition); sometimes any."""
    wf, epoch, step, _ = _target(draw, sm, skippable)
    return c.Skip(
        wf=wf, epoch=_epoch(draw, epoch), step=step, reason="when is false", ts=ts, node=_pick(draw, NODES)
    ).to_plain()


SIGNAL_IDS = tuple(f"s{i}" for i in range(6))
#: Mostly small; now and then one byte over the limit (refused, RESOURCE_EXHAUSTED).
PAYLOADS = ('{"ok":true}', '{"ok":false}', "null", '"' + "x" * 65_535 + '"')


def _signal(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    """To any workflow (the approval ones mostly), the waited-for name mostly; ids repeat (retries)."""
    approvals = [w for w, wf in sorted(sm.workflows.items()) if wf.name == "approval"]
    wf = _pick(draw, [*approvals * 4, *sorted(sm.workflows), MISSING_WF])
    return c.Signal(
        wf=wf,
        name=_pick(draw, ["approval", "approval", "approval", "other"]),
        payload=_pick(draw, PAYLOADS[:3] * 5 + PAYLOADS[3:]),
        sid=_pick(draw, SIGNAL_IDS),
        ts=ts,
        node=_pick(draw, NODES),
    ).to_plain()


def _item_done(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    """An instance of a running fan-out (mostly); counts 2 or 3, some duplicates and bad indexes."""
    wf, epoch, step, attempts = _target(draw, sm, running)
    return c.ItemDone(
        wf=wf,
        epoch=_epoch(draw, epoch),
        step=step,
        attempt=attempts + _pick(draw, RESULT_OFFSETS),
        index=_pick(draw, [0, 1, 2, 2, 3, -1]),
        count=_pick(draw, [3, 3, 3, 2, 0]),
        output=_pick(draw, ['{"i":1}', "2", "", "null"]),
        ts=ts,
        node=_pick(draw, NODES),
    ).to_plain()


def _compensation(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    """The next compensation of a compensating workflow (mostly), in a phase that fits it (mostly)."""
    sagas = [
        wf
        for _, wf in sorted(sm.workflows.items())
        if not wf.terminal and any(c[1] != "succeeded" for c in wf.compensations)
    ]
    if sagas and _pick(draw, [True] * 6 + [False]):
        wf = _pick(draw, sagas)
        entry = next(c for c in wf.compensations if c[1] != "succeeded")
        step, attempts = entry[0], entry[2]
        phase = (
            "start" if entry[1] in ("pending", "retry_wait") else _pick(draw, ["succeed", "succeed", "fail"])
        )
        attempt = attempts + 1 if phase == "start" else attempts
        wf_id, epoch = wf.id, wf.epoch
    else:
        wf_id, epoch, step, attempt = _target(draw, sm, live)
        phase = _pick(draw, list(c.COMPENSATE_PHASES))
    return c.Compensate(
        wf=wf_id,
        epoch=_epoch(draw, epoch),
        step=step,
        attempt=attempt + _pick(draw, RESULT_OFFSETS),
        phase=phase,
        ts=ts,
        node=_pick(draw, NODES),
        error="undo failed" if phase == "fail" else "",
        error_class=_pick(draw, ["transient", "permanent"]) if phase == "fail" else "",
        retry_at=_pick(draw, [ts + 100, 0]) if phase == "fail" else 0,
    ).to_plain()


def _cancel(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    plain = cancel_cmd(
        _pick(draw, [*sorted(sm.workflows) * 4, MISSING_WF]),
        ts,
        _pick(draw, NODES),
        _pick(draw, ["", "operator"]),
    )
    if _pick(draw, [False, False, True]):
        plain["compensate"] = True  # cancel --compensate (saga)
    return plain


def _heartbeat(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    return c.Heartbeat(node=_pick(draw, NODES), ts=ts).to_plain()


def _node_down(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    """Any member, alive (its workflows move) or already dead (a repeated declaration), even the last one."""
    return c.NodeDown(node=_pick(draw, NODES), ts=ts, by=_pick(draw, NODES)).to_plain()


def _abort(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    """The owner gives up on a workflow; fenced by epoch like a step result."""
    wf, epoch, _, _ = _target(draw, sm, live)
    epoch = _epoch(draw, epoch)
    return c.Abort(
        wf=wf,
        epoch=epoch,
        reason="actor crashed",
        ts=ts,
        node=_pick(draw, NODES),
        dlq_max=_pick(draw, DLQ_MAXES),
    ).to_plain()


def _gc(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    before = ts - _pick(draw, [5_000, 20_000, 10**9])
    keep_max = _pick(draw, [0, 1, 2, 4])
    limit, by_completion = _pick(draw, [c.GC_BATCH_MAX, 1]), _pick(draw, [True, False])
    return c.Gc(before=before, keep_max=keep_max, ts=ts, limit=limit, by_completion=by_completion).to_plain()


def _chaos_monkey(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    """The replicated chaos setting: state only, no effect on workflows inside the state machine."""
    enabled, profile = _pick(draw, [True, False]), _pick(draw, ["gentle", "wild"])
    return c.ChaosMonkey(ts=ts, enabled=enabled, profile=profile, until_ms=ts + 60_000, node="n1").to_plain()


def _member_add(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    """A new, a present (same or other addresses) or a removed id; now and then another's address."""
    node = _pick(draw, [*NODES, "n4"])
    port = int(node[1:]) if _pick(draw, [True, True, False]) else int(_pick(draw, NODES)[1:])
    raft, grpc = f"127.0.0.1:{7000 + port}", f"127.0.0.1:{8000 + port}"
    return c.MemberAdd(node=node, raft=raft, grpc=grpc, ts=ts, by="n1").to_plain()


def _member_remove(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    """Any id: a live member (its workflows move), a dead one, the last one, or one never added."""
    return c.MemberRemove(node=_pick(draw, [*NODES, "n4"]), ts=ts, by=_pick(draw, NODES)).to_plain()


#: Mostly a queue as a node configures it; sometimes none (an old proposer) or a tiny one (full queues).
DLQ_MAXES = (None, 2, 10_000, 10_000)


def _retry(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    """Mostly a finished workflow with the retry count it has; sometimes a running one, a stale count
    (a duplicate after an unknown outcome), a from_step or an unknown one."""
    finished = sorted(w.id for w in sm.workflows.values() if w.terminal)
    wf_id = _pick(draw, [*finished * 4, *sorted(sm.workflows), MISSING_WF])
    wf = sm.workflows.get(wf_id)
    seen = (wf.retries if wf else 0) + _pick(draw, [0, 0, 0, 0, -1, 1])
    steps = list(wf.steps) if wf else []
    from_step = _pick(draw, [None, None, None, *steps, "nope"])
    return c.Retry(
        wf=wf_id, seen=seen, reason="operator", ts=ts, from_step=from_step, node=_pick(draw, NODES)
    ).to_plain()


def _dlq_close(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    entry = _pick(draw, [*sorted(sm.dlq) * 3, "dlq-missing"])
    state = _pick(draw, ["resolved", "abandoned"])
    return c.DlqClose(entry=entry, state=state, reason="handled", ts=ts, node=_pick(draw, NODES)).to_plain()


def _pause(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    wf = _pick(
        draw,
        [
            *sorted(w.id for w in sm.workflows.values() if not w.terminal) * 3,
            *sorted(sm.workflows),
            MISSING_WF,
        ],
    )
    return c.Pause(wf=wf, ts=ts, reason=_pick(draw, ["", "maintenance"]), node=_pick(draw, NODES)).to_plain()


def _resume(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    wf = _pick(
        draw,
        [*sorted(w.id for w in sm.workflows.values() if w.paused) * 3, *sorted(sm.workflows), MISSING_WF],
    )
    return c.Resume(wf=wf, ts=ts, node=_pick(draw, NODES)).to_plain()


def _expire(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    """The owner's clock passed the deadline (the workflow's, or half the time a step's): mostly at or after
    it, sometimes (a fast clock) before."""
    of_step = draw(st.booleans())
    wf, epoch, step_id, _ = _target(draw, sm, bounded if of_step else live)
    workflow = sm.workflows.get(wf)
    step = workflow.steps.get(step_id) if workflow is not None else None
    if workflow is None:
        deadline = 0
    elif of_step:
        deadline = workflow.step_deadline_ms(step) if step is not None else 0
    else:
        deadline = workflow.deadline_ms
    when = max(ts, deadline + _pick(draw, [0, 0, 10, -10])) if deadline else ts
    return c.Expire(
        wf=wf,
        epoch=_epoch(draw, epoch),
        ts=when,
        node=_pick(draw, NODES),
        dlq_max=_pick(draw, DLQ_MAXES),
        step=step_id if of_step else None,
    ).to_plain()


#: op -> (builder, weight): the one place to add an op.
OP_BUILDERS: dict[str, tuple[Builder, int]] = {
    "submit": (_submit, 3),
    "start": (_start, 8),
    "succeed": (_succeed, 7),
    "fail": (_fail, 3),
    "redeliver": (_redeliver, 1),
    "cancel": (_cancel, 1),
    "join": (_join, 1),
    "heartbeat": (_heartbeat, 1),
    "node_down": (_node_down, 1),
    "abort": (_abort, 1),
    "gc": (_gc, 1),
    "chaos_monkey": (_chaos_monkey, 1),
    "member_add": (_member_add, 1),
    "member_remove": (_member_remove, 1),
    "retry": (_retry, 2),
    "dlq_close": (_dlq_close, 1),
    "pause": (_pause, 1),
    "resume": (_resume, 1),
    "expire": (_expire, 3),
    "skip": (_skip, 3),
    "signal": (_signal, 3),
    "item_done": (_item_done, 4),
    "compensate": (_compensation, 4),
}
assert set(OP_BUILDERS) == set(c.COMMANDS), "every op needs a builder"

CLOCK_STEPS = (-50, 0, 1, 10, 100, 500, 1_000, 3_000)


def next_ts(draw: st.DrawFn, ts: int) -> int:
    """Monotone-ish clock: mostly forward, now and then a little backwards (another proposer's clock)."""
    return max(0, ts + _pick(draw, CLOCK_STEPS))


def draw_command(draw: st.DrawFn, sm: StateMachine, ts: int) -> Plain:
    """One command plausible in the current state of ``sm`` at time ``ts``."""
    idle = not any(not wf.terminal for wf in sm.workflows.values())
    ops = [
        op
        for op, (_, weight) in OP_BUILDERS.items()
        for _ in range(weight + (6 if idle and op == "submit" else 0))
    ]
    return OP_BUILDERS[_pick(draw, ops)][0](draw, sm, ts)
