"""Benchmark: costs that used to grow with the state, in process (no cluster), at 1,000 and 100,000 workflows
(lists and counts: tests/bench/list_filters.py).

    python tests/bench/state_scale.py --workflows 1000,100000 --runs 3

For each size, on a state of finished three-step workflows built with the real state machine:

- digest: the running digest after 100 changed workflows, against recomputing it (``full_digest``) and
  against the first version's whole-state digest (``canonical_digest``), which status calls used to pay;
- gc: forgetting the oldest finished workflows with one ``gc`` command by completion, against the first
  version's scan rule, as workflows forgotten per second of apply time (1 % of the state due).

Prints JSON. Bounded: a fixed number of calls per measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from beamflowd.core.commands import Gc
from beamflowd.core.state import StateMachine
from tests.bench.snapshot_pause import build
from tests.unit.state_strategies import cancel_cmd, submit_cmd

LIST_CALLS = 50
PAGE = 100
GC_BATCH = 10_000


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def measure_digest(sm: StateMachine, n: int) -> dict[str, float]:
    sm.digest()
    for i in range(100):  # 100 workflows change: new ones submitted and cancelled
        sm.apply(submit_cmd(f"d{n}-{i}", f"dw{n}-{i}", "sequential", 10**9 + i))
        sm.apply(cancel_cmd(f"dw{n}-{i}", 10**9 + i))
    t0 = time.perf_counter()
    sm.digest()
    running = time.perf_counter() - t0
    t0 = time.perf_counter()
    sm.full_digest()
    full = time.perf_counter() - t0
    t0 = time.perf_counter()
    sm.canonical_digest()
    canonical = time.perf_counter() - t0
    return {"running_ms": _ms(running), "full_ms": _ms(full), "canonical_ms": _ms(canonical)}


def measure_gc(sm: StateMachine) -> dict[str, float]:
    """One GC command forgetting the oldest 1 % (at most GC_BATCH): the scan rule, then by completion."""
    rates: dict[str, float] = {}
    for label, by_completion in (("scan", False), ("by_completion", True)):
        due = max(1, min(GC_BATCH, len(sm.workflows) // 100))
        keep_max = len(sm.workflows) - due
        gc = Gc(before=0, keep_max=keep_max, ts=10**12, limit=GC_BATCH, by_completion=by_completion)
        cmd = gc.to_plain()
        t0 = time.perf_counter()
        collected = sm.apply(cmd).data["collected"]
        elapsed = time.perf_counter() - t0
        assert collected == due, (collected, due)
        rates[f"{label}_command_ms"] = _ms(elapsed)
        rates[f"{label}_forgotten_per_s"] = round(collected / elapsed)
    return rates


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workflows", default="1000,100000")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    results: list[dict[str, Any]] = []
    for n in (int(x) for x in args.workflows.split(",")):
        sm = build(n)
        for run in range(args.runs):
            row: dict[str, Any] = {"workflows": n, "run": run + 1}
            row["digest"] = measure_digest(sm, n * 10 + run)
            results.append(row)
        results.append({"workflows": n, "gc": measure_gc(sm)})
        print(json.dumps(results[-args.runs - 1 :]), file=sys.stderr)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
