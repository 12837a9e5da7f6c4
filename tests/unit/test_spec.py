"""The definition parser: every class of bad input is refused with file, step and field named."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from beamflowd.core.spec import (
    MAX_DEFINITION_BYTES,
    MAX_INPUT_BYTES,
    MAX_INPUT_DEPTH,
    MAX_STEPS,
    RetryPolicy,
    SpecError,
    WorkflowSpec,
    parse_input,
    parse_workflow,
)

WORKFLOWS = Path(__file__).resolve().parents[2] / "deploy" / "workflows"


def _doc(*steps: object, **top: Any) -> str:
    return yaml.safe_dump({"name": "wf", **top, "steps": list(steps)}, sort_keys=False)


def _error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_workflow(text, source="hello.yaml")
    return info.value


def _assert_error(text: str, *, step: str | None, field: str | None, reason: str) -> SpecError:
    err = _error(text)
    assert (err.source, err.step, err.field) == ("hello.yaml", step, field), str(err)
    assert reason in err.reason, str(err)
    assert str(err).startswith("hello.yaml: ")
    if step is not None:
        assert f"step '{step}'" in str(err)
    if field is not None:
        assert f"field '{field}'" in str(err)
    return err


NOOP = {"id": "a", "run": "noop"}


# ------------------------------------------------------------------------------------------ good input


def test_minimal_workflow_gets_defaults() -> None:
    spec = parse_workflow(_doc(NOOP))
    assert spec.name == "wf" and spec.description == "" and spec.timeout_ms is None
    assert spec.retry == RetryPolicy()
    assert spec.step("a").params == {} and spec.step("a").needs == () and spec.step("a").timeout_ms is None


def test_retry_overrides_field_by_field_and_durations() -> None:
    text = _doc(
        {"id": "a", "run": "sleep", "with": {"duration": "1s"}, "timeout": "2s"},
        {"id": "b", "run": "noop", "needs": "a", "retry": {"max_attempts": 7, "jitter": "none"}},
        timeout="1h",
        retry={"initial_interval": "250ms", "backoff_rate": 3, "non_retryable": ["validation"]},
    )
    spec = parse_workflow(text)
    assert spec.timeout_ms == 3_600_000 and spec.step("a").timeout_ms == 2000
    assert spec.step("a").retry == spec.retry
    assert spec.step("b").retry == RetryPolicy(
        max_attempts=7,
        initial_interval_ms=250,
        backoff_rate=3.0,
        jitter="none",
        non_retryable=("validation",),
    )
    assert spec.step("b").needs == ("a",)
    with pytest.raises(KeyError):
        spec.step("zzz")


def test_json_definition() -> None:
    spec = parse_workflow(json.dumps({"name": "j", "steps": [NOOP]}))
    assert spec.name == "j"


def test_round_trip_through_plain() -> None:
    spec = parse_workflow((WORKFLOWS / "diamond.yaml").read_text())
    plain = spec.to_plain()
    assert json.loads(json.dumps(plain)) == plain
    assert WorkflowSpec.from_plain(plain) == spec
    assert WorkflowSpec.from_plain(json.loads(json.dumps(plain))) == spec
    assert plain["steps"][2]["retry"]["max_attempts"] == 6  # effective policy, resolved


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yaml")), ids=lambda p: p.name)
def test_example_workflows_parse(path: Path) -> None:
    spec = parse_workflow(path.read_text(), source=path.name)
    assert WorkflowSpec.from_plain(spec.to_plain()) == spec


def test_example_workflows_present() -> None:
    names = {p.name for p in WORKFLOWS.glob("*.yaml")}
    assert {"hello.yaml", "diamond.yaml", "three-step-demo.yaml", "flaky.yaml"} <= names


# ------------------------------------------------------------------------------------------- bad input


def test_malformed_yaml_names_line() -> None:
    err = _assert_error("name: wf\nsteps:\n  - id: [a\n", step=None, field=None, reason="malformed YAML")
    assert "line" in err.reason


def test_top_level_not_a_mapping() -> None:
    _assert_error("- a\n- b\n", step=None, field=None, reason="must be a mapping")


def test_duplicate_keys() -> None:
    _assert_error("name: a\nname: b\nsteps: []\n", step=None, field=None, reason="duplicate key 'name'")
    _assert_error('{"name": "a", "name": "b"}', step=None, field=None, reason="duplicate key 'name'")


@pytest.mark.parametrize(
    ("text", "step", "field"),
    [
        (_doc(NOOP, colour="red"), None, "colour"),
        (_doc({**NOOP, "uses": "x"}), "a", "uses"),
        (_doc({**NOOP, "retry": {"attempts": 3}}), "a", "retry.attempts"),
        (_doc(NOOP, retry={"tries": 3}), None, "retry.tries"),
    ],
)
def test_unknown_keys(text: str, step: str | None, field: str) -> None:
    err = _assert_error(text, step=step, field=field, reason="unknown key")
    assert "allowed:" in err.reason


@pytest.mark.parametrize(
    ("text", "step", "field"),
    [
        ("steps: [{id: a, run: noop}]", None, "name"),
        ("name: wf", None, "steps"),
        ("name: wf\nsteps: []", None, "steps"),
        (_doc({"id": "a"}), "a", "run"),
        (_doc({"run": "noop"}), None, "steps"),
    ],
)
def test_missing_required_fields(text: str, step: str | None, field: str) -> None:
    _assert_error(text, step=step, field=field, reason="")


@pytest.mark.parametrize(
    ("text", "step", "field"),
    [
        (_doc(NOOP, name="1bad"), None, "name"),
        (_doc(NOOP, description=["x"]), None, "description"),
        (_doc({"id": "has space", "run": "noop"}), None, "id"),
        (_doc({"id": "a", "run": 3}), "a", "run"),
        (_doc({"id": "a", "run": "noop", "with": [1]}), "a", "with"),
        (_doc({"id": "a", "run": "noop", "needs": {"b": 1}}), "a", "needs"),
        (_doc({**NOOP, "retry": {"max_attempts": True}}), "a", "retry.max_attempts"),
        (_doc({**NOOP, "retry": {"max_attempts": 0}}), "a", "retry.max_attempts"),
        (_doc({**NOOP, "retry": {"max_attempts": 101}}), "a", "retry.max_attempts"),
        (_doc({**NOOP, "retry": {"backoff_rate": 0.5}}), "a", "retry.backoff_rate"),
        (_doc({**NOOP, "retry": {"backoff_rate": "2"}}), "a", "retry.backoff_rate"),
        (_doc({**NOOP, "retry": {"jitter": "some"}}), "a", "retry.jitter"),
        (_doc({**NOOP, "retry": {"non_retryable": "permanent"}}), "a", "retry.non_retryable"),
        (_doc({**NOOP, "retry": {"non_retryable": [1]}}), "a", "retry.non_retryable"),
        (_doc({**NOOP, "retry": "fast"}), "a", "retry"),
        (_doc(NOOP, retry={"initial_interval": "10s", "max_interval": "1s"}), None, "retry.max_interval"),
        (_doc({**NOOP, "retry": {"initial_interval": "2m"}}), "a", "retry.max_interval"),
        (_doc(7), None, "steps"),
    ],
)
def test_wrong_types_and_ranges(text: str, step: str | None, field: str) -> None:
    _assert_error(text, step=step, field=field, reason="")


def test_max_attempts_true_is_not_an_integer() -> None:
    err = _assert_error(
        _doc({**NOOP, "retry": {"max_attempts": True}}),
        step="a",
        field="retry.max_attempts",
        reason="integer",
    )
    assert str(err).startswith("hello.yaml: step 'a': field 'retry.max_attempts': must be an integer")


@pytest.mark.parametrize(
    ("text", "step", "field"),
    [
        (_doc(NOOP, timeout="5"), None, "timeout"),
        (_doc(NOOP, timeout="0s"), None, "timeout"),
        (_doc({**NOOP, "timeout": 30}), "a", "timeout"),
        (_doc({**NOOP, "retry": {"initial_interval": "fast"}}), "a", "retry.initial_interval"),
        (_doc(NOOP, retry={"max_interval": "999h"}), None, "retry.max_interval"),
    ],
)
def test_bad_durations(text: str, step: str | None, field: str) -> None:
    _assert_error(text, step=step, field=field, reason="")


def test_unknown_step_kind_lists_known() -> None:
    err = _assert_error(
        _doc({"id": "a", "run": "teleport"}), step="a", field="run", reason="unknown step kind"
    )
    assert "noop" in err.reason and "sleep" in err.reason


def test_invalid_step_params() -> None:
    _assert_error(_doc({"id": "a", "run": "sleep"}), step="a", field="with.duration", reason="")
    _assert_error(_doc({"id": "a", "run": "noop", "with": {"x": 1}}), step="a", field="with.x", reason="")


def test_params_must_be_json() -> None:
    text = "name: wf\nsteps:\n  - id: a\n    run: sleep\n    with: {duration: 1s, when: 2024-01-01}\n"
    _assert_error(text, step="a", field="with.when", reason="not JSON")


def test_duplicate_step_ids() -> None:
    _assert_error(_doc(NOOP, NOOP), step="a", field="id", reason="duplicate step id")


def test_needs_unknown_step_or_itself() -> None:
    _assert_error(_doc({**NOOP, "needs": ["ghost"]}), step="a", field="needs", reason="unknown step 'ghost'")
    _assert_error(_doc({**NOOP, "needs": "a"}), step="a", field="needs", reason="itself")


def test_cycle_names_the_path() -> None:
    text = _doc(
        {"id": "a", "run": "noop"},
        {"id": "b", "run": "noop", "needs": ["a", "d"]},
        {"id": "c", "run": "noop", "needs": ["b"]},
        {"id": "d", "run": "noop", "needs": ["c"]},
    )
    err = _assert_error(text, step="c", field="needs", reason="cycle")
    assert "b -> d -> c -> b" in err.reason


def test_expression_must_read_upstream_step() -> None:
    def demo(step_id: str, ref: str, needs: list[str]) -> dict[str, Any]:
        return {"id": step_id, "run": "demo", "needs": needs, "with": {"output": f"${{{{ steps.{ref}.x }}}}"}}

    ok = _doc(NOOP, {"id": "b", "run": "noop", "needs": ["a"]}, demo("c", "a", ["b"]))
    assert parse_workflow(ok).step("c").needs == ("b",)  # transitive upstream is fine
    parallel = _doc(NOOP, {"id": "b", "run": "noop"}, demo("c", "a", ["b"]))
    _assert_error(parallel, step="c", field="with.output", reason="not upstream")
    _assert_error(_doc(NOOP, demo("c", "c", [])), step="c", field="with.output", reason="not upstream")
    _assert_error(_doc(NOOP, demo("c", "ghost", ["a"])), step="c", field="with.output", reason="unknown step")
    quoted = _doc(
        {"id": "check-id", "run": "noop"},
        {"id": "c", "run": "demo", "with": {"output": '${{ steps."check-id".ok }}'}},
    )
    _assert_error(quoted, step="c", field="with.output", reason="'check-id'")


def test_expression_syntax_error() -> None:
    text = _doc({"id": "c", "run": "demo", "with": {"output": {"deep": ["${{ input.[ }}"]}}})
    _assert_error(text, step="c", field="with.output", reason="invalid expression")


def test_definition_size_limit() -> None:
    text = _doc(NOOP, description="x" * 10) + "#" * MAX_DEFINITION_BYTES
    _assert_error(text, step=None, field=None, reason="over the limit")


def test_step_count_limit() -> None:
    text = _doc(*({"id": f"s{i}", "run": "noop"} for i in range(MAX_STEPS + 1)))
    _assert_error(text, step=None, field="steps", reason="over the limit")
    assert (
        len(parse_workflow(_doc(*({"id": f"s{i}", "run": "noop"} for i in range(MAX_STEPS)))).steps)
        == MAX_STEPS
    )


def test_yaml_alias_bomb_is_bounded() -> None:
    lines = ["name: wf", "x0: &x0 [a, a, a, a, a, a, a, a, a, a]"]
    lines += [f"x{i}: &x{i} [*x{i - 1}, *x{i - 1}, *x{i - 1}, *x{i - 1}, *x{i - 1}]" for i in range(1, 12)]
    bomb = "\n".join(lines) + "\n"
    _assert_error(bomb + "steps: [{id: a, run: noop}]\n", step=None, field="x0", reason="unknown key")
    params = "\n".join(["name: wf", "steps:", "  - id: a", "    run: demo", "    with:"])
    params += "\n      pad: &x0 [a, a, a, a, a, a, a, a, a, a]"
    params += "".join(
        f"\n      p{i}: &x{i} [*x{i - 1}, *x{i - 1}, *x{i - 1}, *x{i - 1}]" for i in range(1, 12)
    )
    _assert_error(params + "\n", step="a", field="with", reason="too large")


def test_spec_error_pickles() -> None:
    err = SpecError(source="f", reason="bad", step="s", field="x")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.source, copy.step, copy.field, copy.reason, str(copy)) == ("f", "s", "x", "bad", str(err))
    assert str(SpecError(source="f", reason="bad")) == "f: bad"


# ---------------------------------------------------------------------------------------------- input


def test_parse_input() -> None:
    assert parse_input("") == {}
    assert parse_input("  \n") == {}
    assert parse_input('{"name": "Ada"}') == {"name": "Ada"}
    assert parse_input("[1, 2]") == [1, 2]


@pytest.mark.parametrize("bad", ["{", '{"a": 1, "a": 2}', "NaN", "{'a': 1}"])
def test_parse_input_rejects_bad_json(bad: str) -> None:
    with pytest.raises(SpecError, match=r"^--input: malformed JSON"):
        parse_input(bad)


@pytest.mark.parametrize("levels", [MAX_INPUT_DEPTH + 1, 5_000])
def test_parse_input_depth_limit(levels: int) -> None:
    deep = "[" * levels + "]" * levels
    with pytest.raises(SpecError, match=rf"^--input: nested deeper than {MAX_INPUT_DEPTH} levels"):
        parse_input(deep)
    nested = '{"a": ' * levels + "1" + "}" * levels
    with pytest.raises(SpecError, match="nested deeper"):
        parse_input(nested)


def test_parse_input_at_depth_limit() -> None:
    at_limit = "[" * MAX_INPUT_DEPTH + "]" * MAX_INPUT_DEPTH
    assert parse_input(at_limit) is not None


def test_parse_input_size_limit() -> None:
    with pytest.raises(SpecError, match="over the limit"):
        parse_input(json.dumps("x" * MAX_INPUT_BYTES), source="in.json")


# ------------------------------------------------------------------------------------------ properties


@st.composite
def dags(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Random DAGs: each step may only need earlier steps, so the graph is acyclic by construction."""
    count = draw(st.integers(1, 25))
    steps: list[dict[str, Any]] = []
    for i in range(count):
        needs = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=4)) if i else []
        step: dict[str, Any] = {"id": f"s{i}", "run": "noop", "needs": [f"s{j}" for j in needs]}
        steps.append(step)
    order = draw(st.permutations(range(count)))  # file order does not matter
    return [steps[i] for i in order]


