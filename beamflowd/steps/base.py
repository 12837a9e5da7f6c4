"""The contract between the engine and step kinds, plus the parameter checks every kind shares.

A step kind validates its ``with`` params statically at submit time (so a bad workflow is refused before it
runs) and runs one attempt at a time; a failed attempt raises :class:`StepError` whose ``error_class`` drives
the retry policy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from beamflowd.core.durations import parse_duration

#: Largest encoded output a step may produce: outputs live in the replicated log, so they must stay small.
MAX_OUTPUT_BYTES = 64 * 1024


class ParamError(ValueError):
    """A step's ``with`` params are invalid; ``field`` names the offending param (e.g. ``argv[0]``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class StepError(Exception):
    """A failed attempt. ``error_class`` is matched against the retry policy's non-retryable classes."""

    def __init__(self, message: str, error_class: str = "transient") -> None:
        super().__init__(message)
        self.message = message
        self.error_class = error_class


class PermanentError(StepError):
    """A failure that retrying cannot fix (bad config, missing function, 4xx): never retried.

    Public API for ``python`` steps: ``raise PermanentError("customer does not exist")``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, "permanent")


@dataclass(frozen=True)
class StepContext:
    """What an attempt knows about itself; ``idempotency_key`` is stable across a retry's re-delivery."""

    workflow_id: str
    step_id: str
    attempt: int
    idempotency_key: str  # "<workflow_id>/<step_id>/<attempt>"
    input: Any
    results: Mapping[str, Any]  # outputs of upstream steps by step id
    node_id: str
    allow_exec: bool
    args: Mapping[str, Any]  # the step's resolved `with` params


class StepKind(Protocol):
    """One kind of step (``noop``, ``http``, ...). Instances are stateless and shared by all workflows."""

    name: str

    def validate(self, params: Mapping[str, Any]) -> None:
        """Check params statically at submit time; raise :class:`ParamError`. Expressions are not checked."""
        ...

    async def run(self, ctx: StepContext, params: Mapping[str, Any]) -> Any:
        """Run one attempt with resolved params; return a JSON-able output or raise :class:`StepError`."""
        ...

    def durable_delay_ms(self, params: Mapping[str, Any]) -> int | None:
        """Delay the engine must commit before calling :meth:`run` (durable timers), or None."""
        ...


def encode_output(value: Any) -> str:
    """Encode a step output as compact, deterministic JSON, refusing what cannot be stored in the log."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StepError(f"step output is not JSON-serializable: {exc}", error_class="permanent") from exc
    size = len(text.encode("utf-8"))
    if size > MAX_OUTPUT_BYTES:
        raise StepError(
            f"step output is {size} bytes encoded, over the limit of {MAX_OUTPUT_BYTES} bytes (64 KiB): "
            "store large data elsewhere and return a reference",
            error_class="permanent",
        )
    return text


def is_unresolved(value: object) -> bool:
    """True for an expression, whose value (and so type) is only known at run time."""
    return isinstance(value, str) and "${{" in value


class Params:
    """Typed reader over a step's ``with`` mapping, shared by ``validate`` (static) and ``run`` (resolved).

    With ``resolved=False`` a value that is an expression is skipped (readers return None); with
    ``resolved=True`` every value is checked, since expressions have been substituted.
    """

    def __init__(
        self,
        kind: str,
        params: Mapping[str, Any],
        allowed: Sequence[str],
        required: Sequence[str] = (),
        *,
        resolved: bool,
    ) -> None:
        if not isinstance(params, Mapping):
            raise ParamError("with", f"expected a mapping of parameters, got {type(params).__name__}")
        for key in params:
            if key not in allowed:
                hint = f"allowed: {', '.join(allowed)}" if allowed else "it takes no parameters"
                raise ParamError(str(key), f"unknown parameter for step kind {kind!r} ({hint})")
        for key in required:
            if key not in params:
                raise ParamError(key, f"required parameter for step kind {kind!r} is missing")
        self.kind = kind
        self.raw = params
        self.resolved = resolved

    def deferred(self, value: object) -> bool:
        """True if ``value`` must be skipped now because it is an unresolved expression."""
        return not self.resolved and is_unresolved(value)

    def get(self, field: str, default: Any = None) -> Any:
        """The raw value, unchecked (for params that take any JSON)."""
        return self.raw.get(field, default)

    def text(self, field: str, default: str | None = None) -> str | None:
        value = self.raw.get(field, default)
        if value is None or self.deferred(value):
            return None
        if not isinstance(value, str):
            raise ParamError(field, f"expected a string, got {_describe(value)}")
        return value

    def duration_ms(self, field: str, default: str | None = None) -> int | None:
        value = self.raw.get(field, default)
        if value is None or self.deferred(value):
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ParamError(field, str(exc)) from None

    def probability(self, field: str, default: float) -> float | None:
        value = self.raw.get(field, default)
        if self.deferred(value):
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamError(field, f"expected a number between 0 and 1, got {_describe(value)}")
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ParamError(field, f"expected a number between 0 and 1, got {value!r}")
        return float(value)

    def str_mapping(self, field: str) -> dict[str, str] | None:
        """A mapping of strings to strings (headers, env); values that are expressions are kept as-is."""
        value = self.raw.get(field)
        if value is None or self.deferred(value):
            return None
        if not isinstance(value, Mapping):
            raise ParamError(field, f"expected a mapping of strings, got {_describe(value)}")
        out: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ParamError(field, f"keys must be strings, got {_describe(key)}")
            if not isinstance(item, str):
                raise ParamError(f"{field}.{key}", f"expected a string, got {_describe(item)}")
            out[key] = item
        return out

    def mapping(self, field: str) -> Mapping[str, Any] | None:
        value = self.raw.get(field)
        if value is None or self.deferred(value):
            return None
        if not isinstance(value, Mapping):
            raise ParamError(field, f"expected a mapping, got {_describe(value)}")
        for key in value:
            if not isinstance(key, str):
                raise ParamError(field, f"keys must be strings, got {_describe(key)}")
        return value

    def str_list(self, field: str, *, non_empty: bool = False) -> list[str] | None:
        value = self.raw.get(field)
        if value is None or self.deferred(value):
            return None
        if not isinstance(value, list | tuple):
            raise ParamError(field, f"expected a list of strings, got {_describe(value)}")
        if non_empty and not value:
            raise ParamError(field, "must not be empty")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ParamError(f"{field}[{i}]", f"expected a string, got {_describe(item)}")
        return list(value)

    def int_list(self, field: str, *, lo: int, hi: int) -> list[int] | None:
        """A non-empty list of ints in [lo, hi]; elements that are expressions are skipped."""
        value = self.raw.get(field)
        if value is None or self.deferred(value):
            return None
        if not isinstance(value, list | tuple) or not value:
            raise ParamError(field, f"expected a non-empty list of integers, got {_describe(value)}")
        out: list[int] = []
        for i, item in enumerate(value):
            if self.deferred(item):
                continue
            if isinstance(item, bool) or not isinstance(item, int) or not lo <= item <= hi:
                raise ParamError(f"{field}[{i}]", f"expected an integer from {lo} to {hi}, got {item!r}")
            out.append(item)
        return out


def param_error_to_step_error(exc: ParamError) -> PermanentError:
    """A resolved param of the wrong type at run time: the workflow is wrong, so retrying is pointless."""
    return PermanentError(f"invalid parameter {exc.field}: {exc.message}")


def _describe(value: object) -> str:
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
