"""``sleep``: a durable timer. The engine commits the wake-up time, so a sleep survives failover."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from beamflowd.steps.base import ParamError, Params, StepContext, param_error_to_step_error

_ALLOWED = ("duration",)


class SleepStep:
    """Waits ``duration``; the waiting is done by the engine on the committed deadline, not in :meth:`run`."""

    name = "sleep"

    def validate(self, params: Mapping[str, Any]) -> None:
        Params(self.name, params, allowed=_ALLOWED, required=_ALLOWED, resolved=False).duration_ms("duration")

    def durable_delay_ms(self, params: Mapping[str, Any]) -> int | None:
        """The duration in ms; ``params`` must be resolved. Raises :class:`ParamError` if invalid."""
        millis = Params(self.name, params, allowed=_ALLOWED, required=_ALLOWED, resolved=True).duration_ms(
            "duration"
        )
        assert millis is not None  # required and resolved
        return millis

    async def run(self, ctx: StepContext, params: Mapping[str, Any]) -> Any:
        """Called once the committed deadline has passed: nothing left to wait for."""
        try:
            millis = self.durable_delay_ms(params)
        except ParamError as exc:
            raise param_error_to_step_error(exc) from None
        return {"slept_ms": millis}
