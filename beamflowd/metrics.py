"""Prometheus metrics of one node: a registry of its own and a small ``/metrics`` HTTP(S) endpoint.

Why a registry per node (not prometheus-client's global one): tests may run several nodes in one process, and
nothing imported by accident (a library's default collectors) ends up on the page. Most values are read when
scraped (Raft status through the replication adapter's :class:`~beamflowd.replication.RaftStatus`, replicated
counters, the stats aggregator's per-name counts), so nothing is kept up to date on a hot path; only what
happens between scrapes is recorded as it happens: batch sizes, journal sync times, step durations, leader
changes.

Label cardinality is bounded: never a workflow id; ``name`` comes from the stats aggregator, which keeps at
most :data:`beamflowd.stats.MAX_NAMES` distinct workflow names (the rest count under ``(other)``); ``kind`` is
one of the registered step kinds. There is no dead-letter-queue metric: the node has no DLQ yet.

The endpoint serves plain HTTP on loopback. Beyond loopback it needs TLS and bearer tokens (the node's
``tls_cert``/``tls_key`` and ``tokens_file``, checked by :mod:`beamflowd.config`): it then serves HTTPS and
answers 401 without a valid ``Authorization: Bearer`` token of any role.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from beamflowd.api.auth import build_authorizer
from beamflowd.config import NodeConfig
from beamflowd.core.vocabulary import DLQ_STATES, WORKFLOW_CANCELLED, WORKFLOW_FAILED, WORKFLOW_SUCCEEDED
from beamflowd.proposer import Proposer
from beamflowd.replication import RaftStatus, ReplicatedState
from beamflowd.stats import StatsAggregator

log = logging.getLogger("beamflowd.metrics")

#: How often the leader is sampled to count leader changes (an election takes a few 100 ms).
LEADER_SAMPLE_INTERVAL_S = 0.1
#: A request head (request line + headers) longer than this is refused.
REQUEST_HEAD_BYTES_MAX = 8192
#: A client that has not sent its request head within this time is disconnected.
REQUEST_TIMEOUT_S = 5.0
#: Connections served at once; more wait in the kernel's backlog.
CONNECTIONS_MAX = 16

BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
FSYNC_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
STEP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class NodeMetrics:
    """Every metric of one node, in :attr:`registry`; see docs/operations.md "Metrics" for each name."""

    def __init__(
        self,
        node_id: str,
        raft: ReplicatedState,
        proposer: Proposer,
        stats: StatsAggregator,
        speculation: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        self.node_id = node_id
        #: (attempts started ahead of their commit, of those whose result was refused); None: not counted.
        self.speculation = speculation
        self.raft = raft
        self.proposer = proposer
        self.stats = stats
        self.registry = CollectorRegistry(auto_describe=True)
        self.leader_changes = Counter(
            "beamflow_raft_leader_changes_seen",
            "Times this node saw a new leader (the first one included).",
            registry=None,
        )
        self.batch_commands = Histogram(
            "beamflow_raft_batch_commands",
            "Commands per Raft entry this node proposed (group commit).",
            buckets=BATCH_BUCKETS,
            registry=None,
        )
        self.fsync_seconds = Histogram(
            "beamflow_raft_fsync_duration_seconds",
            "Time to sync the Raft journal to disk (fsync policy batch or always).",
            buckets=FSYNC_BUCKETS,
            registry=None,
        )
        self.step_seconds = Histogram(
            "beamflow_step_duration_seconds",
            "Step attempts run on this node, by step kind and outcome (ok, error, timeout).",
            ["kind", "outcome"],
            buckets=STEP_BUCKETS,
            registry=None,
        )
        self._leader = ""
        # The scrape-time collector first: it samples the leader before the change counter is read.
        self.registry.register(_ScrapeCollector(self))
        for instrument in (self.leader_changes, self.batch_commands, self.fsync_seconds, self.step_seconds):
            self.registry.register(instrument)

    def attach(self, observe_steps: Callable[[Callable[[str, str, float], None]], None]) -> None:
        """Hook the recorders into the proposer, the replication adapter and the executor."""
        self.proposer.on_batch = self.batch_commands.observe
        self.raft.on_journal_sync = self.fsync_seconds.observe
        observe_steps(self._observe_step)

    def _observe_step(self, kind: str, outcome: str, seconds: float) -> None:
        self.step_seconds.labels(kind, outcome).observe(seconds)

    def sample_leader(self, status: RaftStatus | None = None) -> None:
        """Count a leader change when the leader differs from the last one seen."""
        leader = (status or self.raft.status()).leader_id
        if leader and leader != self._leader:
            self._leader = leader
            self.leader_changes.inc()

    async def watch_leader(self, interval: float = LEADER_SAMPLE_INTERVAL_S) -> None:
        """Sample the leader until cancelled (node shutdown)."""
        while True:
            self.sample_leader()
            await asyncio.sleep(interval)

    def render(self) -> bytes:
        """The exposition text (what a scrape returns)."""
        return generate_latest(self.registry)


class _ScrapeCollector(Collector):
    """Values read when scraped: Raft status, replicated counters, per-name counts, snapshots."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self.m = metrics

    def describe(self) -> Iterable[Metric]:
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        m = self.m
        status = m.raft.status()
        m.sample_leader(status)
        info = GaugeMetricFamily("beamflow_node_info", "This node's id (value 1).", labels=["node"])
        info.add_metric([m.node_id], 1)
        yield info
        yield _gauge("beamflow_raft_has_leader", "1 when this node knows a leader.", bool(status.leader_id))
        yield _gauge("beamflow_raft_is_leader", "1 when this node is the leader.", status.is_leader)
        yield _gauge("beamflow_raft_has_quorum", "1 when this node reaches a quorum.", status.has_quorum)
        yield _gauge("beamflow_raft_term", "Current Raft term.", status.term)
        yield _gauge("beamflow_raft_commit_index", "Raft commit index.", status.commit_index)
        yield _gauge("beamflow_raft_applied_index", "Last Raft index applied here.", status.applied_index)
        yield _gauge(
            "beamflow_raft_log_entries", "Entries in the Raft log since compaction.", status.log_entries
        )
        yield _counter(
            "beamflow_raft_proposals_committed",
            "Commands this node proposed that committed.",
            m.proposer.committed,
        )
        yield _counter(
            "beamflow_raft_proposals_failed",
            "Commands this node proposed that did not commit (deadline, refusal, unserialisable, shutdown).",
            m.proposer.failed + m.proposer.rejected,
        )
        if m.speculation is not None:
            speculated, refused = m.speculation()
            yield _counter(
                "beamflow_speculative_attempts",
                "Step attempts this node started before the commit that starts them (pipelined steps).",
                speculated,
            )
            yield _counter(
                "beamflow_speculative_results_refused",
                "Speculative attempts whose result was refused (run again once committed as running).",
                refused,
            )
        counters = m.stats.counters()
        in_flight = counters["submitted"] - counters["succeeded"] - counters["failed"] - counters["cancelled"]
        yield _gauge("beamflow_workflows_in_flight", "Workflows not finished, cluster-wide.", in_flight)
        for name, key, what in (
            ("beamflow_step_retries", "retries_scheduled", "Step retries scheduled, cluster-wide."),
            (
                "beamflow_workflow_reassignments",
                "reassigned",
                "Workflows moved off a dead node, cluster-wide.",
            ),
            (
                "beamflow_stale_results_rejected",
                "stale_rejected",
                "Step results refused for a stale epoch (an old owner), cluster-wide.",
            ),
            ("beamflow_nodes_declared_down", "nodes_down", "Nodes declared dead, cluster-wide."),
        ):
            yield _counter(name, what, counters.get(key, 0))
        dlq = GaugeMetricFamily(
            "beamflow_dlq_entries", "Dead-letter entries by state, cluster-wide.", labels=["state"]
        )
        for state in sorted(DLQ_STATES):
            dlq.add_metric([state], counters.get(f"dlq_{state}", 0))
        yield dlq
        yield _counter(
            "beamflow_dlq_overflow",
            "Final failures not dead-lettered because the queue was full of open entries, cluster-wide.",
            counters.get("dlq_overflow", 0),
        )
        submitted = CounterMetricFamily(
            "beamflow_workflows_submitted",
            "Workflows submitted, by workflow name, seen since this node started.",
            labels=["name"],
        )
        completed = CounterMetricFamily(
            "beamflow_workflows_completed",
            "Workflows finished, by workflow name and outcome, seen since this node started.",
            labels=["name", "outcome"],
        )
        for name, figures in sorted(m.stats.names.items()):
            submitted.add_metric([name], figures.submitted)
            for outcome, count in (
                (WORKFLOW_SUCCEEDED, figures.completed),
                (WORKFLOW_FAILED, figures.failed),
                (WORKFLOW_CANCELLED, figures.cancelled),
            ):
                completed.add_metric([name, outcome], count)
        yield submitted
        yield completed
        snap = m.raft.last_snapshot
        yield _counter("beamflow_snapshots", "Snapshots (log compactions) this node wrote.", m.raft.snapshots)
        yield _gauge(
            "beamflow_snapshot_duration_seconds",
            "Time the last snapshot took to write, fsync and rename.",
            snap.total_s if snap else 0.0,
        )
        yield _gauge(
            "beamflow_snapshot_pause_seconds",
            "Time the last snapshot held the Raft thread.",
            snap.pause_s if snap else 0.0,
        )
        yield _gauge(
            "beamflow_snapshot_size_bytes",
            "Compressed size of the last snapshot.",
            snap.compressed_bytes if snap else 0,
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=float(value))


