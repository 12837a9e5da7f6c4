"""Shared pieces of the chaos tests: a supervised dev cluster, a load client that records acknowledgements,
and checker glue. Everything is bounded by deadlines; nothing waits by sleeping for readiness."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from beamctl import checker
from beamflowd.api.gen.beamflow.v1 import chaos_pb2_grpc, cluster_pb2, cluster_pb2_grpc, workflow_pb2_grpc
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.harness import REPO_ROOT, wait_until

CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0), ("grpc.max_reconnect_backoff_ms", 500)]


def beamctl_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from beamctl.main import main; main()", *args]


def free_base_port(n: int) -> int:
    """A base port P with P..P+n-1 and P+100..P+100+n-1 all free on loopback."""
    for _ in range(200):
        base = random.randrange(20_000, 50_000)
        socks: list[socket.socket] = []
        try:
            for port in [*range(base, base + n), *range(base + 100, base + 100 + n)]:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free port range found")


class Endpoints:
    """Stubs by node id over cached channels (shared by the harness cluster and the dev cluster)."""

    def __init__(self, addrs: dict[str, str], logs: Callable[[], str]) -> None:
        self.addrs = addrs
        self.logs = logs
        self._channels: dict[str, grpc.Channel] = {}

    def channel(self, node_id: str) -> grpc.Channel:
        if node_id not in self._channels:
            self._channels[node_id] = grpc.insecure_channel(self.addrs[node_id], options=CHANNEL_OPTIONS)
        return self._channels[node_id]

    def workflows(self, node_id: str) -> Any:
        return workflow_pb2_grpc.WorkflowServiceStub(self.channel(node_id))

    def cluster(self, node_id: str) -> Any:
        return cluster_pb2_grpc.ClusterServiceStub(self.channel(node_id))

    def chaos(self, node_id: str) -> Any:
        return chaos_pb2_grpc.ChaosServiceStub(self.channel(node_id))

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    @property
    def endpoints(self) -> str:
        return ",".join(self.addrs.values())

    def wait_until(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        return wait_until(predicate, timeout, what, logs=self.logs)

    def node_status(self, node_id: str, timeout: float = 1.0) -> cluster_pb2.NodeStatus:
        return self.cluster(node_id).GetNodeStatus(cluster_pb2.GetNodeStatusRequest(), timeout=timeout).node

    def leader(self, among: Sequence[str] | None = None, exclude: str = "") -> str | None:
        """The node that reports itself leader (among ``among``), or None."""
        for node_id in among or list(self.addrs):
            if node_id == exclude:
                continue
            with contextlib.suppress(grpc.RpcError):
                if self.node_status(node_id, 0.5).role == cluster_pb2.NODE_ROLE_LEADER:
                    return node_id
        return None

    def cluster_status(self, timeout: float = 5.0) -> cluster_pb2.GetClusterStatusResponse:
        last: Exception | None = None
        for node_id in self.addrs:
            try:
                request = cluster_pb2.GetClusterStatusRequest()
                return self.cluster(node_id).GetClusterStatus(request, timeout=timeout)
            except grpc.RpcError as err:
                last = err
        raise AssertionError(f"no node answered GetClusterStatus: {last}")

    def get(self, wf_id: str) -> pb.GetWorkflowResponse | None:
        last: Exception | None = None
        for node_id in self.addrs:
            try:
                request = pb.GetWorkflowRequest(workflow_id=wf_id)
                return self.workflows(node_id).GetWorkflow(request, timeout=5)
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                last = err
        raise AssertionError(f"no node answered GetWorkflow({wf_id}): {last}")

    def verify(self, acknowledged: Sequence[str], wait_s: float = 90.0) -> checker.Verdict:
        return checker.verify(
            acknowledged,
            self.get,
            self.cluster_status,
            wait_s=wait_s,
            expected_nodes=len(self.addrs),
            poll_s=0.5,
        )


class DevCluster(Endpoints):
    """``beamctl dev up -d`` in a temp dir on free ports; ``close`` runs ``dev down`` and reaps leftovers."""

    def __init__(self, directory: Path, nodes: int = 3, restart_delay: str = "1s") -> None:
        self.dir = directory
        self.base = free_base_port(nodes)
        self.nodes = nodes
        self.restart_delay = restart_delay
        addrs = {f"n{i + 1}": f"127.0.0.1:{self.base + i}" for i in range(nodes)}
        super().__init__(addrs, self.log_tails)

    def up(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT)
        result = subprocess.run(
            beamctl_cmd(
                "dev",
                "up",
                "-d",
                "--dir",
                str(self.dir),
                "--nodes",
                str(self.nodes),
                "--base-port",
                str(self.base),
                "--restart-delay",
                self.restart_delay,
            ),
            capture_output=True,
            text=True,
            timeout=90,
            cwd=REPO_ROOT,
            env=env,
        )
        assert result.returncode == 0, f"dev up failed: {result.stdout}{result.stderr}\n{self.log_tails()}"

    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.dir / "supervisor.json").read_text())
            return data
        except (OSError, ValueError):
            return {}

    def restarts(self, node_id: str) -> int:
        return int(self.state().get("nodes", {}).get(node_id, {}).get("restarts", 0))

    def log_tails(self, n: int = 40) -> str:
        parts = []
        for path in [*sorted((self.dir / "logs").glob("*.log")), self.dir / "supervisor.log"]:
            with contextlib.suppress(OSError):
                lines = path.read_text(errors="replace").splitlines()[-n:]
                parts.append(f"----- {path.name} -----\n" + "\n".join(lines))
        return "\n".join(parts)

    def close(self) -> None:
        super().close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                beamctl_cmd("dev", "down", "--dir", str(self.dir)),
                capture_output=True,
                timeout=40,
                cwd=REPO_ROOT,
            )
        # Leftovers (should be none): kill what the supervisor recorded, and the supervisor itself.
        state = self.state()
        pids = [n.get("pid") for n in state.get("nodes", {}).values()] + [state.get("pid")]
        for pid in pids:
            if pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)


def definition(
    name: str,
    steps: int,
    *,
    latency: str = "0ms",
    max_latency: str | None = None,
    doomed: bool = False,
    attempts: int = 25,
) -> str:
    """A chain of demo steps; ``doomed`` makes the last one fail permanently (a designed failure)."""
    lines = [f"name: {name}", "steps:"]
    for i in range(steps):
        fail = doomed and i == steps - 1
        params = (
            f"{{min_latency: {latency}, max_latency: {max_latency or latency}, "
            f"failure_rate: {1.0 if fail else 0.0}, "
            f"error_class: {'permanent' if fail else 'transient'}}}"
        )
        lines.append(f"  - id: s{i + 1}")
        lines.append("    run: demo")
        if i:
            lines.append(f"    needs: s{i}")
        lines.append(f"    retry: {{max_attempts: {attempts}, initial_interval: 10ms, max_interval: 200ms}}")
        lines.append(f"    with: {params}")
    return "\n".join(lines) + "\n"


class Load:
    """Submits workflows with client-side fail-over and request ids; records only acknowledged ones."""

    def __init__(self, ends: Endpoints, nodes: Sequence[str] | None = None) -> None:
        self.ends = ends
        self.nodes = list(nodes or ends.addrs)
        self.acknowledged: list[str] = []
        self.unacknowledged = 0
        self.lock = threading.Lock()

    def submit(self, text: str, deadline_s: float = 60.0, payload: Any = None) -> str | None:
        rid = uuid.uuid4().hex
        request = pb.SubmitWorkflowRequest(
            definition=text,
            definition_source="chaos.yaml",
            request_id=rid,
            input_json=json.dumps(payload or {}),
        )
        deadline = time.monotonic() + deadline_s
        start = random.randrange(len(self.nodes))
        i = 0
        while time.monotonic() < deadline:
            node = self.nodes[(start + i) % len(self.nodes)]
            i += 1
            try:
                response = self.ends.workflows(node).SubmitWorkflow(request, timeout=5)
            except grpc.RpcError as err:
                if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                if i % len(self.nodes) == 0:
                    time.sleep(0.2)
                continue
            with self.lock:
                self.acknowledged.append(response.workflow_id)
            return str(response.workflow_id)
        with self.lock:
            self.unacknowledged += 1
        return None

    def run(self, items: Sequence[tuple[str, dict[str, Any] | None]], rate: float, workers: int = 16) -> None:
        """Submit ``items`` at about ``rate`` per second with ``workers`` threads (bounded by the count)."""
        from concurrent.futures import ThreadPoolExecutor

        t0 = time.monotonic()
        with ThreadPoolExecutor(workers) as pool:
            futures = []
            for i, (text, payload) in enumerate(items):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(self.submit, text, 60.0, payload))
            for f in futures:
                f.result()
