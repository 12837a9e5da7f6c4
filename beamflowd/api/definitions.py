"""Workflow definitions compiled off the gRPC event loop, within a time budget, cached by text.

Parsing and validating a definition is linear in its size and bounded (tests/bench/validation.py: tens of
ms at the 256 KiB limit), but the event loop also carries this node's heartbeats: a burst of large new
definitions must not stall it. So a definition not seen before is compiled on one dedicated thread (the
GIL is handed back to the loop every few ms), at most ``COMPILES_QUEUED_MAX`` wait for it, and a compile
that overruns its budget is refused. Most submits repeat a few definitions and hit the cache inline.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from beamflowd.core.spec import SpecError, WorkflowSpec, parse_workflow
from beamflowd.core.state import spec_digest

#: Distinct definition texts kept compiled.
CACHED_DEFINITIONS_MAX = 256
#: Compiles waiting for the thread; beyond it a submit fails fast with RESOURCE_EXHAUSTED.
COMPILES_QUEUED_MAX = 32
#: Longest a compile may take before the submit is refused (it then finishes in the background).
COMPILE_BUDGET_S = 2.0


@dataclass(frozen=True, slots=True)
class CompiledDefinition:
    spec: WorkflowSpec
    plain: dict[str, Any]
    spec_hash: str


class DefinitionBusy(Exception):
    """Too many new definitions are being compiled at once on this node."""


def compile_definition(text: str, source: str) -> CompiledDefinition:
    """Parse + validate + content-address one definition (raises :class:`SpecError`)."""
    spec = parse_workflow(text, source=source)
    plain = spec.to_plain()
    return CompiledDefinition(spec, plain, spec_digest(plain))


class DefinitionCompiler:
    """The node's compiler of definitions: cache first, then the compile thread."""

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[str, str], CompiledDefinition] = OrderedDict()
        self._lock = threading.Lock()  # the cache is filled from the compile thread
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="definitions")
        self._queued = 0

    async def compile(self, text: str, source: str) -> CompiledDefinition:
        key = (text, source)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        if self._queued >= COMPILES_QUEUED_MAX:
            raise DefinitionBusy(f"{self._queued} definitions are being validated on this node; retry later")
        self._queued += 1  # until the compile ends, even if its caller gave up waiting
        future = asyncio.get_running_loop().run_in_executor(self._pool, self._compile_and_keep, key)
        future.add_done_callback(self._compile_ended)
        try:
            return await asyncio.wait_for(asyncio.shield(future), COMPILE_BUDGET_S)
        except TimeoutError:
            raise SpecError(
                source=source,
                reason=f"validation took longer than {COMPILE_BUDGET_S:g} s; simplify the definition",
            ) from None

    def _compile_ended(self, future: asyncio.Future[CompiledDefinition]) -> None:
        self._queued -= 1
        if not future.cancelled():
            future.exception()  # retrieved: a late SpecError of an abandoned compile is not "never retrieved"

    def _compile_and_keep(self, key: tuple[str, str]) -> CompiledDefinition:
        compiled = compile_definition(*key)
        with self._lock:
            self._cache[key] = compiled
            while len(self._cache) > CACHED_DEFINITIONS_MAX:
                self._cache.popitem(last=False)
        return compiled

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
