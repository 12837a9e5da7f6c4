"""Signals on a real 3-node cluster: refusals that change nothing, buffering, the durable timeout, and a
signal sent while the owner is SIGKILLed, delivered exactly once after failover."""

from __future__ import annotations

import json
import threading
import time

import grpc
import pytest
from typer.testing import CliRunner

from beamctl.main import app
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from beamflowd.core.signals import SIGNAL_PAYLOAD_BYTES_MAX, SIGNALS_BUFFERED_MAX
from tests.cluster.test_engine import steps_of, submit, wait_converged, wait_terminal
from tests.harness import REPO_ROOT, Cluster

APPROVAL = (REPO_ROOT / "deploy" / "workflows" / "approval.yaml").read_text()

LATE = """
name: late-wait
steps:
  - {id: nap, run: sleep, with: {duration: 2s}}
  - {id: hook, run: wait, needs: [nap], with: {signal: hook}}
"""

SHORT = """
name: short-wait
steps:
  - {id: hook, run: wait, with: {signal: hook, timeout: 1s}}
  - {id: never, run: noop, needs: [hook]}
"""


def _get(cluster: Cluster, node: str, wf_id: str) -> pb.GetWorkflowResponse:
    response: pb.GetWorkflowResponse = cluster.workflow_stub(node).GetWorkflow(
        pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10
    )
    return response


def _wait_waiting(cluster: Cluster, node: str, wf_id: str) -> pb.Workflow:
    def waiting() -> pb.Workflow | None:
        wf = _get(cluster, node, wf_id).workflow
        return wf if any(s.waiting_for for s in wf.steps) else None

    found: pb.Workflow = cluster.wait_until(waiting, 30, f"{wf_id} to wait for a signal")
    return found


def _signal(
    cluster: Cluster, node: str, wf_id: str, name: str, payload: str, rid: str = ""
) -> pb.SignalWorkflowResponse:
    request = pb.SignalWorkflowRequest(workflow_id=wf_id, signal=name, payload_json=payload, request_id=rid)
    response: pb.SignalWorkflowResponse = cluster.workflow_stub(node).SignalWorkflow(request, timeout=10)
    return response


def _code(cluster: Cluster, node: str, wf_id: str, name: str, payload: str) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        _signal(cluster, node, wf_id, name, payload)
    return info.value.code(), info.value.details() or ""


@pytest.mark.timeout(240)
def test_signal_during_owner_sigkill_is_delivered_exactly_once(cluster: Cluster) -> None:
    stub = cluster.workflow_stub("n1")
    wf_id = submit(stub, APPROVAL, {"request": "R-1", "amount": 250}, "approval.yaml")
    wf = _wait_waiting(cluster, "n1", wf_id)
    assert steps_of(wf)["approve"].next_attempt_time.ToMilliseconds() > 0, "the deadline is committed"
    owner = wf.owner
    survivor = next(n for n in cluster.nodes if n != owner)
    events_before = len(_get(cluster, survivor, wf_id).events)

    # Refusals change nothing.
    code, details = _code(cluster, survivor, wf_id, "approval", '{"approved": "yes"}')
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "$.approved" in details, details
    code, details = _code(cluster, survivor, wf_id, "approval", '"' + "x" * SIGNAL_PAYLOAD_BYTES_MAX + '"')
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
    code, details = _code(cluster, survivor, wf_id, "nobody-waits", "{}")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "nobody-waits" in details, details
    code, _ = _code(cluster, survivor, wf_id, "approval", "{not json")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = _code(cluster, survivor, "wf-nope", "approval", "{}")
    assert code == grpc.StatusCode.NOT_FOUND
    assert len(_get(cluster, survivor, wf_id).events) == events_before
    assert _get(cluster, survivor, wf_id).workflow.status == pb.WORKFLOW_STATUS_RUNNING

    # The owner dies while the signal is being sent (through the CLI, which fails over and retries with the
    # same request id); the signal must land once.
    payload = {"approved": True, "by": "ada"}
    args = ["--endpoints", cluster.endpoints, "-o", "json", "workflow", "signal", wf_id, "approval"]
    args += ["--data", json.dumps(payload), "--request-id", "sig-1"]
    killer = threading.Thread(target=cluster.kill_node, args=(owner,))
    killer.start()
    result = CliRunner().invoke(app, args)
    killer.join(timeout=60)
    assert result.exit_code == 0, result.output
    # Retried by hand, too: a duplicate, not a second delivery.
    again = _signal(cluster, survivor, wf_id, "approval", json.dumps(payload), "sig-1")
    assert again.duplicate is True and again.delivered is False

    done = wait_terminal(cluster, survivor, [wf_id], timeout=60)[wf_id]
    assert done.status == pb.WORKFLOW_STATUS_SUCCEEDED, done.error
    steps = steps_of(done)
    assert json.loads(steps["approve"].output_json) == payload
    assert json.loads(steps["execute"].output_json) == {"done": "R-1", "approved_by": "ada"}
    assert steps["decline"].status == pb.STEP_STATUS_SKIPPED
    events = _get(cluster, survivor, wf_id).events
    assert sum(1 for e in events if e.type == "signal_received") == 1, [e.type for e in events]

    # An ended workflow refuses signals (CLI exit 5: conflict).
    ended = CliRunner().invoke(
        app, ["--endpoints", cluster.endpoints, "workflow", "signal", wf_id, "approval", "--data", "{}"]
    )
    assert ended.exit_code == 5, ended.output
    cluster.start_node(owner)
    cluster.wait_ready(nodes=[owner])
    wait_converged(cluster)


