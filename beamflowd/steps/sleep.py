"""``sleep``: a durable timer. The engine commits the wake-up time, so a sleep survives failover."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from beamflowd.core.step_params import ParamError, parse_sleep
from beamflowd.steps.base import StepContext, param_error_to_step_error


class SleepStep:
    """Waits ``duration``; the waiting is done by the engine on the committed deadline, not in :meth:`run`."""

    name = "sleep"

    async def run(self, ctx: StepContext, params: Mapping[str, Any]) -> Any:
        """Called once the committed deadline has passed: nothing left to wait for."""
        try:
            millis = parse_sleep(params, resolved=True)
        except ParamError as exc:
            raise param_error_to_step_error(exc) from None
        return {"slept_ms": millis}
