"""``noop``: does nothing; the cheapest step, used to measure engine overhead and as a join point."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from beamflowd.steps.base import StepContext


class NoopStep:
    """Takes no params and outputs null."""

    name = "noop"

    async def run(self, ctx: StepContext, params: Mapping[str, Any]) -> Any:
        return None
