"""Benchmark: failover time and election time on a real 3-node loopback cluster.

    python tests/bench/failover.py --runs 10

Each run starts a fresh cluster, submits workflows whose middle step is a durable sleep, SIGKILLs the node
owning them mid-sleep and measures (a) the time from SIGKILL until the first step completed by a new owner
(failover), and (b) separately, the time from SIGKILL of the leader until a new leader is reported (election).
Bounded: --runs runs, each with deadlines.
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
name: failover
steps:
  - {id: a, run: noop}
  - {id: nap, run: sleep, needs: a, with: {duration: 500ms}}
  - {id: b, run: noop, needs: nap}
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def one_run(tmp: Path) -> tuple[float, float]:
    with Cluster(tmp, debug_invariants=False) as cluster:
        cluster.start()
        cluster.wait_ready()
        leader = cluster.leader_id()
        victim = next(n for n in cluster.nodes if n != leader)
        stub = cluster.workflow_stub(leader)
        ids = []
        for _ in range(60):  # bounded: until one lands on the victim
            r = stub.SubmitWorkflow(pb.SubmitWorkflowRequest(definition=FLOW), timeout=10)
            ids.append(r.workflow_id)
            if r.owner == victim and len([i for i in ids]) >= 3:
                break
        mine = [
            i
            for i in ids
            if stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=i), timeout=5).workflow.owner == victim
        ]
        cluster.kill_node(victim)
        killed = time.time()

        def resumed() -> float | None:
            for wf_id in mine:
                wf = stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=5).workflow
                if wf.epoch >= 2:
                    for s in wf.steps:
                        if (
                            s.end_time.ToMilliseconds() / 1000 > killed
                            and s.status == pb.STEP_STATUS_SUCCEEDED
                        ):
                            return s.end_time.ToMilliseconds() / 1000 - killed
            return None

        failover = cluster.wait_until(
            resumed,
            30,
            "a step completed by the new owner",
        )
        cluster.start_node(victim)
        cluster.wait_ready(nodes=[victim])
        leader = cluster.leader_id()
        cluster.kill_node(leader)
        killed = time.monotonic()
        survivors = [n for n in cluster.running_ids()]

        def new_leader() -> float | None:
            for n in survivors:
                try:
                    found = cluster.cluster_status(n, timeout=1).leader_id
                except Exception:
                    continue
                if found and found != leader:
                    return time.monotonic() - killed
            return None

        election = cluster.wait_until(new_leader, 30, "a new leader")
        return failover, election


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    failovers, elections = [], []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            f, e = one_run(Path(tmp))
        failovers.append(f)
        elections.append(e)
        print(f"run {i + 1}: failover {f:.2f}s, election {e:.2f}s", file=sys.stderr)
    print(
        json.dumps(
            {
                "runs": args.runs,
                "failover_s": {
                    "p50": round(statistics.median(failovers), 2),
                    "p99": round(pct(failovers, 99), 2),
                    "min": round(min(failovers), 2),
                    "max": round(max(failovers), 2),
                },
                "election_s": {
                    "p50": round(statistics.median(elections), 2),
                    "p99": round(pct(elections, 99), 2),
                    "min": round(min(elections), 2),
                    "max": round(max(elections), 2),
                },
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
