"""The replicated state machine, driven directly (no Raft): examples and hypothesis properties."""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamflowd.core.commands import Gc, Heartbeat, NodeDown
from beamflowd.core.invariants import check_invariants
from beamflowd.core.spec import WorkflowSpec
from beamflowd.core.state import (
    MAX_EVENTS_PER_WORKFLOW,
    Query,
    Result,
    StateMachine,
    StepState,
    WorkflowState,
    downstream_steps,
)
from beamflowd.core.vocabulary import (
    DLQ_CLOSED,
    ERROR_DEADLINE_EXCEEDED,
    STEP_CANCELLED,
    STEP_FAILED,
    STEP_PENDING,
    STEP_RETRY_WAIT,
    STEP_RUNNING,
    STEP_SUCCEEDED,
    WORKFLOW_CANCELLED,
    WORKFLOW_FAILED,
    WORKFLOW_RUNNING,
    WORKFLOW_SUCCEEDED,
)
from beamflowd.core.workflow_index import WorkflowIndex
from tests.unit.state_strategies import (
    NODES,
    SPECS,
    History,
    Plain,
    cancel_cmd,
    draw_command,
    join_cmd,
    next_ts,
    step_cmd,
    submit_cmd,
)

#: Commands fenced by the workflow epoch.
FENCED_OPS = ("start", "succeed", "fail", "redeliver", "abort", "expire", "skip", "item_done", "compensate")


def cluster(ts: int = 0) -> StateMachine:
    sm = StateMachine()
    for node in NODES:
        assert sm.apply(join_cmd(node, ts)).ok
    return sm


def roundtrip(sm: StateMachine) -> StateMachine:
    return StateMachine.from_plain(json.loads(json.dumps(sm.to_plain())))


@dataclass
class Before:
    """What a transition check needs to know about the state before one command."""

    digest: str
    plain: dict[str, dict[str, Any]]
    terminal: frozenset[str]
    epochs: dict[str, int]
    attempts: dict[tuple[str, str], int]
    request_ids: dict[str, str]
    counters: dict[str, int]
    #: Dead-letter entry id -> state.
    dlq: dict[str, str]
    #: Ids of paused workflows.
    paused: frozenset[str]
    skipped: frozenset[tuple[str, str]]
    #: Failures the full dead-letter queue could not take.
    dlq_overflow: int = 0

    @classmethod
    def of(cls, sm: StateMachine) -> Before:
        return cls(
            digest=sm.digest(),
            plain={w.id: w.to_plain() for w in sm.workflows.values()},  # fresh containers
            terminal=frozenset(w.id for w in sm.workflows.values() if w.terminal),
            epochs={w.id: w.epoch for w in sm.workflows.values()},
            attempts={(w.id, s.id): s.attempts for w in sm.workflows.values() for s in w.steps.values()},
            request_ids=dict(sm.request_ids),
            counters=dict(sm.counters),
            dlq={e.id: e.state for e in sm.dlq.values()},
            paused=frozenset(w.id for w in sm.workflows.values() if w.paused),
            skipped=frozenset(
                (w.id, s.id) for w in sm.workflows.values() for s in w.steps.values() if s.status == "skipped"
            ),
            dlq_overflow=sm.dlq_overflow,
        )


def _without_events(plain: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in plain.items() if k not in ("events", "next_seq")}


def check_lists(sm: StateMachine) -> None:
    """Every list served from the index equals a scan of the state, in order, page by page."""
    statuses = {wf.listed_status for wf in sm.workflows.values()} | {"no-such-status"}
    names = {wf.name for wf in sm.workflows.values()} | {"no-such-name"}
    labels = {(k, v) for wf in sm.workflows.values() for k, v in wf.labels.items()}
    queries = [
        Query(status=st_ or "", name=name or "") for st_ in (None, *statuses) for name in (None, *names)
    ]
    queries += [Query(labels=(label,)) for label in sorted(labels)]
    queries += [Query(status=st_, labels=(label,)) for st_ in statuses for label in sorted(labels)[:2]]
    for query in queries:
        scan = sorted(
            (wf for wf in sm.workflows.values() if query.matches(wf)),
            key=lambda wf: (wf.created_ms, wf.id),
            reverse=True,
        )
        whole, total = sm.page(query, 0, 10_000)
        assert [wf.id for wf in whole] == [wf.id for wf in scan] and total == len(scan), query
        pages = [sm.page(query, offset, 2)[0] for offset in range(0, total + 2, 2)]
        assert [wf.id for page in pages for wf in page] == [wf.id for wf in scan], query
        assert sm.count(query) == len(scan)


