"""Benchmark: how long a snapshot (log compaction) holds the Raft thread with large state, and whether it
causes elections.

    python tests/bench/snapshot.py --workflows 10000
    python tests/bench/snapshot.py --workflows 50000 --assert-stable   # the scale acceptance run


Starts a fresh 3-node cluster with frequent compaction, submits --workflows three-step demo workflows, waits
until every node has written a snapshot after the load, and prints each node's snapshot figures (from its log:
the pause on the Raft tick thread and the time until the file is renamed and synced) and the Raft term
before/after (a term change would mean a snapshot stall triggered an election). While it fills, a monitor
samples every node's status once a second: the term, the leader and every node's liveness. With
``--assert-stable`` it exits 1 unless the term and the leader never changed and no node was ever seen dead
nor logged "declared down" (``suspect``, a late heartbeat, is reported, not failed). For the tick-thread
pause alone at 100,000 workflows without a cluster, see snapshot_pause.py.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.harness import REPO_ROOT, Cluster

#: The status monitor's bound: one sample a second for at most this long.
MONITOR_SAMPLES_MAX = 3_600
GC_PAUSE_LINE = re.compile(r"garbage collection of generation \d+ took (\d+) ms")
SNAPSHOT_LINE = re.compile(
    r"snapshot: (\d+) workflows, (\d+) bytes compressed, ([\d.]+) ms on the Raft thread, (\d+) ms in all"
)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workflows", type=int, default=10_000)
    ap.add_argument("--assert-stable", action="store_true", help="exit 1 on any election or death")
    args = ap.parse_args()
    definition = (REPO_ROOT / "deploy/workflows/three-step-demo.yaml").read_text()
    extra = ["--compaction-min-entries", "2000", "--compaction-min-time", "5"]
    with (
        tempfile.TemporaryDirectory() as tmp,
        Cluster(Path(tmp), extra_args=extra, debug_invariants=False) as cluster,
    ):
        cluster.start()
        cluster.wait_ready()
        first = cluster.cluster_status()
        term_before, leader_before = max(n.term for n in first.nodes), first.leader_id
        nodes = list(cluster.nodes)
        seen: dict[str, set[str]] = {"terms": set(), "leaders": set(), "liveness": set()}
        stop = threading.Event()

        def monitor() -> None:
            for _ in range(MONITOR_SAMPLES_MAX):
                if stop.wait(1.0):
                    return
                try:
                    status = cluster.cluster_status()
                except Exception as exc:  # a stalled node: that is what we are looking for
                    seen["liveness"].add(f"status call failed: {exc}")
                    continue
                seen["leaders"].add(status.leader_id)
                for n in status.nodes:
                    seen["terms"].add(str(n.term))
                    seen["liveness"].add(n.liveness or "?")

        watcher = threading.Thread(target=monitor, daemon=True)
        watcher.start()

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
        stop.set()
        watcher.join(timeout=5)
        last = cluster.cluster_status()
        term_after = max(n.term for n in last.nodes)
        seen["leaders"].add(last.leader_id)
        logs = [node.log_path.read_text() for node in cluster.nodes.values()]
        declared = sum(text.count("declared down") for text in logs)
        gc_pauses_ms = [int(m) for text in logs for m in GC_PAUSE_LINE.findall(text)]
        stable = (
            term_after == term_before
            and seen["leaders"] == {leader_before}
            and "dead" not in seen["liveness"]
            and declared == 0
        )
        report = {
            "stable": stable,
            "leaders_seen": sorted(seen["leaders"]),
            "terms_seen": sorted(seen["terms"], key=int),
            "liveness_seen": sorted(seen["liveness"]),
            "declared_down_in_logs": declared,
            "gc_pauses_over_100ms": len(gc_pauses_ms),
            "longest_gc_pause_ms": max(gc_pauses_ms, default=0),
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
    return 1 if args.assert_stable and not report["stable"] else 0


if __name__ == "__main__":
    sys.exit(main())
