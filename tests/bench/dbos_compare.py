"""Benchmark: BEAMFlow against DBOS on PostgreSQL, pair by pair in one run on the same machine.

    .venv/bin/python tests/bench/dbos_compare.py --dbos-python /work/dbos-venv/bin/python --pairs 3

Each pair runs the DBOS side (tests/bench/dbos_side.py in DBOS's own venv, fresh system database) and the
BEAMFlow side (a fresh local cluster, ``--fsync batch``, through tests/bench/throughput.py's ``run``), in
alternating order so neither always goes first. The script starts a throwaway PostgreSQL server (loopback,
default settings) in a temp dir and stops it at the end. Everything is bounded by counts and deadlines.
Ratios are computed within a pair only: figures from different runs or machines are not compared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench import throughput  # noqa: E402
from tests.harness import Cluster, free_ports  # noqa: E402

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/local/bin")
WORKFLOW = REPO / "deploy" / "workflows" / "three-step-demo.yaml"
DBOS_SIDE = Path(__file__).resolve().parent / "dbos_side.py"


def pg_tool(name: str) -> str:
    for d in PG_BIN_DIRS:
        if (Path(d) / name).exists():
            return str(Path(d) / name)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found (install PostgreSQL 15: apt-get install postgresql-15)")
    return found


@contextlib.contextmanager
def postgres(tmp: Path) -> Iterator[str]:
    """A throwaway server on 127.0.0.1 with default settings; yields its base URL. initdb refuses root, so
    as root the server runs as the ``postgres`` user."""
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(tmp, user="postgres")
    data = tmp / "data"
    port = free_ports(1)[0]
    subprocess.run(
        [*as_user, pg_tool("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1"
    ctl = [*as_user, pg_tool("pg_ctl"), "-D", str(data), "-l", str(tmp / "postgres.log")]
    subprocess.run([*ctl, "-w", "-t", "60", "-o", opts, "start"], check=True, capture_output=True, timeout=90)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*ctl, "-m", "fast", "-w", "-t", "60", "stop"], capture_output=True, timeout=90)


def dbos_side(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Run dbos_side.py in DBOS's venv; its last stdout line is the JSON report."""
    proc = subprocess.run(
        [
            args.dbos_python,
            str(DBOS_SIDE),
            "--database-url",
            url,
            "--sequential",
            str(args.sequential),
            "--total",
            str(args.total),
            "--in-flight",
            str(args.concurrency),
            "--deadline",
            str(args.deadline),
        ],
        capture_output=True,
        text=True,
        timeout=args.deadline + 60,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"dbos_side failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def _workload(
    endpoints: str,
    total: int,
    concurrency: int,
    deadline: float,
    completion: str = "watch",
    to: str = "any",
) -> argparse.Namespace:
    return argparse.Namespace(
        endpoints=endpoints,
        workflow=str(WORKFLOW),
        total=total,
        concurrency=concurrency,
        deadline=deadline,
        input="{}",
        completion=completion,
        to=to,
    )


