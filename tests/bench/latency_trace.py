"""Trace where a lone 3-step workflow's time goes: p50 gaps between committed step timestamps.

    python tests/bench/latency_trace.py [N]

Starts a fresh local 3-node cluster (``--fsync batch``), runs N workflows one at a time (bounded: N and
10 s per call), and prints per-phase medians, so a latency change can be placed (submit, a step, watch).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb  # noqa: E402
from beamflowd.api.gen.beamflow.v1 import workflow_pb2_grpc as pb_grpc  # noqa: E402
from tests.harness import Cluster  # noqa: E402

PHASES = ("submit_rtt", "create-t0", "end1-create", "end2-end1", "end3-end2", "watch_seen-end3", "e2e")


def _ms(ts: object) -> float:
    return float(ts.seconds * 1000 + ts.nanos / 1e6)  # type: ignore[attr-defined]


async def trace(endpoint: str, n: int) -> list[list[float]]:
    """One row of phase durations (ms) per workflow, submitted and watched through ``endpoint``."""
    definition = (ROOT / "deploy/workflows/three-step-demo.yaml").read_text()
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = pb_grpc.WorkflowServiceStub(channel)
        rows = []
        for _ in range(n):
            t0 = time.time() * 1000
            r = await stub.SubmitWorkflow(
                pb.SubmitWorkflowRequest(definition=definition, input_json="{}"), timeout=10
            )
            t1 = time.time() * 1000
            async for _ev in stub.WatchWorkflow(
                pb.WatchWorkflowRequest(workflow_id=r.workflow_id), timeout=10
            ):
                pass
            t2 = time.time() * 1000
            w = (
                await stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=r.workflow_id), timeout=10)
            ).workflow
            ends = [_ms(s.end_time) for s in w.steps]
            created = _ms(w.create_time)
            rows.append(
                [
                    t1 - t0,
                    created - t0,
                    ends[0] - created,
                    ends[1] - ends[0],
                    ends[2] - ends[1],
                    t2 - ends[2],
                    t2 - t0,
                ]
            )
    return rows


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with (
        tempfile.TemporaryDirectory() as tmp,
        Cluster(Path(tmp), extra_args=["--fsync", "batch"], debug_invariants=False) as cluster,
    ):
        cluster.start()
        cluster.wait_ready()
        rows = asyncio.run(trace(cluster.endpoints.split(",")[0], n))
    for j, name in enumerate(PHASES):
        print(f"{name:16s} p50 {statistics.median(r[j] for r in rows[5:]):6.2f} ms")


if __name__ == "__main__":
    main()