def check_gc_by_completion(before: Before, sm: StateMachine, cmd: Plain, gone: set[str]) -> None:
    """The oldest finished go first; short of its limit, GC leaves nothing it should have taken."""
    kept = [wf for wf in sm.workflows.values() if wf.terminal and wf.id not in sm.dlq_open]
    if gone and kept:
        newest_gone = max(before.plain[wf_id]["updated"] for wf_id in gone)
        assert newest_gone <= min(wf.updated_ms for wf in kept), "gc skipped an older finished workflow"
    if len(gone) < cmd["limit"]:
        assert len(kept) <= cmd["keep_max"], (len(kept), cmd)
        assert all(wf.updated_ms >= cmd["before"] for wf in kept), cmd


def check_transition(before: Before, sm: StateMachine, cmd: Plain, res: Result) -> None:
    """Properties of one step ``before --cmd--> sm``."""
    op = cmd["op"]
    gone = set(before.plain) - set(sm.workflows)
    if gone:  # only gc forgets workflows, and only finished ones
        assert op == "gc" and gone <= before.terminal, (cmd, gone)
    if op == "gc" and cmd.get("by_completion"):
        check_gc_by_completion(before, sm, cmd, gone)
    replaced = op == "submit" and res.ok and not res.data["existing"]
    reopened = {cmd["wf"]} if (op == "retry" or replaced) and res.ok else set()
    for wf_id in before.terminal - gone - reopened:
        assert sm.workflows[wf_id].to_plain() == before.plain[wf_id], f"terminal {wf_id} changed by {cmd}"
    new = {cmd["wf"]} if replaced else set()  # a submit reusing the id of a finished workflow replaced it
    for wf_id, epoch in before.epochs.items():
        if wf_id not in gone | new:
            assert sm.workflows[wf_id].epoch >= epoch, f"epoch of {wf_id} decreased by {cmd}"
    for wf_id, step_id in before.skipped:  # a skipped step never runs (nor changes again) until a retry
        if wf_id not in gone | reopened:
            after = sm.workflows[wf_id].steps[step_id]
            unchanged = after.status == "skipped" and after.attempts == before.attempts[(wf_id, step_id)]
            assert unchanged, f"skipped {step_id} changed by {cmd}"
    for (wf_id, step_id), attempts in before.attempts.items():
        if wf_id not in gone | new:
            assert sm.workflows[wf_id].steps[step_id].attempts >= attempts, f"attempts decreased by {cmd}"

    wf_id = cmd.get("wf", "")
    stale = (
        op in FENCED_OPS
        and wf_id in before.plain
        and wf_id not in before.terminal
        and cmd["epoch"] != before.epochs[wf_id]
    )
    if stale:
        assert res.code == "ABORTED", (cmd, res)
        after = sm.workflows[wf_id].to_plain()
        assert _without_events(after) == _without_events(before.plain[wf_id]), cmd
        if op != "abort":
            assert after["events"][-1][2] == "stale_result_rejected", after["events"][-1]
            assert after["next_seq"] == before.plain[wf_id]["next_seq"] + 1
        else:  # abort records no event for a stale epoch (only the counter)
            assert after["next_seq"] in (before.plain[wf_id]["next_seq"], before.plain[wf_id]["next_seq"] + 1)
        expected = dict(before.counters, stale_rejected=before.counters["stale_rejected"] + 1)
        assert sm.counters == expected
        for other, plain in before.plain.items():
            if other != wf_id:
                assert sm.workflows[other].to_plain() == plain
        assert len(sm.workflows) == len(before.plain)
    else:
        assert res.code != "ABORTED" or op == "retry", (cmd, res)  # a retry is fenced by its retry count
        if not res.ok:
            assert sm.digest() == before.digest, f"rejected {cmd} ({res}) changed the state"

    check_dead_letters_and_retries(before, sm, cmd, res)
    check_step_deadlines(before, sm, cmd, res)

    if op == "submit":
        previous = before.request_ids.get(cmd["rid"])
        if previous is not None:
            assert res.code == "OK" and res.data["wf"] == previous and res.data["existing"] is True, res
            assert sm.digest() == before.digest, "duplicate submit changed the state"
        elif cmd["wf"] in before.plain:
            check_id_policies(before, sm, cmd, res)
        elif not any(m.alive for m in sm.members.values()):
            assert res.code == "UNAVAILABLE", res
        else:
            assert res.ok and res.data["existing"] is False and res.data["wf"] == cmd["wf"], res


