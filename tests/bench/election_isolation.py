"""Benchmark: seconds from isolating the leader (chaos partition) until the majority has a new leader.

    python tests/bench/election_isolation.py --runs 5

Starts a fresh 3-node cluster with chaos enabled, then per run: isolate the current leader, wait for the other
two to elect, heal, wait for one agreed leader. Bounded: --runs runs, each step with a deadline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from beamflowd.api.gen.beamflow.v1 import chaos_pb2 as cpb
from tests.chaos.support import Endpoints
from tests.chaos.test_partition import isolate_and_elect
from tests.harness import Cluster


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    times: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        Cluster(Path(tmp), extra_args=["--enable-chaos"], debug_invariants=False) as cluster,
    ):
        cluster.start()
        cluster.wait_ready()
        ends = Endpoints({n: cluster.grpc_addr(n) for n in cluster.nodes}, cluster.log_tails)
        try:
            for _ in range(args.runs):
                leader = ends.wait_until(ends.leader, 15, "a leader")
                via = next(n for n in ends.addrs if n != leader)
                times.append(isolate_and_elect(ends, leader, via))
                ends.chaos(via).Heal(cpb.HealRequest(), timeout=5)

                def one_leader() -> bool:
                    nodes = ends.cluster_status().nodes
                    return (
                        all(n.reachable and n.leader_id for n in nodes)
                        and len({n.leader_id for n in nodes}) == 1
                    )

                ends.wait_until(one_leader, 20, "one agreed leader after heal")
        finally:
            ends.close()
    print(
        json.dumps(
            {
                "runs": args.runs,
                "election_after_isolation_s": {
                    "p50": round(statistics.median(times), 3),
                    "all": [round(t, 3) for t in times],
                },
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
