"""Which steps are ready, which will never run, and when a first attempt may run: shared by the submit
path, the actors (which propose the decisions) and the state machine (which re-checks them)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from beamflowd.core.commands import Starts
from beamflowd.core.expressions import resolve, truthy
from beamflowd.core.spec import StepSpec, WorkflowSpec
from beamflowd.core.step_params import durable_delay_ms
from beamflowd.core.vocabulary import (
    DONE_STEP,
    NEEDS_ALL_DONE,
    NEEDS_ANY,
    STEP_PENDING,
    STEP_SUCCEEDED,
)

#: What a step's needs say (:func:`verdict`): not all done yet; may run (if its ``when`` holds); never runs.
WAIT: Final = "wait"
RUN: Final = "run"
SKIP: Final = "skip"

#: The branch a succeeded ``choice`` step took (its output's ``branch``), or None.
BranchOf = Callable[[str], "str | None"]


def verdict(spec: WorkflowSpec, step: StepSpec, status_of: Callable[[str], str], branch_of: BranchOf) -> str:
    """:data:`WAIT`, :data:`RUN` or :data:`SKIP` for ``step``, from its needs alone (not its ``when``).

    A need that is a ``choice`` whose branch is another step skips this step if this step is one of its
    branches. Otherwise the step's ``needs_policy`` decides once every need is done (succeeded or skipped).
    """
    statuses = [status_of(n) for n in step.needs]
    if not all(s in DONE_STEP for s in statuses):
        return WAIT
    for need in step.needs:
        branches = spec.step(need).branches
        if step.id in branches and branch_of(need) != step.id:
            return SKIP
    succeeded = sum(1 for s in statuses if s == STEP_SUCCEEDED)
    if step.needs_policy == NEEDS_ALL_DONE:
        return RUN
    if step.needs_policy == NEEDS_ANY:
        return RUN if succeeded or not step.needs else SKIP
    return RUN if succeeded == len(statuses) else SKIP


def skip_reason(spec: WorkflowSpec, step: StepSpec, branch_of: BranchOf) -> str:
    """Why :func:`verdict` skips ``step`` (for its ``step_skipped`` event)."""
    for need in step.needs:
        if step.id in spec.step(need).branches and branch_of(need) != step.id:
            return f"choice {need} took branch {branch_of(need)}"
    return f"needs {', '.join(step.needs)} were skipped ({step.needs_policy})"


def condition_holds(step: StepSpec, scope: Mapping[str, Any]) -> bool:
    """Whether the step's ``when`` is true in ``scope`` (True without one); ExpressionError if it fails."""
    return step.when is None or truthy(resolve(step.when, scope))


def branch_in_scope(scope: Mapping[str, Any]) -> BranchOf:
    """:data:`BranchOf` over the outputs of an expression scope (a choice outputs ``{"branch": id}``)."""

    def branch_of(step_id: str) -> str | None:
        output = scope["steps"].get(step_id)
        branch = output.get("branch") if isinstance(output, dict) else None
        return branch if isinstance(branch, str) else None

    return branch_of


def branch_in_output(output_json: str) -> str | None:
    """The branch named by a committed choice output (JSON text), or None."""
    if not output_json:
        return None
    try:
        output = json.loads(output_json)
    except ValueError:
        return None
    branch = output.get("branch") if isinstance(output, dict) else None
    return branch if isinstance(branch, str) else None


def ready_steps(
    spec: WorkflowSpec,
    status_of: Callable[[str], str],
    scope: Mapping[str, Any] | None = None,
) -> list[StepSpec]:
    """Pending steps whose needs let them run, in definition order; with ``scope``, also those whose
    ``when`` holds (one that fails to evaluate is left to the owner's actor, which fails the step)."""
    branch_of = branch_in_scope(scope) if scope is not None else (lambda _: None)
    ready = []
    for step in spec.steps:
        if status_of(step.id) != STEP_PENDING or verdict(spec, step, status_of, branch_of) != RUN:
            continue
        if scope is not None and step.when is not None:
            try:
                if not condition_holds(step, scope):
                    continue
            except ValueError:
                continue
        ready.append(step)
    return ready


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
    return tuple((step.id, wake_time(step, scope, now_ms)) for step in ready_steps(spec, status_of, scope))
