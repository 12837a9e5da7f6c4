"""Dead-letter queue and retry from the failed step, on the state machine directly (no Raft)."""

from __future__ import annotations

import json
from typing import Any

from beamflowd.core import commands as c
from beamflowd.core.invariants import check_invariants
from beamflowd.core.state import StateMachine
from beamflowd.core.vocabulary import (
    DLQ_ABANDONED,
    DLQ_PENDING,
    DLQ_RESOLVED,
    DLQ_RETRYING,
    EVENT_RETRIED,
    STEP_PENDING,
    STEP_SUCCEEDED,
    WORKFLOW_FAILED,
    WORKFLOW_RUNNING,
    WORKFLOW_SUCCEEDED,
)
from tests.unit.state_strategies import NODES, join_cmd, step_cmd, submit_cmd

DLQ_MAX = 10


def cluster() -> StateMachine:
    sm = StateMachine()
    for node in NODES:
        assert sm.apply(join_cmd(node, 0)).ok
    return sm


def ok(sm: StateMachine, plain: dict[str, Any]) -> dict[str, Any]:
    res = sm.apply(plain)
    assert res.ok, res
    check_invariants(sm)
    return dict(res.data)


def fail_for_good(sm: StateMachine, wf: str, epoch: int, step: str, attempt: int, ts: int) -> None:
    """Start ``attempt`` and fail it permanently (dead-lettered)."""
    ok(sm, step_cmd("start", wf, epoch, step, attempt, ts))
    fail = c.Fail(
        wf=wf,
        epoch=epoch,
        step=step,
        attempt=attempt,
        error="boom",
        error_class="permanent",
        ts=ts + 1,
        dlq_max=DLQ_MAX,
    )
    ok(sm, fail.to_plain())


def retry(sm: StateMachine, wf: str, from_step: str | None = None, ts: int = 1_000) -> dict[str, Any]:
    seen = sm.workflows[wf].retries
    return ok(sm, c.Retry(wf=wf, seen=seen, reason="fixed", ts=ts, from_step=from_step).to_plain())


def failed_sequential(sm: StateMachine, wf: str = "w1") -> None:
    """a succeeds, b fails for good, c is cancelled."""
    ok(sm, submit_cmd(f"r-{wf}", wf, "sequential", 10))
    ok(sm, step_cmd("start", wf, 1, "a", 1, 20))
    ok(sm, step_cmd("succeed", wf, 1, "a", 1, 30, output='{"a":1}'))
    fail_for_good(sm, wf, 1, "b", 1, 40)


def test_a_final_failure_is_dead_lettered_and_kept_from_gc() -> None:
    sm = cluster()
    failed_sequential(sm)
    (entry,) = sm.dlq.values()
    assert (entry.wf, entry.state, entry.step, entry.error_class, entry.attempts) == (
        "w1",
        DLQ_PENDING,
        "b",
        "permanent",
        1,
    )
    assert "dead_lettered" in [e[2] for e in sm.workflows["w1"].events]
    ok(sm, c.Gc(before=10**12, keep_max=0, ts=100).to_plain())
    assert "w1" in sm.workflows, "an unresolved entry's workflow is never collected"
    ok(sm, c.DlqClose(entry=entry.id, state=DLQ_ABANDONED, reason="known bad", ts=110).to_plain())
    ok(sm, c.Gc(before=10**12, keep_max=0, ts=120).to_plain())
    assert "w1" not in sm.workflows and sm.dlq[entry.id].state == DLQ_ABANDONED


def test_a_failure_without_dlq_max_is_not_dead_lettered() -> None:
    """Commands of an older proposer (no dlq_max) apply as they did: no entry, digests unchanged."""
    sm = cluster()
    ok(sm, submit_cmd("r1", "w1", "sequential", 10))
    ok(sm, step_cmd("start", "w1", 1, "a", 1, 20))
    ok(sm, step_cmd("fail", "w1", 1, "a", 1, 30, error="x", error_class="permanent"))
    assert sm.workflows["w1"].status == WORKFLOW_FAILED and not sm.dlq
    assert "dlq" not in sm.to_plain()


def test_retry_runs_the_failed_step_again_with_fresh_attempt_numbers() -> None:
    sm = cluster()
    failed_sequential(sm)
    a_before = sm.workflows["w1"].steps["a"].to_plain()
    data = retry(sm, "w1")
    wf = sm.workflows["w1"]
    assert data["duplicate"] is False and data["entry"] == "dlq-1"
    assert (wf.status, wf.epoch, wf.retries) == (WORKFLOW_RUNNING, 2, 1)
    assert wf.steps["a"].to_plain() == a_before, "a succeeded step keeps its output and is not run again"
    assert (wf.steps["b"].status, wf.steps["b"].attempts, wf.steps["b"].base) == (STEP_PENDING, 1, 1)
    assert wf.events[-1][2] == EVENT_RETRIED
    assert sm.dlq["dlq-1"].state == DLQ_RETRYING
    # The old epoch is fenced; the next attempt of b is 2 (its idempotency key is new).
    assert sm.apply(step_cmd("start", "w1", 1, "b", 2, 1_010)).code == "ABORTED"
    assert sm.apply(step_cmd("start", "w1", 2, "b", 1, 1_010)).code == "FAILED_PRECONDITION"
    ok(sm, step_cmd("start", "w1", 2, "b", 2, 1_010))
    ok(sm, step_cmd("succeed", "w1", 2, "b", 2, 1_020, output="2", start=(("c", 0),)))
    ok(sm, step_cmd("succeed", "w1", 2, "c", 1, 1_030, output="3"))
    assert wf.status == WORKFLOW_SUCCEEDED
    assert sm.dlq["dlq-1"].state == DLQ_RESOLVED and not sm.dlq_open
    assert sm.running_count() == 0 and sm.counters["failed"] == 1 and sm.reopened == {"failed": 1}


