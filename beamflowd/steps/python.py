"""``python``: calls ``package.module:attr`` with a :class:`StepContext`, in a step worker process.

The daemon never imports the module: it checks the name against the node's ``python_modules`` and hands the
call to :mod:`beamflowd.workers`, which runs it in a child process that can crash, hang or run out of memory
without touching the node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from beamflowd.core.step_params import ParamError, parse_python
from beamflowd.steps.base import StepContext, param_error_to_step_error


class PythonStep:
    """Runs user code with ``ctx.args`` = the ``args`` param; :class:`PermanentError` stops retries."""

    name = "python"

    async def run(self, ctx: StepContext, params: Mapping[str, Any]) -> Any:
        try:
            spec, args = parse_python(params, resolved=True)
        except ParamError as exc:
            raise param_error_to_step_error(exc) from None
        assert spec is not None
        from beamflowd.workers import active_pool

        return await active_pool().run_python(ctx, spec, dict(args or {}))
