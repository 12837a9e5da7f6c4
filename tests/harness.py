"""A cluster of real ``beamflowd`` processes on loopback, for tests.

Free ports, temp data dirs, one process group per node (so a node's children die with it), readiness by the
gRPC health service (never by sleeping), and failure messages that carry every node's log tail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from beamflowd.api.gen.beamflow.v1 import cluster_pb2, cluster_pb2_grpc, workflow_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parent.parent
#: What python steps may call on a test node: the fixtures, nothing else.
TEST_PYTHON_MODULES = ("tests.fixtures.*",)
POLL_S = 0.05
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 50
#: Written to a node's log before each start: a node's log file holds all its runs, one after another.
START_MARKER = "--- harness: starting "

T = TypeVar("T")


class _NodeExited(Exception):
    """A node died while we waited for it: waiting longer cannot help."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports: bind all at once (so none repeats), then release them."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    logs: Callable[[], str] | None = None,
    interval: float = POLL_S,
    fatal: tuple[type[Exception], ...] = (),
) -> T:
    """Poll ``predicate`` until it returns something truthy (returned), or fail with ``what`` and the logs.

    An exception from the predicate counts as "not yet" (a node may be down on purpose); the last one is
    reported if time runs out; an exception of a ``fatal`` type fails at once. Bounded in time and count.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    max_polls = int(timeout / max(interval, 0.001)) + 2
    for _ in range(max_polls):
        try:
            value = predicate()
        except fatal as err:
            tail = f"\n{logs()}" if logs is not None else ""
            raise AssertionError(f"while waiting for {what}: {err}{tail}") from err
        except Exception as err:
            last_error = err
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    message = f"timed out after {timeout:.1f}s waiting for {what}"
    if last_error is not None:
        message += f"; last error: {type(last_error).__name__}: {last_error}"
    if logs is not None:
        message += "\n" + logs()
    raise AssertionError(message)


def _bearer(token: str) -> Any:
    """A channel interceptor that sends ``authorization: Bearer <token>`` (beamctl's own, reused)."""
    from beamctl.security import BearerInterceptor

    return BearerInterceptor(token)


def _stub(factory: Any, channel: grpc.Channel) -> Any:
    return factory(channel)


class Node:
    """One ``beamflowd`` process slot: fixed id and ports, restartable."""

    def __init__(self, node_id: str, raft_port: int, grpc_port: int, data_dir: Path, log_path: Path) -> None:
        self.id = node_id
        self.raft_addr = f"127.0.0.1:{raft_port}"
        self.grpc_addr = f"127.0.0.1:{grpc_port}"
        self.data_dir = data_dir
        self.log_path = log_path
        #: Prometheus /metrics of this node (a free loopback port; fixed 9464 inside a network namespace).
        self.metrics_addr = "127.0.0.1:9464"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pgids: set[int] = set()  # every group we started, so close() can reap strays of old runs

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    """``n`` real nodes named n1..nN. Use as a context manager or call :meth:`close` (it always kills)."""

    def __init__(
        self,
        tmp_path: Path,
        n: int = 3,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        debug_invariants: bool = True,
        *,
        hosts: Mapping[str, str] | None = None,
        launcher: Callable[[str], Sequence[str]] | None = None,
        node_args: Callable[[str], Sequence[str]] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
    ) -> None:
        """``hosts``: node id -> IP to run on (fixed ports 7001/7101) instead of loopback with free ports;
        ``launcher``: command prefix per node (``ip netns exec NS``); ``node_args``: extra flags per node;
        ``credentials``/``token``: how the harness itself calls the nodes (TLS, bearer token)."""
        self.tmp_path = Path(tmp_path)
        self.extra_args = tuple(extra_args)
        #: Nodes check the state machine's invariants after every entry (and stop on a violation); benchmarks
        #: turn it off, since the check is O(state) per entry.
        self.debug_invariants = debug_invariants
        self.launcher = launcher
        self.node_args = node_args
        self.credentials = credentials
        self.token = token
        ports = free_ports(3 * n)
        self.nodes: dict[str, Node] = {}
        for i in range(n):
            node_id = f"n{i + 1}"
            self.nodes[node_id] = Node(
                node_id,
                raft_port=ports[2 * i] if hosts is None else 7101,
                grpc_port=ports[2 * i + 1] if hosts is None else 7001,
                data_dir=self.tmp_path / node_id / "data",
                log_path=self.tmp_path / f"{node_id}.log",
            )
            if hosts is None:
                self.nodes[node_id].metrics_addr = f"127.0.0.1:{ports[2 * n + i]}"
            if hosts is not None:
                node = self.nodes[node_id]
                node.raft_addr = f"{hosts[node_id]}:7101"
                node.grpc_addr = f"{hosts[node_id]}:7001"
        self.initial_cluster = ",".join(f"{node.id}={node.raft_addr}" for node in self.nodes.values())
        self.env = self._make_env(env)
        self._channels: dict[str, grpc.Channel] = {}
        self._logs: list[IO[bytes]] = []

    def _make_env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(REPO_ROOT), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("BEAMFLOW_ENDPOINTS", None)
        env.update(extra or {})
        return env

    # -- lifecycle ------------------------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def command(self, node_id: str) -> list[str]:
        node = self.nodes[node_id]
        return [
            *(self.launcher(node_id) if self.launcher is not None else ()),
            sys.executable,
            "-m",
            "beamflowd",
            "--node-id",
            node.id,
            "--initial-cluster",
            self.initial_cluster,
            "--grpc-addr",
            node.grpc_addr,
            "--data-dir",
            str(node.data_dir),
            "--metrics-addr",
            node.metrics_addr,
            *(["--debug-invariants"] if self.debug_invariants else []),
            *(arg for pattern in TEST_PYTHON_MODULES for arg in ("--python-module", pattern)),
            *self.extra_args,
            *(self.node_args(node_id) if self.node_args is not None else ()),
        ]

    def start(self) -> None:
        for node_id in self.nodes:
            self.start_node(node_id)

    def start_node(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.running:
            raise AssertionError(f"{node_id} is already running")
        node.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(node.log_path, "ab")  # noqa: SIM115 - closed in close(); appends across restarts
        self._logs.append(log)
        log.write(f"{START_MARKER}{node_id}: {' '.join(self.command(node_id))}\n".encode())
        log.flush()
        node.proc = subprocess.Popen(
            self.command(node_id),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env=self.env,
            start_new_session=True,
        )
        node.pgids.add(node.proc.pid)

    def stop_node(self, node_id: str, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        """Signal the node's main process and wait for it; returns its exit code (negative = signal)."""
        node = self.nodes[node_id]
        proc = node.proc
        if proc is None:
            raise AssertionError(f"{node_id} was never started")
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_group(proc.pid)
            proc.wait(timeout=STOP_TIMEOUT_S)
            raise AssertionError(
                f"{node_id} did not exit within {timeout:.0f}s of signal {sig}; killed\n{self.log_tails()}"
            ) from None
        finally:
            self._drop_channel(node_id)

    def kill_node(self, node_id: str) -> int:
        """SIGKILL the node's whole process group, like a machine dying."""
        node = self.nodes[node_id]
        if node.proc is None:
            raise AssertionError(f"{node_id} was never started")
        self._kill_group(node.proc.pid)
        code = node.proc.wait(timeout=STOP_TIMEOUT_S)
        self._drop_channel(node_id)
        return code

    def restart_node(self, node_id: str, sig: int = signal.SIGTERM) -> None:
        """Stop (if running) and start again on the same ports and data dir."""
        if self.nodes[node_id].running:
            self.stop_node(node_id, sig)
        self.start_node(node_id)

    def close(self) -> None:
        """Kill every process group this harness started and wait for the leaders of each; never raises."""
        for node in self.nodes.values():
            for pgid in node.pgids:
                self._kill_group(pgid)
            if node.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.proc.wait(timeout=STOP_TIMEOUT_S)
        for node_id in list(self._channels):
            self._drop_channel(node_id)
        for log in self._logs:
            with contextlib.suppress(OSError):
                log.close()
        self._logs.clear()

    @staticmethod
    def _kill_group(pgid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    # -- addresses, channels, stubs -------------------------------------------------------------------------

    @property
    def endpoints(self) -> str:
        """All gRPC addresses as ``beamctl --endpoints`` wants them."""
        return ",".join(node.grpc_addr for node in self.nodes.values())

    def grpc_addr(self, node_id: str) -> str:
        return self.nodes[node_id].grpc_addr

    def running_ids(self) -> list[str]:
        return [node.id for node in self.nodes.values() if node.running]

    def channel(self, node_id: str) -> grpc.Channel:
        channel = self._channels.get(node_id)
        if channel is None:
            options = [("grpc.enable_http_proxy", 0), ("grpc.max_reconnect_backoff_ms", 500)]
            if self.credentials is not None:
                channel = grpc.secure_channel(self.grpc_addr(node_id), self.credentials, options=options)
            else:
                channel = grpc.insecure_channel(self.grpc_addr(node_id), options=options)
            if self.token is not None:
                channel = grpc.intercept_channel(channel, _bearer(self.token))
            self._channels[node_id] = channel
        return channel

    def _drop_channel(self, node_id: str) -> None:
        channel = self._channels.pop(node_id, None)
        if channel is not None:
            channel.close()

    def workflow_stub(self, node_id: str) -> Any:
        return _stub(workflow_pb2_grpc.WorkflowServiceStub, self.channel(node_id))

    def cluster_stub(self, node_id: str) -> Any:
        return _stub(cluster_pb2_grpc.ClusterServiceStub, self.channel(node_id))

    def health_stub(self, node_id: str) -> Any:
        return _stub(health_pb2_grpc.HealthStub, self.channel(node_id))

    # -- readiness and queries ------------------------------------------------------------------------------

    def is_serving(self, node_id: str, timeout: float = 1.0) -> bool:
        try:
            response = self.health_stub(node_id).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError:
            return False
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)

    def wait_ready(self, timeout: float = 30.0, nodes: Iterable[str] | None = None) -> None:
        """Wait until every (given) node's health service says SERVING; fail fast if a process died."""
        wanted = list(nodes) if nodes is not None else list(self.nodes)

        def all_serving() -> bool:
            for node_id in wanted:
                proc = self.nodes[node_id].proc
                if proc is None:
                    raise _NodeExited(f"{node_id} was never started")
                if proc.poll() is not None:
                    raise _NodeExited(f"{node_id} exited with code {proc.returncode} before it was ready")
            return all(self.is_serving(node_id) for node_id in wanted)

        self.wait_until(
            all_serving, timeout, f"nodes {','.join(wanted)} to report SERVING", fatal=(_NodeExited,)
        )

    def wait_until(
        self,
        predicate: Callable[[], T | None],
        timeout: float,
        what: str,
        *,
        fatal: tuple[type[Exception], ...] = (),
    ) -> T:
        """:func:`wait_until` with this cluster's log tails in the failure message."""
        return wait_until(predicate, timeout, what, logs=self.log_tails, fatal=fatal)

    def cluster_status(
        self, node_id: str | None = None, timeout: float = 5.0
    ) -> cluster_pb2.GetClusterStatusResponse:
        """GetClusterStatus from ``node_id`` or the first running node."""
        target = node_id or self.running_ids()[0]
        response: cluster_pb2.GetClusterStatusResponse = self.cluster_stub(target).GetClusterStatus(
            cluster_pb2.GetClusterStatusRequest(), timeout=timeout
        )
        return response

    def leader_id(self, timeout: float = 30.0) -> str:
        """The leader that a running node reports, waiting through an election."""

        def leader() -> str | None:
            for node_id in self.running_ids():
                with contextlib.suppress(grpc.RpcError):
                    found = self.cluster_status(node_id, timeout=2.0).leader_id
                    if found:
                        return found
            return None

        return self.wait_until(leader, timeout, "a leader")

    # -- logs -----------------------------------------------------------------------------------------------

    def current_log(self, node_id: str) -> str:
        """What ``node_id`` logged since its latest start (its log file is appended across restarts)."""
        text = self.nodes[node_id].log_path.read_text(encoding="utf-8", errors="replace")
        return text[text.rfind(START_MARKER) :]

    def log_tail(self, node_id: str, n: int = LOG_TAIL_LINES) -> str:
        path = self.nodes[node_id].log_path
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def log_tails(self, n: int = LOG_TAIL_LINES) -> str:
        parts = []
        for node in self.nodes.values():
            state = (
                "running"
                if node.running
                else f"exited {node.proc.returncode}"
                if node.proc
                else "not started"
            )
            title = f"----- {node.id} ({state}) {node.log_path} (last {n} lines) -----"
            parts.append(f"{title}\n{self.log_tail(node.id, n)}")
        return "\n".join(parts)
