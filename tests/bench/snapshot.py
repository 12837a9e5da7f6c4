"""Benchmark: how long a snapshot (log compaction) holds the Raft thread with large state, and whether it
causes elections.

    python tests/bench/snapshot.py --workflows 10000

Starts a fresh 3-node cluster with frequent compaction, submits --workflows three-step demo workflows, waits
until every node has written a snapshot after the load, and prints each node's snapshot figures (from its log:
the pause on the Raft tick thread and the time until the file is renamed and synced) and the Raft term
before/after (a term change would mean a snapshot stall triggered an election). For the tick-thread pause
alone at 100,000 workflows without a cluster, see snapshot_pause.py.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.harness import REPO_ROOT, Cluster

SNAPSHOT_LINE = re.compile(
    r"snapshot: (\d+) workflows, (\d+) bytes compressed, ([\d.]+) ms on the Raft thread, (\d+) ms in all"
)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workflows", type=int, default=10_000)
    args = ap.parse_args()
    definition = (REPO_ROOT / "deploy/workflows/three-step-demo.yaml").read_text()
    extra = ["--compaction-min-entries", "2000", "--compaction-min-time", "5"]
    with (
        tempfile.TemporaryDirectory() as tmp,
        Cluster(Path(tmp), extra_args=extra, debug_invariants=False) as cluster,
    ):
        cluster.start()
        cluster.wait_ready()
        term_before = max(n.term for n in cluster.cluster_status().nodes)
        nodes = list(cluster.nodes)

        def submit(i: int) -> str:
            stub = cluster.workflow_stub(nodes[i % 3])
            return str(
                stub.SubmitWorkflow(pb.SubmitWorkflowRequest(definition=definition), timeout=30).workflow_id
            )

        with ThreadPoolExecutor(32) as pool:
            ids = list(pool.map(submit, range(args.workflows)))
        loaded_at = time.time()

        def snapshots() -> dict[str, list[tuple[int, int, float, int]]]:
            found = {}
            for node_id, node in cluster.nodes.items():
                found[node_id] = [
                    (int(m[1]), int(m[2]), float(m[3]), int(m[4]))
                    for m in SNAPSHOT_LINE.finditer(node.log_path.read_text())
                ]
            return found

        def big_snapshot_everywhere() -> dict[str, list[tuple[int, int, float, int]]] | None:
            found = snapshots()
            if all(any(s[0] >= len(ids) * 0.9 for s in s_) for s_ in found.values()):
                return found
            # Keep entries flowing so compaction triggers on every node.
            cluster.workflow_stub(nodes[0]).SubmitWorkflow(
                pb.SubmitWorkflowRequest(definition=definition), timeout=30
            )
            return None

        found = cluster.wait_until(
            big_snapshot_everywhere, 300, "a snapshot of the loaded state on every node"
        )
        term_after = max(n.term for n in cluster.cluster_status().nodes)
        report = {
            "workflows": len(ids),
            "seconds_to_snapshot_after_load": round(time.time() - loaded_at, 1),
            "raft_term_before": term_before,
            "raft_term_after": term_after,
            "snapshots": {
                n: [
                    {"workflows": w, "bytes": b, "ms_on_raft_thread": ms, "ms_in_all": total}
                    for w, b, ms, total in s
                ]
                for n, s in found.items()
            },
            "max_ms_on_raft_thread": max(s[2] for s_ in found.values() for s in s_),
            "max_ms_in_all": max(s[3] for s_ in found.values() for s in s_),
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