async def beamflow_side(args: argparse.Namespace, nodes: int, sequential: bool = True) -> dict[str, Any]:
    """A fresh ``nodes``-node loopback cluster, --fsync batch: warm-up, sequential run, in-flight run."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        Cluster(Path(tmp), n=nodes, extra_args=["--fsync", "batch"], debug_invariants=False) as cluster,
    ):
        cluster.start()
        cluster.wait_ready(timeout=60)
        cluster.leader_id(timeout=60)
        ep = cluster.endpoints
        await throughput.run(_workload(ep, args.warmup, 1, args.deadline), quiet=True)
        report: dict[str, Any] = {"nodes": nodes}
        if sequential:
            report["sequential"] = await throughput.run(
                _workload(ep, args.sequential, 1, args.deadline), quiet=True
            )
            # A leader-aware client that submits and waits in one call (DBOS's caller gets the result).
            report["sequential_leader"] = await throughput.run(
                _workload(ep, args.sequential, 1, args.deadline, "wait", "leader"), quiet=True
            )
        report["throughput"] = await throughput.run(
            _workload(ep, args.total, args.concurrency, args.deadline), quiet=True
        )
        # Completion by polling the running count: the client no longer holds one stream per workflow, so
        # less of the two shared cores goes to the benchmark's own Python (each workflow is still checked).
        report["throughput_poll"] = await throughput.run(
            _workload(ep, args.total, args.concurrency, args.deadline, "poll"), quiet=True
        )
        return report


def ok(report: dict[str, Any], expected: int) -> bool:
    """Every workflow submitted, finished and SUCCEEDED, no client error, replica digests equal."""
    return bool(
        report["submitted"] == expected
        and report["statuses"] == {"WORKFLOW_STATUS_SUCCEEDED": expected}
        and report["errors"] == 0
        and report["digests_equal"]
    )


def pair_row(
    i: int, order: str, d: dict[str, Any], b: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    bs, bt, bp = b["sequential"], b["throughput"], b["throughput_poll"]
    bl = b["sequential_leader"]
    d_e2e = d["sequential"]["e2e_ms"]["p50"]
    d_tput_all = d["throughput_all"]["wf_per_s"]
    d_tput_best = max(d_tput_all, d["throughput_window"]["wf_per_s"])
    return {
        "pair": i,
        "order": order,
        "dbos_e2e_p50_ms": d_e2e,
        "dbos_handle_e2e_p50_ms": d["sequential_handles"]["e2e_ms"]["p50"],
        "beamflow_e2e_p50_ms": bs["end_to_end_ms"]["p50"],
        "beamflow_submit_p50_ms": bs["submit_ms"]["p50"],
        "beamflow_leader_e2e_p50_ms": bl["end_to_end_ms"]["p50"],
        "beamflow_leader_submit_p50_ms": bl["submit_ms"]["p50"],
        "dbos_wf_per_s_all": d_tput_all,
        "dbos_wf_per_s_window": d["throughput_window"]["wf_per_s"],
        "beamflow_wf_per_s": bt["workflows_per_s"],
        "beamflow_wf_per_s_poll": bp["workflows_per_s"],
        "e2e_ratio": round(bs["end_to_end_ms"]["p50"] / d_e2e, 3),
        "submit_ratio": round(bs["submit_ms"]["p50"] / d_e2e, 3),
        "e2e_ratio_leader": round(bl["end_to_end_ms"]["p50"] / d_e2e, 3),
        "submit_ratio_leader": round(bl["submit_ms"]["p50"] / d_e2e, 3),
        "throughput_ratio": round(bt["workflows_per_s"] / d_tput_all, 2),
        "throughput_ratio_poll": round(bp["workflows_per_s"] / d_tput_all, 2),
        "throughput_ratio_vs_best": round(bt["workflows_per_s"] / d_tput_best, 2),
        "beamflow_ok": ok(bs, args.sequential)
        and ok(bl, args.sequential)
        and ok(bt, args.total)
        and ok(bp, args.total),
        "dbos_ok": all(d[k]["bad"] == 0 for k in ("sequential", "sequential_handles", "throughput_all"))
        and d["throughput_all"]["finished"] == args.total
        and d["sequential"]["count"] == args.sequential,
    }


COLUMNS = [
    ("pair", "pair"),
    ("order", "first"),
    ("dbos_e2e_p50_ms", "DBOS e2e p50"),
    ("beamflow_e2e_p50_ms", "BF e2e p50"),
    ("beamflow_submit_p50_ms", "BF submit p50"),
    ("e2e_ratio", "e2e ratio"),
    ("submit_ratio", "submit/DBOS"),
    ("beamflow_leader_e2e_p50_ms", "BF leader e2e"),
    ("beamflow_leader_submit_p50_ms", "BF leader submit"),
    ("e2e_ratio_leader", "ratio"),
    ("submit_ratio_leader", "submit/DBOS"),
    ("dbos_wf_per_s_all", "DBOS wf/s"),
    ("dbos_wf_per_s_window", "DBOS wf/s (100)"),
    ("beamflow_wf_per_s", "BF wf/s"),
    ("beamflow_wf_per_s_poll", "BF wf/s (poll)"),
    ("throughput_ratio", "tput ratio"),
    ("throughput_ratio_poll", "(poll)"),
    ("beamflow_ok", "BF ok"),
    ("dbos_ok", "DBOS ok"),
]


def print_table(rows: list[dict[str, Any]]) -> None:
    widths = [max(len(h), *(len(str(r[k])) for r in rows)) for k, h in COLUMNS]
    print("  ".join(h.rjust(w) for (_, h), w in zip(COLUMNS, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[k]).rjust(w) for (k, _), w in zip(COLUMNS, widths, strict=True)))


def span(rows: list[dict[str, Any]], key: str) -> str:
    vals = [r[key] for r in rows]
    return f"{min(vals)}-{max(vals)}"


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dbos-python", required=True, help="python of a venv with dbos 3.4 installed")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--sequential", type=int, default=300, help="workflows one after another, per side")
    ap.add_argument("--total", type=int, default=3000, help="workflows in the throughput run, per side")
    ap.add_argument("--concurrency", type=int, default=100, help="BEAMFlow in flight (DBOS window run too)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--deadline", type=float, default=120.0, help="per run, seconds")
    ap.add_argument("--five-node", action="store_true", help="also one 5-node BEAMFlow throughput run")
    ap.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = ap.parse_args()

    rows: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bf-dbos-pg-") as tmp, postgres(Path(tmp)) as base_url:
        for i in range(1, args.pairs + 1):
            url = f"{base_url}/dbos_compare_{i}"  # DBOS creates a fresh system database per pair
            order = "dbos" if i % 2 else "beamflow"
            if order == "dbos":
                d = dbos_side(args, url)
                b = await beamflow_side(args, 3)
            else:
                b = await beamflow_side(args, 3)
                d = dbos_side(args, url)
            raw.append({"pair": i, "order": order, "dbos": d, "beamflow": b})
            rows.append(pair_row(i, order, d, b, args))
            print(f"pair {i} done at {time.monotonic() - t_start:.0f}s", file=sys.stderr)
    five: dict[str, Any] | None = None
    if args.five_node:
        five = await beamflow_side(args, 5, sequential=False)
        five["ok"] = ok(five["throughput"], args.total) and ok(five["throughput_poll"], args.total)
    load = os.getloadavg()
    summary = {
        "e2e_ratio": span(rows, "e2e_ratio"),
        "submit_ratio": span(rows, "submit_ratio"),
        "e2e_ratio_leader": span(rows, "e2e_ratio_leader"),
        "submit_ratio_leader": span(rows, "submit_ratio_leader"),
        "throughput_ratio": span(rows, "throughput_ratio"),
        "throughput_ratio_poll": span(rows, "throughput_ratio_poll"),
        "throughput_ratio_vs_best": span(rows, "throughput_ratio_vs_best"),
        "targets": {"e2e_ratio_max": 0.5, "throughput_ratio_min": 12.0},
        "loadavg_at_end": [round(x, 2) for x in load],
    }
    if args.json:
        print(json.dumps({"pairs": raw, "rows": rows, "summary": summary, "five_node": five}, indent=2))
    else:
        print_table(rows)
        print(json.dumps(summary))
        if five is not None:
            t, tp = five["throughput"], five["throughput_poll"]
            watch, poll = t["workflows_per_s"], tp["workflows_per_s"]
            print(f"5-node BEAMFlow: {watch} wf/s (watch), {poll} wf/s (poll), ok={five['ok']}")
    all_ok = all(r["beamflow_ok"] and r["dbos_ok"] for r in rows) and (five is None or five["ok"])
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
