"""Pause and resume on the state machine directly: a paused workflow starts no attempt."""

from __future__ import annotations

from beamflowd.core import commands as c
from beamflowd.core.invariants import check_invariants
from beamflowd.core.state import StateMachine
from beamflowd.core.vocabulary import STEP_PENDING, STEP_SUCCEEDED, WORKFLOW_CANCELLED
from tests.unit.state_strategies import NODES, join_cmd, step_cmd, submit_cmd


def cluster() -> StateMachine:
    sm = StateMachine()
    for node in NODES:
        assert sm.apply(join_cmd(node, 0)).ok
    return sm


def test_a_paused_workflow_finishes_running_attempts_but_starts_none() -> None:
    sm = cluster()
    assert sm.apply(submit_cmd("r1", "w1", "sequential", 10, start=(("a", 0),))).ok
    res = sm.apply(c.Pause(wf="w1", ts=20, reason="maintenance").to_plain())
    assert res.ok and res.data == {"changed": True} and sm.workflows["w1"].paused == "maintenance"
    assert sm.apply(c.Pause(wf="w1", ts=21).to_plain()).data == {"changed": False}
    # The running attempt of a records its result; the b it would start in the same entry does not start.
    assert sm.apply(step_cmd("succeed", "w1", 1, "a", 1, 30, output="1", start=(("b", 0),))).ok
    steps = sm.workflows["w1"].steps
    assert steps["a"].status == STEP_SUCCEEDED and steps["b"].status == STEP_PENDING
    refused = sm.apply(step_cmd("start", "w1", 1, "b", 1, 40))
    assert refused.code == "FAILED_PRECONDITION" and "paused" in refused.message
    # A node death moves it paused; the new owner starts nothing until the resume.
    owner = sm.workflows["w1"].owner
    assert sm.apply(c.NodeDown(node=owner, ts=50).to_plain()).ok
    assert sm.workflows["w1"].paused and sm.workflows["w1"].epoch == 2
    assert sm.apply(c.Resume(wf="w1", ts=60).to_plain()).data == {"changed": True}
    assert sm.apply(c.Resume(wf="w1", ts=61).to_plain()).data == {"changed": False}
    assert sm.apply(step_cmd("start", "w1", 2, "b", 1, 70)).ok
    kinds = [e[2] for e in sm.workflows["w1"].events]
    assert "paused" in kinds and "resumed" in kinds
    check_invariants(sm)


def test_pause_preconditions_and_cancel_of_a_paused_workflow() -> None:
    sm = cluster()
    assert sm.apply(c.Pause(wf="nope", ts=1).to_plain()).code == "NOT_FOUND"
    assert sm.apply(submit_cmd("r1", "w1", "sequential", 10)).ok
    assert sm.apply(c.Pause(wf="w1", ts=20).to_plain()).ok
    assert sm.workflows["w1"].paused == "paused by request"
    assert sm.apply(c.Cancel(wf="w1", ts=30).to_plain()).data == {"cancelled": True}
    wf = sm.workflows["w1"]
    assert wf.status == WORKFLOW_CANCELLED and not wf.paused
    assert sm.apply(c.Pause(wf="w1", ts=40).to_plain()).code == "FAILED_PRECONDITION"
    assert sm.apply(c.Resume(wf="w1", ts=40).to_plain()).code == "FAILED_PRECONDITION"
    check_invariants(sm)
    assert "paused" not in wf.to_plain()
