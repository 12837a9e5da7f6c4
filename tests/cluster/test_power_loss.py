"""A power cut of the whole cluster: nothing acknowledged or committed may be lost, unless syncs are off.

Every node runs with ``BEAMFLOW_TEST_POWER_CUT=1`` (beamflowd/power_cut.py): it keeps a model of its disk,
the content each file had at its last sync and the names its directory had at its last sync. Under a load
of submissions and running steps, with frequent snapshots and compactions, all three nodes are SIGKILLed
at once and each data directory is put back to what its disk held; then the cluster restarts.

With ``fsync = batch`` and ``always``: every submission that was acknowledged exists again, and every step
seen succeeded before the cut is still succeeded. With ``off`` the same check must find losses: that is
what shows the test can fail.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from beamflowd import power_cut
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.cluster.test_engine import wait_converged
from tests.harness import Cluster

FLOW = """
name: durable
steps:
  - {id: a, run: noop}
  - {id: nap, run: sleep, needs: a, with: {duration: "${{ input.nap }}"}}
  - {id: b, run: noop, needs: nap}
"""
#: Compaction this frequent puts snapshots, journal rewrites and their renames inside the load.
COMPACTION = ["--compaction-min-entries", "150", "--compaction-min-time", "1"]
SUBMITS_MAX = 600
SUBMIT_PERIOD_S = 0.01
#: Acknowledged submissions to have before the cut (half of them still running).
ACKED_BEFORE_CUT = 120
NAPS_MS = (50, 200, 800, 3_000)


class Load:
    """Submits round-robin until stopped (bounded in count); ``acked`` holds ids the cluster confirmed."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.acked: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        nodes = list(self.cluster.nodes)
        for i in range(SUBMITS_MAX):
            if self.stop.is_set():
                return
            nap = f"{NAPS_MS[i % len(NAPS_MS)]}ms"
            request = pb.SubmitWorkflowRequest(
                definition=FLOW, definition_source="durable.yaml", input_json=json.dumps({"nap": nap})
            )
            try:
                stub = self.cluster.workflow_stub(nodes[i % len(nodes)])
                self.acked.append(stub.SubmitWorkflow(request, timeout=10).workflow_id)
            except grpc.RpcError:
                pass  # not acknowledged: not promised
            self.stop.wait(SUBMIT_PERIOD_S)


@pytest.fixture
def cut_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    mode = request.param
    cluster = Cluster(tmp_path, extra_args=["--fsync", mode, *COMPACTION], env={power_cut.ENV_VAR: "1"})
    try:
        cluster.start()
        cluster.wait_ready(timeout=30)
        yield cluster
    finally:
        cluster.close()


def _succeeded_steps(cluster: Cluster, wf_ids: list[str]) -> dict[str, set[str]]:
    stub = cluster.workflow_stub(cluster.leader_id())
    seen: dict[str, set[str]] = {}
    for wf_id in wf_ids:
        wf = stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10).workflow
        seen[wf_id] = {s.id for s in wf.steps if s.status == pb.STEP_STATUS_SUCCEEDED}
    return seen


def _losses(cluster: Cluster, before: dict[str, set[str]]) -> list[str]:
    stub = cluster.workflow_stub(cluster.leader_id())
    lost = []
    for wf_id, steps in before.items():
        try:
            wf = stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10).workflow
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            lost.append(f"{wf_id}: acknowledged submission lost")
            continue
        now = {s.id for s in wf.steps if s.status == pb.STEP_STATUS_SUCCEEDED}
        if not steps <= now:
            lost.append(f"{wf_id}: committed results of {sorted(steps - now)} lost")
    return lost


def _power_cut_and_restart(cluster: Cluster) -> dict[str, dict[str, int]]:
    for node_id in cluster.nodes:  # as close to "at once" as three signals get
        cluster.kill_node(node_id)
    restored = {node_id: power_cut.cut_power(str(node.data_dir)) for node_id, node in cluster.nodes.items()}
    cluster.start()
    cluster.wait_ready(timeout=60)
    return restored


@pytest.mark.timeout(180)
@pytest.mark.parametrize("cut_cluster", ["batch", "always", "off"], indirect=True)
def test_power_cut_of_every_node(cut_cluster: Cluster, request: pytest.FixtureRequest) -> None:
    cluster = cut_cluster
    mode = request.node.callspec.params["cut_cluster"]
    load = Load(cluster)
    load.thread.start()
    cluster.wait_until(lambda: len(load.acked) >= ACKED_BEFORE_CUT, 60, "acknowledged submissions")
    seen = _succeeded_steps(cluster, list(load.acked))  # committed: read from applied state
    load.stop.set()
    load.thread.join(timeout=15)
    acked_total = len(load.acked)
    seen.update({wf_id: set() for wf_id in load.acked if wf_id not in seen})
    steps_seen = sum(len(s) for s in seen.values())
    assert steps_seen > 0, "no step had succeeded before the cut: the test would prove nothing"

    restored = _power_cut_and_restart(cluster)
    lost = _losses(cluster, seen)
    # The figures, for `pytest -s` (the closing note of the durability work quotes them).
    print(f"fsync={mode}: {acked_total} acknowledged, {steps_seen} step results seen, {len(lost)} lost")

    if mode == "off":
        # Nothing was ever synced, so the disks hold nothing: the check must see the loss.
        assert lost, f"fsync=off lost nothing of {acked_total} acknowledged workflows: the model is broken"
        assert all(not files for files in restored.values()), restored
    else:
        assert not lost, f"fsync={mode}: {len(lost)} of {acked_total} lost: {lost[:5]}"
        assert all("raft.journal" in files for files in restored.values()), restored
        wait_converged(cluster)
