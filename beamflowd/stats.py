"""Dashboard aggregation (what ``beamctl top`` shows) at a cost independent of the number of workflows.

Why it is built this way: with 10,000+ workflows in flight, a stats update that walked the workflow table
would slow down every node once a second and grow with the load it is supposed to display. So nothing here
iterates over workflows per update:

* cluster-wide counts come from the replicated counters (``StateMachine.counters``, O(1) to read);
* rates and their short history come from sampling those counters once a second into bounded rings;
* step and workflow duration percentiles come from bounded windows of the most recent samples per workflow
  name, fed by the node's change listener: each applied batch names the workflows it touched, and only the
  *new* events of those workflows are read (coalesced, in bounded chunks, under the state lock);
* the events feed is the state's bounded ``notable`` ring.

Every node applies every command, so every node keeps these figures and any node can answer.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from beamflowd.clock import now_ms
from beamflowd.core.state import WorkflowState
from beamflowd.core.vocabulary import CLOSING_EVENTS, EVENT_CANCELLED, EVENT_SUBMITTED, STEP_SUCCEEDED
from beamflowd.replication import ReplicatedState

#: Samples kept per workflow name for percentiles: recent enough to move, big enough for a stable p99.
WINDOW_SAMPLES = 2048
#: Seconds of rate history (one value per second).
HISTORY_SECONDS = 60
#: Distinct workflow names tracked; more fall into one "(other)" bucket so memory stays bounded.
MAX_NAMES = 64
OTHER_NAME = "(other)"
#: Distinct (workflow name, step) failure counters kept; later ones are counted under "(other)".
MAX_FAILING_STEPS = 256
#: Changes are coalesced this long before being read: a workflow touched five times costs one read.
DRAIN_DELAY_S = 0.25
#: Workflows read per drain pass while holding the state lock (bounds the pause seen by the applier).
DRAIN_CHUNK = 2000
#: A change set this large is a snapshot restore, not traffic: remember positions, count nothing.
BASELINE_THRESHOLD = 5000
#: Finished workflows remembered so a later re-delivery (snapshot restore) is not counted twice.
RECENT_DONE = 50_000
#: Counters sampled into rate histories.
RATE_KEYS = ("submitted", "succeeded", "failed")


class Window:
    """The most recent ``size`` samples; percentiles by nearest rank over a sorted copy (bounded work)."""

    def __init__(self, size: int = WINDOW_SAMPLES) -> None:
        self.values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        self.values.append(value)

    def __len__(self) -> int:
        return len(self.values)

    def percentiles(self, quantiles: Sequence[float]) -> list[float]:
        """Nearest-rank percentiles; zeros when empty (the dashboard shows '-' for no samples)."""
        if not self.values:
            return [0.0 for _ in quantiles]
        ordered = sorted(self.values)
        top = len(ordered) - 1
        return [ordered[min(top, max(0, math.ceil(q * len(ordered)) - 1))] for q in quantiles]


@dataclass
class NameStats:
    """Figures of one workflow name (type)."""

    steps: Window = field(default_factory=Window)
    workflows: Window = field(default_factory=Window)
    completed: int = 0
    failed: int = 0
    #: Seen submitted and cancelled since this node started (the metrics' per-name counters).
    submitted: int = 0
    cancelled: int = 0


class RateHistory:
    """Per-second rates of a few monotonically growing counters, oldest first, bounded."""

    def __init__(self, keys: Iterable[str] = RATE_KEYS, size: int = HISTORY_SECONDS) -> None:
        self.keys = tuple(keys)
        self.history: dict[str, deque[float]] = {k: deque(maxlen=size) for k in self.keys}
        self._last: tuple[float, dict[str, int]] | None = None

    def sample(self, counters: Mapping[str, int], now: float) -> None:
        current = {k: int(counters.get(k, 0)) for k in self.keys}
        if self._last is not None:
            then, previous = self._last
            elapsed = now - then
            if elapsed <= 0:
                return
            for k in self.keys:
                # A restored snapshot can move a counter backwards here: show 0, not a negative rate.
                self.history[k].append(max(0, current[k] - previous[k]) / elapsed)
        self._last = (now, current)

    def latest(self, key: str) -> float:
        values = self.history[key]
        return values[-1] if values else 0.0


class StatsAggregator:
    """Incremental workflow figures of one node. Runs on the event loop; reads state via ``raft.read()``."""

    def __init__(self, raft: ReplicatedState, loop: asyncio.AbstractEventLoop) -> None:
        self.raft = raft
        self.loop = loop
        self.names: dict[str, NameStats] = {}
        self.failing: dict[tuple[str, str], int] = {}
        self.rates = RateHistory()
        #: In-flight workflow id -> last event seq already counted.
        self._seen: dict[str, int] = {}
        self._recent_done: OrderedDict[str, None] = OrderedDict()
        self._pending: set[str] = set()
        self._baseline: set[str] = set()
        self._drain_handle: asyncio.Handle | None = None
        #: Events older than this (wall clock, ms) predate us: never counted on first sight.
        self.since_ms = now_ms()
        self.drained = 0

    # ---------------------------------------------------------------- feeding
    def on_changed(self, changed: set[str]) -> None:
        """Change listener (event loop): remember the ids; the read happens coalesced in :meth:`drain`."""
        if len(changed) >= BASELINE_THRESHOLD:
            self._baseline |= changed
        else:
            self._pending |= changed
        if self._drain_handle is None:
            self._drain_handle = self.loop.call_later(DRAIN_DELAY_S, self.drain)

    def drain(self) -> None:
        """Read the new events of up to DRAIN_CHUNK touched workflows; reschedule itself for the rest."""
        self._drain_handle = None
        budget = DRAIN_CHUNK
        with self.raft.read():
            workflows = self.raft.sm.workflows
            while self._baseline and budget > 0:
                budget -= 1
                wf = workflows.get(self._baseline.pop())
                if wf is not None and not wf.terminal:
                    self._seen[wf.id] = wf.next_seq - 1
            while self._pending and budget > 0:
                budget -= 1
                wf_id = self._pending.pop()
                wf = workflows.get(wf_id)
                if wf is None:
                    self._seen.pop(wf_id, None)
                    continue
                self._ingest(wf)
        self.drained += DRAIN_CHUNK - budget
        if (self._pending or self._baseline) and self._drain_handle is None:
            self._drain_handle = self.loop.call_soon(self.drain)

    def _ingest(self, wf: WorkflowState) -> None:
        """Count the events of ``wf`` not counted yet (caller holds the state lock)."""
        last = self._seen.get(wf.id)
        if last is None:
            if wf.id in self._recent_done:
                return
            last = 0
        events = wf.events
        i = len(events)
        while i > 0 and events[i - 1][0] > last:
            i -= 1
        for seq, ts, kind, step_id, attempt, _message, _node in events[i:]:
            last = seq
            if ts < self.since_ms and wf.id not in self._seen:
                continue  # history from before we started (restart, catch-up): not a live sample
            self._count(wf, ts, kind, step_id, attempt)
        if wf.terminal:
            self._seen.pop(wf.id, None)
            self._recent_done[wf.id] = None
            if len(self._recent_done) > RECENT_DONE:
                self._recent_done.popitem(last=False)
        else:
            self._seen[wf.id] = last

    def _count(self, wf: WorkflowState, ts: int, kind: str, step_id: str, attempt: int) -> None:
        if kind == "step_succeeded":
            step = wf.steps.get(step_id)
            if step is not None and step.status == STEP_SUCCEEDED and step.attempts == attempt:
                self._name(wf.name).steps.add(float(max(0, step.ended_ms - step.started_ms)))
        elif kind == "step_failed":
            key = (wf.name, step_id)
            if key not in self.failing and len(self.failing) >= MAX_FAILING_STEPS:
                key = (OTHER_NAME, OTHER_NAME)
            self.failing[key] = self.failing.get(key, 0) + 1
        elif kind in CLOSING_EVENTS:
            stats = self._name(wf.name)
            if kind == "completed":
                stats.completed += 1
                stats.workflows.add(float(max(0, ts - wf.created_ms)))
            elif kind == "failed":
                stats.failed += 1
            elif kind == EVENT_CANCELLED:
                stats.cancelled += 1
        elif kind == EVENT_SUBMITTED:
            self._name(wf.name).submitted += 1

    def _name(self, name: str) -> NameStats:
        stats = self.names.get(name)
        if stats is None:
            if len(self.names) >= MAX_NAMES:
                name = OTHER_NAME
                stats = self.names.get(name)
            if stats is None:
                stats = self.names[name] = NameStats()
        return stats

    # ---------------------------------------------------------------- sampling
    def counters(self) -> dict[str, int]:
        """A copy of the replicated counters (a few dozen entries)."""
        with self.raft.read():
            return dict(self.raft.sm.counters) | self.raft.sm.dlq_counts()

    def sample(self, now: float | None = None) -> None:
        self.rates.sample(self.counters(), time.monotonic() if now is None else now)

    async def run(self, interval: float = 1.0) -> None:
        """Sample the counters once a second until cancelled (node shutdown)."""
        while True:
            self.sample()
            await asyncio.sleep(interval)

    # ---------------------------------------------------------------- reading
    def latency_rows(self) -> list[tuple[str, NameStats, list[float], list[float]]]:
        """(name, stats, step p50/p95/p99, workflow p50/p95/p99), by name."""
        rows = []
        for name in sorted(self.names):
            stats = self.names[name]
            rows.append(
                (
                    name,
                    stats,
                    stats.steps.percentiles((0.5, 0.95, 0.99)),
                    stats.workflows.percentiles((0.5, 0.95, 0.99)),
                )
            )
        return rows

    def top_failing(self, limit: int = 10) -> list[tuple[str, str, int]]:
        ranked = sorted(self.failing.items(), key=lambda item: (-item[1], item[0]))
        return [(name, step, count) for (name, step), count in ranked[:limit]]

    @property
    def tracked_workflows(self) -> int:
        """In-flight workflows whose event position is remembered (memory: one int each)."""
        return len(self._seen)
