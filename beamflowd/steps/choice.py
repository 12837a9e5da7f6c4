"""``choice``: picks the branch to run: the first case whose condition holds, else the default.

Its conditions were resolved with the other params (each is one expression, so it keeps its JSON value);
the output ``{"branch": <step id>}`` is committed, and the state machine skips the branches not taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from beamflowd.core.expressions import truthy
from beamflowd.core.step_params import ParamError, parse_choice
from beamflowd.steps.base import StepContext, param_error_to_step_error


class ChoiceStep:
    """Evaluates nothing itself: the engine resolved each case's ``when``; this takes the first true one."""

    name = "choice"

    async def run(self, ctx: StepContext, params: Mapping[str, Any]) -> Any:
        try:
            choice = parse_choice(params, resolved=True)
        except ParamError as exc:
            raise param_error_to_step_error(exc) from None
        for condition, target in choice.cases:
            if truthy(condition):
                return {"branch": target}
        return {"branch": choice.default}
