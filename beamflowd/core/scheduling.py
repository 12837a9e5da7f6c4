"""Which steps are ready, and when a first attempt may run: shared by the submit path and the actors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from beamflowd.core.commands import Starts
from beamflowd.core.expressions import resolve
from beamflowd.core.spec import StepSpec, WorkflowSpec
from beamflowd.core.step_params import durable_delay_ms


def ready_steps(spec: WorkflowSpec, status_of: Callable[[str], str]) -> list[StepSpec]:
    """Pending steps whose every need has succeeded, in definition order."""
    return [
        step
        for step in spec.steps
        if status_of(step.id) == "pending" and all(status_of(n) == "succeeded" for n in step.needs)
    ]


def wake_time(step: StepSpec, scope: Mapping[str, Any], now_ms: int) -> int:
    """Committed wake-up time of a durable timer (sleep), or 0 to run at once.

    A duration that cannot be resolved yields 0: the attempt then runs and fails with the kind's message.
    """
    try:
        delay = durable_delay_ms(step.run, resolve(step.params, scope))
    except ValueError:
        return 0
    return now_ms + delay if delay else 0


def first_starts(
    spec: WorkflowSpec,
    status_of: Callable[[str], str],
    scope: Mapping[str, Any],
    now_ms: int,
) -> Starts:
    """``((step_id, wake_ms), ...)`` for steps ready now: carried in submit/succeed commands."""
    return tuple((step.id, wake_time(step, scope, now_ms)) for step in ready_steps(spec, status_of))
