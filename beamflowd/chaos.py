"""Chaos on one node: kill, pause, partition filters, actor crashes, step faults and the chaos monkey.

Everything here is real, not simulated: ``kill`` sends SIGKILL to this process, ``pause`` sends it SIGSTOP
(a detached helper process sends SIGCONT after the duration), a partition is a filter in this node's Raft
transport (:class:`beamflowd.transport.BeamTransport`) that drops and refuses the other side's traffic while
the gRPC port stays reachable, and actor crashes go through the executor's supervision.

The monkey's setting is replicated (``chaos_monkey`` command in :mod:`beamflowd.core.state`), so it
survives node deaths; every node with chaos enabled reads it and injects into *its own* actors and step
attempts at the profile's rates. Node kills and partitions, when asked for, are done by the leader's
monkey only, one node at a time and only while every member is alive and reachable, so a majority is never
down at once.

Cluster-wide orchestration (forwarding a call to the node it concerns, installing a partition on every node)
also lives here, so the gRPC servicer (:mod:`beamflowd.api.chaos`) and the monkey share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from beamflowd.api.gen.beamflow.v1 import chaos_pb2 as pb
from beamflowd.api.gen.beamflow.v1 import chaos_pb2_grpc as pb_grpc
from beamflowd.api.peers import PeerChannels
from beamflowd.clock import now_ms
from beamflowd.core.commands import ChaosMonkey
from beamflowd.executor import Executor
from beamflowd.proposer import ProposeError, Proposer
from beamflowd.replication import ReplicatedState
from beamflowd.steps.base import StepError

log = logging.getLogger(__name__)

#: gRPC metadata key marking a call forwarded by another node: "exec" = act on yourself, "record" = note only.
FORWARDED = "x-beamflow-chaos-forwarded"
PEER_TIMEOUT_S = 2.0
#: The response leaves before the process dies or stops.
SELF_ACTION_DELAY_S = 0.1
#: A pause shorter than this could let the SIGCONT race ahead of the SIGSTOP and freeze the node for good.
MIN_PAUSE_MS = 100
MAX_PAUSE_MS = 600_000
#: The resume helper repeats SIGCONT this many times, a second apart, after the first one: harmless to a
#: running process, and it resumes one whose first SIGCONT was lost to a late SIGSTOP.
PAUSE_RESUME_REPEATS = 3
MAX_PARTITION_MS = 3_600_000
COUNTER_KINDS = (
    "actor_crash",
    "step_error",
    "step_timeout",
    "step_latency",
    "node_kill",
    "node_pause",
    "partition",
    "heal",
)
#: Actors sampled per node per monkey tick; each crashes with the profile's crash rate.
CRASH_SAMPLE = 10


class ChaosError(Exception):
    """A refused or failed chaos call; ``code`` is a gRPC status code name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_pause_duration(duration_ms: int) -> None:
    """Every path that pauses (direct, forwarded, recorded) checks the duration the same way."""
    if not MIN_PAUSE_MS <= duration_ms <= MAX_PAUSE_MS:
        raise ChaosError(
            "INVALID_ARGUMENT",
            f"duration: must be between {MIN_PAUSE_MS}ms and {MAX_PAUSE_MS // 60_000}m, got {duration_ms}ms",
        )


@dataclass(frozen=True)
class Profile:
    name: str
    crash: float
    timeout: float
    error: float
    latency: float
    latency_ms: tuple[int, int]
    interval_s: float
    #: Probability, per leader tick, of a node kill or partition (when enabled).
    node_action: float
    #: Seconds a monkey partition lasts (uniform).
    partition_s: tuple[float, float]


#: The original showcase's figures (crash, timeout, error, latency rates; latency range; interval).
PROFILES: dict[str, Profile] = {
    "gentle": Profile("gentle", 0.05, 0.03, 0.08, 0.10, (100, 500), 10.0, 0.10, (2.0, 4.0)),
    "moderate": Profile("moderate", 0.15, 0.10, 0.20, 0.25, (200, 2000), 5.0, 0.20, (2.0, 5.0)),
    "aggressive": Profile("aggressive", 0.30, 0.20, 0.35, 0.40, (500, 5000), 2.0, 0.50, (2.0, 5.0)),
}


def monkey_active(setting: Mapping[str, Any], at_ms: int) -> bool:
    if not setting:
        return False
    until = int(setting.get("until_ms", 0))
    return until == 0 or at_ms < until


