"""Benchmark: a backup of a large state — the pause under the state lock, the time to stream it, its size,
and the time to check and restore it.

    python tests/bench/backup.py --workflows 10000

One real Raft node (no gRPC: the figures are the capture, the encoding and the restore, not the network)
with --workflows sequential workflows submitted (not run) through the proposer; alike workflows compress
very well, so the size is a lower bound.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from beamflowd.backup import restore
from beamflowd.core import commands as c
from beamflowd.proposer import Proposer
from tests.unit.state_strategies import join_cmd
from tests.unit.test_backup import save_backup
from tests.unit.test_replication import _submits, eventually, one_node


async def run(workflows: int, tmp: Path) -> None:
    raft = one_node(tmp / "data")
    proposer = Proposer(raft, asyncio.get_running_loop())
    proposer.start()
    try:
        assert (await proposer.propose(c.decode(join_cmd("n1", 1)))).ok
        for start in range(0, workflows, 1000):
            batch = _submits(min(1000, workflows - start), start=start)
            results = await asyncio.gather(*(proposer.propose(c.decode(p)) for p in batch))
            assert all(r.ok for r in results)
        await eventually(lambda: raft.status().applied_index >= raft.status().commit_index, 30, "apply")
        raft.encoded.encode_settled(time.monotonic())  # as the background encoder does on a node at rest
        started = time.perf_counter()
        raft.capture_backup()
        pause = time.perf_counter() - started
        raft.release_backup()
        started = time.perf_counter()
        info = save_backup(raft, tmp / "backup.db")
        total = time.perf_counter() - started
    finally:
        await proposer.stop()
        raft.destroy()
    started = time.perf_counter()
    done = restore(str(tmp / "backup.db"), str(tmp / "restored"), "n1", "n1=127.0.0.1:7101")
    restored = time.perf_counter() - started
    print(
        f"{info.workflows} workflows: capture under the state lock {pause * 1000:.1f} ms, "
        f"save {total * 1000:.0f} ms, {info.body_bytes / 1048576:.2f} MiB "
        f"({info.body_bytes / max(info.workflows, 1):.0f} B/workflow); "
        f"restore (check + decode + write) {restored * 1000:.0f} ms, {done.workflows} workflows"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workflows", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="beamflow-bench-backup-") as tmp:
        asyncio.run(run(args.workflows, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
