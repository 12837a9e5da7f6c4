"""Benchmark: what mTLS on gRPC plus bearer tokens (and the Raft password) cost, against plaintext.

    python tests/bench/tls_cost.py --runs 3 --total 1500

Alternates, ``--runs`` times: a fresh plaintext 3-node cluster, then a fresh one with everything on
(tests/secure.py: mTLS with client certificates, tokens, certificate roles, ``raft_password``). Each gets the
same ``beamctl bench load`` of three-step demo workflows (``--concurrency`` in flight) through the real CLI,
with the operator token and TLS options on the secure one. Prints each run's throughput and the secure/plain
ratio of neighbouring runs, as JSON. Bounded: ``--total`` workflows per run, a timeout per bench.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.harness import REPO_ROOT, Cluster
from tests.secure import ADMIN_CN, make_setup

BEAMCTL = str(Path(sys.executable).with_name("beamctl"))
WORKFLOW = REPO_ROOT / "deploy" / "workflows" / "three-step-demo.yaml"
BENCH_TIMEOUT_S = 600


def bench(endpoints: str, extra: list[str], total: int, concurrency: int) -> dict[str, Any]:
    argv = [
        BEAMCTL,
        "--endpoints",
        endpoints,
        *extra,
        "-o",
        "json",
        "bench",
        "load",
        "--workflow",
        str(WORKFLOW),
        "--rate",
        "100000",
        "--total",
        str(total),
        "--concurrency",
        str(concurrency),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def one_run(secure: bool, total: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        extra: list[str] = []
        if secure:
            setup = make_setup(Path(tmp) / "security", ["n1", "n2", "n3"])
            cluster = Cluster(
                Path(tmp),
                debug_invariants=False,
                node_args=setup.node_args,
                credentials=setup.credentials(ADMIN_CN),
                token=setup.tokens["reader"],
            )
            extra = [*setup.beamctl_tls(ADMIN_CN), "--token", setup.tokens["operator"]]
        else:
            cluster = Cluster(Path(tmp), debug_invariants=False)
        with cluster:
            cluster.start()
            cluster.wait_ready(timeout=60)
            result = bench(cluster.endpoints, extra, total, concurrency)
    return {"secure": secure, "throughput_per_second": result["throughput_per_second"], "bench": result}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--total", type=int, default=1500)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    pairs = []
    for _ in range(args.runs):
        plain = one_run(False, args.total, args.concurrency)
        secure = one_run(True, args.total, args.concurrency)
        pairs.append(
            {
                "plain_per_s": plain["throughput_per_second"],
                "secure_per_s": secure["throughput_per_second"],
                "ratio": round(secure["throughput_per_second"] / plain["throughput_per_second"], 3),
            }
        )
        print(json.dumps(pairs[-1]), file=sys.stderr)
    print(json.dumps({"pairs": pairs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