def monkey_message(setting: Mapping[str, Any], at_ms: int | None = None) -> pb.MonkeyStatus:
    at = now_ms() if at_ms is None else at_ms
    if not setting:
        return pb.MonkeyStatus(enabled=False)
    profile = PROFILES.get(str(setting.get("profile")), PROFILES["moderate"])
    return pb.MonkeyStatus(
        enabled=monkey_active(setting, at),
        profile=profile.name,
        kill_nodes=bool(setting.get("kill_nodes")),
        partitions=bool(setting.get("partitions")),
        since_unix_ms=int(setting.get("since_ms", 0)),
        until_unix_ms=int(setting.get("until_ms", 0)),
        crash_rate=profile.crash,
        timeout_rate=profile.timeout,
        error_rate=profile.error,
        latency_rate=profile.latency,
        latency_min_ms=profile.latency_ms[0],
        latency_max_ms=profile.latency_ms[1],
        interval_ms=int(profile.interval_s * 1000),
    )


def split_groups(members: Sequence[str], isolate: str, groups: Sequence[Sequence[str]]) -> list[list[str]]:
    """Validate a partition request and return its sides; members not listed form one more side."""
    known = set(members)
    if bool(isolate) == bool(groups):
        raise ChaosError("INVALID_ARGUMENT", "partition: give exactly one of isolate or groups")
    sides = [[isolate]] if isolate else [list(g) for g in groups if g]
    seen: set[str] = set()
    for side in sides:
        for node in side:
            if node not in known:
                raise ChaosError(
                    "INVALID_ARGUMENT",
                    f"partition: unknown node {node!r} (members: {', '.join(sorted(known))})",
                )
            if node in seen:
                raise ChaosError("INVALID_ARGUMENT", f"partition: node {node!r} is in two groups")
            seen.add(node)
    rest = sorted(known - seen)
    if rest:
        sides.append(rest)
    if len(sides) < 2:
        raise ChaosError("INVALID_ARGUMENT", "partition: every node is on one side; nothing to cut")
    return [sorted(s) for s in sides]


