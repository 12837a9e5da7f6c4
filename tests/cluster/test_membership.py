"""Replacing a dead machine on real processes: 3 nodes, n3 dies for good, remove n3, add n4, 3 healthy.

Load runs through the whole change (submissions to n1 and n2); n3 owned running workflows when it died. n4
starts with ``--join`` on an empty data dir and catches up from a snapshot (compaction is frequent here).
At the end every workflow succeeded, n3 is gone from the membership and from Raft, and n1, n2, n4 report
the same digest; n1 restarted with its original flags keeps the new membership; the leader removes
itself. The time from n3's death to n4 serving as a full member is printed.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner

from beamctl.main import app
from beamflowd.api.gen.beamflow.v1 import cluster_pb2
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.cluster.test_engine import SLEEPY, submit, wait_converged, wait_terminal
from tests.harness import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

runner = CliRunner()
LOAD_PERIOD_S = 0.05


def beamctl(endpoints: str, *args: str) -> Any:
    result = runner.invoke(app, ["--endpoints", endpoints, "--timeout", "10", "-o", "json", *args])
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


class Load:
    """Submits short workflows to n1 and n2 until stopped; keeps the ids of the acknowledged ones."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.ids: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        stubs = [self.cluster.workflow_stub("n1"), self.cluster.workflow_stub("n2")]
        i = 0
        while not self._stop.wait(LOAD_PERIOD_S):
            i += 1
            try:
                self.ids.append(submit(stubs[i % 2], SLEEPY, {"nap": "200ms"}))
            except grpc.RpcError as exc:  # an election: the client would retry; count it, go on
                self.errors.append(f"{exc.code().name}: {exc.details()}")