def check_id_policies(before: Before, sm: StateMachine, cmd: Plain, res: Result) -> None:
    """A submit naming an existing workflow: Temporal's id-reuse and id-conflict policies."""
    wf_id = cmd["wf"]
    if wf_id not in before.terminal:
        if cmd.get("id_conflict") == "use-existing":
            assert res.ok and res.data["existing"] is True and res.data["wf"] == wf_id, res
            assert sm.digest() == before.digest
        else:
            assert res.code == "ALREADY_EXISTS", res
        return
    old_status = before.plain[wf_id]["status"]
    reuse = cmd.get("id_reuse") or "reject-duplicate"
    if reuse == "reject-duplicate" or (reuse == "allow-duplicate-failed-only" and old_status == "succeeded"):
        assert res.code == "ALREADY_EXISTS", res
    elif res.ok:
        assert res.data["existing"] is False and sm.workflows[wf_id].request_id == cmd["rid"]
        assert sm.counters["collected"] == before.counters["collected"] + 1
    else:
        assert res.code in ("FAILED_PRECONDITION", "UNAVAILABLE"), res  # an open dead letter; no live node


def check_dead_letters_and_retries(before: Before, sm: StateMachine, cmd: Plain, res: Result) -> None:
    """A closed dead-letter entry never reopens; a retry never re-runs a succeeded step it was not told to."""
    for entry_id, state in before.dlq.items():
        if state in DLQ_CLOSED and entry_id in sm.dlq:
            assert sm.dlq[entry_id].state == state, f"closed {entry_id} reopened by {cmd}"
    for wf_id in before.paused:  # a paused workflow starts no attempt
        old = {sp[0]: sp for sp in before.plain[wf_id]["steps"]}
        for step in sm.workflows[wf_id].steps.values():
            assert step.attempts == old[step.id][2], f"paused {wf_id} started {step.id} by {cmd}"
    if cmd["op"] != "retry" or not res.ok or res.data["duplicate"]:
        return
    wf = sm.workflows[cmd["wf"]]
    old = {sp[0]: sp for sp in before.plain[cmd["wf"]]["steps"]}
    again = downstream_steps(wf.spec, cmd["from_step"]) if cmd.get("from_step") else set()
    assert wf.status == WORKFLOW_RUNNING and wf.epoch == before.epochs[wf.id] + 1
    for step in wf.steps.values():
        if old[step.id][1] == STEP_SUCCEEDED and step.id not in again:
            assert step.to_plain() == old[step.id], f"succeeded {step.id} reset by {cmd}"
        else:
            assert step.status == STEP_PENDING and step.base == step.attempts == old[step.id][2]


def check_step_deadlines(before: Before, sm: StateMachine, cmd: Plain, res: Result) -> None:
    """A step's expiry applies only at or after its committed deadline, and ends the step (never retried)
    and its workflow as failed with ``deadline_exceeded``, dead-lettered when the command asks for it."""
    if cmd["op"] != "expire" or "step" not in cmd or not res.ok:
        return
    wf = sm.workflows[cmd["wf"]]
    old = StepState.from_plain(next(sp for sp in before.plain[wf.id]["steps"] if sp[0] == cmd["step"]))
    deadline_ms = wf.spec.step(cmd["step"]).deadline_ms
    assert deadline_ms and old.attempts > old.base, f"{cmd} expired an unstarted step"
    assert cmd["ts"] >= old.first_ms + deadline_ms, f"{cmd} expired before the deadline"
    step = wf.steps[cmd["step"]]
    assert (step.status, step.error_class) == (STEP_FAILED, ERROR_DEADLINE_EXCEEDED), step
    assert step.attempts == old.attempts and wf.status == WORKFLOW_FAILED
    if "dlq_max" in cmd:
        entry = sm.dlq.get(sm.dlq_open.get(wf.id, ""))
        overflowed = sm.dlq_overflow > before.dlq_overflow
        assert overflowed or (entry is not None and entry.error_class == ERROR_DEADLINE_EXCEEDED), cmd


# ------------------------------------------------------------------------------------------- properties
@st.composite
def histories(draw: st.DrawFn, max_len: int = 80) -> History:
    """A command log: joins for n1..n3, then commands drawn against the state they will meet."""
    sm = StateMachine()
    log = History(join_cmd(n, 0) for n in NODES)
    sm.apply_all(log)
    ts = 1_000
    for _ in range(draw(st.integers(1, max_len))):
        ts = next_ts(draw, ts)
        cmd = draw_command(draw, sm, ts)
        sm.apply(cmd)
        log.append(cmd)
    return log


PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(histories())
def test_invariants_hold_after_every_command(log: list[Plain]) -> None:
    sm = StateMachine()
    for i, cmd in enumerate(log):
        before = Before.of(sm)
        res = sm.apply(cmd)
        check_transition(before, sm, cmd, res)
        check_invariants(sm)
        if i % 3 == 0:  # the running digest is refreshed lazily: compare it after runs of 1-3 commands
            assert sm.digest() == sm.full_digest(), f"running digest drifted after {cmd}"
        if i % 4 == 0:
            check_lists(sm)
        elif i % 4 == 2:  # the background re-files a bounded chunk between queries
            left = sm.index.refresh(sm.workflows, limit=1)
            assert left == sm.index.stale
    assert sm.digest() == sm.full_digest()
    check_lists(sm)
    # An index built in bulk (after a restore) files every workflow where filing them one by one did.
    bulk = WorkflowIndex()
    bulk.rebuild(sm.workflows)
    assert bulk._lists == sm.index._lists and bulk._filed == sm.index._filed
    # A client retrying any remembered submit (other node, later, other proposed id) gets the same answer.
    digest = sm.digest()
    for cmd in log:
        if cmd["op"] == "submit" and cmd["rid"] in sm.request_ids:
            retried = dict(cmd, ts=cmd["ts"] + 10_000, node="n3", wf=cmd["wf"] + "-other")
            res = sm.apply(retried)
            assert res.ok and res.data["existing"] is True and res.data["wf"] == sm.request_ids[cmd["rid"]]
            wf = sm.workflows.get(res.data["wf"])
            assert res.data["owner"] == (wf.owner if wf else "")
            assert sm.digest() == digest


@PROPERTY_SETTINGS
@given(histories(), st.data())
def test_replicas_agree_and_snapshots_restore(log: list[Plain], data: st.DataObject) -> None:
    a, b = StateMachine(), StateMachine()
    results_a = a.apply_all(log)
    results_b = b.apply_all(copy.deepcopy(log))
    assert results_a == results_b
    assert a.digest() == b.digest() == a.full_digest()
    assert a.to_plain() == b.to_plain()

    cut = data.draw(st.integers(0, len(log)), label="cut")
    original = StateMachine()
    original.apply_all(log[:cut])
    restored = roundtrip(original)
    assert restored.digest() == original.digest()
    assert {n: c for n, c in restored.owned.items() if c} == {n: c for n, c in original.owned.items() if c}
    check_invariants(restored)
    for cmd in log[cut:]:
        assert restored.apply(cmd) == original.apply(cmd), cmd
        assert restored.digest() == original.digest(), cmd
    assert original.digest() == a.digest()
    assert roundtrip(restored).digest() == a.digest()


# --------------------------------------------------------------------------------------------- examples
def run_step(sm: StateMachine, wf: str, step: str, ts: int, attempt: int = 1) -> None:
    epoch = sm.workflows[wf].epoch
    assert sm.apply(step_cmd("start", wf, epoch, step, attempt, ts)).ok
    assert sm.apply(step_cmd("succeed", wf, epoch, step, attempt, ts + 1, output='{"ok":true}')).ok


def test_sequential_workflow_runs_to_success() -> None:
    sm = cluster()
    res = sm.apply(submit_cmd("r1", "w1", "sequential", 10))
    assert res.ok and res.data == {"wf": "w1", "owner": "n1", "existing": False}
    # b needs a: it cannot start first.
    assert sm.apply(step_cmd("start", "w1", 1, "b", 1, 11)).code == "FAILED_PRECONDITION"
    for i, step in enumerate(("a", "b", "c")):
        run_step(sm, "w1", step, 20 + 10 * i)
        check_invariants(sm)
    wf = sm.workflows["w1"]
    assert wf.status == WORKFLOW_SUCCEEDED
    assert [s.attempts for s in wf.steps.values()] == [1, 1, 1]
    assert sm.owned_by("n1") == 0
    assert sm.counters["succeeded"] == 1 and sm.counters["steps_succeeded"] == 3
    kinds = [e[2] for e in wf.events]
    assert kinds[0] == "submitted" and kinds[-1] == "completed"
    # A terminal workflow refuses further results and is unchanged by a cancel.
    plain = wf.to_plain()
    assert sm.apply(step_cmd("succeed", "w1", 1, "c", 1, 100, output="1")).code == "FAILED_PRECONDITION"
    assert sm.apply(cancel_cmd("w1", 101)).data == {"cancelled": False}
    assert wf.to_plain() == plain