class Chaos:
    """This node's chaos engine, created by :class:`beamflowd.node.Node`; runs on the event loop."""

    def __init__(
        self,
        node_id: str,
        *,
        enabled: bool,
        raft: ReplicatedState,
        proposer: Proposer,
        executor: Executor,
        initial_cluster: Mapping[str, str],
        data_dir: str,
    ) -> None:
        self.node_id = node_id
        self.enabled = enabled
        self.raft = raft
        self.proposer = proposer
        self.executor = executor
        self.initial_cluster = dict(initial_cluster)
        self._counters_path = Path(data_dir) / "chaos-counters.json"
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_KINDS, 0)
        self._restarts_base = 0
        self._load_counters()
        self._dirty = False
        self.rng = random.Random()
        # Partition filter of this node.
        self.blocked_ids: list[str] = []
        self.partition = ""
        self.heal_at_ms = 0
        self._heal_timer: asyncio.TimerHandle | None = None
        #: Pauses this node heard of: node id -> wall-clock ms when it resumes.
        self.paused: dict[str, int] = {}
        self._helpers: list[subprocess.Popen[bytes]] = []
        self._peers = PeerChannels()
        # Monkey.
        self._monkey: dict[str, Any] = {}
        self._leader_since: float | None = None
        self._last_node_action = 0.0
        self._task: asyncio.Task[None] | None = None
        if enabled:
            executor.step_faults = self.step_faults

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self.enabled:
            self._task = asyncio.get_running_loop().create_task(self._monkey_forever(), name="chaos-monkey")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._heal_timer is not None:
            self._heal_timer.cancel()
        self._save_counters()
        await self._peers.close()

    def require_enabled(self) -> None:
        if not self.enabled:
            raise ChaosError(
                "PERMISSION_DENIED",
                f"chaos is disabled on node {self.node_id}: start it with "
                "--enable-chaos (config chaos_enabled = true)",
            )

    # ------------------------------------------------------------------ counters
    def count(self, kind: str, n: int = 1) -> None:
        self.counters[kind] = self.counters.get(kind, 0) + n
        self._dirty = True

    def actor_restarts(self) -> int:
        return self._restarts_base + self.executor.restarts

    def _load_counters(self) -> None:
        with contextlib.suppress(OSError, ValueError, TypeError):
            data = json.loads(self._counters_path.read_text())
            for kind, value in data.get("counters", {}).items():
                self.counters[str(kind)] = int(value)
            self._restarts_base = int(data.get("actor_restarts", 0))

    def _save_counters(self) -> None:
        """Counters survive restarts (kills included): written atomically, at most about once a second."""
        self._dirty = False
        data = {"counters": self.counters, "actor_restarts": self.actor_restarts()}
        tmp = self._counters_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(data, sort_keys=True))
            os.replace(tmp, self._counters_path)
        except OSError as exc:
            log.warning("could not save chaos counters: %s", exc)

    # ------------------------------------------------------------------ peers
    def members(self) -> dict[str, str]:
        """node id -> gRPC address of every member that joined."""
        return self.raft.member_grpc_addrs()

    def member_ids(self) -> list[str]:
        return sorted(set(self.initial_cluster) | set(self.members()))

    def stub(self, node_id: str) -> Any:
        addr = self.members().get(node_id)
        if not addr:
            raise ChaosError("UNAVAILABLE", f"node {node_id!r} has not joined (gRPC address unknown)")
        return pb_grpc.ChaosServiceStub(self._peers.get(addr))  # type: ignore[no-untyped-call, unused-ignore]

    async def call_peer(
        self,
        node_id: str,
        method: str,
        request: Any,
        forwarded: str = "exec",
        timeout: float = PEER_TIMEOUT_S,
    ) -> Any:
        """Call ``method`` on ``node_id``; gRPC errors become :class:`ChaosError` with the same code."""
        try:
            return await getattr(self.stub(node_id), method)(
                request, timeout=timeout, metadata=((FORWARDED, forwarded),)
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name if exc.code() is not None else "UNKNOWN"
            if code == "DEADLINE_EXCEEDED":
                code = "UNAVAILABLE"
            raise ChaosError(code, f"node {node_id}: {exc.details()}") from None

    # ------------------------------------------------------------------ kill and pause (this process)
    def kill_self(self) -> None:
        """SIGKILL this process shortly (the reply leaves first): no graceful shutdown, like a crash."""
        self.count("node_kill")
        self._save_counters()
        log.warning("chaos: killing this node (SIGKILL) in %.0f ms", SELF_ACTION_DELAY_S * 1000)
        asyncio.get_running_loop().call_later(SELF_ACTION_DELAY_S, os.kill, os.getpid(), signal.SIGKILL)

    def pause_self(self, duration_ms: int) -> int:
        """SIGSTOP this process for ``duration_ms``; a detached ``sh`` helper sends SIGCONT. Returns until.

        The helper is started (and seen alive) before the SIGSTOP is even scheduled: nothing inside a stopped
        process can resume it, so without a live helper there is no pause.
        """
        check_pause_duration(duration_ms)
        seconds = (duration_ms / 1000) + SELF_ACTION_DELAY_S
        resume = f"kill -CONT {os.getpid()}"
        script = f"sleep {seconds:.3f}; {resume}" + f"; sleep 1; {resume}" * PAUSE_RESUME_REPEATS
        try:
            helper = subprocess.Popen(  # fixed argv, our own pid
                ["/bin/sh", "-c", script],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise ChaosError("UNAVAILABLE", f"cannot start the resume helper, not pausing: {exc}") from None
        if helper.poll() is not None:
            raise ChaosError("UNAVAILABLE", "the resume helper exited at once, not pausing")
        self._helpers.append(helper)
        until = self.pause_deadline(duration_ms)
        self.paused[self.node_id] = until
        self.count("node_pause")
        self._save_counters()
        log.warning("chaos: pausing this node (SIGSTOP) for %.1fs", duration_ms / 1000)
        asyncio.get_running_loop().call_later(SELF_ACTION_DELAY_S, os.kill, os.getpid(), signal.SIGSTOP)
        return until

    @staticmethod
    def pause_deadline(duration_ms: int) -> int:
        check_pause_duration(duration_ms)
        return now_ms() + duration_ms + int(SELF_ACTION_DELAY_S * 1000)

    def note_pause(self, node_id: str, until_ms: int) -> None:
        self.paused[node_id] = until_ms

    def active_pauses(self) -> dict[str, int]:
        now = now_ms()
        self.paused = {n: u for n, u in self.paused.items() if u > now}
        return dict(self.paused)

    # ------------------------------------------------------------------ partition filter (this node)
    def set_filter(self, blocked_ids: Iterable[str], description: str, heal_after_ms: int) -> None:
        blocked = sorted(set(blocked_ids) - {self.node_id})
        raft_addrs = {m_id: addr for m_id, addr in self.initial_cluster.items()}
        with self.raft.read():
            raft_addrs.update({m.id: m.raft_addr for m in self.raft.sm.members.values()})
        self.raft.transport.request_blocked({raft_addrs[n] for n in blocked if n in raft_addrs})
        self.blocked_ids = blocked
        self.partition = description if blocked else ""
        if self._heal_timer is not None:
            self._heal_timer.cancel()
            self._heal_timer = None
        self.heal_at_ms = 0
        if blocked and heal_after_ms > 0:
            self.heal_at_ms = now_ms() + heal_after_ms
            self._heal_timer = asyncio.get_running_loop().call_later(
                heal_after_ms / 1000, self.set_filter, (), "", 0
            )
        if blocked:
            log.warning(
                "chaos: partition %s: dropping Raft traffic with %s%s",
                description,
                ",".join(blocked),
                f" for {heal_after_ms / 1000:.1f}s" if heal_after_ms else "",
            )
        else:
            log.warning("chaos: partition healed on this node")

    # ------------------------------------------------------------------ cluster-wide orchestration
    async def kill_node(self, node_id: str) -> None:
        if node_id not in self.member_ids():
            raise ChaosError("NOT_FOUND", f"node {node_id!r} is not a member")
        if node_id == self.node_id:
            self.kill_self()
        else:
            await self.call_peer(node_id, "KillNode", pb.KillNodeRequest(node_id=node_id))

    async def pause_node(self, node_id: str, duration_ms: int) -> int:
        if node_id not in self.member_ids():
            raise ChaosError("NOT_FOUND", f"node {node_id!r} is not a member")
        check_pause_duration(duration_ms)
        self.note_pause(node_id, self.pause_deadline(duration_ms))
        others = [n for n in self.members() if n not in (node_id, self.node_id)]
        request = pb.PauseNodeRequest(node_id=node_id, duration_ms=duration_ms)
        # Everyone notes the pause (the paused node cannot report it itself); best effort.
        await asyncio.gather(
            *(self.call_peer(n, "PauseNode", request, forwarded="record", timeout=1.0) for n in others),
            return_exceptions=True,
        )
        if node_id == self.node_id:
            return self.pause_self(duration_ms)
        response = await self.call_peer(node_id, "PauseNode", request)
        return int(response.until_unix_ms)

    async def partition_cluster(
        self, isolate: str, groups: Sequence[Sequence[str]], heal_after_ms: int
    ) -> tuple[str, list[str], list[str]]:
        if heal_after_ms > MAX_PARTITION_MS:
            raise ChaosError("INVALID_ARGUMENT", f"for: at most {MAX_PARTITION_MS // 1000}s")
        sides = split_groups(self.member_ids(), isolate, groups)
        description = " | ".join(",".join(s) for s in sides)
        plan = {}
        for side in sides:
            others = [n for s in sides if s is not side for n in s]
            for node in side:
                plan[node] = others
        applied, errors = await self._install(plan, description, heal_after_ms)
        if applied:
            self.count("partition")
        return description, applied, errors

    async def heal_cluster(self) -> tuple[list[str], list[str]]:
        applied, errors = await self._install({n: [] for n in self.member_ids()}, "", 0)
        self.count("heal")
        return applied, errors

    async def _install(
        self, plan: Mapping[str, Sequence[str]], description: str, heal_after_ms: int
    ) -> tuple[list[str], list[str]]:
        applied: list[str] = []
        errors: list[str] = []

        async def one(node: str, blocked: Sequence[str]) -> None:
            try:
                if node == self.node_id:
                    self.set_filter(blocked, description, heal_after_ms)
                else:
                    await self.call_peer(
                        node,
                        "SetNodeFilter",
                        pb.SetNodeFilterRequest(
                            blocked_node_ids=list(blocked), partition=description, heal_after_ms=heal_after_ms
                        ),
                    )
                applied.append(node)
            except ChaosError as exc:
                errors.append(f"{node}: {exc.message}")

        await asyncio.gather(*(one(n, b) for n, b in sorted(plan.items())))
        return sorted(applied), sorted(errors)

    async def kill_actors(self, workflow_id: str, count: int) -> list[str]:
        """Crash one workflow's actor (on its owner) or ``count`` random actors across the cluster."""
        if workflow_id:
            with self.raft.read():
                wf = self.raft.sm.workflows.get(workflow_id)
                owner = None if wf is None else wf.owner
                terminal = wf is not None and wf.terminal
            if owner is None:
                raise ChaosError("NOT_FOUND", f"workflow {workflow_id!r} not found")
            if terminal:
                raise ChaosError("FAILED_PRECONDITION", f"workflow {workflow_id!r} has finished: no actor")
            if owner == self.node_id:
                if not self.crash_actor(workflow_id, "chaos: kill-actor"):
                    raise ChaosError(
                        "FAILED_PRECONDITION",
                        f"workflow {workflow_id!r} has no live actor on its owner {owner} right now",
                    )
                return [workflow_id]
            response = await self.call_peer(owner, "KillActor", pb.KillActorRequest(workflow_id=workflow_id))
            return list(response.workflow_ids)
        if count <= 0:
            raise ChaosError("INVALID_ARGUMENT", "kill-actor: give a workflow id or random > 0")
        with self.raft.read():
            running = sorted(wf_id for ids in self.raft.sm.owned_ids.values() for wf_id in ids)
        picked = self.rng.sample(running, min(count, len(running)))
        results = await asyncio.gather(
            *(self.kill_actors(wf_id, 0) for wf_id in picked), return_exceptions=True
        )
        return [wf_id for wf_id, r in zip(picked, results, strict=True) if not isinstance(r, BaseException)]

    def crash_actor(self, workflow_id: str, reason: str) -> bool:
        if self.executor.crash_actor(workflow_id, reason):
            self.count("actor_crash")
            return True
        return False

    async def set_monkey(
        self, enabled: bool, profile: str, kill_nodes: bool, partitions: bool, duration_ms: int
    ) -> dict[str, Any]:
        if enabled and profile not in PROFILES:
            raise ChaosError(
                "INVALID_ARGUMENT", f"profile: expected one of {', '.join(PROFILES)}, got {profile!r}"
            )
        ts = now_ms()
        cmd = ChaosMonkey(
            ts=ts,
            enabled=enabled,
            profile=profile,
            kill_nodes=kill_nodes,
            partitions=partitions,
            until_ms=ts + duration_ms if duration_ms else 0,
            node=self.node_id,
        )
        try:
            result = await self.proposer.propose(cmd)
        except ProposeError as exc:
            raise ChaosError(exc.code, exc.message) from None
        return dict(result.data)

    def monkey_setting(self) -> dict[str, Any]:
        with self.raft.read():
            return dict(self.raft.sm.chaos_monkey)

    # ------------------------------------------------------------------ status
    def local_status(self) -> pb.NodeChaos:
        return pb.NodeChaos(
            node_id=self.node_id,
            reachable=True,
            blocked_node_ids=self.blocked_ids,
            partition=self.partition,
            heal_at_unix_ms=self.heal_at_ms,
            injections={k: v for k, v in self.counters.items()},
            actor_restarts=self.actor_restarts(),
            actors=len(self.executor.actors),
            chaos_enabled=self.enabled,
        )

    async def cluster_status(self) -> pb.GetChaosStatusResponse:
        async def one(node: str) -> tuple[pb.NodeChaos, list[pb.PausedNode]]:
            if node == self.node_id:
                return self.local_status(), [
                    pb.PausedNode(node_id=n, until_unix_ms=u) for n, u in self.active_pauses().items()
                ]
            try:
                response = await self.call_peer(node, "GetNodeChaos", pb.GetNodeChaosRequest(), timeout=1.0)
                return response.node, list(response.paused)
            except ChaosError as exc:
                return pb.NodeChaos(node_id=node, reachable=False, error=exc.message), []

        answers = await asyncio.gather(*(one(n) for n in self.member_ids()))
        totals: dict[str, int] = dict.fromkeys(COUNTER_KINDS, 0)
        paused: dict[str, int] = {}
        restarts = 0
        for node, pauses in answers:
            for kind, value in node.injections.items():
                totals[kind] = totals.get(kind, 0) + value
            restarts += node.actor_restarts
            for p in pauses:
                if p.until_unix_ms > now_ms():
                    paused[p.node_id] = max(paused.get(p.node_id, 0), p.until_unix_ms)
        with self.raft.read():
            reassigned = self.raft.sm.counters.get("reassigned", 0)
        return pb.GetChaosStatusResponse(
            monkey=monkey_message(self.monkey_setting()),
            nodes=[a[0] for a in answers],
            injections=totals,
            actor_restarts=restarts,
            workflows_reassigned=reassigned,
            paused=[pb.PausedNode(node_id=n, until_unix_ms=u) for n, u in sorted(paused.items())],
        )

    # ------------------------------------------------------------------ step faults (executor hook)
    async def step_faults(self, workflow_id: str, step_id: str, attempt: int) -> None:
        """Before each step attempt: maybe add latency, then maybe fail it as an error or a timeout."""
        setting = self._monkey
        if not monkey_active(setting, now_ms()):
            return
        profile = PROFILES.get(str(setting.get("profile")))
        if profile is None:
            return
        if self.rng.random() < profile.latency:
            self.count("step_latency")
            await asyncio.sleep(self.rng.uniform(*profile.latency_ms) / 1000)
        roll = self.rng.random()
        if roll < profile.timeout:
            self.count("step_timeout")
            raise StepError("chaos: injected timeout", error_class="timeout")
        if roll < profile.timeout + profile.error:
            self.count("step_error")
            raise StepError("chaos: injected error", error_class="transient")

    # ------------------------------------------------------------------ the monkey
    async def _monkey_forever(self) -> None:
        """Bounded per iteration; runs until cancelled. Reads the replicated setting twice a second."""
        next_tick = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                self._monkey = self.monkey_setting()
                now = loop.time()
                leader = self.raft.is_leader()
                if leader and self._leader_since is None:
                    self._leader_since = now
                elif not leader:
                    self._leader_since = None
                setting = self._monkey
                if setting and not monkey_active(setting, now_ms()) and leader:
                    await self._expire()
                elif monkey_active(setting, now_ms()) and now >= next_tick:
                    profile = PROFILES.get(str(setting.get("profile")), PROFILES["moderate"])
                    next_tick = now + profile.interval_s
                    self._crash_some(profile)
                    if leader and (setting.get("kill_nodes") or setting.get("partitions")):
                        await self._node_action(profile, setting, now)
                if self._dirty:
                    self._save_counters()
                for helper in list(self._helpers):
                    if helper.poll() is not None:
                        self._helpers.remove(helper)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("chaos monkey iteration failed")
            await asyncio.sleep(0.5)

    async def _expire(self) -> None:
        with contextlib.suppress(ChaosError):
            await self.set_monkey(False, "", False, False, 0)
            log.warning("chaos monkey: duration over; turned off")

    def _crash_some(self, profile: Profile) -> None:
        actors = sorted(self.executor.actors)
        for wf_id in self.rng.sample(actors, min(CRASH_SAMPLE, len(actors))):
            if self.rng.random() < profile.crash:
                self.crash_actor(wf_id, "chaos monkey: injected actor crash")

    async def _node_action(self, profile: Profile, setting: Mapping[str, Any], now: float) -> None:
        """Leader only: maybe kill or isolate one node, only when the whole cluster is healthy."""
        # After an action, give the victim time to be declared down, restart and rejoin (or heal).
        cooldown = profile.partition_s[1] + 3.0
        if self._leader_since is None or now - self._leader_since < cooldown:
            return  # a new leader first lets the previous action's victim come back
        if now - self._last_node_action < cooldown or self.rng.random() >= profile.node_action:
            return
        if self.blocked_ids:
            return
        with self.raft.read():
            members = sorted(self.raft.sm.members)
            all_alive = all(m.alive for m in self.raft.sm.members.values())
        if not all_alive or len(members) < 3:
            return
        # Every member must answer, so at most one node is ever down or cut off: never a majority.
        healthy = await asyncio.gather(*(self._reachable(n) for n in members))
        if not all(healthy):
            return
        actions = [a for a, key in (("kill", "kill_nodes"), ("partition", "partitions")) if setting.get(key)]
        action = self.rng.choice(actions)
        victim = self.rng.choice(members)
        self._last_node_action = now
        try:
            if action == "kill":
                log.warning("chaos monkey: killing node %s", victim)
                await self.kill_node(victim)
            else:
                seconds = self.rng.uniform(*profile.partition_s)
                log.warning("chaos monkey: isolating node %s for %.1fs", victim, seconds)
                await self.partition_cluster(victim, [], int(seconds * 1000))
        except ChaosError as exc:
            log.warning("chaos monkey: %s of %s failed: %s", action, victim, exc.message)

    async def _reachable(self, node_id: str) -> bool:
        if node_id == self.node_id:
            return True
        try:
            response = await self.call_peer(node_id, "GetNodeChaos", pb.GetNodeChaosRequest(), timeout=0.5)
        except ChaosError:
            return False
        return not response.node.blocked_node_ids