def test_a_retry_that_fails_again_puts_the_entry_back_to_pending() -> None:
    sm = cluster()
    failed_sequential(sm)
    retry(sm, "w1")
    fail_for_good(sm, "w1", 2, "b", 2, 1_100)
    entry = sm.dlq["dlq-1"]
    assert (entry.state, entry.failures, entry.retries, len(sm.dlq)) == (DLQ_PENDING, 2, 1, 1)


def test_retry_preconditions_and_duplicates() -> None:
    sm = cluster()
    ok(sm, submit_cmd("r1", "w1", "sequential", 10))
    running = c.Retry(wf="w1", seen=0, reason="", ts=20).to_plain()
    assert sm.apply(running).code == "FAILED_PRECONDITION"
    assert sm.apply(c.Retry(wf="nope", seen=0, reason="", ts=20).to_plain()).code == "NOT_FOUND"
    fail_for_good(sm, "w1", 1, "a", 1, 30)
    assert sm.apply(c.Retry(wf="w1", seen=0, reason="", ts=40, from_step="zz").to_plain()).code == "NOT_FOUND"
    first = c.Retry(wf="w1", seen=0, reason="", ts=40).to_plain()
    ok(sm, first)
    digest = sm.digest()
    again = sm.apply(first)  # proposed again after an unknown outcome
    assert again.ok and again.data["duplicate"] is True and sm.digest() == digest


def test_retry_from_a_step_reruns_it_and_everything_downstream() -> None:
    sm = cluster()
    ok(sm, submit_cmd("r1", "w1", "diamond", 10))
    ok(sm, step_cmd("start", "w1", 1, "start", 1, 20))
    ok(sm, step_cmd("succeed", "w1", 1, "start", 1, 21, output="0", start=(("left", 0), ("right", 0))))
    ok(sm, step_cmd("succeed", "w1", 1, "left", 1, 22, output="1"))
    fail = c.Fail(
        wf="w1", epoch=1, step="right", attempt=1, error="x", error_class="permanent", ts=23, dlq_max=9
    )
    ok(sm, fail.to_plain())
    retry(sm, "w1", from_step="left")
    steps = sm.workflows["w1"].steps
    assert steps["start"].status == STEP_SUCCEEDED
    assert [steps[s].status for s in ("left", "right", "join")] == [STEP_PENDING] * 3
    assert steps["left"].base == 1 and steps["left"].output_json == ""
    roundtrip = StateMachine.from_plain(json.loads(json.dumps(sm.to_plain())))
    assert roundtrip.digest() == sm.digest()


def test_dlq_max_collects_closed_entries_first_then_reports_overflow() -> None:
    sm = cluster()
    for i in range(DLQ_MAX):
        failed_sequential(sm, f"w{i}")
    ok(sm, c.DlqClose(entry="dlq-3", state=DLQ_RESOLVED, reason="done", ts=50).to_plain())
    failed_sequential(sm, "w-new")
    assert "dlq-3" not in sm.dlq and len(sm.dlq) == DLQ_MAX and sm.dlq_open["w-new"] == "dlq-11"
    failed_sequential(sm, "w-overflow")
    assert sm.dlq_overflow == 1 and "w-overflow" not in sm.dlq_open
    assert any("queue full" in n[5] for n in sm.notable)


def test_closing_an_entry() -> None:
    sm = cluster()
    failed_sequential(sm)
    close = c.DlqClose(entry="dlq-1", state=DLQ_RESOLVED, reason="fixed by hand", ts=60).to_plain()
    assert ok(sm, close) == {"changed": True}
    assert ok(sm, close) == {"changed": False}  # idempotent
    abandon = c.DlqClose(entry="dlq-1", state=DLQ_ABANDONED, reason="x", ts=61).to_plain()
    assert sm.apply(abandon).code == "FAILED_PRECONDITION"
    assert sm.apply(dict(close, entry="dlq-9")).code == "NOT_FOUND"
    assert sm.apply(dict(close, state="pending")).code == "INVALID_ARGUMENT"
    # A workflow retried after its entry was closed gets a new entry if it fails again: the old stays closed.
    retry(sm, "w1")
    fail_for_good(sm, "w1", 2, "b", 2, 1_100)
    assert sm.dlq["dlq-1"].state == DLQ_RESOLVED and sm.dlq["dlq-2"].state == DLQ_PENDING


