"""DBOS side of tests/bench/dbos_compare.py: run by the DBOS venv's python, never imported by the suite.

    /work/dbos-venv/bin/python tests/bench/dbos_side.py --database-url postgresql://... --total 3000

Prints one JSON line of figures. The workload mirrors deploy/workflows/three-step-demo.yaml: a
``@DBOS.workflow()`` calling three trivial ``@DBOS.step()``s. DBOS runs with its default configuration apart
from the system database URL (PostgreSQL on this machine). Bounded by counts and by --deadline.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from dbos import DBOS, DBOSConfig, WorkflowHandle


@DBOS.step()
def step_one() -> dict[str, int]:
    return {"n": 1}


@DBOS.step()
def step_two() -> dict[str, int]:
    return {"n": 2}


@DBOS.step()
def step_three() -> dict[str, int]:
    return {"n": 3}


@DBOS.workflow()
def three_step() -> int:
    """Three sequential no-op steps, each checkpointed by DBOS like a BEAMFlow step is replicated."""
    return step_one()["n"] + step_two()["n"] + step_three()["n"]


EXPECTED = 6


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def ms(values: list[float]) -> dict[str, float]:
    return {"p50": round(pct(values, 50) * 1e3, 2), "p99": round(pct(values, 99) * 1e3, 2)}


def sequential(count: int, t_end: float, run: Callable[[], int]) -> dict[str, Any]:
    """One caller, one workflow after another, each run by ``run``."""
    lat: list[float] = []
    bad = 0
    for _ in range(count):
        if time.monotonic() > t_end:
            break
        t0 = time.perf_counter()
        r = run()
        lat.append(time.perf_counter() - t0)
        bad += r != EXPECTED
    return {"count": len(lat), "bad": bad, "e2e_ms": ms(lat)}


def throughput_all(total: int, t_end: float) -> dict[str, Any]:
    """The issue's form: DBOS.start_workflow N times from one caller, then wait for every handle."""
    t0 = time.perf_counter()
    handles: list[WorkflowHandle[int]] = []
    for _ in range(total):
        if time.monotonic() > t_end:
            break
        handles.append(DBOS.start_workflow(three_step))
    results = [h.get_result() for h in handles]
    elapsed = time.perf_counter() - t0
    bad = sum(r != EXPECTED for r in results)
    return {
        "finished": len(results),
        "bad": bad,
        "elapsed_s": round(elapsed, 3),
        "wf_per_s": round(len(results) / elapsed, 1),
    }


def throughput_window(total: int, in_flight: int, t_end: float) -> dict[str, Any]:
    """At most ``in_flight`` started and unfinished, as the BEAMFlow run has (fewer threads)."""
    t0 = time.perf_counter()
    window: deque[WorkflowHandle[int]] = deque()
    done = bad = 0
    for _ in range(total):
        if time.monotonic() > t_end:
            break
        if len(window) >= in_flight:
            bad += window.popleft().get_result() != EXPECTED
            done += 1
        window.append(DBOS.start_workflow(three_step))
    while window:
        bad += window.popleft().get_result() != EXPECTED
        done += 1
    elapsed = time.perf_counter() - t0
    return {
        "finished": done,
        "bad": bad,
        "elapsed_s": round(elapsed, 3),
        "wf_per_s": round(done / elapsed, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", required=True, help="system database URL (PostgreSQL)")
    ap.add_argument("--sequential", type=int, default=300)
    ap.add_argument("--total", type=int, default=3000)
    ap.add_argument("--in-flight", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--deadline", type=float, default=120.0)
    args = ap.parse_args()
    t_end = time.monotonic() + args.deadline
    logging.getLogger("dbos").setLevel(logging.WARNING)

    config: DBOSConfig = {"name": "beamflow-compare", "system_database_url": args.database_url}
    DBOS(config=config)
    t0 = time.perf_counter()
    DBOS.launch()
    launch_s = time.perf_counter() - t0
    import dbos

    try:
        for _ in range(args.warmup):
            three_step()
            DBOS.start_workflow(three_step).get_result()
        report: dict[str, Any] = {
            "dbos_version": getattr(dbos, "__version__", None) or _version(),
            "launch_s": round(launch_s, 2),
            # The direct call (DBOS's own way to run a workflow inline), then start_workflow + get_result
            # (the background path the throughput run uses).
            "sequential": sequential(args.sequential, t_end, three_step),
            "sequential_handles": sequential(
                args.sequential, t_end, lambda: DBOS.start_workflow(three_step).get_result()
            ),
            "throughput_all": throughput_all(args.total, t_end),
            "throughput_window": throughput_window(args.total, args.in_flight, t_end),
        }
    finally:
        DBOS.destroy()
    print(json.dumps(report))
    return 0


def _version() -> str:
    from importlib.metadata import version

    return version("dbos")


if __name__ == "__main__":
    sys.exit(main())