@settings(max_examples=60, deadline=None)
@given(dags())
def test_random_dags_parse(steps: list[dict[str, Any]]) -> None:
    spec = parse_workflow(_doc(*steps))
    assert [s.id for s in spec.steps] == [s["id"] for s in steps]
    assert WorkflowSpec.from_plain(spec.to_plain()) == spec


@settings(max_examples=60, deadline=None)
@given(dags().filter(lambda steps: any(s["needs"] for s in steps)), st.data())
def test_back_edge_is_a_cycle(steps: list[dict[str, Any]], data: st.DataObject) -> None:
    by_id = {s["id"]: s for s in steps}

    def upstream(step_id: str) -> set[str]:
        found: set[str] = set()
        todo = list(by_id[step_id]["needs"])
        while todo:
            item = todo.pop()
            if item not in found:
                found.add(item)
                todo.extend(by_id[item]["needs"])
        return found

    child = data.draw(st.sampled_from(sorted(s["id"] for s in steps if s["needs"])))
    ancestor = data.draw(st.sampled_from(sorted(upstream(child))))
    by_id[ancestor]["needs"] = [*by_id[ancestor]["needs"], child]
    err = _error(_doc(*steps))
    assert err.field == "needs" and "cycle in needs" in err.reason
    path = err.reason.split(": ", 1)[1].split(" -> ")
    assert path[0] == path[-1] and len(path) >= 3


def test_too_many_expressions_are_refused_before_compiling() -> None:
    many = " ".join(f"${{{{ input.a{i} }}}}" for i in range(501))
    _assert_error(
        _doc({"id": "a", "run": "demo", "with": {"output": many}}),
        step="a",
        field="with.output",
        reason="more than 500 expressions",
    )


def test_a_definition_full_of_closing_braces_is_refused_with_the_field() -> None:
    hostile = "${{ input.x " + "}}" * 100_000
    err = _error(_doc({"id": "a", "run": "demo", "with": {"output": hostile}}))
    assert (err.step, err.field) == ("a", "with.output")
