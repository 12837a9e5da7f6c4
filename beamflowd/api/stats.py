"""beamflow.v1.StatsService: one snapshot of the whole cluster for dashboards, from any node.

A cluster snapshot = this node's workflow figures (:mod:`beamflowd.stats`, replicated so every node has them)
+ every member's own report (role, indexes, owned count, partition flag, memory), gathered by a parallel
``GetStats(scope=NODE)`` fan-out with a short deadline, so a dead or paused peer costs at most that deadline
and shows as unreachable. Liveness is taken from the leader's report, because the leader's view is the one
that moves workflows. Several watchers share one snapshot per interval (a small cache), so ten open
dashboards do not mean ten fan-outs a second.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import grpc

from beamflowd.api.convert import waiting_for
from beamflowd.api.gen.beamflow.v1 import stats_pb2 as pb
from beamflowd.api.gen.beamflow.v1 import stats_pb2_grpc as pb_grpc
from beamflowd.api.peers import PeerChannels
from beamflowd.clock import now_ms
from beamflowd.executor import Executor
from beamflowd.liveness import Liveness
from beamflowd.replication import ReplicatedState
from beamflowd.stats import StatsAggregator

#: Deadline of each peer's report: a dead peer must not hold up the dashboard's refresh.
PEER_TIMEOUT_S = 0.6
DEFAULT_INTERVAL_MS = 1000
MIN_INTERVAL_MS = 200
MAX_INTERVAL_MS = 60_000
DEFAULT_EVENTS = 20
MAX_EVENTS = 200
#: A cluster snapshot younger than this is reused by another watcher.
SHARE_S = 0.15
#: Watch streams open at once on this node (each costs one task).
MAX_WATCHERS = 64
FAILING_STEPS = 10

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class ChaosView(Protocol):
    """What the stats need from a node's chaos engine (beamflowd.chaos.Chaos); read-only."""

    enabled: bool
    counters: dict[str, int]
    partition: str
    heal_at_ms: int

    def active_pauses(self) -> dict[str, int]: ...

    def monkey_setting(self) -> dict[str, Any]: ...


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def cpu_seconds() -> float:
    """CPU time of this process, user + system over every thread (the cost ``beamctl bench`` reports)."""
    times = os.times()
    return times.user + times.system


def _clamp(value: int, default: int, low: int, high: int) -> int:
    return default if value == 0 else max(low, min(high, value))


