"""Observability of real nodes: /metrics scraped during load, JSON log lines, sd_notify to a real socket."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.harness import Cluster

OK_FLOW = """
name: obs-ok
steps:
  - {id: a, run: noop}
  - id: b
    run: python
    needs: a
    retry: {max_attempts: 3, initial_interval: 10ms, jitter: none}
    with: {function: "tests.fixtures.pysteps:flaky_until", args: {succeed_on: 2}}
"""
FAIL_FLOW = """
name: obs-fail
steps:
  - id: doomed
    run: python
    retry: {max_attempts: 1}
    with: {function: "tests.fixtures.pysteps:always_permanent"}
"""
SHOUT_FLOW = """
name: obs-shout
steps:
  - id: shout
    run: python
    with: {function: "tests.fixtures.pysteps:shout"}
"""
OK_COUNT, FAIL_COUNT, SHOUT_COUNT = 40, 8, 4
SCRAPE_TIMEOUT_S = 5.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(addr: str) -> Samples:
    response = httpx.get(f"http://{addr}/metrics", timeout=SCRAPE_TIMEOUT_S)
    response.raise_for_status()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, metric: str, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


def total(samples: Samples, metric: str, **labels: str) -> float:
    """Sum over every series of ``metric`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == metric and wanted <= ls)


def submit(cluster: Cluster, node: str, definition: str, i: int) -> str:
    response = cluster.workflow_stub(node).SubmitWorkflow(
        pb.SubmitWorkflowRequest(definition=definition, input_json=json.dumps({"i": i})), timeout=30
    )
    return str(response.workflow_id)


#: Compact the log often, so that snapshot metrics have something to show.
COMPACTION = ("--compaction-min-entries", "50", "--compaction-min-time", "1")


def test_metrics_during_load_and_json_logs(tmp_path: Path) -> None:
    with Cluster(tmp_path, extra_args=COMPACTION) as cluster:
        cluster.start()
        cluster.wait_ready()
        before = {nid: scrape(node.metrics_addr) for nid, node in cluster.nodes.items()}
        jobs = [(OK_FLOW, i) for i in range(OK_COUNT)] + [(FAIL_FLOW, i) for i in range(FAIL_COUNT)]
        jobs += [(SHOUT_FLOW, i) for i in range(SHOUT_COUNT)]
        ids = list(cluster.nodes)
        during: list[Samples] = []
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(submit, cluster, ids[i % 3], d, i) for i, (d, _) in enumerate(jobs)]
            while not all(f.done() for f in futures):  # scrape every node while the load runs
                during += [scrape(node.metrics_addr) for node in cluster.nodes.values()]
            wf_ids = [f.result() for f in futures]
        assert len(set(wf_ids)) == len(jobs) and during
        # Scraped during the load, each node's counters only ever grow.
        for nid in ids:
            seen = [
                value(s, "beamflow_raft_proposals_committed_total")
                for s in during
                if value(s, "beamflow_node_info", node=nid)
            ]
            assert seen and seen == sorted(seen), (nid, seen)

        def settled(nid: str) -> Samples | None:
            s = scrape(cluster.nodes[nid].metrics_addr)
            done = total(s, "beamflow_workflows_completed_total")
            return s if done == len(jobs) and value(s, "beamflow_workflows_in_flight") == 0 else None

        after = {
            nid: cluster.wait_until(lambda n=nid: settled(n), 60, f"{nid} to count every workflow")
            for nid in ids
        }
        for nid, s in after.items():
            # Every node applies every command: each counts every workflow, by name and outcome.
            assert value(s, "beamflow_workflows_submitted_total", name="obs-ok") == OK_COUNT, nid
            assert total(s, "beamflow_workflows_submitted_total") == len(jobs), nid
            assert (
                value(s, "beamflow_workflows_completed_total", name="obs-ok", outcome="succeeded") == OK_COUNT
            )
            assert (
                value(s, "beamflow_workflows_completed_total", name="obs-fail", outcome="failed")
                == FAIL_COUNT
            )
            assert value(s, "beamflow_step_retries_total") >= OK_COUNT  # flaky_until fails once each
            assert value(s, "beamflow_raft_has_leader") == 1
            assert value(s, "beamflow_raft_leader_changes_seen_total") >= 1
            assert value(s, "beamflow_raft_applied_index") > value(before[nid], "beamflow_raft_applied_index")
            assert value(s, "beamflow_raft_commit_index") >= value(s, "beamflow_raft_applied_index") > 0
            assert value(s, "beamflow_raft_fsync_duration_seconds_count") > 0, nid
            assert value(s, "beamflow_node_info", node=nid) == 1
            committed = value(s, "beamflow_raft_proposals_committed_total")
            assert committed > value(before[nid], "beamflow_raft_proposals_committed_total"), nid
            assert value(s, "beamflow_raft_batch_commands_count") > 0, nid
            assert not any("wf" in dict(labels) or "workflow" in dict(labels) for _, labels in s)
        assert sum(value(s, "beamflow_raft_is_leader") for s in after.values()) == 1

        def snapshotted() -> Samples | None:
            s = scrape(cluster.nodes["n1"].metrics_addr)
            return s if value(s, "beamflow_snapshots_total") >= 1 else None

        snap = cluster.wait_until(snapshotted, 60, "n1 to write a snapshot")
        assert value(snap, "beamflow_snapshot_size_bytes") > 0
        assert (
            value(snap, "beamflow_snapshot_duration_seconds")
            >= value(snap, "beamflow_snapshot_pause_seconds")
            > 0
        )
        assert len({value(s, "beamflow_raft_term") for s in after.values()}) == 1
        # Each attempt is timed on the node that ran it: summed over nodes, every attempt is there once.
        runs = defaultdict(float)
        for s in after.values():
            for (name, labels), v in s.items():
                if name == "beamflow_step_duration_seconds_count":
                    runs[tuple(sorted(labels))] += v
        assert runs[(("kind", "noop"), ("outcome", "ok"))] == OK_COUNT
        assert runs[(("kind", "python"), ("outcome", "ok"))] == OK_COUNT + SHOUT_COUNT
        assert runs[(("kind", "python"), ("outcome", "error"))] == OK_COUNT + FAIL_COUNT
        shouted = {wf_id for wf_id, (d, _) in zip(wf_ids, jobs, strict=True) if d is SHOUT_FLOW}
        for nid in ids:
            assert cluster.stop_node(nid, signal.SIGTERM) == 0, cluster.log_tail(nid)

    relayed: set[str] = set()
    for nid, node in cluster.nodes.items():
        lines = [ln for ln in node.log_path.read_text().splitlines() if not ln.startswith("--- harness")]
        assert lines, nid
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise AssertionError(f"{nid}: a log line that is not JSON: {line!r}") from None
            assert {"level", "node", "event", "timestamp"} <= set(record), line
            assert record["node"] == nid, line
            if record.get("stream") == "stderr" and "shouting from" in record["event"]:
                assert record["step"] == "shout" and record["event"].endswith(record["workflow"])
                relayed.add(record["workflow"])
    assert relayed == shouted, "every step worker's stderr line is relayed as a record with its ids"


def test_systemd_notify_ready_after_joining_watchdog_status_and_stopping(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
        with Cluster(tmp_path / "cluster", n=3, env=env) as cluster:

            def receive(timeout: float) -> list[str]:
                """Every datagram until ``timeout`` passes without one (bounded by the deadline)."""
                got: list[str] = []
                deadline = time.monotonic() + timeout
                while (left := deadline - time.monotonic()) > 0:
                    sock.settimeout(left)
                    try:
                        got.append(sock.recv(4096).decode())
                    except TimeoutError:
                        break
                return got

            cluster.start_node("n1")
            alone = receive(3.0)  # a lone member of three has no quorum: it must not say READY
            assert alone and all("READY=1" not in m for m in alone), alone
            assert any(m.startswith("STATUS=joining the cluster") for m in alone), alone
            assert sum(m == "WATCHDOG=1" for m in alone) >= 3, alone  # every 0.2 s from the event loop
            cluster.start_node("n2")
            cluster.start_node("n3")

            ready: list[str] = []

            def all_ready() -> bool:
                ready.extend(m for m in receive(0.5) if "READY=1" in m)
                return len(ready) == 3

            cluster.wait_until(all_ready, 60, "READY=1 from all three nodes")
            assert all(cluster.is_serving(nid) for nid in cluster.nodes)
            statuses = [m.split("\n")[1] for m in ready]
            assert all(s.startswith("STATUS=serving: role ") and ", term " in s for s in statuses), statuses
            assert sum("role leader" in s for s in statuses) <= 1
            stopping: list[str] = []
            for nid in cluster.nodes:  # drained after each stop: a full socket queue would drop datagrams
                assert cluster.stop_node(nid, signal.SIGTERM) == 0
                stopping += [m for m in receive(0.3) if m.startswith("STOPPING=1")]
            stopping += [m for m in receive(1.0) if m.startswith("STOPPING=1")]
            assert len(stopping) == 3, stopping
