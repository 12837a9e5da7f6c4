"""Incremental stats: fed by applied commands on a real state machine, no per-workflow scan per update."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from beamflowd.api.definitions import compile_definition
from beamflowd.core.state import SCHEMA_VERSION, StateMachine
from beamflowd.stats import RateHistory, StatsAggregator, Window

TWO_STEPS = """
name: two
steps:
  - {id: a, run: noop}
  - {id: b, run: noop, needs: a, retry: {max_attempts: 3}}
"""


def cmd(op: str, **fields: Any) -> dict[str, Any]:
    return {"v": SCHEMA_VERSION, "op": op, **fields}


def test_window_percentiles_nearest_rank() -> None:
    window = Window(size=100)
    assert window.percentiles((0.5,)) == [0.0]
    for value in range(1, 201):  # only the newest 100 stay: 101..200
        window.add(float(value))
    assert len(window) == 100
    assert window.percentiles((0.5, 0.95, 0.99, 1.0)) == [150.0, 195.0, 199.0, 200.0]


def test_rate_history_is_bounded_and_never_negative() -> None:
    rates = RateHistory(keys=("succeeded",), size=3)
    for i, value in enumerate((0, 10, 30, 60, 100, 90)):
        rates.sample({"succeeded": value}, now=float(i))
    assert list(rates.history["succeeded"]) == [30.0, 40.0, 0.0]


class FakeRaft:
    """What the aggregator uses of the replication adapter: the state machine, read under a lock."""

    def __init__(self, sm: StateMachine) -> None:
        self.sm = sm
        self._lock = threading.Lock()

    @contextmanager
    def read(self) -> Iterator[StateMachine]:
        with self._lock:
            yield self.sm


def test_durations_and_failures_come_from_the_new_events_of_touched_workflows() -> None:
    sm = StateMachine()
    raft = FakeRaft(sm)
    loop = asyncio.new_event_loop()
    try:
        agg = StatsAggregator(raft, loop)  # type: ignore[arg-type]
        compiled = compile_definition(TWO_STEPS, "two.yaml")
        plain, spec_hash = compiled.plain, compiled.spec_hash
        t0 = int(time.time() * 1000) + 1000
        sm.apply(cmd("join", node="n1", raft="r", grpc="g", ts=t0))
        for i in range(10):
            wf = f"wf-{i}"
            sm.apply(
                cmd(
                    "submit",
                    rid=f"r{i}",
                    wf=wf,
                    spec=plain,
                    spec_hash=spec_hash,
                    input="{}",
                    ts=t0,
                    start=[["a", 0]],
                )
            )
            sm.apply(cmd("succeed", wf=wf, epoch=1, step="a", attempt=1, output="{}", ts=t0 + 10 * (i + 1)))
            agg.on_changed(sm.drain_changed())
            agg.drain()
            sm.apply(cmd("start", wf=wf, epoch=1, step="b", attempt=1, ts=t0 + 100))
            sm.apply(
                cmd(
                    "fail",
                    wf=wf,
                    epoch=1,
                    step="b",
                    attempt=1,
                    error="boom",
                    error_class="transient",
                    ts=t0 + 150,
                    retry_at=t0 + 160,
                )
            )
            sm.apply(cmd("start", wf=wf, epoch=1, step="b", attempt=2, ts=t0 + 160))
            sm.apply(cmd("succeed", wf=wf, epoch=1, step="b", attempt=2, output="{}", ts=t0 + 200))
        agg.on_changed(sm.drain_changed())
        agg.drain()
        agg.on_changed({"wf-0", "wf-1"})  # a re-delivery of finished workflows counts nothing twice
        agg.drain()
        ((name, stats, step_p, wf_p),) = agg.latency_rows()
        assert name == "two" and stats.completed == 10 and stats.failed == 0
        assert len(stats.steps) == 20 and len(stats.workflows) == 10
        assert step_p[2] == 100.0  # step a of wf-9 took 100 ms
        assert wf_p == [200.0, 200.0, 200.0]
        assert agg.top_failing() == [("two", "b", 10)]
        assert agg.tracked_workflows == 0  # finished workflows are forgotten
    finally:
        loop.close()
