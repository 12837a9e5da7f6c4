"""Definitions compiled off the event loop: cached by text, errors intact, the loop keeps ticking."""

from __future__ import annotations

import asyncio
import json

import pytest

from beamflowd.api.definitions import DefinitionCompiler
from beamflowd.core.spec import SpecError

GOOD = json.dumps({"name": "ok", "steps": [{"id": "a", "run": "noop"}]})


def _large(i: int) -> str:
    """~16 KiB of distinct, valid expressions: a compile that takes a while and is never cached."""
    exprs = " ".join(f"${{{{ [input.f{i}_{j}, input.g{j}] }}}}" for j in range(480))
    return json.dumps({"name": f"big{i}", "steps": [{"id": "a", "run": "demo", "with": {"output": exprs}}]})


def test_cache_returns_the_same_compiled_definition() -> None:
    async def go() -> None:
        compiler = DefinitionCompiler()
        first = await compiler.compile(GOOD, "ok.yaml")
        second = await compiler.compile(GOOD, "ok.yaml")
        assert first is second
        assert first.spec.name == "ok" and len(first.spec_hash) == 24
        compiler.close()

    asyncio.run(go())


def test_errors_keep_the_source_and_field() -> None:
    async def go() -> None:
        compiler = DefinitionCompiler()
        with pytest.raises(SpecError) as info:
            await compiler.compile(json.dumps({"name": "x", "steps": [{"id": "a", "run": "nope"}]}), "x.yaml")
        assert (info.value.source, info.value.step, info.value.field) == ("x.yaml", "a", "run")
        compiler.close()

    asyncio.run(go())


def test_the_event_loop_keeps_running_while_large_definitions_compile() -> None:
    """Ticks every 5 ms on the loop; the longest gap between ticks stays far below a compile burst."""

    async def go() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        compiler = DefinitionCompiler()
        gaps: list[float] = []
        stop = asyncio.Event()

        async def tick() -> None:
            last = loop.time()
            while not stop.is_set():
                await asyncio.sleep(0.005)
                now = loop.time()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        started = loop.time()
        for i in range(8):
            await compiler.compile(_large(i), f"big{i}.yaml")
        burst = loop.time() - started
        stop.set()
        await ticker
        compiler.close()
        return burst, max(gaps)

    burst, worst_gap = asyncio.run(go())
    assert len(_large(0)) > 15_000
    # The compiles ran elsewhere: the loop never waited for a whole burst (nor for one compile, typically).
    assert worst_gap < burst / 2, (worst_gap, burst)
