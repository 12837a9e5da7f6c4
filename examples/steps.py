"""Example step functions (``run: python, with: {function: "examples.steps:finish"}``).

They run in a node's step workers, never in the daemon; a node calls them only if its ``python_modules``
allows ``examples.*`` (dev clusters and the demo do).
"""

from __future__ import annotations

from typing import Any

from beamflowd.steps.base import PermanentError, StepContext


def greet(ctx: StepContext) -> dict[str, Any]:
    """``{"message": "Hello, <input.name>!"}``."""
    name = ctx.input.get("name") if isinstance(ctx.input, dict) else None
    if not isinstance(name, str) or not name:
        raise PermanentError("greet: the workflow input needs a non-empty string 'name'")
    return {"message": f"Hello, {name}!"}


async def finish(ctx: StepContext) -> dict[str, Any]:
    """Echoes ``args.greeting`` with the attempt's idempotency key (what a real side effect would send)."""
    return {"done": True, "greeting": ctx.args.get("greeting"), "key": ctx.idempotency_key}
