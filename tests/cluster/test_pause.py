"""Pause and resume on a real 3-node cluster: a pause is committed, so it survives the owner's death."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.cluster.test_dead_letters import beamctl, executions, recorded_cluster
from tests.cluster.test_engine import steps_of, submit, wait_converged, wait_terminal
from tests.harness import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]
__all__ = ["recorded_cluster"]  # the fixture, shared

NAPPING = """
name: napping
steps:
  - id: first
    run: python
    with: {function: "tests.fixtures.pysteps:record"}
  - id: nap
    run: sleep
    needs: first
    with: {duration: 2s}
  - id: last
    run: python
    needs: nap
    with: {function: "tests.fixtures.pysteps:record"}
"""

#: How long a paused workflow is watched to prove it starts nothing (an absence needs a window).
STILL_WINDOW_S = 3.0


def test_pause_kill_the_owner_resume_on_the_survivor(recorded_cluster: tuple[Cluster, Path]) -> None:
    cluster, record = recorded_cluster
    wf_id = submit(cluster.workflow_stub("n1"), NAPPING, {})

    def get(node: str) -> pb.Workflow:
        stub = cluster.workflow_stub(node)
        return stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10).workflow

    cluster.wait_until(
        lambda: steps_of(get("n1"))["nap"].status == pb.STEP_STATUS_RUNNING,
        30,
        "the workflow to reach its nap",
    )
    paused = beamctl(cluster, "workflow", "pause", wf_id, "--reason", "maintenance", "-o", "json")
    assert paused.returncode == 0, paused.stdout
    assert json.loads(paused.stdout)["status"] == "paused"
    listed = json.loads(beamctl(cluster, "workflow", "list", "--status", "paused", "-o", "json").stdout)
    assert [w["id"] for w in listed["workflows"]] == [wf_id]

    owner = get("n1").owner
    cluster.kill_node(owner)
    survivor = next(n for n in cluster.running_ids() if n != owner)
    cluster.wait_until(lambda: get(survivor).owner != owner, 30, "the paused workflow to move")
    # The running nap finishes; `last` never starts while paused, on the new owner either.
    cluster.wait_until(
        lambda: steps_of(get(survivor))["nap"].status == pb.STEP_STATUS_SUCCEEDED, 30, "the nap to finish"
    )
    end = time.monotonic() + STILL_WINDOW_S
    while time.monotonic() < end:
        wf = get(survivor)
        assert wf.status == pb.WORKFLOW_STATUS_PAUSED and wf.paused_reason == "maintenance"
        assert steps_of(wf)["last"].status == pb.STEP_STATUS_PENDING
        time.sleep(0.2)

    resumed = beamctl(cluster, "workflow", "resume", wf_id, "-o", "json")
    assert resumed.returncode == 0, resumed.stdout
    done = wait_terminal(cluster, survivor, [wf_id], timeout=60)[wf_id]
    assert done.status == pb.WORKFLOW_STATUS_SUCCEEDED
    assert executions(record) == {f"{wf_id}/first/1": 1, f"{wf_id}/last/1": 1}
    # A finished workflow cannot be paused: exit 5.
    assert beamctl(cluster, "workflow", "pause", wf_id, "--reason", "x").returncode == 5
    cluster.start_node(owner)
    cluster.wait_ready()
    wait_converged(cluster)