def test_replace_a_dead_member_under_load(tmp_path: Path) -> None:
    cluster = Cluster(
        tmp_path,
        n=4,
        extra_args=("--compaction-min-entries", "50", "--compaction-min-time", "1"),
        node_args=lambda node_id: ["--join"] if node_id == "n4" else [],
    )
    nodes = cluster.nodes
    first_three = ",".join(f"{n}={nodes[n].raft_addr}" for n in ("n1", "n2", "n3"))
    cluster.initial_cluster = first_three
    try:
        for node_id in ("n1", "n2", "n3"):
            cluster.start_node(node_id)
        cluster.wait_ready(timeout=60, nodes=["n1", "n2", "n3"])
        endpoints = f"{nodes['n1'].grpc_addr},{nodes['n2'].grpc_addr}"
        before = beamctl(endpoints, "cluster", "member", "list")
        assert [m["id"] for m in before["members"]] == ["n1", "n2", "n3"]
        assert all(m["status"] == "alive" and m["in_raft"] for m in before["members"])
        refusals = [
            (
                ("add", "n4", "--raft", "nowhere", "--grpc", "127.0.0.1:1"),
                2,
                "raft_address: expected host:port",
            ),
            (("add", "bad id!", "--raft", "h:1", "--grpc", "h:2"), 2, "node_id: expected"),
            (("add", "n1", "--raft", "127.0.0.1:1", "--grpc", "127.0.0.1:2"), 5, "'n1' is already a member"),
        ]
        for args, code, message in refusals:
            result = runner.invoke(app, ["--endpoints", endpoints, "cluster", "member", *args])
            assert result.exit_code == code and message in result.stderr, (args, result.stderr)
        stub = cluster.workflow_stub("n1")
        long_ones = [submit(stub, SLEEPY, {"nap": "3s"}) for _ in range(12)]

        with Load(cluster) as load:
            cluster.wait_until(lambda: len(load.ids) >= 20, 30, "load to start")
            died = time.monotonic()
            cluster.kill_node("n3")
            removed = beamctl(endpoints, "cluster", "member", "remove", "n3")
            assert removed["removed"] is True
            assert [m["id"] for m in removed["members"]] == ["n1", "n2"]
            added = beamctl(
                endpoints,
                "cluster", "member", "add", "n4",
                "--raft", nodes["n4"].raft_addr,
                "--grpc", nodes["n4"].grpc_addr,
            )  # fmt: skip
            assert added["added"] is True
            n4 = next(m for m in added["members"] if m["id"] == "n4")
            assert n4["status"] == "added, not started" and n4["in_raft"] and n4["owned_workflows"] == 0
            cluster.initial_cluster = ",".join(f"{n}={nodes[n].raft_addr}" for n in ("n1", "n2", "n4"))
            # Once both live nodes compacted their logs, the first entries are gone: n4 can only start
            # from a snapshot (without this wait, n4 sometimes joined early and replayed the whole log).
            snapshots = [nodes[n].data_dir / "raft.snapshot" for n in ("n1", "n2")]
            cluster.wait_until(lambda: all(p.exists() for p in snapshots), 30, "log compaction on n1 and n2")
            cluster.start_node("n4")
            cluster.wait_ready(timeout=60, nodes=["n4"])

            def three_healthy() -> bool:
                listed = beamctl(endpoints, "cluster", "member", "list")["members"]
                status = cluster.cluster_status("n4")
                return (
                    [m["id"] for m in listed] == ["n1", "n2", "n4"]
                    and all(m["status"] == "alive" and m["in_raft"] for m in listed)
                    and sorted(n.id for n in status.nodes if n.reachable) == ["n1", "n2", "n4"]
                    and bool(status.leader_id)
                )

            cluster.wait_until(three_healthy, 60, "n1, n2, n4 to be healthy members")
            replaced_s = time.monotonic() - died
            submitted_during = len(load.ids)
            cluster.wait_until(lambda: len(load.ids) >= submitted_during + 20, 30, "load to go on on 3 nodes")

        results = wait_terminal(cluster, "n4", long_ones + load.ids, timeout=180)
        failed = {w: pb.WorkflowStatus.Name(wf.status) for w, wf in results.items() if wf.status != 2}
        assert not failed, failed
        assert pb.WORKFLOW_STATUS_SUCCEEDED == 2
        assert "loaded snapshot" in nodes["n4"].log_path.read_text(), "n4 caught up from a snapshot"
        wait_converged(cluster, timeout=60)
        owners = beamctl(endpoints, "cluster", "member", "list")["members"]
        assert "n3" not in {m["id"] for m in owners}
        print(
            f"\nreplaced a dead member in {replaced_s:.1f} s (kill -> remove -> add -> n4 serving); "
            f"{len(load.ids)} workflows submitted under load, {len(load.errors)} submit errors"
        )
        status = cluster.cluster_stub("n1").GetClusterStatus(cluster_pb2.GetClusterStatusRequest(), timeout=5)
        assert "n3" not in {n.id for n in status.nodes}

        # n1 restarts with its original flags (n3 in --initial-cluster, no n4): the membership kept in its
        # log and snapshot wins over the configured peers.
        cluster.initial_cluster = first_three
        cluster.restart_node("n1")
        cluster.wait_ready(timeout=60, nodes=["n1"])

        def n1_sees_n4() -> bool:
            listed = beamctl(nodes["n1"].grpc_addr, "cluster", "member", "list")["members"]
            return [m["id"] for m in listed] == ["n1", "n2", "n4"] and all(m["in_raft"] for m in listed)

        cluster.wait_until(n1_sees_n4, 30, "n1 to come back with n4 in its Raft configuration")
        after = submit(cluster.workflow_stub("n1"), SLEEPY, {"nap": "10ms"})
        wait_terminal(cluster, "n1", [after], timeout=60)
        wait_converged(cluster, timeout=60)

        # The leader itself can be removed: it hands leadership over first, the new leader removes it.
        leader = cluster.leader_id()
        endpoints = ",".join(nodes[n].grpc_addr for n in ("n1", "n2", "n4"))
        removed = beamctl(endpoints, "cluster", "member", "remove", leader)
        assert removed["removed"] is True
        rest = sorted({"n1", "n2", "n4"} - {leader})
        assert [m["id"] for m in removed["members"]] == rest
        cluster.stop_node(leader)
        new_leader = cluster.leader_id()
        assert new_leader in rest
        last = submit(cluster.workflow_stub(new_leader), SLEEPY, {"nap": "10ms"})
        finished = wait_terminal(cluster, new_leader, [last], timeout=60)
        assert finished[last].status == pb.WORKFLOW_STATUS_SUCCEEDED
        wait_converged(cluster, timeout=60)
    finally:
        cluster.close()


OBSERVE_S = 8.0


def test_a_removed_node_that_comes_back_is_ignored(cluster: Cluster) -> None:
    """n3 removed while dead, restarted on its old data dir: it never serves, terms stay, work goes on."""
    cluster.kill_node("n3")
    endpoints = f"{cluster.grpc_addr('n1')},{cluster.grpc_addr('n2')}"
    assert beamctl(endpoints, "cluster", "member", "remove", "n3")["removed"] is True
    terms = {n.id: n.term for n in cluster.cluster_status("n1").nodes if n.reachable}
    cluster.start_node("n3")
    ids: list[str] = []
    deadline = time.monotonic() + OBSERVE_S
    while time.monotonic() < deadline:  # bounded: watch for a disturbance while work goes on
        ids.append(submit(cluster.workflow_stub("n1"), SLEEPY, {"nap": "10ms"}))
        assert not cluster.is_serving("n3", timeout=0.2), "a removed node must not become ready"
    results = wait_terminal(cluster, "n1", ids, timeout=60)
    assert all(wf.status == pb.WORKFLOW_STATUS_SUCCEEDED for wf in results.values())
    status = cluster.cluster_status("n1")
    assert {n.id: n.term for n in status.nodes if n.reachable} == terms, "no election was forced"
    assert sorted(n.id for n in status.nodes) == ["n1", "n2"]
