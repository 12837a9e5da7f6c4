"""The monkey, aggressive, with node kills and partitions, under a steady load on a supervised cluster.

Default: 500 workflows over ~40 s. ``BEAMFLOW_CHAOS_LONG=1`` runs 2,000 over ~4 minutes.
Every 10th workflow is designed to fail (a permanent error in its last step); the rest cannot fail except by
injected faults exhausting 25 attempts (0.55^25 per step: never in practice). So the success rate of the
chaos run must equal the no-chaos run of the same workload exactly.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import grpc
import pytest

from beamflowd.api.gen.beamflow.v1 import chaos_pb2 as cpb
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.chaos.support import DevCluster, Load, definition

LONG = os.environ.get("BEAMFLOW_CHAOS_LONG") == "1"
TOTAL = 2000 if LONG else 500
RATE = 8.0 if LONG else 12.5  # submissions per second: 500 in 40 s
# Restarted 3 s after a kill, past the 2 s lease: a killed node's workflows are reassigned, not just resumed.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900 if LONG else 300), pytest.mark.restart_delay("3s")]

OK_FLOW = definition("chaos-ok", 3, latency="0ms", max_latency="20ms", attempts=25)
DOOMED = definition("chaos-doomed", 3, latency="0ms", max_latency="20ms", attempts=25, doomed=True)


def workload(n: int) -> list[tuple[str, Any]]:
    return [(DOOMED if i % 10 == 9 else OK_FLOW, None) for i in range(n)]


def set_monkey(dev: DevCluster, request: cpb.SetMonkeyRequest) -> cpb.SetMonkeyResponse:
    """Retried across nodes: the monkey may just have killed the node we ask."""

    def attempt() -> cpb.SetMonkeyResponse | None:
        for node in dev.addrs:
            try:
                response: cpb.SetMonkeyResponse = dev.chaos(node).SetMonkey(request, timeout=5)
                return response
            except grpc.RpcError as err:
                if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
        return None

    result: cpb.SetMonkeyResponse = dev.wait_until(attempt, 30, "the monkey setting to commit")
    return result


def test_aggressive_monkey_with_node_kills_and_partitions_loses_nothing(dev_cluster: DevCluster) -> None:
    dev = dev_cluster
    dev.wait_until(dev.leader, 15, "a leader")

    # 1. The same workload without chaos: the reference success rate.
    baseline = Load(dev)
    baseline.run(workload(TOTAL), rate=200.0)
    reference = dev.verify(baseline.acknowledged, wait_s=60)
    assert reference.ok, reference.summary()
    assert reference.acknowledged == TOTAL

    # 2. The monkey, aggressive, with node kills and partitions, under a steady load.
    t0 = time.monotonic()
    on = set_monkey(
        dev,
        cpb.SetMonkeyRequest(
            enabled=True,
            profile="aggressive",
            kill_nodes=True,
            partitions=True,
            duration_ms=int((TOTAL / RATE + 120) * 1000),
        ),
    )
    assert on.monkey.enabled and on.monkey.profile == "aggressive"
    load = Load(dev)
    load.run(workload(TOTAL), rate=RATE)
    loaded_s = time.monotonic() - t0
    set_monkey(dev, cpb.SetMonkeyRequest(enabled=False))

    # 3. Every acknowledged workflow ends, once; replicas converge once the victims are back.
    verdict = dev.verify(load.acknowledged, wait_s=120)
    status = dev.wait_until(lambda: _chaos_status(dev), 30, "chaos status from every node")
    injections = {k: int(v) for k, v in sorted(status.injections.items())}
    figures = {
        "workflows_submitted": TOTAL,
        "acknowledged": verdict.acknowledged,
        "unacknowledged": load.unacknowledged,
        "succeeded": verdict.succeeded,
        "failed": verdict.failed,
        "failed_by_injected_faults": verdict.failed_by_injection,
        "success_rate": round(verdict.success_rate, 4),
        "reference_success_rate": round(reference.success_rate, 4),
        "injections": injections,
        "actor_restarts": int(status.actor_restarts),
        "workflows_reassigned": int(status.workflows_reassigned),
        "node_restarts_by_supervisor": {n: dev.restarts(n) for n in dev.addrs},
        "stale_results_rejected": verdict.stale_results_rejected,
        "load_seconds": round(loaded_s, 1),
        "total_seconds": round(time.monotonic() - t0, 1),
        "verdict": "PASS" if verdict.ok else "FAIL",
    }
    print("MONKEY-FIGURES " + json.dumps(figures, sort_keys=True))
    assert verdict.ok, verdict.summary()
    assert verdict.acknowledged + load.unacknowledged == TOTAL
    assert load.unacknowledged <= TOTAL // 100, f"{load.unacknowledged} submissions never acknowledged"
    assert verdict.running == 0
    assert verdict.success_rate == reference.success_rate, (
        f"success rate {verdict.success_rate} != reference {reference.success_rate}; failed workflows that"
        f" were not designed to fail: {_unexpected_failures(dev, load.acknowledged)}"
    )
    # The monkey really did things of every kind.
    for kind in ("actor_crash", "step_error", "step_timeout", "step_latency"):
        assert injections.get(kind, 0) > 0, injections
    assert injections.get("node_kill", 0) + injections.get("partition", 0) >= 1, injections


def _chaos_status(dev: DevCluster) -> cpb.GetChaosStatusResponse | None:
    for node in dev.addrs:
        try:
            status: cpb.GetChaosStatusResponse = dev.chaos(node).GetChaosStatus(
                cpb.GetChaosStatusRequest(), timeout=5
            )
        except grpc.RpcError:
            continue
        if all(n.reachable for n in status.nodes):
            return status
    return None


def _unexpected_failures(dev: DevCluster, acknowledged: list[str]) -> list[str]:
    """Each failed `chaos-ok` workflow with its error and last events: what a rate mismatch needs."""
    found = []
    for wf_id in acknowledged:
        response = dev.get(wf_id)
        if response is None:
            continue
        wf = response.workflow
        if wf.name == "chaos-ok" and wf.status != pb.WORKFLOW_STATUS_SUCCEEDED:
            events = [f"{e.type} {e.step_id}#{e.attempt} {e.message[:80]}" for e in response.events[-6:]]
            found.append(f"{wf_id} ({pb.WorkflowStatus.Name(wf.status)}: {wf.error[:160]}) events {events}")
    return found[:10]
