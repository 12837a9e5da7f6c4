"""Benchmark: restart and catch-up of a node holding a large state.

    python tests/bench/restart.py --workflows 100000

Starts a fresh 3-node cluster with frequent compaction and stops n3 for good. Fills the other two with
``--workflows`` three-step demo workflows (n3 misses all of it, and the leader's log is compacted past it),
then:

- fill: reports the term before and after (snapshots under load must not cost an election);
- catch-up: starts n3, which can only catch up from a snapshot the leader transfers; times until n3 serves
  and has applied the leader's commit index, while the monitor watches that the term and the leader never
  change (the transfer must not stall the leader);
- restart: stops n1 (SIGTERM), starts it again, and times until it serves with its snapshot and journal
  tail applied.

Prints JSON. Bounded: --deadline seconds for the whole run, one status sample a second.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.harness import REPO_ROOT, Cluster

LOADED = re.compile(r"loaded snapshot: (\d+) workflows, applied index \d+, in (\d+) ms")
SUBMITTERS = 32


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workflows", type=int, default=100_000)
    ap.add_argument("--deadline", type=float, default=3_600)
    ap.add_argument("--logs", help="copy the nodes' logs into this directory at the end")
    args = ap.parse_args()
    definition = (REPO_ROOT / "deploy/workflows/three-step-demo.yaml").read_text()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        # Keep every workflow (the default keeps the newest 50,000 finished ones).
        config = Path(tmp) / "retention.toml"
        config.write_text(f"retention_max_finished = {max(50_000, args.workflows)}\n")
        extra = ["--config", str(config), "--compaction-min-entries", "2000", "--compaction-min-time", "5"]
        with Cluster(Path(tmp) / "cluster", extra_args=extra, debug_invariants=False) as cluster:
            try:
                return measure(cluster, args, definition, started)
            finally:
                if args.logs:
                    Path(args.logs).mkdir(parents=True, exist_ok=True)
                    for node_id, node in cluster.nodes.items():
                        shutil.copy(node.log_path, Path(args.logs) / f"{node_id}.log")


def measure(cluster: Cluster, args: argparse.Namespace, definition: str, started: float) -> int:
    def leader_term(node_id: str) -> tuple[int, str] | None:
        """(term, leader) as ``node_id`` sees them, if it knows a leader; the term is the highest any
        reachable node reports (a disruptive candidate raises its own first)."""
        status = cluster.cluster_status(node_id, timeout=10)
        if not status.leader_id:
            return None
        return max(n.term for n in status.nodes if n.reachable), status.leader_id

    cluster.start()
    cluster.wait_ready()
    cluster.stop_node("n3")
    up = ["n1", "n2"]

    # n3 may have led: count terms from the leader n1 and n2 agree on once it is gone.
    def led_by_one_of_up() -> tuple[int, str] | None:
        seen = leader_term("n1")
        return seen if seen is not None and seen[1] in up else None

    term_before_fill, _ = cluster.wait_until(led_by_one_of_up, 30, "a leader among n1 and n2")

    def submit(i: int) -> None:
        cluster.workflow_stub(up[i % 2]).SubmitWorkflow(
            pb.SubmitWorkflowRequest(definition=definition), timeout=60
        )

    t0 = time.monotonic()
    with ThreadPoolExecutor(SUBMITTERS) as pool:
        list(pool.map(submit, range(args.workflows)))
    fill_s = time.monotonic() - t0

    def all_finished() -> bool:
        listed = cluster.workflow_stub("n1").ListWorkflows(
            pb.ListWorkflowsRequest(status=pb.WORKFLOW_STATUS_RUNNING, page_size=1), timeout=30
        )
        return listed.total_matching == 0

    cluster.wait_until(all_finished, args.deadline - (time.monotonic() - started), "the load to finish")
    term_after_fill, leader_before = leader_term("n1") or (0, "(none)")

    seen_terms: set[int] = set()
    seen_leaders: set[str] = set()
    stop = threading.Event()

    def monitor() -> None:
        while not stop.wait(1.0) and time.monotonic() - started < args.deadline:
            try:
                status = cluster.cluster_status("n1", timeout=5)
            except Exception:
                seen_leaders.add("(no answer)")
                continue
            seen_leaders.add(status.leader_id)
            seen_terms.update(n.term for n in status.nodes if n.reachable)

    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()

    def caught_up(node_id: str) -> bool:
        if not cluster.is_serving(node_id):
            return False
        leader = cluster.cluster_status("n1", timeout=10)
        mine = cluster.cluster_status(node_id, timeout=10)
        target = max(n.commit_index for n in leader.nodes if n.id == leader.leader_id)
        return any(n.id == node_id and n.applied_index >= target for n in mine.nodes)

    remaining = args.deadline - (time.monotonic() - started)
    t0 = time.monotonic()
    cluster.start_node("n3")
    cluster.wait_until(lambda: cluster.is_serving("n3"), remaining, "n3 to serve")
    n3_serving_s = time.monotonic() - t0
    cluster.wait_until(lambda: caught_up("n3"), remaining, "n3 to catch up")
    n3_caught_up_s = time.monotonic() - t0
    stop.set()
    watcher.join(timeout=5)

    # Restart n1 on a quiet machine: n3 checks its 100,000 restored workflows in the background for a few
    # seconds after it serves, and those seconds on a 2-core machine would be counted against n1.
    verified = re.compile(r"checked \d+ finished workflows of the restored state")
    cluster.wait_until(
        lambda: bool(verified.search(cluster.nodes["n3"].log_path.read_text())),
        remaining,
        "n3 to finish checking its restored state",
    )
    cluster.stop_node("n1")
    t0 = time.monotonic()
    cluster.start_node("n1")
    cluster.wait_until(lambda: cluster.is_serving("n1"), remaining, "n1 to serve after a restart")
    n1_serving_s = time.monotonic() - t0

    loads = {
        node_id: [(int(m[1]), int(m[2])) for m in LOADED.finditer(node.log_path.read_text())]
        for node_id, node in cluster.nodes.items()
    }
    report = {
        "workflows": args.workflows,
        "fill_s": round(fill_s, 1),
        "catch_up_from_snapshot": {
            "serving_s": round(n3_serving_s, 2),
            "applied_leader_commit_s": round(n3_caught_up_s, 2),
        },
        "restart": {"serving_s": round(n1_serving_s, 2)},
        "snapshot_loads_workflows_ms": loads,
        "term_before_fill": term_before_fill,
        "term_after_fill": term_after_fill,
        "terms_seen_during_catch_up": sorted(seen_terms),
        "leader_after_fill": leader_before,
        "leaders_seen_during_catch_up": sorted(seen_leaders),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
