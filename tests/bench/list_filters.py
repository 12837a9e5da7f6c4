"""List/count latency at 1,000 and 100,000 workflows in the state: the workflow index against a full scan.

Run: ``.venv/bin/python tests/bench/list_filters.py [--workflows 1000,100000]``. Builds the state by applying
submits (10 names, one rare label ``team=rare`` on 1 in 1,000 workflows), then times, median of 20: the first
page (100) and the count of ``list`` unfiltered, ``--status running``, ``--name n3`` and
``--label team=rare``, through ``StateMachine.page``/``count`` (what ListWorkflows/CountWorkflows run under
the state lock), and the same by the old full scan (every workflow, newest first, checked one by one).
docs/performance.md quotes the figures.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable, Iterator

from beamflowd.core import commands as c
from beamflowd.core.spec import parse_workflow
from beamflowd.core.state import Query, StateMachine, WorkflowState

PAGE = 100
REPEATS = 20


def build(n: int) -> StateMachine:
    sm = StateMachine()
    sm.apply(c.Join(node="n1", raft="127.0.0.1:1", grpc="127.0.0.1:2", ts=0).to_plain())
    specs = {
        i: parse_workflow(f"name: n{i}\nsteps:\n  - {{id: a, run: noop}}\n").to_plain() for i in range(10)
    }
    for k in range(n):
        labels = {"team": "rare"} if k % 1000 == 0 else {"team": "common"}
        cmd = c.Submit(rid=f"r{k}", wf=f"w{k}", spec=specs[k % 10], input="{}", ts=k + 1, labels=labels)
        sm.apply(cmd.to_plain())
    return sm


def timed(fn: Callable[[], object]) -> float:
    samples = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def scan(sm: StateMachine, query: Query) -> Iterator[WorkflowState]:
    """The list path before the indexes: every workflow, newest first, checked one by one."""
    return (wf for wf in reversed(sm.workflows.values()) if query.matches(wf))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workflows", default="1000,100000")
    args = parser.parse_args()
    for n in (int(x) for x in args.workflows.split(",")):
        t0 = time.perf_counter()
        sm = build(n)
        print(f"built {len(sm.workflows)} workflows in {time.perf_counter() - t0:.1f}s")
        for label, query in (
            ("all", Query()),
            ("status=running", Query(status="running")),
            ("name=n3", Query(name="n3")),
            ("label team=rare", Query(labels=(("team", "rare"),))),
        ):
            page = timed(lambda q=query, sm=sm: sm.page(q, 0, PAGE))
            page_scan = timed(lambda q=query, sm=sm: list(itertools.islice(scan(sm, q), PAGE)))
            total = timed(lambda q=query, sm=sm: sm.count(q))
            total_scan = timed(lambda q=query, sm=sm: sum(1 for _ in scan(sm, q)))
            print(
                f"{n:>7} {label:16} first page {page:7.3f} ms (scan {page_scan:7.3f} ms)   "
                f"count {total:7.3f} ms (scan {total_scan:7.3f} ms)"
            )


if __name__ == "__main__":
    main()
