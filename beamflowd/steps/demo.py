"""``demo``: a simulated integration with latency and failure/timeout rates (demos, benchmarks, chaos)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from beamflowd.steps.base import ParamError, Params, StepContext, StepError, param_error_to_step_error

_ALLOWED = ("min_latency", "max_latency", "failure_rate", "timeout_rate", "error_class", "output")

#: Not seeded on purpose: demos and chaos runs should differ; tests use rates of 0 and 1.
_rng = random.Random()


@dataclass(frozen=True)
class _Config:
    min_ms: int | None
    max_ms: int | None
    failure_rate: float | None
    timeout_rate: float | None
    error_class: str | None


def _parse(params: Mapping[str, Any], *, resolved: bool) -> _Config:
    p = Params(DemoStep.name, params, allowed=_ALLOWED, resolved=resolved)
    cfg = _Config(
        min_ms=p.duration_ms("min_latency", "0ms"),
        max_ms=p.duration_ms("max_latency", "0ms"),
        failure_rate=p.probability("failure_rate", 0.0),
        timeout_rate=p.probability("timeout_rate", 0.0),
        error_class=p.text("error_class", "transient"),
    )
    if cfg.min_ms is not None and cfg.max_ms is not None and cfg.max_ms < cfg.min_ms:
        raise ParamError("max_latency", "must be greater than or equal to min_latency")
    if (
        cfg.failure_rate is not None
        and cfg.timeout_rate is not None
        and cfg.failure_rate + cfg.timeout_rate > 1.0 + 1e-9
    ):
        raise ParamError("failure_rate", "failure_rate + timeout_rate must not exceed 1")
    if cfg.error_class is not None and not cfg.error_class.strip():
        raise ParamError("error_class", "must not be empty")
    if "output" in params:
        try:
            json.dumps(params["output"], allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ParamError("output", f"must be a JSON value: {exc}") from None
    return cfg


class DemoStep:
    """Sleeps a uniform random latency, then fails, times out or returns ``output`` with the given odds."""

    name = "demo"

    def validate(self, params: Mapping[str, Any]) -> None:
        _parse(params, resolved=False)

    def durable_delay_ms(self, params: Mapping[str, Any]) -> int | None:
        return None

    async def run(self, ctx: StepContext, params: Mapping[str, Any]) -> Any:
        try:
            cfg = _parse(params, resolved=True)
        except ParamError as exc:
            raise param_error_to_step_error(exc) from None
        assert cfg.min_ms is not None and cfg.max_ms is not None
        assert cfg.failure_rate is not None and cfg.timeout_rate is not None and cfg.error_class is not None
        latency = _rng.uniform(cfg.min_ms, cfg.max_ms) if cfg.max_ms > cfg.min_ms else float(cfg.min_ms)
        if latency > 0:
            await asyncio.sleep(latency / 1000)
        latency_ms = round(latency)
        roll = _rng.random()
        if roll < cfg.timeout_rate:
            raise StepError(f"simulated timeout after {latency_ms}ms", error_class="timeout")
        if roll < cfg.timeout_rate + cfg.failure_rate:
            raise StepError(f"simulated failure after {latency_ms}ms", error_class=cfg.error_class)
        if "output" in params:
            return params["output"]
        return {"ok": True, "latency_ms": latency_ms}
