"""for_each on a real 3-node cluster: 500 items at concurrency 20, every output in order; and a fan-out whose
owner is SIGKILLed midway (some instances committed) completes on the new owner, every output in order."""

from __future__ import annotations

import json
import time

import pytest

from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.cluster.test_engine import steps_of, submit, wait_converged, wait_terminal
from tests.harness import REPO_ROOT, Cluster

FAN_OUT = (REPO_ROOT / "deploy" / "workflows" / "fan-out.yaml").read_text()

SLOW = """
name: slow-fan-out
steps:
  - id: each
    run: demo
    for_each: "${{ input.items }}"
    concurrency: 5
    with: {min_latency: 100ms, max_latency: 100ms, output: "${{ item }}"}
"""


def _applied(cluster: Cluster) -> int:
    return max(n.applied_index for n in cluster.cluster_status().nodes if n.reachable)


@pytest.mark.timeout(240)
def test_500_items_at_concurrency_20_succeed_with_all_outputs_in_order(cluster: Cluster) -> None:
    orders = [f"A-{i}" for i in range(500)]
    before = _applied(cluster)
    started = time.monotonic()
    wf_id = submit(cluster.workflow_stub("n1"), FAN_OUT, {"orders": orders}, "fan-out.yaml")
    wf = wait_terminal(cluster, "n1", [wf_id], timeout=180)[wf_id]
    elapsed = time.monotonic() - started
    assert wf.status == pb.WORKFLOW_STATUS_SUCCEEDED, wf.error
    outputs = json.loads(steps_of(wf)["check"].output_json)
    assert outputs == [{"order": o, "position": i, "ok": True} for i, o in enumerate(orders)]
    assert json.loads(steps_of(wf)["report"].output_json) == {"checked": 500, "first": "A-0"}
    entries = _applied(cluster) - before
    print(f"\n500-item fan-out: {elapsed:.2f}s, {entries} Raft entries ({entries / 500:.2f} per item)")
    wait_converged(cluster)


@pytest.mark.timeout(180)
def test_a_fan_out_survives_its_owner_sigkill_midway(cluster: Cluster) -> None:
    items = list(range(60))  # 12 rounds of 100 ms at concurrency 5: ~1.2 s
    wf_id = submit(cluster.workflow_stub("n1"), SLOW, {"items": items})
    stub = cluster.workflow_stub("n1")
    owner = stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10).workflow.owner
    survivor = next(n for n in cluster.nodes if n != owner)

    def some_committed() -> bool:
        # An instance's commit moves the workflow's update time past the step's start.
        wf = cluster.workflow_stub(survivor).GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10)
        each = steps_of(wf.workflow)["each"]
        started = each.start_time.ToMilliseconds()
        return bool(started) and wf.workflow.update_time.ToMilliseconds() > started

    cluster.wait_until(some_committed, 30, "the first instances to commit")
    cluster.kill_node(owner)
    wf = wait_terminal(cluster, survivor, [wf_id], timeout=120)[wf_id]
    assert wf.status == pb.WORKFLOW_STATUS_SUCCEEDED, wf.error
    assert json.loads(steps_of(wf)["each"].output_json) == items
    cluster.start_node(owner)
    cluster.wait_ready(nodes=[owner])
    wait_converged(cluster)