def test_diamond_join_waits_for_both_branches() -> None:
    sm = cluster()
    assert sm.apply(submit_cmd("r1", "w1", "diamond", 10)).ok
    run_step(sm, "w1", "start", 20)
    run_step(sm, "w1", "left", 30)
    assert sm.apply(step_cmd("start", "w1", 1, "join", 1, 40)).code == "FAILED_PRECONDITION"
    run_step(sm, "w1", "right", 50)
    run_step(sm, "w1", "join", 60)
    assert sm.workflows["w1"].status == WORKFLOW_SUCCEEDED
    check_invariants(sm)


def test_retry_then_success() -> None:
    sm = cluster()
    assert sm.apply(submit_cmd("r1", "w1", "flaky", 10)).ok
    assert sm.apply(step_cmd("start", "w1", 1, "call", 1, 20)).ok
    res = sm.apply(
        step_cmd("fail", "w1", 1, "call", 1, 30, error="503", error_class="transient", retry_at=1_030)
    )
    assert res.ok and res.data == {"retry": True}
    step = sm.workflows["w1"].steps["call"]
    assert (step.status, step.attempts, step.next_ms) == (STEP_RETRY_WAIT, 1, 1_030)
    assert step.error_class == "transient"
    # The same attempt number again is refused; attempt 2 starts.
    assert sm.apply(step_cmd("start", "w1", 1, "call", 1, 1_040)).code == "FAILED_PRECONDITION"
    assert sm.apply(step_cmd("start", "w1", 1, "call", 2, 1_040)).ok
    assert (step.status, step.attempts, step.error) == (STEP_RUNNING, 2, "")
    # A late result of attempt 1 does not count.
    assert sm.apply(step_cmd("succeed", "w1", 1, "call", 1, 1_045, output="1")).code == "FAILED_PRECONDITION"
    assert sm.apply(step_cmd("succeed", "w1", 1, "call", 2, 1_050, output='"done"')).ok
    assert step.status == STEP_SUCCEEDED and step.output_json == '"done"'
    run_step(sm, "w1", "after", 1_060)
    assert sm.workflows["w1"].status == WORKFLOW_SUCCEEDED
    assert sm.counters["retries_scheduled"] == 1
    check_invariants(sm)


def _fail_attempt(sm: StateMachine, attempt: int, ts: int, error_class: str = "transient") -> Result:
    assert sm.apply(step_cmd("start", "w1", 1, "call", attempt, ts)).ok
    return sm.apply(
        step_cmd(
            "fail", "w1", 1, "call", attempt, ts + 1, error="boom", error_class=error_class, retry_at=ts + 100
        )
    )


def test_retries_exhausted_fails_workflow_and_cancels_the_rest() -> None:
    sm = cluster()
    assert sm.apply(submit_cmd("r1", "w1", "flaky", 10)).ok
    assert _fail_attempt(sm, 1, 100).data == {"retry": True}
    assert _fail_attempt(sm, 2, 200).data == {"retry": True}
    assert _fail_attempt(sm, 3, 300).data == {"retry": False}
    wf = sm.workflows["w1"]
    assert wf.status == WORKFLOW_FAILED
    assert "after 3 attempt(s)" in wf.error
    assert (wf.steps["call"].status, wf.steps["call"].attempts) == (STEP_FAILED, 3)
    assert wf.steps["after"].status == STEP_CANCELLED
    assert sm.owned_by(wf.owner) == 0 and sm.counters["failed"] == 1
    assert sm.apply(step_cmd("start", "w1", 1, "call", 4, 400)).code == "FAILED_PRECONDITION"
    check_invariants(sm)


def test_permanent_and_non_retryable_errors_are_not_retried() -> None:
    for error_class in ("permanent", "validation"):
        sm = cluster()
        assert sm.apply(submit_cmd("r1", "w1", "flaky", 10)).ok
        assert _fail_attempt(sm, 1, 100, error_class).data == {"retry": False}
        wf = sm.workflows["w1"]
        assert wf.status == WORKFLOW_FAILED and wf.steps["call"].attempts == 1, error_class
        check_invariants(sm)