@pytest.mark.timeout(120)
def test_early_signals_are_buffered_bounded_and_a_wait_times_out(cluster: Cluster) -> None:
    stub = cluster.workflow_stub("n2")
    late = submit(stub, LATE, {})
    first = _signal(cluster, "n2", late, "hook", '{"n": 1}')
    assert first.delivered is False and first.duplicate is False
    for i in range(2, SIGNALS_BUFFERED_MAX + 1):
        _signal(cluster, "n3", late, "hook", json.dumps({"n": i}))
    code, details = _code(cluster, "n1", late, "hook", "{}")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "16" in details, details
    wf = _get(cluster, "n1", late).workflow
    assert wf.signals_buffered == SIGNALS_BUFFERED_MAX
    # `workflow get` shows what it waits for once the wait starts; before, it shows the buffer.
    short = submit(stub, SHORT, {})
    started = time.monotonic()
    done = wait_terminal(cluster, "n1", [late, short], timeout=60)
    assert done[late].status == pb.WORKFLOW_STATUS_SUCCEEDED
    assert json.loads(steps_of(done[late])["hook"].output_json) == {"n": 1}, "the oldest buffered signal"
    timed_out = done[short]
    assert timed_out.status == pb.WORKFLOW_STATUS_FAILED
    hook = steps_of(timed_out)["hook"]
    assert hook.error_class == "timeout" and "hook" in hook.error
    assert time.monotonic() - started >= 0.9
    assert steps_of(timed_out)["never"].status == pb.STEP_STATUS_CANCELLED


def test_workflow_get_and_list_show_what_a_workflow_waits_for(cluster: Cluster) -> None:
    wf_id = submit(cluster.workflow_stub("n1"), APPROVAL, {"request": "R-2", "amount": 1}, "approval.yaml")
    _wait_waiting(cluster, "n1", wf_id)
    table = CliRunner().invoke(app, ["--endpoints", cluster.endpoints, "workflow", "get", wf_id])
    assert table.exit_code == 0 and "waiting for signal approval" in table.output, table.output
    data = CliRunner().invoke(app, ["--endpoints", cluster.endpoints, "-o", "json", "workflow", "get", wf_id])
    assert json.loads(data.stdout)["waiting_for"] == ["approval"]
    listed = CliRunner().invoke(app, ["--endpoints", cluster.endpoints, "-o", "json", "workflow", "list"])
    rows = {row["id"]: row for row in json.loads(listed.stdout)["workflows"]}
    assert rows[wf_id]["waiting_for"] == ["approval"]
