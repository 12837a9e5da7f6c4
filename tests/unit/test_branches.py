"""Conditions (``when``), ``needs_policy`` and ``choice`` steps: the parser's rules and refusals, the state
machine's decisions (skips, the branch taken), the step kind, and the scheduling shared by both sides."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamflowd.core.commands import Skip
from beamflowd.core.invariants import check_invariants
from beamflowd.core.scheduling import RUN, SKIP, WAIT, first_starts, verdict
from beamflowd.core.spec import SpecError, WorkflowSpec, parse_workflow
from beamflowd.core.state import StateMachine, spec_digest, step_verdict
from beamflowd.core.vocabulary import (
    STEP_PENDING,
    STEP_SKIPPED,
    STEP_SUCCEEDED,
    WORKFLOW_RUNNING,
    WORKFLOW_SUCCEEDED,
)
from beamflowd.steps import STEP_KINDS, StepContext
from tests.unit.state_strategies import BRANCHES_YAML, NODES, join_cmd, step_cmd

CHOICE = {
    "id": "route",
    "run": "choice",
    "needs": ["score"],
    "with": {
        "cases": [
            {"when": "${{ steps.score.risk < `30` }}", "next": "auto"},
            {"when": "${{ steps.score.risk < `70` }}", "next": "review"},
        ],
        "default": "reject",
    },
}
SCORE = {"id": "score", "run": "demo", "with": {"output": {"risk": 50}}}
BRANCHES = [{"id": b, "run": "noop", "needs": ["route"]} for b in ("auto", "review", "reject")]


def _doc(*steps: object) -> str:
    return yaml.safe_dump({"name": "wf", "steps": list(steps)}, sort_keys=False)


def _refused(text: str, *, step: str | None, field: str, reason: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_workflow(text, source="claim.yaml")
    err = info.value
    assert (err.source, err.step, err.field) == ("claim.yaml", step, field), str(err)
    assert reason in err.reason, str(err)


def _choice(**with_: Any) -> dict[str, Any]:
    return {**CHOICE, "with": {**CHOICE["with"], **with_}}


# ------------------------------------------------------------------------------------------------ parser
def test_when_and_needs_policy_parse_and_round_trip() -> None:
    spec = parse_workflow(
        _doc(
            {"id": "a", "run": "noop"},
            {"id": "b", "run": "noop", "needs": "a", "when": "${{ input.vip }}"},
            {"id": "c", "run": "noop", "needs": ["a", "b"], "needs_policy": "any"},
        )
    )
    assert spec.step("b").when == "${{ input.vip }}" and spec.step("b").needs_policy == "all_success"
    assert spec.step("c").needs_policy == "any" and spec.step("c").when is None
    assert WorkflowSpec.from_plain(json.loads(json.dumps(spec.to_plain()))) == spec


def test_definitions_without_the_new_keys_keep_their_plain_form_and_content_address() -> None:
    plain = parse_workflow(_doc({"id": "a", "run": "noop"})).to_plain()
    assert set(plain["steps"][0]) == {"id", "run", "params", "needs", "retry", "timeout_ms"}
    assert spec_digest(plain) == spec_digest(json.loads(json.dumps(plain)))


def test_choice_parses_with_its_branches() -> None:
    spec = parse_workflow(_doc(SCORE, CHOICE, *BRANCHES))
    assert spec.step("route").branches == ("auto", "review", "reject")
    assert spec.step("score").branches == ()


@pytest.mark.parametrize(
    ("step", "field", "reason"),
    [
        ({"when": "input.vip"}, "when", "must be one expression"),
        ({"when": "vip: ${{ input.vip }}"}, "when", "must be one expression"),
        ({"when": True}, "when", "must be one expression"),
        ({"when": "${{ input.[ }}"}, "when", "invalid expression"),
        ({"when": "${{ steps.zzz.ok }}"}, "when", "unknown step 'zzz'"),
        ({"when": "${{ steps }}"}, "when", "must read a named step"),
        ({"needs_policy": "most"}, "needs_policy", "must be one of all_success, any, all_done"),
    ],
)
def test_condition_refusals_name_step_and_field(step: dict[str, Any], field: str, reason: str) -> None:
    _refused(
        _doc({"id": "a", "run": "noop"}, {"id": "b", "run": "noop", "needs": "a", **step}),
        step="b",
        field=field,
        reason=reason,
    )


def test_when_reading_a_step_that_is_not_upstream_is_refused() -> None:
    text = _doc({"id": "a", "run": "noop"}, {"id": "b", "run": "noop", "when": "${{ steps.a.ok }}"})
    _refused(text, step="b", field="when", reason="not upstream")


def test_needs_policy_without_needs_is_refused() -> None:
    text = _doc({"id": "a", "run": "noop", "needs_policy": "any"})
    _refused(text, step="a", field="needs_policy", reason="without needs")


@pytest.mark.parametrize(
    ("choice", "field", "reason"),
    [
        ({**CHOICE, "with": {"cases": CHOICE["with"]["cases"]}}, "with.default", "must have a default"),
        (_choice(cases=[]), "with.cases", "non-empty list"),
        (_choice(cases=[{"when": "${{ input.a }}"}]), "with.cases[0].next", "required key"),
        (_choice(cases=[{"when": True, "next": "auto"}]), "with.cases[0].when", "expected an expression"),
        (
            _choice(cases=[{"when": "${{ input.a }}", "next": "auto", "then": 1}]),
            "with.cases[0].then",
            "unknown",
        ),
        (_choice(default="${{ input.to }}"), "with.default", "literal"),
        (_choice(default="nowhere"), "with.default", "not a step of this workflow"),
        (
            _choice(cases=[{"when": "${{ input.a }}", "next": "score"}]),
            "with.cases[0].next",
            "direct dependent",
        ),
        (_choice(default="auto"), "with.default", "named twice"),
        (
            _choice(cases=[{"when": "${{ input.a }}", "next": "x"} for _ in range(51)]),
            "with.cases",
            "limit of 50",
        ),
    ],
)
def test_choice_refusals_name_file_step_and_field(choice: dict[str, Any], field: str, reason: str) -> None:
    _refused(_doc(SCORE, choice, *BRANCHES), step="route", field=field, reason=reason)


def test_a_branch_owned_by_two_choices_is_refused() -> None:
    second = {
        "id": "route2",
        "run": "choice",
        "needs": ["score"],
        "with": {"cases": [{"when": "${{ input.a }}", "next": "auto"}], "default": "other"},
    }
    auto = {"id": "auto", "run": "noop", "needs": ["route", "route2"]}
    other = {"id": "other", "run": "noop", "needs": ["route2"]}
    text = _doc(SCORE, CHOICE, second, auto, *BRANCHES[1:], other)
    _refused(text, step="route2", field="with.cases[0].next", reason="overlapping branch ownership")


# -------------------------------------------------------------------------------------------- scheduling
def _spec() -> WorkflowSpec:
    return parse_workflow(BRANCHES_YAML)


@pytest.mark.parametrize(
    ("policy", "statuses", "expected"),
    [
        ("all_success", ["succeeded", "succeeded"], RUN),
        ("all_success", ["succeeded", "skipped"], SKIP),
        ("all_success", ["succeeded", "running"], WAIT),
        ("any", ["skipped", "succeeded"], RUN),
        ("any", ["skipped", "skipped"], SKIP),
        ("any", ["succeeded", "pending"], WAIT),
        ("all_done", ["skipped", "skipped"], RUN),
    ],
)
def test_needs_policy_verdicts(policy: str, statuses: list[str], expected: str) -> None:
    spec = parse_workflow(
        _doc(
            {"id": "a", "run": "noop"},
            {"id": "b", "run": "noop"},
            {"id": "c", "run": "noop", "needs": ["a", "b"], "needs_policy": policy},
        )
    )
    status = dict(zip("ab", statuses, strict=True))
    assert verdict(spec, spec.step("c"), status.__getitem__, lambda _: None) == expected


def test_branches_not_taken_are_skipped_and_conditions_gate_first_starts() -> None:
    spec = _spec()
    status = {s.id: "pending" for s in spec.steps} | {"score": "succeeded", "route": "succeeded"}
    taken = {"route": "slow"}.get
    assert verdict(spec, spec.step("fast"), status.__getitem__, taken) == SKIP
    assert verdict(spec, spec.step("slow"), status.__getitem__, taken) == RUN
    scope: dict[str, Any] = {"input": {"x": 2}, "steps": {"score": None, "route": {"branch": "slow"}}}
    started = [step_id for step_id, _ in first_starts(spec, status.__getitem__, scope, 0)]
    assert started == ["slow"]  # fast is not taken; audit's condition is false
    scope["input"] = {"x": 1}
    scope["steps"]["route"] = {"branch": "fast"}
    started = [step_id for step_id, _ in first_starts(spec, status.__getitem__, scope, 0)]
    assert started == ["fast", "audit"]


# ------------------------------------------------------------------------------------------ state machine
def _cluster_with(wf: str, input_json: str) -> StateMachine:
    sm = StateMachine()
    for node in NODES:
        assert sm.apply(join_cmd(node, 0)).ok
    plain = _spec().to_plain()
    submit = {"v": 1, "op": "submit", "rid": f"r-{wf}", "wf": wf, "spec": plain, "input": input_json, "ts": 1}
    assert sm.apply(submit).ok
    return sm


def _run(sm: StateMachine, step: str, output: str = '{"ok":true}') -> Any:
    assert sm.apply(step_cmd("start", "w", 1, step, 1, 10)).ok, step
    return sm.apply(step_cmd("succeed", "w", 1, step, 1, 11, output=output))


def _skip(sm: StateMachine, step: str) -> Any:
    return sm.apply(Skip(wf="w", epoch=1, step=step, reason="test", ts=12).to_plain())


def test_default_branch_runs_the_rest_is_skipped_and_the_join_runs_on_any() -> None:
    sm = _cluster_with("w", '{"x": 2}')
    wf = sm.workflows["w"]
    assert _run(sm, "score").ok
    assert _skip(sm, "fast").code == "FAILED_PRECONDITION"  # its choice has not decided yet
    assert _run(sm, "route", '{"branch":"nope"}').code == "INVALID_ARGUMENT"
    assert wf.steps["route"].status == "running"  # refused: nothing changed
    assert sm.apply(step_cmd("succeed", "w", 1, "route", 1, 11, output='{"branch":"slow"}')).ok
    # The branch not taken can never start; it is skipped.
    assert sm.apply(step_cmd("start", "w", 1, "fast", 1, 13)).code == "FAILED_PRECONDITION"
    assert _skip(sm, "slow").code == "FAILED_PRECONDITION"  # taken, no condition: it must run
    assert _skip(sm, "fast").ok
    assert _skip(sm, "audit").ok  # its condition (input.x == 1) is false: the proposer says so
    assert _run(sm, "slow").ok and _run(sm, "notify").ok
    assert step_verdict(wf, "done") == RUN  # needs_policy any: notify succeeded, fast skipped
    assert _run(sm, "done").ok
    assert wf.status == WORKFLOW_RUNNING
    assert _run(sm, "report").ok  # all_done: audit skipped, done succeeded
    assert wf.status == WORKFLOW_SUCCEEDED
    assert {s.id for s in wf.steps.values() if s.status == STEP_SKIPPED} == {"fast", "audit"}
    assert all(wf.steps[s].attempts == 0 for s in ("fast", "audit"))
    kinds = [e[2] for e in wf.events]
    assert kinds.count("step_skipped") == 2
    check_invariants(sm)


def test_skips_propagate_and_a_workflow_of_skipped_steps_succeeds() -> None:
    sm = _cluster_with("w", '{"x": 1}')
    wf = sm.workflows["w"]
    assert _run(sm, "score").ok and _run(sm, "route", '{"branch":"fast"}').ok
    assert _skip(sm, "notify").code == "FAILED_PRECONDITION"  # its need slow is not done yet
    assert _skip(sm, "slow").ok
    assert step_verdict(wf, "notify") == SKIP  # all_success with a skipped need
    assert sm.apply(step_cmd("start", "w", 1, "notify", 1, 13)).code == "FAILED_PRECONDITION"
    assert _skip(sm, "notify").ok
    assert _skip(sm, "notify").code == "FAILED_PRECONDITION"  # once
    assert _run(sm, "fast").ok and _run(sm, "done").ok and _run(sm, "audit").ok
    assert wf.steps["report"].status == STEP_PENDING
    assert _run(sm, "report").ok
    assert wf.status == WORKFLOW_SUCCEEDED and wf.steps["done"].status == STEP_SUCCEEDED
    check_invariants(sm)


def test_skip_with_a_stale_epoch_is_fenced() -> None:
    sm = _cluster_with("w", "{}")
    before = sm.workflows["w"].steps["score"].status
    res = sm.apply(Skip(wf="w", epoch=7, step="score", reason="x", ts=5).to_plain())
    assert res.code == "ABORTED" and sm.workflows["w"].steps["score"].status == before


def test_skipped_state_survives_a_snapshot() -> None:
    sm = _cluster_with("w", '{"x": 1}')
    assert _run(sm, "score").ok and _run(sm, "route", '{"branch":"fast"}').ok and _skip(sm, "slow").ok
    restored = StateMachine.from_plain(json.loads(json.dumps(sm.to_plain())))
    assert restored.digest() == sm.digest()
    assert restored.workflows["w"].steps["slow"].status == STEP_SKIPPED


# ------------------------------------------------------------------------------------------- step kind
def _ctx() -> StepContext:
    return StepContext(
        workflow_id="w",
        step_id="route",
        attempt=1,
        idempotency_key="w/route/1",
        input={},
        results={},
        node_id="n1",
        allow_exec=False,
        args={},
    )


@pytest.mark.parametrize(
    ("conditions", "branch"),
    [([True, True], "auto"), ([False, 1], "review"), ([None, []], "reject"), ([0, False], "auto")],
)
def test_choice_kind_takes_the_first_true_case_else_the_default(conditions: list[Any], branch: str) -> None:
    params = {
        "cases": [{"when": c, "next": n} for c, n in zip(conditions, ("auto", "review"), strict=True)],
        "default": "reject",
    }
    assert asyncio.run(STEP_KINDS["choice"].run(_ctx(), params)) == {"branch": branch}


# ------------------------------------------------------------------------------------------- properties
def _moves(sm: StateMachine, wf_id: str) -> list[dict[str, Any]]:
    """Every command that makes progress now (and some the state machine must refuse)."""
    wf = sm.workflows[wf_id]
    moves: list[dict[str, Any]] = []
    for step in wf.steps.values():
        spec = wf.spec.step(step.id)
        if step.status in ("pending", "retry_wait"):
            moves.append(step_cmd("start", wf_id, wf.epoch, step.id, step.attempts + 1, 20))
            moves.append(Skip(wf=wf_id, epoch=wf.epoch, step=step.id, reason="r", ts=20).to_plain())
        elif step.status == "running":
            outputs = (
                ['{"branch":"fast"}', '{"branch":"slow"}', '{"branch":"x"}'] if spec.branches else ["{}"]
            )
            for output in outputs:
                moves.append(step_cmd("succeed", wf_id, wf.epoch, step.id, step.attempts, 21, output=output))
            moves.append(
                step_cmd(
                    "fail",
                    wf_id,
                    wf.epoch,
                    step.id,
                    step.attempts,
                    21,
                    error="e",
                    error_class="transient",
                    retry_at=30,
                )
            )
    return moves


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(['{"x": 1}', '{"x": 2}']), st.data())
def test_exactly_one_branch_runs_and_skipped_steps_never_run(input_json: str, data: st.DataObject) -> None:
    sm = _cluster_with("w", input_json)
    wf = sm.workflows["w"]
    skipped: set[str] = set()
    for _ in range(150):
        if wf.terminal:
            break
        cmd = data.draw(st.sampled_from(_moves(sm, "w")))
        sm.apply(cmd)
        check_invariants(sm)
        for step_id in skipped:
            assert wf.steps[step_id].status == STEP_SKIPPED and wf.steps[step_id].attempts == 0
        skipped |= {s.id for s in wf.steps.values() if s.status == STEP_SKIPPED}
        ran = [b for b in ("fast", "slow") if wf.steps[b].attempts > 0]
        assert len(ran) <= 1, f"both branches ran: {ran}"
    if wf.status == WORKFLOW_SUCCEEDED:
        statuses = {wf.steps[b].status for b in ("fast", "slow")}
        assert statuses == {STEP_SUCCEEDED, STEP_SKIPPED}, "exactly one branch ran"
        assert wf.steps["done"].status == STEP_SUCCEEDED  # the join after either branch
