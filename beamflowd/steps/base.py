"""The contract between the engine and step kinds: how an attempt runs and how it fails.

A step kind runs one attempt at a time; a failed attempt raises :class:`StepError` whose ``error_class``
drives the retry policy. What a kind's ``with`` params mean (checked at submit time, before anything runs)
is a static rule in :mod:`beamflowd.core.step_params`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from beamflowd.core.step_params import ParamError

#: Largest encoded output a step may produce: outputs live in the replicated log, so they must stay small.
MAX_OUTPUT_BYTES = 64 * 1024


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

    async def run(self, ctx: StepContext, params: Mapping[str, Any]) -> Any:
        """Run one attempt with resolved params; return a JSON-able output or raise :class:`StepError`."""
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


def param_error_to_step_error(exc: ParamError) -> PermanentError:
    """A resolved param of the wrong type at run time: the workflow is wrong, so retrying is pointless."""
    return PermanentError(f"invalid parameter {exc.field}: {exc.message}")