def test_fail_without_retry_time_is_final() -> None:
    sm = cluster()
    assert sm.apply(submit_cmd("r1", "w1", "flaky", 10)).ok
    assert sm.apply(step_cmd("start", "w1", 1, "call", 1, 20)).ok
    res = sm.apply(step_cmd("fail", "w1", 1, "call", 1, 30, error="x", error_class="transient", retry_at=0))
    assert res.data == {"retry": False} and sm.workflows["w1"].status == WORKFLOW_FAILED


def test_cancel() -> None:
    sm = cluster()
    assert sm.apply(submit_cmd("r1", "w1", "diamond", 10)).ok
    run_step(sm, "w1", "start", 20)
    assert sm.apply(step_cmd("start", "w1", 1, "left", 1, 30)).ok
    res = sm.apply(cancel_cmd("w1", 40, reason="operator"))
    assert res.ok and res.data == {"cancelled": True}
    wf = sm.workflows["w1"]
    assert wf.status == WORKFLOW_CANCELLED and wf.error == "operator"
    assert [s.status for s in wf.steps.values()] == [
        STEP_SUCCEEDED,
        STEP_CANCELLED,
        STEP_CANCELLED,
        STEP_CANCELLED,
    ]
    assert sm.owned_by(wf.owner) == 0 and sm.counters["cancelled"] == 1
    # The still-running attempt's result arrives late: refused, nothing changes.
    plain = wf.to_plain()
    assert sm.apply(step_cmd("succeed", "w1", 1, "left", 1, 50, output="1")).code == "FAILED_PRECONDITION"
    assert sm.apply(cancel_cmd("w1", 60)).data == {"cancelled": False}
    assert wf.to_plain() == plain
    assert sm.apply(cancel_cmd("nope", 70)).code == "NOT_FOUND"
    check_invariants(sm)


def test_stale_epoch_is_rejected_and_recorded() -> None:
    sm = cluster()
    assert sm.apply(submit_cmd("r1", "w1", "sequential", 10)).ok
    plain = sm.workflows["w1"].to_plain()
    res = sm.apply(step_cmd("start", "w1", 0, "a", 1, 20, node="n2"))
    assert res.code == "ABORTED"
    after = sm.workflows["w1"].to_plain()
    assert after["steps"] == plain["steps"] and after["status"] == plain["status"]
    assert after["events"][-1][2] == "stale_result_rejected"
    assert sm.counters["stale_rejected"] == 1


def test_duplicate_request_and_workflow_ids() -> None:
    sm = cluster()
    assert sm.apply(submit_cmd("r1", "w1", "sequential", 10)).ok
    digest = sm.digest()
    res = sm.apply(submit_cmd("r1", "w-other", "diamond", 20, node="n3"))
    assert res.ok and res.data == {"wf": "w1", "owner": "n1", "existing": True}
    assert sm.digest() == digest
    assert sm.apply(submit_cmd("r2", "w1", "diamond", 30)).code == "ALREADY_EXISTS"
    assert sm.digest() == digest


def test_submit_without_members_is_unavailable() -> None:
    sm = StateMachine()
    assert sm.apply(submit_cmd("r1", "w1", "sequential", 10)).code == "UNAVAILABLE"
    assert sm.apply({"v": 2, "op": "submit"}).code == "INVALID_ARGUMENT"
    assert sm.apply({"v": 1, "op": "bogus"}).code == "INVALID_ARGUMENT"
    assert not sm.workflows and not sm.request_ids


def test_placement_spreads_submits_evenly() -> None:
    sm = cluster()
    owners: Counter[str] = Counter()
    for i in range(30):
        res = sm.apply(submit_cmd(f"r{i}", f"w{i}", "sequential", 10 + i))
        owners[res.data["owner"]] += 1
        counts = [sm.owned_by(n) for n in NODES]
        assert max(counts) - min(counts) <= 1, counts
    assert set(owners) == set(NODES)
    assert max(owners.values()) - min(owners.values()) <= 1, owners
    # Finishing n1's work makes n1 the least loaded: the next submits go there.
    for wf in [w for w in sm.workflows.values() if w.owner == "n1"][:3]:
        assert sm.apply(cancel_cmd(wf.id, 100)).ok
    placed = [sm.apply(submit_cmd(f"s{i}", f"x{i}", "sequential", 200)).data["owner"] for i in range(3)]
    assert placed == ["n1", "n1", "n1"]
    check_invariants(sm)


