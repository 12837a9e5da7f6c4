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
    """A ticker on the loop keeps ticking during a burst of compiles; compiled on the loop, it could not."""

    async def go() -> int:
        compiler = DefinitionCompiler()
        ticks = 0
        stop = asyncio.Event()

        async def tick() -> None:
            nonlocal ticks
            while not stop.is_set():
                await asyncio.sleep(0.002)
                ticks += 1

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)  # the ticker is waiting on its first sleep
        ticks = 0
        for i in range(8):
            await compiler.compile(_large(i), f"big{i}.yaml")
        during = ticks
        stop.set()
        await ticker
        compiler.close()
        return during

    assert len(_large(0)) > 15_000
    # Each compile takes milliseconds; done inline (no await inside), the ticker would not run at all.
    assert asyncio.run(go()) >= 4
