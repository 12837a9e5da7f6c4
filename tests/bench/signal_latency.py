"""Benchmark: signal round trip, from calling SignalWorkflow to the workflow ending (the wait's payload read
by the next step), and the RPC alone, on a fresh 3-node cluster (fsync batch, invariants off).

    python tests/bench/signal_latency.py --workflows 200

Each workflow is `wait` (signal `go`) then a `noop` reading nothing; the signal is sent only once the wait is
running, so the figure is delivery + the following step + completion, not buffering. Bounded: --workflows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.harness import Cluster

FLOW = """
name: signal-bench
steps:
  - {id: hook, run: wait, with: {signal: go, timeout: 5m}}
  - {id: after, run: noop, needs: [hook]}
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workflows", type=int, default=200)
    args = ap.parse_args()
    rpc_ms: list[float] = []
    round_trip_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, Cluster(Path(tmp), debug_invariants=False) as cluster:
        cluster.start()
        cluster.wait_ready()
        stub = cluster.workflow_stub(cluster.leader_id())
        ids = [
            stub.SubmitWorkflow(pb.SubmitWorkflowRequest(definition=FLOW), timeout=10).workflow_id
            for _ in range(args.workflows)
        ]

        def waiting(wf_id: str) -> bool:
            wf = stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10).workflow
            return any(s.waiting_for for s in wf.steps)

        cluster.wait_until(lambda: all(waiting(w) for w in ids), 60, "every wait to run")
        for wf_id in ids:
            start = time.perf_counter()
            stub.SignalWorkflow(
                pb.SignalWorkflowRequest(workflow_id=wf_id, signal="go", payload_json="1"), timeout=10
            )
            rpc_ms.append((time.perf_counter() - start) * 1000)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # bounded poll for the end of the workflow
                wf = stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10).workflow
                if wf.status == pb.WORKFLOW_STATUS_SUCCEEDED:
                    break
                time.sleep(0.001)
            else:
                raise SystemExit(f"{wf_id} did not finish within 10s of its signal")
            round_trip_ms.append((time.perf_counter() - start) * 1000)

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "p50_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
            "max_ms": round(ordered[-1], 2),
        }

    print(
        json.dumps(
            {
                "workflows": args.workflows,
                "signal_rpc": summary(rpc_ms),
                "to_completion": summary(round_trip_ms),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
