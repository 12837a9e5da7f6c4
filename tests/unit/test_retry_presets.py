"""Retry presets (``retry: {preset: NAME}``) and the error classes' documented behaviour (terminal too)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from beamflowd.core.backoff import retry_delay_ms, should_retry
from beamflowd.core.spec import RETRY_PRESETS, RetryPolicy, SpecError, parse_workflow
from beamflowd.core.state import StateMachine
from beamflowd.core.vocabulary import (
    ENGINE_ERROR_CLASSES,
    ERROR_PERMANENT,
    ERROR_RECOVERABLE,
    ERROR_TERMINAL,
    ERROR_TRANSIENT,
    ERROR_UNKNOWN,
    FINAL_ERRORS,
)
from tests.unit.state_strategies import NODES, join_cmd, step_cmd

#: The showcase's presets: (attempts, initial ms, max ms).
EXPECTED = {
    "aggressive": (5, 1_000, 15_000),
    "conservative": (3, 2_000, 30_000),
    "patient": (10, 5_000, 300_000),
    "email": (5, 2_000, 60_000),
    "api": (4, 500, 10_000),
    "database": (3, 100, 2_000),
    "payment": (3, 1_000, 10_000),
}


def _spec(step_retry: Any = None, workflow_retry: Any = None) -> Any:
    step: dict[str, Any] = {"id": "a", "run": "noop"}
    if step_retry is not None:
        step["retry"] = step_retry
    doc: dict[str, Any] = {"name": "wf", "steps": [step]}
    if workflow_retry is not None:
        doc["retry"] = workflow_retry
    return parse_workflow(yaml.safe_dump(doc), source="p.yaml")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_preset_has_the_showcase_figures(name: str) -> None:
    policy = _spec({"preset": name}).step("a").retry
    assert (policy.max_attempts, policy.initial_interval_ms, policy.max_interval_ms) == EXPECTED[name]
    assert policy.jitter == ("none" if name == "database" else RetryPolicy().jitter)


def test_none_preset_means_one_attempt_and_presets_are_all_listed() -> None:
    assert _spec({"preset": "none"}).step("a").retry.max_attempts == 1
    assert set(RETRY_PRESETS) == {*EXPECTED, "none"}


def test_explicit_fields_override_the_preset_and_the_workflow_preset_is_inherited() -> None:
    policy = _spec({"preset": "api", "max_attempts": 9, "non_retryable": ["card_declined"]}).step("a").retry
    assert (policy.max_attempts, policy.initial_interval_ms, policy.max_interval_ms) == (9, 500, 10_000)
    assert policy.non_retryable == ("card_declined",)
    inherited = _spec(workflow_retry={"preset": "payment"})
    assert inherited.step("a").retry == inherited.retry and inherited.retry.max_attempts == 3
    # A step preset is laid over the workflow's policy (fields the preset does not set are kept).
    layered = _spec({"preset": "none"}, {"preset": "database", "backoff_rate": 3}).step("a").retry
    assert layered.max_attempts == 1 and layered.backoff_rate == 3.0 and layered.jitter == "none"


@pytest.mark.parametrize("bad", ["fast", 3, None, ["api"]])
def test_unknown_preset_is_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(SpecError) as info:
        _spec({"preset": bad})
    assert (info.value.step, info.value.field) == ("a", "retry.preset")
    assert "aggressive, conservative" in info.value.reason


def test_database_preset_delays_have_no_jitter() -> None:
    policy = _spec({"preset": "database"}).step("a").retry
    assert [retry_delay_ms(policy, n, 0.0) for n in (1, 2, 3, 6)] == [100, 200, 400, 2_000]


# ------------------------------------------------------------------------------------------ error classes
@pytest.mark.parametrize(
    ("error_class", "retried"),
    [
        (ERROR_TRANSIENT, True),
        (ERROR_RECOVERABLE, True),
        (ERROR_UNKNOWN, True),
        ("timeout", True),
        ("crashed", True),
        ("card_declined", True),
        (ERROR_PERMANENT, False),
        (ERROR_TERMINAL, False),
        ("poisoned", False),
    ],
)
def test_which_classes_are_retried(error_class: str, retried: bool) -> None:
    assert should_retry(RetryPolicy(max_attempts=5), 1, error_class) is retried
    assert not should_retry(RetryPolicy(max_attempts=5, non_retryable=(error_class,)), 1, error_class)
    assert error_class in ENGINE_ERROR_CLASSES or error_class == "card_declined"


def _failing(error_class: str) -> tuple[StateMachine, Any]:
    sm = StateMachine()
    for node in NODES:
        assert sm.apply(join_cmd(node, 0)).ok
    doc = {
        "name": "wf",
        "steps": [{"id": "a", "run": "noop", "retry": {"preset": "aggressive"}}, {"id": "b", "run": "noop"}],
    }
    plain = parse_workflow(yaml.safe_dump(doc)).to_plain()
    assert sm.apply({"v": 1, "op": "submit", "rid": "r", "wf": "w", "spec": plain, "input": "{}", "ts": 1}).ok
    assert sm.apply(step_cmd("start", "w", 1, "a", 1, 2)).ok
    res = sm.apply(step_cmd("fail", "w", 1, "a", 1, 3, error="boom", error_class=error_class, retry_at=1_000))
    return sm, res


def test_terminal_is_never_retried_and_ends_the_workflow_as_final() -> None:
    sm, res = _failing(ERROR_TERMINAL)
    wf = sm.workflows["w"]
    assert res.ok and res.data == {"retry": False}, "attempts were left and a retry time was given"
    assert wf.status == "failed" and wf.steps["a"].status == "failed" and wf.steps["b"].status == "cancelled"
    assert wf.error.startswith("step a failed terminally after 1 attempt(s): [terminal]"), wf.error
    assert ERROR_TERMINAL in FINAL_ERRORS and ERROR_PERMANENT not in FINAL_ERRORS


def test_permanent_fails_without_retry_but_is_not_final_and_recoverable_is_retried() -> None:
    sm, res = _failing(ERROR_PERMANENT)
    assert res.data == {"retry": False} and "terminally" not in sm.workflows["w"].error
    sm, res = _failing(ERROR_RECOVERABLE)
    assert res.data == {"retry": True} and sm.workflows["w"].steps["a"].status == "retry_wait"
