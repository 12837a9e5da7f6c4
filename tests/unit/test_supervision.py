"""Supervision with real parts: a one-node Raft log, the proposer and the executor in one event loop.

A crashed actor restarts from committed state; more than ``max_restarts`` crashes within the window fail
the workflow with the reason recorded in its history.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from beamflowd.core.commands import Join, Submit
from beamflowd.core.spec import parse_workflow
from beamflowd.core.state import spec_digest
from beamflowd.executor import Executor
from beamflowd.proposer import Proposer
from beamflowd.replication import RaftTuning, ReplicatedState
from tests.harness import free_ports

FLOW = """
name: long
steps:
  - {id: a, run: noop}
  - {id: nap, run: sleep, needs: a, with: {duration: 10m}}
"""


async def eventually(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def scenario(data_dir: Path) -> None:
    loop = asyncio.get_running_loop()
    executor: Executor | None = None

    def on_applied(changed: set[str]) -> None:
        if executor is not None:
            loop.call_soon_threadsafe(executor.on_changed, changed)

    port = free_ports(1)[0]
    raft = ReplicatedState(
        f"127.0.0.1:{port}", [], str(data_dir), RaftTuning(), None, on_applied, fsync="off"
    )
    proposer = Proposer(raft, loop)
    proposer.start()
    quorum = asyncio.Event()
    quorum.set()
    executor = Executor(
        "n1",
        raft,
        proposer,
        allow_exec=False,
        default_step_timeout=5.0,
        max_concurrent_attempts=10,
        quorum_ok=quorum,
        max_restarts=3,
        restart_window=30.0,
    )
    try:
        join = Join(node="n1", raft="x", grpc="y", ts=1)
        assert (await proposer.propose(join, timeout=10)).ok
        plain = parse_workflow(FLOW).to_plain()
        submit = Submit(
            rid="r1",
            wf="wf-1",
            spec=plain,
            spec_hash=spec_digest(plain),
            input="{}",
            ts=int(time.time() * 1000),
            node="n1",
        )
        assert (await proposer.propose(submit)).ok

        def napping() -> bool:
            with raft.read():
                return raft.sm.workflows["wf-1"].steps["nap"].status == "running"

        await eventually(napping, 10, "the durable sleep to start")
        for crash in range(1, 4):  # within the intensity: each crash restarts the actor
            await eventually(lambda: "wf-1" in executor.actors, 5, "a live actor")
            assert executor.crash_actor("wf-1", f"injected crash {crash}")
            await eventually(lambda c=crash: executor.restarts == c, 5, f"restart {crash}")
        with raft.read():
            assert raft.sm.workflows["wf-1"].status == "running", "restarts resume from committed state"
        await eventually(lambda: "wf-1" in executor.actors, 5, "a live actor")
        assert executor.crash_actor("wf-1", "injected crash 4")

        def failed() -> bool:
            with raft.read():
                return raft.sm.workflows["wf-1"].status == "failed"

        await eventually(failed, 10, "the workflow to fail after too many restarts")
        with raft.read():
            wf = raft.sm.workflows["wf-1"]
            assert "crashed 4 times" in wf.error and "injected crash 4" in wf.error
            assert wf.events[-1][2] == "failed"
    finally:
        await executor.close()
        await proposer.stop()
        raft.destroy()


def test_actor_restarts_then_fails_past_restart_intensity(tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(scenario(tmp_path), 60))
