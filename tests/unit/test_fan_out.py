"""``for_each`` fan-out: the parser's rules, and the state machine's per-instance commits (ItemDone): in
order, once each, kept across retries, the last one completing the step."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamflowd.core.commands import ItemDone
from beamflowd.core.invariants import check_invariants
from beamflowd.core.spec import FOR_EACH_ITEMS_MAX, SpecError, WorkflowSpec, parse_workflow
from beamflowd.core.state import Result, StateMachine
from beamflowd.core.vocabulary import STEP_RUNNING, STEP_SUCCEEDED, WORKFLOW_SUCCEEDED
from tests.unit.state_strategies import FANOUT_YAML, NODES, join_cmd, step_cmd


def _doc(**step: Any) -> str:
    return yaml.safe_dump({"name": "wf", "steps": [{"id": "a", "run": "noop", **step}]}, sort_keys=False)


def test_for_each_and_concurrency_parse_and_round_trip() -> None:
    spec = parse_workflow(_doc(for_each="${{ input.items }}", concurrency=20))
    step = spec.step("a")
    assert (step.for_each, step.concurrency) == ("${{ input.items }}", 20)
    assert WorkflowSpec.from_plain(json.loads(json.dumps(spec.to_plain()))) == spec
    assert "for_each" not in parse_workflow(_doc()).to_plain()["steps"][0]


@pytest.mark.parametrize(
    ("step", "field", "reason"),
    [
        ({"for_each": "input.items"}, "for_each", "must be one expression"),
        ({"for_each": ["a"]}, "for_each", "must be one expression"),
        ({"for_each": "${{ steps.x }}"}, "for_each", "unknown step 'x'"),
        ({"concurrency": 3}, "concurrency", "only a for_each step"),
        ({"for_each": "${{ input.items }}", "concurrency": 0}, "concurrency", "from 1 to 100"),
        ({"for_each": "${{ input.items }}", "concurrency": True}, "concurrency", "from 1 to 100"),
        (
            {"for_each": "${{ input.items }}", "run": "sleep", "with": {"duration": "1s"}},
            "for_each",
            "cannot fan out",
        ),
    ],
)
def test_fan_out_refusals_name_step_and_field(step: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_workflow(_doc(**step), source="f.yaml")
    assert (info.value.step, info.value.field) == ("a", field), str(info.value)
    assert reason in info.value.reason, str(info.value)


# ------------------------------------------------------------------------------------------ state machine
def _machine() -> StateMachine:
    sm = StateMachine()
    for node in NODES:
        assert sm.apply(join_cmd(node, 0)).ok
    plain = parse_workflow(FANOUT_YAML).to_plain()
    submit = {
        "v": 1,
        "op": "submit",
        "rid": "r",
        "wf": "w",
        "spec": plain,
        "input": '{"items":[1,2,3]}',
        "ts": 1,
    }
    assert sm.apply(submit).ok
    assert sm.apply(step_cmd("start", "w", 1, "each", 1, 2)).ok
    return sm


def _item(sm: StateMachine, index: int, output: str, attempt: int = 1, count: int = 3) -> Result:
    cmd = ItemDone(
        wf="w", epoch=1, step="each", attempt=attempt, index=index, count=count, output=output, ts=5
    )
    return sm.apply(cmd.to_plain())


def test_instances_commit_once_each_and_the_last_completes_the_step_in_item_order() -> None:
    sm = _machine()
    step = sm.workflows["w"].steps["each"]
    assert _item(sm, 2, '"c"').data == {"duplicate": False, "done": False}
    assert _item(sm, 2, '"other"').data["duplicate"] is True and step.items[2] == '"c"'
    assert _item(sm, 0, '"a"').ok
    assert _item(sm, 5, '"x"').code == "INVALID_ARGUMENT"
    assert _item(sm, 1, '"b"', count=4).code == "FAILED_PRECONDITION"  # the count is fixed by the first
    assert sm.apply(step_cmd("succeed", "w", 1, "each", 1, 6, output="[]")).code == "FAILED_PRECONDITION"
    assert step.status == STEP_RUNNING
    assert _item(sm, 1, '"b"').data == {"duplicate": False, "done": True}
    assert step.status == STEP_SUCCEEDED and json.loads(step.output_json) == ["a", "b", "c"]
    check_invariants(sm)


def test_outputs_of_a_failed_attempt_are_kept_and_the_retry_completes_the_rest() -> None:
    sm = _machine()
    step = sm.workflows["w"].steps["each"]
    assert _item(sm, 0, "1").ok
    assert sm.apply(
        step_cmd("fail", "w", 1, "each", 1, 6, error="boom", error_class="transient", retry_at=7)
    ).ok
    assert _item(sm, 1, "2").code == "FAILED_PRECONDITION"  # not running
    assert sm.apply(step_cmd("start", "w", 1, "each", 2, 8)).ok
    assert _item(sm, 1, "2", attempt=1).code == "FAILED_PRECONDITION"  # an old attempt's result
    assert _item(sm, 1, "2", attempt=2).ok and _item(sm, 2, "3", attempt=2).ok
    assert json.loads(step.output_json) == [1, 2, 3]
    restored = StateMachine.from_plain(json.loads(json.dumps(sm.to_plain())))
    assert restored.digest() == sm.digest() and restored.workflows["w"].steps["each"].items == step.items
    assert sm.apply(step_cmd("start", "w", 1, "after", 1, 9)).ok
    assert sm.apply(step_cmd("succeed", "w", 1, "after", 1, 10, output="null")).ok
    assert sm.workflows["w"].status == WORKFLOW_SUCCEEDED
    check_invariants(sm)


def test_the_item_limit_is_enforced_by_apply() -> None:
    sm = _machine()
    assert _item(sm, 0, "1", count=FOR_EACH_ITEMS_MAX + 1).code == "INVALID_ARGUMENT"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 2), min_size=1, max_size=20))
def test_any_order_of_instances_with_repeats_yields_the_outputs_in_item_order(order: list[int]) -> None:
    sm = _machine()
    for index in order:
        _item(sm, index, json.dumps(index * 10))
        check_invariants(sm)
    step = sm.workflows["w"].steps["each"]
    if set(order) == {0, 1, 2}:
        assert json.loads(step.output_json) == [0, 10, 20]
    else:
        assert step.status == STEP_RUNNING and sorted(i for i, out in enumerate(step.items) if out) == sorted(
            set(order)
        )
