"""Saga compensation on a real 3-node cluster: a final failure runs the compensations of succeeded steps,
newest completion first, and a chain interrupted by killing the leader (and the owner) completes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from beamctl.main import app
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.cluster.test_engine import steps_of, submit, wait_converged, wait_terminal
from tests.harness import REPO_ROOT, Cluster

SAGA = (REPO_ROOT / "deploy" / "workflows" / "saga.yaml").read_text()

SLOW = """
name: slow-saga
steps:
  - {id: a, run: noop, compensate: {run: demo, with: {min_latency: 300ms, max_latency: 300ms}}}
  - {id: b, run: noop, needs: a, compensate: {run: demo, with: {min_latency: 300ms, max_latency: 300ms}}}
  - {id: c, run: noop, needs: b, compensate: {run: demo, with: {min_latency: 300ms, max_latency: 300ms}}}
  - {id: d, run: demo, needs: c, retry: {max_attempts: 1}, with: {failure_rate: 1.0, error_class: permanent}}
"""


def _events(cluster: Cluster, node: str, wf_id: str) -> list[pb.WorkflowEvent]:
    response = cluster.workflow_stub(node).GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10)
    return list(response.events)


@pytest.mark.timeout(120)
def test_a_failed_saga_is_compensated_newest_first_and_a_good_one_is_not(cluster: Cluster) -> None:
    stub = cluster.workflow_stub("n1")
    failed = submit(stub, SAGA, {"order": "A-1", "fail": True}, "saga.yaml")
    good = submit(stub, SAGA, {"order": "A-2", "fail": False}, "saga.yaml")
    done = wait_terminal(cluster, "n2", [failed, good], timeout=60)
    assert done[good].status == pb.WORKFLOW_STATUS_SUCCEEDED
    wf = done[failed]
    assert wf.status == pb.WORKFLOW_STATUS_COMPENSATED, wf.error
    assert "step ship failed" in wf.error and steps_of(wf)["ship"].error_class == "permanent"
    order = [e.step_id for e in _events(cluster, "n2", failed) if e.type == "step_compensated"]
    assert order == ["charge", "book"]
    assert json.loads(steps_of(wf)["charge"].output_json) == {"receipt": "rc-A-1"}


@pytest.mark.timeout(180)
def test_a_compensation_chain_interrupted_by_a_leader_kill_completes(cluster: Cluster) -> None:
    wf_id = submit(cluster.workflow_stub("n1"), SLOW, {})

    def compensating() -> bool:
        return any(e.type == "step_compensated" for e in _events(cluster, "n1", wf_id))

    cluster.wait_until(compensating, 30, "the first compensation to commit")
    leader = cluster.leader_id()
    cluster.kill_node(leader)
    survivor = next(n for n in cluster.nodes if n != leader)
    wf = wait_terminal(cluster, survivor, [wf_id], timeout=90)[wf_id]
    assert wf.status == pb.WORKFLOW_STATUS_COMPENSATED, wf.error
    events = _events(cluster, survivor, wf_id)
    assert [e.step_id for e in events if e.type == "step_compensated"] == ["c", "b", "a"], (
        "once each, in order"
    )
    cluster.start_node(leader)
    cluster.wait_ready(nodes=[leader])
    wait_converged(cluster)


LONG = """
name: long-saga
steps:
  - {id: a, run: noop, compensate: {run: noop}}
  - {id: b, run: noop, needs: a, compensate: {run: noop}}
  - {id: nap, run: sleep, needs: b, with: {duration: 10m}}
"""


@pytest.mark.timeout(120)
def test_cancel_with_compensate_undoes_what_succeeded(cluster: Cluster) -> None:
    wf_id = submit(cluster.workflow_stub("n1"), LONG, {})

    def napping() -> bool:
        wf = (
            cluster.workflow_stub("n1")
            .GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10)
            .workflow
        )
        return steps_of(wf)["nap"].status == pb.STEP_STATUS_RUNNING

    cluster.wait_until(napping, 30, "the long step to run")
    args = ["--endpoints", cluster.endpoints, "workflow", "cancel", wf_id, "--compensate", "--reason", "oops"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    wf = wait_terminal(cluster, "n2", [wf_id], timeout=60)[wf_id]
    assert wf.status == pb.WORKFLOW_STATUS_COMPENSATED and wf.error == "oops"
    assert steps_of(wf)["nap"].status == pb.STEP_STATUS_CANCELLED
    assert [e.step_id for e in _events(cluster, "n2", wf_id) if e.type == "step_compensated"] == ["b", "a"]
    listed = CliRunner().invoke(
        app, ["--endpoints", cluster.endpoints, "workflow", "list", "--status", "compensated", "-o", "json"]
    )
    assert wf_id in {row["id"] for row in json.loads(listed.stdout)["workflows"]}