def test_placement_prefers_the_named_node_only_among_the_least_loaded() -> None:
    sm = cluster()
    lone = submit_cmd("r0", "w0", "sequential", 10) | {"prefer": "n3"}
    assert sm.apply(lone).data["owner"] == "n3"  # all idle: the leader the proposer named
    # n3 now owns one more than the others: the least loaded win, the preference only breaks ties.
    second = submit_cmd("r1", "w1", "sequential", 11) | {"prefer": "n3"}
    assert sm.apply(second).data["owner"] == "n1"
    third = submit_cmd("r2", "w2", "sequential", 12) | {"prefer": "n2"}
    assert sm.apply(third).data["owner"] == "n2"
    for i, prefer in enumerate(["n3", "gone", "n2"]):
        cmd = submit_cmd(f"s{i}", f"x{i}", "sequential", 20 + i) | {"prefer": prefer}
        sm.apply(cmd)
    counts = [sm.owned_by(n) for n in NODES]
    assert max(counts) - min(counts) <= 1, counts
    check_invariants(sm)


def test_a_submit_run_ahead_is_owned_by_its_proposer_whatever_the_loads() -> None:
    sm = cluster()
    for i in range(3):  # n3 ends up owning the most
        assert sm.apply(
            submit_cmd(f"r{i}", f"w{i}", "sequential", 10 + i) | {"prefer": "n3", "owner": "n3"}
        ).ok
    assert [sm.owned_by(n) for n in NODES] == [0, 0, 3]
    # Not a member, or not alive: placed as if unpinned (the results that ran ahead are then refused).
    assert sm.apply(submit_cmd("r3", "w3", "sequential", 20) | {"owner": "gone"}).data["owner"] == "n1"
    assert sm.apply(NodeDown(node="n3", ts=30, by="n1").to_plain()).ok
    assert sm.apply(submit_cmd("r4", "w4", "sequential", 40) | {"owner": "n3"}).data["owner"] != "n3"
    check_invariants(sm)


def test_events_are_bounded() -> None:
    sm = cluster()
    assert sm.apply(submit_cmd("r1", "w1", "sequential", 10)).ok
    for i in range(MAX_EVENTS_PER_WORKFLOW + 50):
        assert sm.apply(step_cmd("start", "w1", 7, "a", 1, 20 + i)).code == "ABORTED"
    wf = sm.workflows["w1"]
    assert len(wf.events) == MAX_EVENTS_PER_WORKFLOW
    assert wf.events[-1][0] == MAX_EVENTS_PER_WORKFLOW + 51
    check_invariants(sm)
    assert roundtrip(sm).digest() == sm.digest()


def test_node_down_moves_workflows_and_fences_the_old_owner() -> None:
    sm = cluster()
    for i in range(3):
        assert sm.apply(submit_cmd(f"r{i}", f"w{i}", "sequential", 10)).ok
    wf = sm.workflows["w0"]
    assert wf.owner == "n1"
    assert sm.apply(step_cmd("start", "w0", 1, "a", 1, 20, node="n1")).ok
    res = sm.apply(NodeDown(node="n1", ts=30, by="n2").to_plain())
    assert res.ok and res.data == {"moved": 1}
    assert wf.owner in ("n2", "n3") and wf.epoch == 2
    assert wf.steps["a"].status == STEP_RUNNING and wf.steps["a"].attempts == 1
    check_invariants(sm)
    # The old owner, still running, reports: fenced. The new owner re-runs the same attempt: accepted.
    assert sm.apply(step_cmd("succeed", "w0", 1, "a", 1, 40, node="n1", output="1")).code == "ABORTED"
    assert sm.apply(step_cmd("succeed", "w0", 2, "a", 1, 50, node=wf.owner, output="1")).ok
    assert sm.apply(NodeDown(node="n1", ts=60, by="n2").to_plain()).data == {"moved": 0}
    assert sm.apply(submit_cmd("r9", "w9", "sequential", 70)).data["owner"] != "n1"
    check_invariants(sm)


def test_orphans_of_a_fully_dead_cluster_go_to_the_first_node_back() -> None:
    sm = cluster()
    assert sm.apply(submit_cmd("r1", "w1", "sequential", 10)).ok
    for node in ("n1", "n2", "n3"):
        assert sm.apply(NodeDown(node=node, ts=20, by="n1").to_plain()).ok
    wf = sm.workflows["w1"]
    assert sm.apply(submit_cmd("r2", "w2", "sequential", 25)).code == "UNAVAILABLE"
    assert sm.apply(Heartbeat(node="n3", ts=30).to_plain()).data == {"revived": True}
    assert wf.owner == "n3" and wf.epoch >= 2
    check_invariants(sm)


