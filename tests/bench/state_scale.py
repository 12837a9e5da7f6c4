"""Benchmark: costs that used to grow with the state, in process (no cluster), at 1,000 and 100,000 workflows.

    python tests/bench/state_scale.py --workflows 1000,100000 --runs 3

For each size, on a state of finished three-step workflows built with the real state machine:

- digest: the running digest after 100 changed workflows, against recomputing it (``full_digest``) and
  against the first version's whole-state digest (``canonical_digest``), which status calls used to pay;
- list: a page of 100 newest workflows, unfiltered and by status and name, from the index, against the
  first version's scan of every workflow (p50 over the runs' calls);
- gc: forgetting the oldest finished workflows with one ``gc`` command by completion, against the first
  version's scan rule, as workflows forgotten per second of apply time (1 % of the state due).

Prints JSON. Bounded: a fixed number of calls per measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from beamflowd.core.commands import Gc
from beamflowd.core.state import StateMachine, WorkflowState
from beamflowd.core.vocabulary import WORKFLOW_SUCCEEDED
from tests.bench.snapshot_pause import build
from tests.unit.state_strategies import cancel_cmd, submit_cmd

LIST_CALLS = 50
PAGE = 100
GC_BATCH = 10_000


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def scan_page(sm: StateMachine, status: str | None, name: str | None) -> tuple[list[WorkflowState], int]:
    """The first version's ListWorkflows: every workflow, newest first, filtered, counted."""
    page: list[WorkflowState] = []
    total = 0
    for wf in reversed(sm.workflows.values()):
        if (status and wf.status != status) or (name and wf.name != name):
            continue
        if total < PAGE:
            page.append(wf)
        total += 1
    return page, total


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


def measure_list(sm: StateMachine) -> dict[str, float]:
    out: dict[str, float] = {}
    filters = (("all", None, None), ("succeeded", WORKFLOW_SUCCEEDED, None), ("name", None, "sequential"))
    for label, status, name in filters:
        indexed, scanned = [], []
        for _ in range(LIST_CALLS):
            t0 = time.perf_counter()
            page, total = sm.list_newest_first(status, name, 0, PAGE)
            indexed.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            old_page, old_total = scan_page(sm, status, name)
            scanned.append(time.perf_counter() - t0)
            assert total == old_total and len(page) == len(old_page)
        out[f"{label}_index_p50_ms"] = _ms(statistics.median(indexed))
        out[f"{label}_scan_p50_ms"] = _ms(statistics.median(scanned))
    return out


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
            row["list"] = measure_list(sm)
            results.append(row)
        results.append({"workflows": n, "gc": measure_gc(sm)})
        print(json.dumps(results[-args.runs - 1 :]), file=sys.stderr)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
