"""Partition the leader into a minority: the majority elects, keeps working; the minority cannot write."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest

from beamflowd.api.gen.beamflow.v1 import chaos_pb2 as cpb
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.chaos.support import Endpoints, Load, definition
from tests.harness import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

QUICK = definition("quick", 3, latency="5ms", max_latency="30ms")
SLOW = definition("slow", 2, latency="2500ms")
LEASE_S = 2.0


def isolate_and_elect(ends: Endpoints, leader: str, via: str) -> float:
    """Isolate ``leader`` (call made on ``via``); return seconds until the majority has another leader."""
    others = [n for n in ends.addrs if n != leader]
    t0 = time.monotonic()
    response = ends.chaos(via).Partition(cpb.PartitionRequest(isolate=leader), timeout=5)
    assert sorted(response.applied_on) == sorted(ends.addrs), response
    new = ends.wait_until(lambda: ends.leader(others), 10, "the majority to elect a leader")
    assert new != leader
    return time.monotonic() - t0


def test_isolated_leader_loses_writes_majority_keeps_working(chaos_cluster: Cluster, ends: Endpoints) -> None:
    leader = ends.wait_until(ends.leader, 15, "a leader")
    others = [n for n in ends.addrs if n != leader]
    load = Load(ends)
    # Slow workflows in flight on every node (some owned by the leader) when the cut happens.
    for _ in range(9):
        assert load.submit(SLOW)
    before = list(load.acknowledged)

    t_cut = time.time()
    elected_s = isolate_and_elect(ends, leader, via=others[0])
    assert elected_s < 5.0, f"election took {elected_s:.2f}s"

    # A write sent to the isolated node is never acknowledged while it is cut off.
    outcome: dict[str, Any] = {}

    def write_to_isolated() -> None:
        request = pb.SubmitWorkflowRequest(
            definition=QUICK, definition_source="q.yaml", request_id="isolated-1"
        )
        try:
            outcome["ok"] = ends.workflows(leader).SubmitWorkflow(request, timeout=15)
            outcome["at"] = time.time()
        except grpc.RpcError as err:
            outcome["code"] = err.code()

    writer = threading.Thread(target=write_to_isolated)
    writer.start()

    # The majority keeps completing workflows.
    majority = Load(ends, nodes=others)
    for _ in range(20):
        assert majority.submit(QUICK, deadline_s=20)

    def finished() -> bool:
        for wf_id in majority.acknowledged:
            request = pb.GetWorkflowRequest(workflow_id=wf_id)
            wf = ends.workflows(others[0]).GetWorkflow(request, timeout=5).workflow
            if wf.status != pb.WORKFLOW_STATUS_SUCCEEDED:
                return False
        return True

    ends.wait_until(finished, 30, "the majority to complete 20 workflows while the leader is isolated")
    # The isolated node fenced itself: no new step attempts after a lease without quorum.
    ends.wait_until(
        lambda: "fencing myself" in chaos_cluster.log_tail(leader, 200), 10, f"{leader} to fence itself"
    )
    writer.join(timeout=30)
    assert not writer.is_alive()
    t_heal = time.time()
    assert "ok" not in outcome, f"a write to the isolated node was acknowledged: {outcome}"
    assert outcome["code"] in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), outcome

    healed = ends.chaos(leader).Heal(cpb.HealRequest(), timeout=5)
    assert sorted(healed.applied_on) == sorted(ends.addrs)

    verdict = ends.verify(before + majority.acknowledged, wait_s=60)
    assert verdict.ok, verdict.summary()
    assert verdict.succeeded == len(before) + 20
    # Nothing the isolated node did between fencing and heal was committed.
    for wf_id in before + majority.acknowledged:
        response = ends.get(wf_id)
        assert response is not None
        for e in response.events:
            ts = e.time.seconds + e.time.nanos / 1e9
            if e.node == leader and e.type == "step_started":
                assert not (t_cut + LEASE_S + 1.0 < ts < t_heal), f"{wf_id}: {leader} started a step isolated"
    assert verdict.digests_equal, verdict.digest_detail
    print(
        f"election after isolating the leader: {elected_s:.2f}s; "
        f"workflows moved off it: {verdict.reassigned_workflows}"
    )