def test_ready_steps_start_in_the_same_entry() -> None:
    sm = cluster()
    cmd = submit_cmd("r1", "w1", "diamond", 10, start=(("start", 0), ("join", 0)))  # join is not ready
    assert sm.apply(cmd).ok
    wf = sm.workflows["w1"]
    assert (wf.steps["start"].status, wf.steps["start"].attempts) == (STEP_RUNNING, 1)
    assert wf.steps["join"].status == STEP_PENDING
    done = step_cmd("succeed", "w1", 1, "start", 1, 20, output="1", start=(("left", 0), ("right", 0)))
    assert sm.apply(done).ok
    statuses = [wf.steps[s].status for s in ("left", "right", "join")]
    assert statuses == [STEP_RUNNING, STEP_RUNNING, STEP_PENDING]
    check_invariants(sm)


def test_gc_forgets_only_old_finished_workflows() -> None:
    sm = cluster()
    for i in range(3):
        assert sm.apply(submit_cmd(f"r{i}", f"w{i}", "sequential", 10)).ok
    assert sm.apply(cancel_cmd("w0", 100)).ok
    assert sm.apply(cancel_cmd("w1", 5_000)).ok
    res = sm.apply(Gc(before=1_000, keep_max=10, limit=100, ts=6_000).to_plain())
    assert res.data == {"collected": 1}
    assert sorted(sm.workflows) == ["w1", "w2"]
    check_invariants(sm)
    assert roundtrip(sm).digest() == sm.digest()


def test_gc_by_completion_takes_the_first_finished_first() -> None:
    sm = cluster()
    for i in range(5):
        assert sm.apply(submit_cmd(f"r{i}", f"w{i}", "sequential", 10)).ok
    for wf_id, ts in (("w3", 100), ("w0", 200), ("w4", 300), ("w1", 400)):  # finish order != submit order
        assert sm.apply(cancel_cmd(wf_id, ts)).ok
    assert sm.gc_due(before=0, keep_max=3) and not sm.gc_due(before=0, keep_max=4)
    res = sm.apply(Gc(before=0, keep_max=2, ts=500, by_completion=True).to_plain())
    assert res.data == {"collected": 2}
    assert sorted(sm.workflows) == ["w1", "w2", "w4"]
    res = sm.apply(Gc(before=350, keep_max=10, ts=600, by_completion=True).to_plain())
    assert res.data == {"collected": 1}
    assert sorted(sm.workflows) == ["w1", "w2"]
    assert roundtrip(sm).digest() == sm.digest() == sm.full_digest()


def test_gc_by_completion_is_bounded_by_its_limit() -> None:
    sm = cluster()
    for i in range(6):
        assert sm.apply(submit_cmd(f"r{i}", f"w{i}", "sequential", 10)).ok
        assert sm.apply(cancel_cmd(f"w{i}", 100 + i)).ok
    res = sm.apply(Gc(before=10_000, keep_max=0, ts=500, limit=4, by_completion=True).to_plain())
    assert res.data == {"collected": 4}
    assert sorted(sm.workflows) == ["w4", "w5"]
    restored = roundtrip(sm)
    res = restored.apply(Gc(before=10_000, keep_max=0, ts=600, by_completion=True).to_plain())
    assert res.data == {"collected": 2} and not restored.workflows


def test_a_workflow_with_every_field_set_round_trips_through_its_plain_form() -> None:
    # from_plain builds workflows positionally (a restore builds 100,000): a field added or moved in the
    # dataclass without from_plain following would land in the wrong slot, and this would differ.
    spec = WorkflowSpec.from_plain(SPECS["sequential"])
    wf = WorkflowState(
        id="w1",
        name="seq",
        spec=spec,
        spec_hash="h",
        input_json='{"x":1}',
        owner="n2",
        created_ms=10,
        updated_ms=20,
        request_id="r1",
        status="failed",
        epoch=3,
        error="boom",
        steps={"a": StepState("a", "failed", 4, "", "e", "ValueError", 11, 12, 13, 1, 2, ['"i"'], 9)},
        events=[(1, 10, "submitted", "", 0, "", "n1")],
        next_seq=2,
        retries=5,
        origin="w0",
        paused="why",
        retried_ms=15,
        labels={"team": "a"},
        signals=[("s1", "go", "{}", 14)],
        signal_ids=["s1"],
        compensations=[["a", "pending", 0, 0, ""]],
    )
    plain = json.loads(json.dumps(wf.to_plain()))
    assert WorkflowState.from_plain(plain, spec) == wf
