"""``wait``: completed by a signal (``beamctl workflow signal``), never by running a body.

The state machine delivers the signal (its payload becomes the output) and the owner's actor only watches
the committed deadline; this kind exists so the registry names every kind, and refuses to run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from beamflowd.steps.base import PermanentError, StepContext


class WaitStep:
    """Never runs: reaching it would mean the engine treated a wait like a task."""

    name = "wait"

    async def run(self, ctx: StepContext, params: Mapping[str, Any]) -> Any:
        raise PermanentError("a wait step is completed by a signal, not run")
