"""The aggressive monkey (node kills, partitions) over the language features: choices, conditions and joins,
waits fed by signals sent during the chaos, and fan-outs. The history checker must PASS (a skipped step never
ran, a signal is delivered once, each workflow ends once) and every workflow must end as designed.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import grpc
import pytest

from beamflowd.api.gen.beamflow.v1 import chaos_pb2 as cpb
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.chaos.support import DevCluster, Load
from tests.chaos.test_monkey import _chaos_status, set_monkey

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420), pytest.mark.restart_delay("3s")]
TOTAL = 150
RATE = 10.0  # submissions per second: 15 s of load
#: After the load, how long the monkey may still take to kill or isolate a node.
NODE_ACTION_WAIT_S = 90.0
RETRY = "retry: {max_attempts: 25, initial_interval: 10ms, max_interval: 200ms}"

ROUTING = f"""
name: chaos-routing
{RETRY}
steps:
  - {{id: score, run: demo, with: {{max_latency: 10ms, output: {{risk: "${{{{ input.risk }}}}"}}}}}}
  - id: route
    run: choice
    needs: [score]
    with:
      cases: [{{when: "${{{{ steps.score.risk < `50` }}}}", next: approve}}]
      default: reject
  - {{id: approve, run: demo, needs: [route], with: {{max_latency: 10ms}}}}
  - {{id: reject, run: demo, needs: [route], with: {{max_latency: 10ms}}}}
  - {{id: notify, run: demo, needs: [approve, reject], needs_policy: any, with: {{max_latency: 10ms}}}}
  - {{id: vip, run: noop, needs: [notify], when: "${{{{ input.vip }}}}"}}
"""

APPROVAL = f"""
name: chaos-approval
{RETRY}
steps:
  - {{id: prepare, run: demo, with: {{max_latency: 20ms}}}}
  - {{id: approve, run: wait, needs: [prepare], with: {{signal: approval, timeout: 5m}}}}
  - {{id: done, run: demo, needs: [approve], with: {{output: "${{{{ steps.approve.ok }}}}"}}}}
"""

FAN_OUT = f"""
name: chaos-fan-out
{RETRY}
steps:
  - id: each
    run: demo
    for_each: "${{{{ input.items }}}}"
    concurrency: 4
    with: {{max_latency: 10ms, output: "${{{{ item }}}}"}}
"""


class SignallingLoad(Load):
    """Submits, and signals each approval workflow right after it is acknowledged (buffered or delivered),
    with one request id retried across nodes until a node answers."""

    def __init__(self, dev: DevCluster) -> None:
        super().__init__(dev)
        self.signals_unacknowledged = 0
        self.signal_lock = threading.Lock()

    def submit(self, text: str, deadline_s: float = 60.0, payload: Any = None) -> str | None:
        wf_id = super().submit(text, deadline_s, payload)
        if wf_id is not None and text == APPROVAL:
            self.signal(wf_id)
        return wf_id

    def signal(self, wf_id: str) -> None:
        request = pb.SignalWorkflowRequest(
            workflow_id=wf_id, signal="approval", payload_json='{"ok": true}', request_id=uuid.uuid4().hex
        )
        deadline = time.monotonic() + 60
        i = 0
        while time.monotonic() < deadline:
            node = self.nodes[i % len(self.nodes)]
            i += 1
            try:
                self.ends.workflows(node).SignalWorkflow(request, timeout=5)
                return
            except grpc.RpcError as err:
                if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                if i % len(self.nodes) == 0:
                    time.sleep(0.2)
        with self.signal_lock:
            self.signals_unacknowledged += 1


def _node_actions(dev: DevCluster) -> int:
    status = _chaos_status(dev)
    if status is None:
        return 0
    return int(status.injections.get("node_kill", 0)) + int(status.injections.get("partition", 0))


def workload(n: int) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            items.append((ROUTING, {"risk": (i * 37) % 100, "vip": i % 2 == 0}))
        elif kind == 1:
            items.append((APPROVAL, None))
        else:
            items.append((FAN_OUT, {"items": list(range(i % 7 + 1))}))
    return items


def test_monkey_over_branches_signals_and_fan_outs_passes_the_checker(dev_cluster: DevCluster) -> None:
    dev = dev_cluster
    dev.wait_until(dev.leader, 15, "a leader")
    t0 = time.monotonic()
    on = cpb.SetMonkeyRequest(
        enabled=True,
        profile="aggressive",
        kill_nodes=True,
        partitions=True,
        duration_ms=int((TOTAL / RATE + NODE_ACTION_WAIT_S + 90) * 1000),
    )
    assert set_monkey(dev, on).monkey.enabled
    load = SignallingLoad(dev)
    load.run(workload(TOTAL), rate=RATE)
    # The monkey acts on nodes only when the whole cluster answers and its leader is settled; on a loaded
    # machine the load can end first. Keep it on (the workflows still run) until it has acted, bounded.
    dev.wait_until(lambda: _node_actions(dev) >= 1, NODE_ACTION_WAIT_S, "a node kill or partition")
    set_monkey(dev, cpb.SetMonkeyRequest(enabled=False))
    verdict = dev.verify(load.acknowledged, wait_s=150)
    status = dev.wait_until(lambda: _chaos_status(dev), 30, "chaos status from every node")
    injections = {k: int(v) for k, v in sorted(status.injections.items())}
    by_name: dict[str, list[pb.Workflow]] = {}
    for wf_id in load.acknowledged:
        response = dev.get(wf_id)
        assert response is not None, wf_id
        by_name.setdefault(response.workflow.name, []).append(response.workflow)
    figures = {
        "acknowledged": verdict.acknowledged,
        "unacknowledged": load.unacknowledged,
        "signals_unacknowledged": load.signals_unacknowledged,
        "succeeded": verdict.succeeded,
        "failed": verdict.failed,
        "by_kind": {name: len(wfs) for name, wfs in sorted(by_name.items())},
        "injections": injections,
        "workflows_reassigned": int(status.workflows_reassigned),
        "seconds": round(time.monotonic() - t0, 1),
        "verdict": "PASS" if verdict.ok else "FAIL",
    }
    print("LANGUAGE-MONKEY-FIGURES " + json.dumps(figures, sort_keys=True))
    assert verdict.ok, verdict.summary()
    assert verdict.running == 0 and load.signals_unacknowledged == 0
    assert verdict.succeeded == verdict.acknowledged, (
        "25 attempts per step: injected faults cannot exhaust them"
    )
    for wf in by_name.get("chaos-routing", []):
        steps = {s.id: s for s in wf.steps}
        taken = json.loads(steps["route"].output_json)["branch"]
        other = "reject" if taken == "approve" else "approve"
        assert (
            steps[taken].status == pb.STEP_STATUS_SUCCEEDED and steps[other].status == pb.STEP_STATUS_SKIPPED
        )
        assert steps[other].attempts == 0 and steps["notify"].status == pb.STEP_STATUS_SUCCEEDED
    for wf in by_name.get("chaos-fan-out", []):
        each = next(s for s in wf.steps if s.id == "each")
        assert json.loads(each.output_json) == json.loads(wf.input_json)["items"], "every output, in order"
    assert injections.get("node_kill", 0) + injections.get("partition", 0) >= 1, injections
