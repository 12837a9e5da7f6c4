"""``wait`` steps and signals: the parser's rules, the state machine's delivery (at once, or buffered and
taken when the step starts), its bounds and refusals, the durable timeout, and exactly-once delivery."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamflowd.core.commands import Signal
from beamflowd.core.invariants import check_invariants
from beamflowd.core.signals import SIGNAL_PAYLOAD_BYTES_MAX, SIGNALS_BUFFERED_MAX, payload_problem
from beamflowd.core.spec import SpecError, parse_workflow
from beamflowd.core.state import Result, StateMachine
from beamflowd.core.step_params import durable_delay_ms
from beamflowd.core.vocabulary import STEP_RUNNING, STEP_SUCCEEDED, WORKFLOW_SUCCEEDED
from tests.unit.state_strategies import APPROVAL_YAML, NODES, join_cmd, step_cmd

SCHEMA = {"type": "object", "properties": {"approved": {"type": "boolean"}}, "required": ["approved"]}


def _doc(**with_: Any) -> str:
    step = {"id": "w", "run": "wait", "with": with_}
    return yaml.safe_dump({"name": "wf", "steps": [step]}, sort_keys=False)


# ------------------------------------------------------------------------------------------------ parser
def test_wait_params_parse() -> None:
    spec = parse_workflow(_doc(signal="approval", timeout="2h", schema=SCHEMA))
    step = spec.step("w")
    assert step.signal == "approval"
    assert durable_delay_ms("wait", dict(step.params)) == 2 * 3600 * 1000
    assert parse_workflow(_doc(signal="hook")).step("w").signal == "hook"
    assert durable_delay_ms("wait", {"signal": "hook"}) is None


@pytest.mark.parametrize(
    ("with_", "field", "reason"),
    [
        ({}, "with.signal", "required parameter"),
        ({"signal": "${{ input.name }}"}, "with.signal", "literal signal name"),
        ({"signal": "9lives"}, "with.signal", "literal signal name"),
        ({"signal": "a", "timeout": "soon"}, "with.timeout", "duration"),
        ({"signal": "a", "timeout": "0s"}, "with.timeout", "positive"),
        ({"signal": "a", "schema": "object"}, "with.schema", "JSON Schema object"),
        ({"signal": "a", "schema": {"type": "thing"}}, "with.schema", "not a valid JSON Schema"),
        ({"signal": "a", "channel": "x"}, "with.channel", "unknown parameter"),
    ],
)
def test_wait_refusals_name_step_and_field(with_: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_workflow(_doc(**with_), source="approve.yaml")
    err = info.value
    assert (err.source, err.step, err.field) == ("approve.yaml", "w", field), str(err)
    assert reason in err.reason, str(err)


def test_payload_schema_errors_name_the_path() -> None:
    assert payload_problem(SCHEMA, {"approved": True}) is None
    problem = payload_problem(SCHEMA, {"approved": "yes"})
    assert problem is not None and problem.startswith("$.approved: ")
    assert payload_problem({"$ref": "https://example.invalid/s.json"}, 1) is not None  # never fetched


# ------------------------------------------------------------------------------------------ state machine
def _machine() -> StateMachine:
    sm = StateMachine()
    for node in NODES:
        assert sm.apply(join_cmd(node, 0)).ok
    plain = parse_workflow(APPROVAL_YAML).to_plain()
    submit = {"v": 1, "op": "submit", "rid": "r", "wf": "w", "spec": plain, "input": "{}", "ts": 1}
    assert sm.apply(submit).ok
    return sm


def _signal(sm: StateMachine, sid: str, payload: str = '{"ok":true}', name: str = "approval") -> Result:
    return sm.apply(Signal(wf="w", name=name, payload=payload, sid=sid, ts=50).to_plain())


def _run(sm: StateMachine, step: str, ts: int = 10, wake: int = 0) -> None:
    assert sm.apply(step_cmd("start", "w", 1, step, 1, ts, wake=wake)).ok, step


def test_a_signal_completes_the_running_wait_with_its_payload() -> None:
    sm = _machine()
    wf = sm.workflows["w"]
    _run(sm, "prepare")
    assert sm.apply(step_cmd("succeed", "w", 1, "prepare", 1, 11, output="null")).ok
    _run(sm, "approve", wake=11 + 3_600_000)
    res = _signal(sm, "s1", '{"approved":true}')
    assert res.ok and res.data == {"delivered": True, "duplicate": False, "step": "approve"}
    step = wf.steps["approve"]
    assert step.status == STEP_SUCCEEDED and json.loads(step.output_json) == {"approved": True}
    assert step.next_ms == 0
    # Retried (same id): accepted once, nothing changes.
    digest = sm.digest()
    assert _signal(sm, "s1").data["duplicate"] is True and sm.digest() == digest
    check_invariants(sm)


def test_early_signals_are_buffered_then_taken_in_order_when_each_wait_starts() -> None:
    sm = _machine()
    wf = sm.workflows["w"]
    assert _signal(sm, "s1", '{"n":1}').data == {"delivered": False, "duplicate": False, "step": ""}
    assert _signal(sm, "s2", '{"n":2}').ok
    assert [x[0] for x in wf.signals] == ["s1", "s2"]
    _run(sm, "prepare")
    assert sm.apply(step_cmd("succeed", "w", 1, "prepare", 1, 11, output="null", start=(("approve", 0),))).ok
    # The start carried by the succeed took the oldest signal in the same entry.
    assert wf.steps["approve"].status == STEP_SUCCEEDED and json.loads(wf.steps["approve"].output_json) == {
        "n": 1
    }
    _run(sm, "confirm", ts=12)
    assert json.loads(wf.steps["confirm"].output_json) == {"n": 2} and wf.signals == []
    _run(sm, "done", ts=13)
    assert sm.apply(step_cmd("succeed", "w", 1, "done", 1, 14, output="null")).ok
    assert wf.status == WORKFLOW_SUCCEEDED
    assert [e[2] for e in wf.events].count("signal_received") == 2
    # An ended workflow takes no more signals; a retry of one it took is still a harmless duplicate.
    assert _signal(sm, "s3").code == "FAILED_PRECONDITION"
    assert _signal(sm, "s2").data["duplicate"] is True
    check_invariants(sm)


def test_signal_bounds_and_refusals_change_nothing() -> None:
    sm = _machine()
    for i in range(SIGNALS_BUFFERED_MAX):
        assert _signal(sm, f"s{i}").ok
    digest = sm.digest()
    full = _signal(sm, "one-more")
    assert full.code == "RESOURCE_EXHAUSTED" and "16" in full.message
    big = _signal(sm, "big", '"' + "x" * SIGNAL_PAYLOAD_BYTES_MAX + '"')
    assert big.code == "RESOURCE_EXHAUSTED" and "signal.payload" in big.message
    assert _signal(sm, "x", name="other").code == "INVALID_ARGUMENT"
    assert (
        sm.apply(Signal(wf="nope", name="approval", payload="1", sid="z", ts=1).to_plain()).code
        == "NOT_FOUND"
    )
    assert sm.digest() == digest
    check_invariants(sm)


def test_a_wait_fails_only_once_its_committed_deadline_passed() -> None:
    sm = _machine()
    _run(sm, "prepare")
    assert sm.apply(step_cmd("succeed", "w", 1, "prepare", 1, 11, output="null")).ok
    _run(sm, "approve", ts=20, wake=1_000)
    early = step_cmd("fail", "w", 1, "approve", 1, 999, error="no signal", error_class="timeout")
    assert sm.apply(early).code == "FAILED_PRECONDITION"
    assert sm.workflows["w"].steps["approve"].status == STEP_RUNNING
    late = step_cmd("fail", "w", 1, "approve", 1, 1_000, error="no signal", error_class="timeout")
    assert sm.apply(late).ok
    assert sm.workflows["w"].status == "failed"
    # A wait without a timeout never fails by a fail command.
    sm2 = _machine()
    _run(sm2, "prepare")
    assert sm2.apply(step_cmd("succeed", "w", 1, "prepare", 1, 11, output="null")).ok
    _run(sm2, "approve", ts=20, wake=0)
    assert sm2.apply(
        step_cmd("fail", "w", 1, "approve", 1, 10**12, error="e", error_class="timeout")
    ).code == ("FAILED_PRECONDITION")


def test_buffered_signals_survive_a_snapshot_and_unused_fields_stay_absent() -> None:
    sm = _machine()
    assert "signals" not in sm.workflows["w"].to_plain() and "signal_ids" not in sm.workflows["w"].to_plain()
    assert _signal(sm, "s1").ok
    restored = StateMachine.from_plain(json.loads(json.dumps(sm.to_plain())))
    assert restored.digest() == sm.digest() and restored.workflows["w"].signals == sm.workflows["w"].signals
    assert _signal(restored, "s1").data["duplicate"] is True


# ------------------------------------------------------------------------------------------------ property
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_buffered_signals_are_delivered_once_each_in_order(data: st.DataObject) -> None:
    sm = _machine()
    wf = sm.workflows["w"]
    accepted: list[str] = []
    for _ in range(40):
        if wf.terminal:
            break
        moves: list[dict[str, Any]] = [
            Signal(wf="w", name="approval", payload=json.dumps(sid), sid=sid, ts=30).to_plain()
            for sid in ("a", "b", "c", "d")
        ]
        for step in wf.steps.values():
            if step.status == "pending":
                moves.append(step_cmd("start", "w", 1, step.id, 1, 20))
            elif step.status == STEP_RUNNING and wf.spec.step(step.id).signal is None:
                moves.append(step_cmd("succeed", "w", 1, step.id, 1, 21, output="null"))
        cmd = data.draw(st.sampled_from(moves))
        res = sm.apply(cmd)
        if cmd["op"] == "signal" and res.ok and not res.data["duplicate"]:
            accepted.append(cmd["sid"])
        check_invariants(sm)
    received = [e[5].split("(")[1].rstrip(")") for e in wf.events if e[2] == "signal_received"]
    assert max(Counter(received).values(), default=0) <= 1, f"a signal was delivered twice: {received}"
    assert received == accepted[: len(received)], "signals are taken in the order they were accepted"
    buffered = [x[0] for x in wf.signals]
    assert received + buffered == accepted, "every accepted signal is delivered or still buffered"
    for step_id in ("approve", "confirm"):
        step = wf.steps[step_id]
        if step.status == STEP_SUCCEEDED:
            assert json.loads(step.output_json) in accepted
