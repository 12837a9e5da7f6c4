"""``demo``: a simulated integration with latency and failure/timeout rates (demos, benchmarks, chaos)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any

from beamflowd.core.step_params import ParamError, parse_demo
from beamflowd.steps.base import StepContext, StepError, param_error_to_step_error

#: Not seeded on purpose: demos and chaos runs should differ; tests use rates of 0 and 1.
_rng = random.Random()


class DemoStep:
    """Sleeps a uniform random latency, then fails, times out or returns ``output`` with the given odds."""

    name = "demo"

    async def run(self, ctx: StepContext, params: Mapping[str, Any]) -> Any:
        try:
            cfg = parse_demo(params, resolved=True)
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
        output: Any = params.get("output", {"ok": True, "latency_ms": latency_ms})
        if cfg.score is not None:
            output = {**output, "score": _rng.randint(*cfg.score)}
        return output
