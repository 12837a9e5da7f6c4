"""Benchmark: where the leader's (or a follower's) CPU goes under load (a py-spy profile of a real node).

    python tests/bench/leader_profile.py --py-spy /work/tools-venv/bin/py-spy --seconds 15

Starts a fresh 3-node cluster (``--fsync batch``), drives it with three-step demo workflows (100 in flight,
completion polled, as tests/bench/throughput.py does) and, once the load runs, samples the leader with
py-spy for ``--seconds`` (all threads, idle samples dropped); ``--role follower`` samples a follower
instead. Prints the share of samples per function (self time), per area of the code and, per beamflowd
function, inclusive of what it calls, and the throughput of the run. py-spy is a tool, not a project
dependency: install it anywhere (``pip install py-spy``) and pass its path. Bounded: --total workflows, one
profile, --deadline for the load.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench import throughput  # noqa: E402
from tests.harness import Cluster  # noqa: E402

#: Areas of the code, by the first path fragment found in a sample's innermost frame (in this order).
AREAS = (
    ("pysyncobj/", "pysyncobj (Raft, its TCP transport, journal)"),
    ("beamflowd/transport.py", "pysyncobj (Raft, its TCP transport, journal)"),
    ("beamflowd/core/", "state machine (apply, digest, index)"),
    ("beamflowd/replication.py", "replication adapter"),
    ("beamflowd/proposer.py", "proposer (group commit)"),
    ("beamflowd/executor.py", "executor (actors)"),
    ("beamflowd/steps/", "executor (actors)"),
    ("beamflowd/api/", "gRPC servicers"),
    ("grpc/", "gRPC runtime"),
    ("asyncio/", "asyncio event loop"),
    ("pickle", "pickle"),
    ("json/", "json"),
    ("beamflowd/", "other beamflowd"),
)


def area_of(frame: str) -> str:
    for fragment, area in AREAS:
        if fragment in frame:
            return area
    return "other (stdlib, C)"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--py-spy", default="py-spy", help="path of the py-spy executable")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--total", type=int, default=30_000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--deadline", type=float, default=120.0)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument(
        "--role",
        choices=["leader", "follower"],
        default="leader",
        help="which node to sample: the Raft leader, or a follower (they apply every command too)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "profile.txt"
        with Cluster(
            Path(tmp) / "cluster", n=args.nodes, extra_args=["--fsync", "batch"], debug_invariants=False
        ) as cluster:
            cluster.start()
            cluster.wait_ready()
            leader = cluster.cluster_status("n1").leader_id
            sampled = leader if args.role == "leader" else next(n for n in cluster.nodes if n != leader)
            pid = cluster.nodes[sampled].proc.pid  # type: ignore[union-attr]
            load = argparse.Namespace(
                endpoints=cluster.endpoints,
                workflow=str(REPO / "deploy/workflows/three-step-demo.yaml"),
                total=args.total,
                concurrency=args.concurrency,
                deadline=args.deadline,
                input="{}",
                completion="poll",
            )
            report: dict[str, object] = {}

            def drive() -> None:
                report.update(asyncio.run(throughput.run(load, quiet=True)))

            driver = threading.Thread(target=drive)
            driver.start()
            spy = subprocess.run(
                [
                    args.py_spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(args.seconds),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--output",
                    str(out),
                    "--nonblocking",
                ],
                capture_output=True,
                text=True,
                timeout=args.seconds + 60,
            )
            driver.join(timeout=args.deadline + 60)
        if spy.returncode != 0:
            print(spy.stderr, file=sys.stderr)
            return 1
        by_function: collections.Counter[str] = collections.Counter()
        by_area: collections.Counter[str] = collections.Counter()
        # Inclusive: a sample counts once for every distinct beamflowd function on its stack (what a call
        # costs with everything below it), where the innermost frame says only where the CPU was spent.
        inclusive: collections.Counter[str] = collections.Counter()
        total = 0
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            innermost = frames[-1]
            n = int(count)
            total += n
            by_function[innermost] += n
            by_area[area_of(innermost)] += n
            for frame in set(frames):
                if "beamflowd/" in frame:
                    inclusive[frame] += n
    result = {
        "leader": leader,
        "sampled": sampled,
        "nodes": args.nodes,
        "samples": total,
        "workflows_per_s": report.get("workflows_per_s"),
        "succeeded": report.get("statuses"),
        "by_area_pct": {a: round(100 * c / total, 1) for a, c in by_area.most_common()},
        "top_functions_pct": {f: round(100 * c / total, 1) for f, c in by_function.most_common(args.top)},
        "beamflowd_inclusive_pct": {f: round(100 * c / total, 1) for f, c in inclusive.most_common(args.top)},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
