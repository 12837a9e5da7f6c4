"""``python``: calls ``package.module:attr`` with a :class:`StepContext`; sync functions run in a thread."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from beamflowd.core.step_params import ParamError, parse_python
from beamflowd.steps.base import (
    PermanentError,
    StepContext,
    StepError,
    param_error_to_step_error,
)

#: Resolved functions by spec: importing is slow and done once per process.
_functions: dict[str, Callable[..., Any]] = {}


def _resolve(spec: str) -> Callable[..., Any]:
    """Import ``module:attr``; any failure is the workflow's fault, so it is permanent."""
    module_name, _, attr_path = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise PermanentError(f"cannot load python function {spec!r}: {type(exc).__name__}: {exc}") from None
    if not callable(obj):
        raise PermanentError(f"python function {spec!r} is not callable ({type(obj).__name__})")
    return obj  # type: ignore[no-any-return]


class PythonStep:
    """Runs user code with ``ctx.args`` = the ``args`` param; :class:`PermanentError` stops retries."""

    name = "python"

    async def run(self, ctx: StepContext, params: Mapping[str, Any]) -> Any:
        try:
            spec, args = parse_python(params, resolved=True)
        except ParamError as exc:
            raise param_error_to_step_error(exc) from None
        assert spec is not None
        fn = _functions.get(spec)
        if fn is None:
            # Importing user code may block (disk, module-level work): keep it off the event loop.
            fn = await asyncio.to_thread(_resolve, spec)
            _functions[spec] = fn
        call_ctx = dataclasses.replace(ctx, args=dict(args or {}))
        try:
            if inspect.iscoroutinefunction(fn):
                result = await fn(call_ctx)
            else:
                result = await asyncio.to_thread(fn, call_ctx)
                if inspect.isawaitable(result):  # e.g. a partial or a sync wrapper of an async function
                    result = await result
        except StepError:
            raise
        except Exception as exc:
            raise StepError(f"{type(exc).__name__}: {exc}", "transient") from exc
        return result
