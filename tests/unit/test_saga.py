"""Saga compensation: the parser's ``compensate`` key, and the state machine running the compensations of
succeeded steps once each, newest completion first, after a final failure (never after a terminal one)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamflowd.core.commands import Compensate
from beamflowd.core.invariants import check_invariants
from beamflowd.core.spec import SpecError, WorkflowSpec, parse_workflow
from beamflowd.core.state import Result, StateMachine
from tests.unit.state_strategies import NODES, SAGA_YAML, join_cmd, step_cmd


def _doc(**compensate: Any) -> str:
    steps = [{"id": "a", "run": "noop"}, {"id": "b", "run": "noop", "needs": "a", "compensate": compensate}]
    return yaml.safe_dump({"name": "wf", "steps": steps}, sort_keys=False)


def test_compensate_parses_with_its_own_retry_and_round_trips() -> None:
    text = _doc(
        run="demo", retry={"preset": "payment"}, timeout="5s", **{"with": {"output": "${{ steps.b }}"}}
    )
    spec = parse_workflow(text)
    comp = spec.step("b").compensate
    assert (
        comp is not None and comp.run == "demo" and comp.retry.max_attempts == 3 and comp.timeout_ms == 5000
    )
    assert WorkflowSpec.from_plain(json.loads(json.dumps(spec.to_plain()))) == spec
    assert "compensate" not in spec.to_plain()["steps"][0]


@pytest.mark.parametrize(
    ("compensate", "field", "reason"),
    [
        ({}, "compensate.run", "step kind"),
        ({"run": "choice"}, "compensate.run", "step kind"),
        ({"run": "teleport"}, "compensate.run", "unknown step kind"),
        ({"run": "noop", "undo": 1}, "compensate.undo", "unknown key"),
        ({"run": "sleep", "with": {}}, "compensate.with.duration", "required"),
        ({"run": "noop", "timeout": "soon"}, "compensate.timeout", "duration"),
        ({"run": "demo", "with": {"output": "${{ steps.zzz }}"}}, "compensate.with.output", "unknown step"),
    ],
)
def test_compensate_refusals_name_step_and_field(compensate: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_workflow(_doc(**compensate), source="s.yaml")
    assert (info.value.step, info.value.field) == ("b", field), str(info.value)
    assert reason in info.value.reason, str(info.value)


# ------------------------------------------------------------------------------------------ state machine
def _machine() -> StateMachine:
    sm = StateMachine()
    for node in NODES:
        assert sm.apply(join_cmd(node, 0)).ok
    plain = parse_workflow(SAGA_YAML).to_plain()
    assert sm.apply({"v": 1, "op": "submit", "rid": "r", "wf": "w", "spec": plain, "input": "{}", "ts": 1}).ok
    for i, step in enumerate(("book", "charge")):
        assert sm.apply(step_cmd("start", "w", 1, step, 1, 10 + i)).ok
        assert sm.apply(step_cmd("succeed", "w", 1, step, 1, 20 + i, output="{}")).ok
    assert sm.apply(step_cmd("start", "w", 1, "ship", 1, 30)).ok
    return sm


def _fail_ship(sm: StateMachine, error_class: str = "permanent") -> None:
    cmd = step_cmd("fail", "w", 1, "ship", 1, 31, error="no truck", error_class=error_class, retry_at=0)
    assert sm.apply(cmd).ok


def _comp(sm: StateMachine, step: str, attempt: int, phase: str, **extra: Any) -> Result:
    return sm.apply(
        Compensate(wf="w", epoch=1, step=step, attempt=attempt, phase=phase, ts=40, **extra).to_plain()
    )


def test_a_final_failure_compensates_newest_first_and_ends_compensated() -> None:
    sm = _machine()
    _fail_ship(sm)
    wf = sm.workflows["w"]
    assert wf.status == "running" and [c[0] for c in wf.compensations] == ["charge", "book"]
    assert _comp(sm, "book", 1, "start").code == "FAILED_PRECONDITION"  # charge completed last: first
    assert (
        _comp(sm, "charge", 1, "start").ok and _comp(sm, "charge", 1, "start").code == "FAILED_PRECONDITION"
    )
    res = _comp(sm, "charge", 1, "fail", error="bank down", error_class="transient", retry_at=50)
    assert res.data == {"retry": True}
    assert _comp(sm, "charge", 2, "start").ok and _comp(sm, "charge", 2, "succeed").ok
    assert _comp(sm, "book", 1, "start").ok and _comp(sm, "book", 1, "succeed").ok
    assert wf.status == "compensated" and wf.error.startswith("step ship failed after 1 attempt(s)")
    kinds = [e[2] for e in wf.events]
    assert kinds.count("step_compensated") == 2 and kinds[-1] == "compensated"
    assert sm.running_count() == 0 and sm.counters["compensated"] == 1
    check_invariants(sm)
    restored = StateMachine.from_plain(json.loads(json.dumps(sm.to_plain())))
    assert restored.digest() == sm.digest()


def test_a_compensation_failing_for_good_ends_compensation_failed() -> None:
    sm = _machine()
    _fail_ship(sm)
    assert _comp(sm, "charge", 1, "start").ok
    assert _comp(sm, "charge", 1, "fail", error="gone", error_class="permanent", retry_at=50).data == {
        "retry": False
    }
    wf = sm.workflows["w"]
    assert wf.status == "compensation_failed" and "compensation of charge failed" in wf.error
    assert [c[1] for c in wf.compensations] == ["failed", "pending"]
    (entry,) = sm.dlq.values()  # failed for good twice over: an operator must look at it
    assert (entry.kind, entry.state, entry.wf) == ("compensation_failed", "pending", "w")
    check_invariants(sm)


def test_a_terminal_failure_is_not_compensated() -> None:
    sm = _machine()
    _fail_ship(sm, "terminal")
    wf = sm.workflows["w"]
    assert wf.status == "failed" and wf.compensations == [] and "terminally" in wf.error


PHASES = (("start", "", 0), ("succeed", "", 0), ("fail", "transient", 60), ("fail", "permanent", 0))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_compensations_run_once_each_in_reverse_completion_order(data: st.DataObject) -> None:
    sm = _machine()
    _fail_ship(sm)
    wf = sm.workflows["w"]
    for _ in range(40):
        if wf.terminal:
            break
        entry = next(c for c in wf.compensations if c[1] != "succeeded")
        moves = [
            Compensate(
                wf="w",
                epoch=1,
                step=sid,
                attempt=n,
                phase=phase,
                ts=40,
                error="e",
                error_class=cls,
                retry_at=r,
            ).to_plain()
            for sid in ("charge", "book")
            for n in (entry[2], entry[2] + 1)
            for phase, cls, r in PHASES
        ]
        sm.apply(data.draw(st.sampled_from(moves)))
        check_invariants(sm)
    compensated = [e[3] for e in wf.events if e[2] == "step_compensated"]
    assert compensated in ([], ["charge"], ["charge", "book"]), compensated  # once each, newest first
    if wf.status == "compensated":
        assert compensated == ["charge", "book"]


def test_cancel_with_compensation_undoes_the_succeeded_steps_and_plain_cancel_does_not() -> None:
    from beamflowd.core.commands import Cancel

    sm = _machine()
    res = sm.apply(Cancel(wf="w", ts=35, reason="customer changed mind", compensate=True).to_plain())
    wf = sm.workflows["w"]
    assert res.data == {"cancelled": True, "compensating": True} and wf.status == "running"
    assert wf.steps["ship"].status == "cancelled" and [c[0] for c in wf.compensations] == ["charge", "book"]
    again = sm.apply(Cancel(wf="w", ts=36, compensate=True).to_plain())
    assert again.data == {"cancelled": False, "compensating": True}
    for step in ("charge", "book"):
        assert _comp(sm, step, 1, "start").ok and _comp(sm, step, 1, "succeed").ok
    assert wf.status == "compensated" and wf.error == "customer changed mind"
    check_invariants(sm)
    plain = _machine()
    assert plain.apply(Cancel(wf="w", ts=35).to_plain()).data == {"cancelled": True}
    assert plain.workflows["w"].status == "cancelled" and plain.workflows["w"].compensations == []