# ------------------------------------------------------------------------------------------- the endpoint


class MetricsServer:
    """``GET /metrics`` on the event loop: bounded request heads, one response per connection."""

    def __init__(
        self,
        addr: str,
        render: Callable[[], bytes],
        *,
        ssl_context: ssl.SSLContext | None = None,
        authorize: Callable[[str], bool] | None = None,
    ) -> None:
        host, _, port = addr.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self.render = render
        self.ssl_context = ssl_context
        self.authorize = authorize
        self._server: asyncio.Server | None = None
        self._slots = asyncio.Semaphore(CONNECTIONS_MAX)
        self.scrapes = 0

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve,
                self.host,
                self.port,
                ssl=self.ssl_context,
                limit=REQUEST_HEAD_BYTES_MAX,
                reuse_address=True,
            )
        except OSError as exc:
            raise OSError(f"metrics_addr: cannot listen on {self.host}:{self.port}: {exc.strerror}") from None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with self._slots:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
                status, headers, body = self._respond(head)
                lines = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {len(body)}", "Connection: close"]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
                await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
                pass  # a client that went away, sent too much or too little: nothing to answer
            except ssl.SSLError:
                pass
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1.0)

    def _respond(self, head: bytes) -> tuple[str, list[str], bytes]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return "400 Bad Request", ["Content-Type: text/plain"], b"bad request line\n"
        method, target, _version = parts
        if method != "GET":
            return "405 Method Not Allowed", ["Allow: GET", "Content-Type: text/plain"], b""
        if target.split("?", 1)[0] != "/metrics":
            return "404 Not Found", ["Content-Type: text/plain"], b"only /metrics is served here\n"
        if self.authorize is not None:
            token = ""
            for line in lines[1:]:
                key, _, value = line.partition(":")
                if key.strip().lower() == "authorization":
                    scheme, _, credentials = value.strip().partition(" ")
                    token = credentials.strip() if scheme.lower() == "bearer" else ""
            if not self.authorize(token):
                return (
                    "401 Unauthorized",
                    ['WWW-Authenticate: Bearer realm="beamflow"', "Content-Type: text/plain"],
                    b"a bearer token from the node's tokens_file is required\n",
                )
        body = self.render()
        self.scrapes += 1
        return "200 OK", [f"Content-Type: {CONTENT_TYPE_LATEST}"], body


def endpoint(config: NodeConfig, render: Callable[[], bytes]) -> MetricsServer | None:
    """The node's /metrics server from its config: None when off, HTTPS + bearer beyond loopback."""
    if not config.metrics_addr:
        return None
    if not config.metrics_exposed:
        return MetricsServer(config.metrics_addr, render)
    assert config.tls_cert and config.tls_key  # build_config refuses an exposed address without them
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise OSError(f"metrics_addr: cannot load tls_cert/tls_key: {exc}") from None
    authorizer = build_authorizer(config)
    return MetricsServer(
        config.metrics_addr,
        render,
        ssl_context=context,
        authorize=lambda token: authorizer.by_token(token) is not None,
    )