def test_a_passed_deadline_fails_the_workflow_and_dead_letters_it() -> None:
    sm = cluster()
    ok(sm, submit_cmd("r1", "w1", "timed", 1_000, start=(("a", 0),)))  # timeout 2s: deadline 3_000
    wf = sm.workflows["w1"]
    assert wf.deadline_ms == 3_000
    early = c.Expire(wf="w1", epoch=1, ts=2_999, dlq_max=DLQ_MAX).to_plain()
    assert sm.apply(early).code == "FAILED_PRECONDITION"
    assert sm.apply(dict(early, ts=3_000, epoch=7)).code == "ABORTED"
    assert ok(sm, dict(early, ts=3_000)) == {"stopped": ["a"]}
    assert wf.status == WORKFLOW_FAILED and "deadline exceeded" in wf.error
    assert (wf.steps["a"].status, wf.steps["a"].error_class) == ("failed", "deadline_exceeded")
    assert sm.dlq["dlq-1"].error_class == "deadline_exceeded"
    # The abandoned attempt's late result is refused; a retry gets a fresh deadline from its own time.
    late = step_cmd("succeed", "w1", 1, "a", 1, 3_001, output="1")
    assert sm.apply(late).code == "FAILED_PRECONDITION"
    retry(sm, "w1", ts=10_000)
    assert wf.deadline_ms == 12_000 and wf.steps["a"].attempts == 1
    assert sm.apply(c.Expire(wf="w1", epoch=2, ts=11_000).to_plain()).code == "FAILED_PRECONDITION"


def test_a_workflow_without_timeout_has_no_deadline() -> None:
    sm = cluster()
    ok(sm, submit_cmd("r1", "w1", "sequential", 10))
    assert sm.workflows["w1"].deadline_ms == 0
    assert sm.apply(c.Expire(wf="w1", epoch=1, ts=10**12).to_plain()).code == "FAILED_PRECONDITION"


def test_a_step_deadline_spans_its_attempts_and_fails_the_workflow() -> None:
    """``deadline`` counts from the step's first attempt across retries; ``timeout`` bounds one attempt."""
    sm = cluster()
    ok(sm, submit_cmd("r1", "w1", "bounded", 1_000, start=(("call", 0),)))  # call: deadline 2s from 1_000
    wf = sm.workflows["w1"]
    call = wf.steps["call"]
    assert wf.step_deadline_ms(call) == 3_000 and wf.step_deadline_ms(wf.steps["after"]) == 0
    ok(sm, step_cmd("fail", "w1", 1, "call", 1, 1_500, error="x", error_class="transient", retry_at=2_500))
    ok(sm, step_cmd("start", "w1", 1, "call", 2, 2_500))
    assert wf.step_deadline_ms(call) == 3_000  # a retry does not move it
    early = c.Expire(wf="w1", epoch=1, ts=2_999, step="call", dlq_max=DLQ_MAX).to_plain()
    assert sm.apply(early).code == "FAILED_PRECONDITION"
    assert sm.apply(dict(early, step="nope", ts=3_000)).code == "NOT_FOUND"
    assert sm.apply(dict(early, step="after", ts=9_000)).code == "FAILED_PRECONDITION"  # not started
    assert sm.apply(dict(early, ts=3_000, epoch=7)).code == "ABORTED"
    assert ok(sm, dict(early, ts=3_000)) == {"stopped": ["call"]}
    assert (call.status, call.error_class, call.attempts) == ("failed", "deadline_exceeded", 2)
    assert wf.status == WORKFLOW_FAILED and "deadline_exceeded" in wf.error
    assert wf.steps["after"].status == "cancelled"
    entry = sm.dlq["dlq-1"]
    assert (entry.step, entry.error_class, entry.attempts) == ("call", "deadline_exceeded", 2)
    # The running attempt's late result is refused; a retry gives the step a fresh deadline.
    assert sm.apply(step_cmd("succeed", "w1", 1, "call", 2, 3_001, output="1")).code == "FAILED_PRECONDITION"
    retry(sm, "w1", ts=10_000)
    assert wf.step_deadline_ms(call) == 0 and call.first_ms == 0
    ok(sm, step_cmd("start", "w1", 2, "call", 3, 10_100))
    assert wf.step_deadline_ms(call) == 12_100


def test_a_workflow_without_step_deadlines_encodes_as_before() -> None:
    """``first_ms`` is kept only for steps with a deadline, so old states keep their digests."""
    sm = cluster()
    ok(sm, submit_cmd("r1", "w1", "flaky", 1_000, start=(("call", 0),)))
    assert sm.workflows["w1"].steps["call"].first_ms == 0
    assert len(sm.workflows["w1"].steps["call"].to_plain()) == 9
    assert "deadline_ms" not in sm.workflows["w1"].spec.to_plain()["steps"][0]