class StatsServicer(pb_grpc.StatsServiceServicer):  # type: ignore[misc, unused-ignore]
    def __init__(
        self,
        node_id: str,
        grpc_addr: str,
        raft: ReplicatedState,
        initial_cluster: Mapping[str, str],
        liveness: Liveness,
        executor: Executor | None,
        aggregator: StatsAggregator,
        chaos_enabled: bool = False,
    ) -> None:
        self.node_id = node_id
        self.grpc_addr = grpc_addr
        self.raft = raft
        self.liveness = liveness
        self.executor = executor
        self.aggregator = aggregator
        self.chaos_enabled = chaos_enabled
        #: The node's chaos engine if any (set by node wiring): injections, partition, pauses, monkey.
        self.chaos_view: ChaosView | None = None
        self._peers = PeerChannels()
        self._cache: tuple[float, int, pb.StatsSnapshot] | None = None
        self._building: asyncio.Lock = asyncio.Lock()
        self._watchers = 0

    # ----------------------------------------------------------------- local
    def leader_id(self) -> str:
        return self.raft.status().leader_id

    def local_node(self) -> pb.NodeStats:
        status = self.raft.status()
        with self.raft.read() as sm:
            owned = sm.owned_by(self.node_id)
        liveness, age = self.liveness.liveness_of(self.node_id)
        node = pb.NodeStats(
            id=self.node_id,
            grpc_address=self.grpc_addr,
            role=status.role,
            term=status.term,
            commit_index=status.commit_index,
            applied_index=status.applied_index,
            liveness=liveness,
            owned_workflows=owned,
            partitioned=bool(status.blocked),
            reachable=True,
            last_heartbeat_age_ms=age,
            rss_bytes=rss_bytes(),
            cpu_seconds=cpu_seconds(),
            actors=len(self.executor.actors) if self.executor is not None else 0,
            chaos_enabled=self.chaos_enabled,
        )
        chaos = self.chaos_view
        if chaos is not None:
            node.chaos_injections.update({k: max(0, int(v)) for k, v in chaos.counters.items()})
            node.partition = chaos.partition
            node.paused_until_ms.update({k: int(v) for k, v in chaos.active_pauses().items()})
        if self.executor is not None:
            node.open_breakers.extend(
                b["name"] for b in self.executor.breakers.snapshot(time.monotonic()) if b["state"] == "open"
            )
        return node

    def peer_views(self) -> list[pb.PeerView]:
        views = []
        for node_id in sorted(self.raft.member_grpc_addrs()):
            liveness, age = self.liveness.liveness_of(node_id)
            views.append(pb.PeerView(node_id=node_id, liveness=liveness, last_heartbeat_age_ms=age))
        return views

    def chaos(self, nodes: list[pb.NodeStats]) -> pb.ChaosStats:
        """Monkey from the replicated setting; injections summed over the nodes that reported."""
        if self.chaos_view is None:
            return pb.ChaosStats(available=False, enabled=self.chaos_enabled)
        now = now_ms()
        setting = self.chaos_view.monkey_setting()
        until = int(setting.get("until_ms", 0) or 0)
        stats = pb.ChaosStats(
            available=True,
            enabled=self.chaos_enabled,
            monkey_on=bool(setting) and (until == 0 or until > now),
            monkey_profile=str(setting.get("profile", "")),
        )
        for node in nodes:
            for kind, value in node.chaos_injections.items():
                stats.injections[kind] = stats.injections[kind] + value
            if node.partition:
                heal_at = self.chaos_view.heal_at_ms if node.id == self.node_id else 0
                heal = f" (heals in {max(0, heal_at - now) // 1000}s)" if heal_at else ""
                stats.active.append(f"{node.id}: partition {node.partition}{heal}")
            if node.paused:
                stats.active.append(f"{node.id}: paused")
        if stats.monkey_on and until:
            stats.active.append(f"monkey stops in {max(0, until - now) // 1000}s")
        return stats

    def workflow_stats(self) -> pb.WorkflowStats:
        counters = self.aggregator.counters()
        rates = self.aggregator.rates
        succeeded, failed = counters.get("succeeded", 0), counters.get("failed", 0)
        finished = succeeded + failed
        return pb.WorkflowStats(
            submitted=counters.get("submitted", 0),
            running=max(
                0,
                counters.get("submitted", 0)
                - succeeded
                - failed
                - counters.get("cancelled", 0)
                + counters.get("reopened", 0)  # retried workflows run again
                - counters.get("compensated", 0)
                - counters.get("compensation_failed", 0),
            ),
            succeeded=succeeded,
            failed=failed,
            cancelled=counters.get("cancelled", 0),
            retries_scheduled=counters.get("retries_scheduled", 0),
            reassigned=counters.get("reassigned", 0),
            stale_rejected=counters.get("stale_rejected", 0),
            success_rate=succeeded / finished if finished else 1.0,
            completed_per_second=rates.latest("succeeded"),
            failed_per_second=rates.latest("failed"),
            submitted_per_second=rates.latest("submitted"),
            completed_history=list(rates.history["succeeded"]),
            failed_history=list(rates.history["failed"]),
            submitted_history=list(rates.history["submitted"]),
            counters={k: max(0, v) for k, v in counters.items()},
            waiting_by_signal=self.waiting_by_signal(),
        )

    def waiting_by_signal(self) -> dict[str, int]:
        """Running workflows waiting for a signal, by name (O(running workflows), once per sample)."""
        waiting: dict[str, int] = {}
        with self.raft.read():
            sm = self.raft.sm
            for ids in sm.owned_ids.values():
                for wf_id in ids:
                    for name in set(waiting_for(sm.workflows[wf_id])):
                        waiting[name] = waiting.get(name, 0) + 1
        return waiting

    def events(self, limit: int) -> list[pb.NotableEvent]:
        if limit <= 0:
            return []
        with self.raft.read():
            newest = self.raft.sm.notable[-limit:]
        out = []
        for ts, kind, wf_id, wf_name, step_id, message, node in newest:
            event = pb.NotableEvent(
                type=kind,
                workflow_id=wf_id,
                workflow_name=wf_name,
                step_id=step_id,
                message=message,
                node=node,
            )
            event.time.FromMilliseconds(ts)
            out.append(event)
        return out

    def local_snapshot(self, max_events: int) -> pb.StatsSnapshot:
        """Everything this node knows by itself; ``nodes`` holds only this node."""
        started = time.perf_counter()
        snapshot = pb.StatsSnapshot(
            node_id=self.node_id,
            leader_id=self.leader_id(),
            nodes=[self.local_node()],
            peers=self.peer_views(),
            workflows=self.workflow_stats(),
            events=self.events(max_events),
        )
        for name, stats, step_p, wf_p in self.aggregator.latency_rows():
            snapshot.latencies.append(
                pb.Latency(
                    name=name,
                    samples=len(stats.steps),
                    step_p50_ms=step_p[0],
                    step_p95_ms=step_p[1],
                    step_p99_ms=step_p[2],
                    workflow_p50_ms=wf_p[0],
                    workflow_p95_ms=wf_p[1],
                    workflow_p99_ms=wf_p[2],
                    workflow_samples=len(stats.workflows),
                    completed=stats.completed,
                    failed=stats.failed,
                )
            )
        for name, step, count in self.aggregator.top_failing(FAILING_STEPS):
            snapshot.failing_steps.append(pb.FailingStep(workflow_name=name, step_id=step, failures=count))
        snapshot.time.GetCurrentTime()
        snapshot.build_micros = int((time.perf_counter() - started) * 1e6)
        return snapshot

    def node_only(self) -> pb.StatsSnapshot:
        """The small report a peer asks for during its fan-out."""
        snapshot = pb.StatsSnapshot(
            node_id=self.node_id,
            leader_id=self.leader_id(),
            nodes=[self.local_node()],
            peers=self.peer_views(),
        )
        snapshot.time.GetCurrentTime()
        return snapshot

    # --------------------------------------------------------------- cluster
    async def cluster_snapshot(self, max_events: int) -> pb.StatsSnapshot:
        """Local figures + every member's report; shared between watchers for SHARE_S."""
        async with self._building:
            cached = self._cache
            if cached is not None and time.monotonic() - cached[0] < SHARE_S and cached[1] >= max_events:
                snapshot = pb.StatsSnapshot()
                snapshot.CopyFrom(cached[2])
                del snapshot.events[: max(0, len(snapshot.events) - max_events)]
                return snapshot
            started = time.perf_counter()
            snapshot = self.local_snapshot(max_events)
            members = self.raft.member_grpc_addrs()
            others = sorted(nid for nid in members if nid != self.node_id)
            reports = await asyncio.gather(*(self._report_of(nid, members[nid]) for nid in others))
            own = snapshot.nodes[0]
            del snapshot.nodes[:]
            views = {self.node_id: list(snapshot.peers)}
            by_id = {self.node_id: own}
            for nid, report in zip(others, reports, strict=True):
                if isinstance(report, pb.StatsSnapshot) and report.nodes:
                    by_id[nid] = report.nodes[0]
                    views[nid] = list(report.peers)
                else:
                    by_id[nid] = pb.NodeStats(
                        id=nid,
                        grpc_address=members[nid],
                        role="unknown",
                        liveness="unknown",
                        reachable=False,
                        error=str(report),
                    )
            leader = snapshot.leader_id
            leader_view = {v.node_id: v for v in views.get(leader, [])}
            for nid in sorted(by_id):
                node = by_id[nid]
                view = leader_view.get(nid)
                if view is not None:
                    node.liveness, node.last_heartbeat_age_ms = view.liveness, view.last_heartbeat_age_ms
                elif not node.reachable:
                    node.liveness = "unknown"
                snapshot.nodes.append(node)
            del snapshot.peers[:]
            now = now_ms()
            paused = {
                nid for node in by_id.values() for nid, until in node.paused_until_ms.items() if until > now
            }
            for node in snapshot.nodes:
                node.paused = node.paused or node.id in paused
            snapshot.chaos.CopyFrom(self.chaos(list(snapshot.nodes)))
            snapshot.build_micros = int((time.perf_counter() - started) * 1e6)
            self._cache = (time.monotonic(), max_events, snapshot)
            copy = pb.StatsSnapshot()
            copy.CopyFrom(snapshot)
            return copy

    async def _report_of(self, node_id: str, grpc_addr: str) -> pb.StatsSnapshot | str:
        if not grpc_addr:
            return "has not joined yet (gRPC address unknown)"
        channel = self._peers.get(grpc_addr)
        try:
            stub = pb_grpc.StatsServiceStub(channel)  # type: ignore[no-untyped-call, unused-ignore]
            response = await stub.GetStats(
                pb.GetStatsRequest(scope=pb.STATS_SCOPE_NODE), timeout=PEER_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
        snapshot: pb.StatsSnapshot = response.snapshot
        return snapshot

    # ------------------------------------------------------------------- RPCs
    async def GetStats(
        self, request: pb.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStatsResponse:
        if request.scope == pb.STATS_SCOPE_NODE:
            return pb.GetStatsResponse(snapshot=self.node_only())
        events = _clamp(request.max_events, DEFAULT_EVENTS, 0, MAX_EVENTS)
        return pb.GetStatsResponse(snapshot=await self.cluster_snapshot(events))

    async def WatchStats(
        self, request: pb.WatchStatsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchStatsResponse]:
        if self._watchers >= MAX_WATCHERS:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many stats watchers on this node (limit {MAX_WATCHERS})",
            )
        interval = _clamp(request.interval_ms, DEFAULT_INTERVAL_MS, MIN_INTERVAL_MS, MAX_INTERVAL_MS) / 1000
        events = _clamp(request.max_events, DEFAULT_EVENTS, 0, MAX_EVENTS)
        self._watchers += 1
        try:
            next_at = time.monotonic()
            while True:  # ends when the client cancels or the server shuts down
                yield pb.WatchStatsResponse(snapshot=await self.cluster_snapshot(events))
                next_at = max(next_at + interval, time.monotonic())
                await asyncio.sleep(next_at - time.monotonic())
        finally:
            self._watchers -= 1

    async def close(self) -> None:
        await self._peers.close()
