"""Fail-stop on the tick thread: a handler bug stops the node (exit 70) before any result is acknowledged."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.harness import free_ports

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from beamflowd.core import commands as c, state
    from beamflowd.proposer import Proposer
    from beamflowd.replication import RaftTuning, ReplicatedState

    def buggy(machine, cmd):
        raise ZeroDivisionError("a bug in a handler")

    async def main(port, data_dir):
        raft = ReplicatedState(f"127.0.0.1:{port}", [], data_dir, RaftTuning(), None, lambda _: None, "off")
        proposer = Proposer(raft, asyncio.get_running_loop())
        proposer.start()
        assert (await proposer.propose(c.Heartbeat(node="n1", ts=1), timeout=10)).code == "NOT_FOUND"
        state._HANDLERS[c.Heartbeat] = buggy
        await proposer.propose(c.Heartbeat(node="n1", ts=2), timeout=10)
        print("ACKNOWLEDGED", flush=True)  # must never happen

    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
    """
)


def test_a_handler_bug_stops_the_node_before_it_acknowledges(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(port), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent.parent,
    )
    assert proc.returncode == 70, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    assert "ACKNOWLEDGED" not in proc.stdout
    assert "fatal error applying heartbeat" in proc.stderr, proc.stderr[-2000:]
    assert "ZeroDivisionError" in proc.stderr
