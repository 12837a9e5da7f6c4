"""One BEAMFlow node: Raft + state machine + executor + gRPC server, wired together.

Start-up order: Raft (replays journal and snapshot) -> join command committed (so every node learns
this node's gRPC address and placement can pick it) -> actors adopted -> health SERVING.
Shutdown on SIGTERM/SIGINT: health NOT_SERVING, gRPC drains, actors stop, Raft is destroyed, exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from beamflowd import gc_pauses
from beamflowd.api import auth, peers, tls
from beamflowd.api.chaos import ChaosServicer
from beamflowd.api.cluster import ClusterServicer
from beamflowd.api.dlq import DeadLetterServicer
from beamflowd.api.gen.beamflow.v1 import (
    chaos_pb2,
    chaos_pb2_grpc,
    cluster_pb2,
    cluster_pb2_grpc,
    dlq_pb2,
    dlq_pb2_grpc,
    stats_pb2,
    stats_pb2_grpc,
    workflow_pb2,
    workflow_pb2_grpc,
)
from beamflowd.api.stats import StatsServicer
from beamflowd.api.workflows import WorkflowServicer
from beamflowd.breakers import Breakers, BreakerSettings
from beamflowd.changes import ChangeHub
from beamflowd.chaos import Chaos
from beamflowd.clock import now_ms
from beamflowd.config import NodeConfig
from beamflowd.core.commands import GC_BATCH_MAX, Gc, Join
from beamflowd.core.state import StateMachine
from beamflowd.executor import Executor
from beamflowd.isolation import ModulePolicy
from beamflowd.liveness import Liveness
from beamflowd.metrics import NodeMetrics
from beamflowd.metrics import endpoint as metrics_endpoint
from beamflowd.proposer import ProposeError, Proposer
from beamflowd.replication import RaftTuning, ReplicatedState
from beamflowd.sdnotify import Notifier
from beamflowd.stats import StatsAggregator
from beamflowd.steps import aclose_http_client
from beamflowd.steps.http import configure_http
from beamflowd.workers import WorkerPool, install_pool

log = logging.getLogger("beamflowd")

#: Bound on gRPC request size (definitions are limited to 256 KiB; this leaves room for the envelope).
MAX_GRPC_MESSAGE_BYTES = 4 * 1024 * 1024
JOIN_RETRY_SECONDS = 0.5
#: GC commands proposed back to back while each forgets a full batch, per GC interval.
GC_ROUNDS_MAX = 50


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        # Security first: bad TLS or token files stop the node before Raft opens its port.
        peers.configure(tls.peer_security(config))
        self.server_credentials = tls.server_credentials(config)
        server_interceptors = auth.interceptors(config)
        self.hub = ChangeHub()
        self.executor: Executor | None = None
        self.stopping = asyncio.Event()
        # Before Raft starts, so that replaying the journal is checked too.
        StateMachine.debug_invariants = config.debug_invariants
        self.raft = ReplicatedState(
            config.raft_addr,
            config.raft_partners,
            config.data_dir,
            RaftTuning(
                compaction_min_entries=config.compaction_min_entries,
                compaction_min_time=config.compaction_min_time,
            ),
            config.raft_password,
            self._on_applied_threadsafe,
            fsync=config.fsync,
            node_ids={addr: nid for nid, addr in config.initial_cluster.items()},
        )
        self.proposer = Proposer(self.raft, self.loop, batch_bytes_max=config.raft_batch_bytes_max)
        self.liveness = Liveness(
            config.node_id,
            self.raft,
            self.proposer,
            lease=config.lease_timeout,
            heartbeat_interval=config.heartbeat_interval,
        )
        self.executor = Executor(
            config.node_id,
            self.raft,
            self.proposer,
            allow_exec=config.allow_exec,
            default_step_timeout=config.default_step_timeout,
            max_concurrent_attempts=config.max_concurrent_attempts,
            quorum_ok=self.liveness.quorum_ok,
            quorum_fresh=self.liveness.quorum_fresh,
            max_restarts=config.max_actor_restarts,
            restart_window=config.actor_restart_window,
            max_deliveries=config.max_deliveries,
            dlq_max=config.dlq_max,
            breakers=Breakers(
                BreakerSettings(
                    failures=config.breaker_failures,
                    window_s=config.breaker_window,
                    open_for_s=config.breaker_open_for,
                    half_open_successes=config.breaker_half_open_successes,
                )
            ),
        )
        # Chaos: every call is refused unless config.chaos_enabled; it hooks the executor only when enabled.
        self.chaos = Chaos(
            config.node_id,
            enabled=config.chaos_enabled,
            raft=self.raft,
            proposer=self.proposer,
            executor=self.executor,
            initial_cluster=config.initial_cluster,
            data_dir=config.data_dir,
        )
        # User code (python, exec) runs in these child processes, never in this one.
        self.modules = ModulePolicy(config.python_modules)
        self.workers = WorkerPool(
            size=config.step_workers,
            queue_max=config.step_queue_max,
            memory_limit_bytes=config.step_memory_limit,
            modules=self.modules,
        )
        configure_http(deny_networks=config.http_deny_networks)
        self.background: list[asyncio.Task[None]] = []
        #: Called on the event loop with the ids of workflows each applied batch touched.
        self.change_listeners: list[Callable[[set[str]], None]] = []
        self.stats = StatsAggregator(self.raft, self.loop)
        self.change_listeners.append(self.stats.on_changed)
        self.stats_api = StatsServicer(
            config.node_id,
            config.grpc_addr,
            self.raft,
            config.initial_cluster,
            self.liveness,
            self.executor,
            self.stats,
            config.chaos_enabled,
        )
        self.stats_api.chaos_view = self.chaos
        executor = self.executor
        self.metrics = NodeMetrics(
            config.node_id,
            self.raft,
            self.proposer,
            self.stats,
            speculation=lambda: (executor.speculated, executor.speculation_refused),
        )
        self.metrics.attach(self._observe_steps)
        self.metrics_server = metrics_endpoint(config, self.metrics.render)
        #: systemd's notify socket (READY, STATUS, WATCHDOG, STOPPING); a no-op outside systemd.
        self.systemd = Notifier()
        self._joined = False
        self.health = health.aio.HealthServicer()
        self.cluster = ClusterServicer(
            config.node_id,
            self.raft,
            config.initial_cluster,
            config.grpc_addr,
            self.liveness,
            proposer=self.proposer,
            breakers=self.executor.breakers,
        )
        self.workflows_api = WorkflowServicer(
            config.node_id,
            self.raft,
            self.proposer,
            self.hub,
            modules=self.modules,
            run_ahead=None if self.executor is None else self.executor.propose_submit,
        )
        self.server = grpc.aio.server(
            interceptors=server_interceptors,
            options=[
                ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )

    def _observe_steps(self, observer: Callable[[str, str, float], None]) -> None:
        assert self.executor is not None
        self.executor.step_observer = observer

    def describe(self) -> str:
        """One line for systemd's STATUS=: role, term, leader and applied index."""
        status = self.raft.status()
        if not self._joined:
            leader = status.leader_id or "-"
            return f"joining the cluster (role {status.role}, term {status.term}, leader {leader})"
        return (
            f"serving: role {status.role}, term {status.term}, leader {status.leader_id or '-'}, "
            f"applied {status.applied_index}"
        )

    def _on_applied_threadsafe(self, changed: set[str]) -> None:
        """Tick thread -> event loop. Never blocks the Raft thread."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._on_applied, changed)

    def _on_applied(self, changed: set[str]) -> None:
        if self.executor is not None:
            self.executor.on_changed(changed)
        self.hub.publish(changed)
        for listener in self.change_listeners:
            listener(changed)

    async def _join(self) -> None:
        """Commit our membership (idempotent) — retried until a leader takes it or we are stopped."""
        config = self.config
        while not self.stopping.is_set():
            cmd = Join(
                node=config.node_id,
                raft=config.raft_addr,
                grpc=config.grpc_addr,
                ts=now_ms(),
                existing=True if config.join else None,
            )
            try:
                result = await self.proposer.propose(cmd, timeout=5.0, urgent=True)
                if result.ok:
                    self.liveness.mark_committed()
                    return
                log.warning("join refused: %s", result.message)
            except ProposeError as exc:
                hint = " (added with `beamctl cluster member add` yet?)" if config.join else ""
                log.info("waiting for a leader to join the cluster%s: %s", hint, exc.message)
            await asyncio.sleep(JOIN_RETRY_SECONDS)

    async def run(self) -> None:
        gc_pauses.watch()
        gc_pauses.collect_less_often()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.stopping.set)
        workflow_pb2_grpc.add_WorkflowServiceServicer_to_server(self.workflows_api, self.server)
        cluster_pb2_grpc.add_ClusterServiceServicer_to_server(self.cluster, self.server)
        stats_pb2_grpc.add_StatsServiceServicer_to_server(  # type: ignore[no-untyped-call, unused-ignore]
            self.stats_api, self.server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        chaos_pb2_grpc.add_ChaosServiceServicer_to_server(  # type: ignore[no-untyped-call, unused-ignore]
            ChaosServicer(self.chaos), self.server
        )
        dlq_pb2_grpc.add_DeadLetterServiceServicer_to_server(  # type: ignore[no-untyped-call, unused-ignore]
            DeadLetterServicer(self.workflows_api), self.server
        )
        service_names = (
            workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"].full_name,
            cluster_pb2.DESCRIPTOR.services_by_name["ClusterService"].full_name,
            stats_pb2.DESCRIPTOR.services_by_name["StatsService"].full_name,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
            chaos_pb2.DESCRIPTOR.services_by_name["ChaosService"].full_name,
            dlq_pb2.DESCRIPTOR.services_by_name["DeadLetterService"].full_name,
        )
        reflection.enable_server_reflection(service_names, self.server)
        await self.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        try:
            if self.server_credentials is not None:
                self.server.add_secure_port(self.config.grpc_addr, self.server_credentials)
            else:
                self.server.add_insecure_port(self.config.grpc_addr)
        except RuntimeError:
            raise OSError(f"grpc_addr: cannot listen on {self.config.grpc_addr} (in use?)") from None
        await self.server.start()
        if self.metrics_server is not None:
            await self.metrics_server.start()
        self.background.append(asyncio.create_task(self.systemd.run(self.describe), name="sd-notify"))
        self.proposer.start()
        self.background.append(asyncio.create_task(self.stats.run(), name="stats"))
        self.background.append(asyncio.create_task(self.metrics.watch_leader(), name="metrics-leader"))
        log.info(
            "node %s: raft %s, grpc %s (%s, auth %s), data %s",
            self.config.node_id,
            self.config.raft_addr,
            self.config.grpc_addr,
            "tls" if self.server_credentials is not None else "plaintext",
            "on" if self.config.auth_enabled else "off",
            self.config.data_dir,
        )
        await self.workers.start()
        install_pool(self.workers)
        await self._join()
        if not self.stopping.is_set():
            assert self.executor is not None
            self.background.append(asyncio.create_task(self.liveness.run(), name="liveness"))
            self.background.append(asyncio.create_task(self._collect_garbage(), name="gc"))
            self.executor.scan()
            self.chaos.start()
            await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
            for name in service_names[:2]:
                await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
            self._joined = True
            self.systemd.notify("READY=1", f"STATUS={self.describe()}")
            log.info(
                "node %s joined; serving",
                self.config.node_id,
                extra={"metrics": self.config.metrics_addr or "off", "systemd": self.systemd.enabled},
            )
        await self.stopping.wait()
        await self.shutdown()

    async def _collect_garbage(self) -> None:
        """Leader only: propose a replicated GC of finished workflows past retention.

        A command that forgot a full batch is followed at once by the next (up to GC_ROUNDS_MAX per
        interval), so GC keeps up with completion rates far above GC_BATCH_MAX per interval.
        """
        while True:
            await asyncio.sleep(self.config.gc_interval)
            for _ in range(GC_ROUNDS_MAX):
                if not self.raft.is_leader() or await self._collect_garbage_once() < GC_BATCH_MAX:
                    break

    async def _collect_garbage_once(self) -> int:
        now = now_ms()
        before = now - int(self.config.retention_seconds * 1000)
        keep_max = self.config.retention_max_finished
        with self.raft.read():
            due = self.raft.sm.gc_due(before, keep_max)
        if not due:
            return 0
        cmd = Gc(before=before, keep_max=keep_max, ts=now, by_completion=True)
        try:
            result = await self.proposer.propose(cmd)
        except ProposeError as exc:
            log.warning("gc not committed: %s", exc.message)
            return 0
        collected = int(result.data.get("collected", 0))
        log.info("garbage-collected %s finished workflows", collected)
        return collected

    async def shutdown(self) -> None:
        log.info("node %s shutting down", self.config.node_id)
        self.systemd.notify("STOPPING=1", "STATUS=draining")
        for task in self.background:
            task.cancel()
        if self.metrics_server is not None:
            await self.metrics_server.close()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace=2.0)
        if self.executor is not None:
            await self.executor.close()
        install_pool(None)
        await self.workers.close()
        await self.proposer.stop()
        await self.cluster.close()
        await self.chaos.close()
        await self.stats_api.close()
        self.workflows_api.definitions.close()
        await aclose_http_client()
        self.raft.destroy()
        self.systemd.close()
        log.info("node %s stopped", self.config.node_id)
