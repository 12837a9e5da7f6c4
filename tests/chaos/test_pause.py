"""pause-node on an owner past its lease: its workflows move, and its results after resuming are rejected."""

from __future__ import annotations

import time

import pytest

from beamflowd.api.gen.beamflow.v1 import chaos_pb2 as cpb
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.chaos.support import Endpoints, Load, definition
from tests.harness import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

#: Long enough that attempts are in flight when the pause starts and finish right after it ends.
SLOW = definition("slow-pause", 2, latency="2500ms", max_latency="3500ms")
PAUSE_S = 5.0


def test_paused_owner_loses_its_workflows_and_its_stale_results_are_rejected(
    chaos_cluster: Cluster, ends: Endpoints
) -> None:
    leader = ends.wait_until(ends.leader, 15, "a leader")
    victim = next(n for n in sorted(ends.addrs) if n != leader)
    load = Load(ends)
    for _ in range(24):
        assert load.submit(SLOW)
    owned = [w for w in load.acknowledged if ends.get(w).workflow.owner == victim]  # type: ignore[union-attr]
    assert owned, "placement put nothing on the victim"
    # Root steps start in the submit entry itself, so every attempt is in flight now.

    t_pause = time.time()
    request = cpb.PauseNodeRequest(node_id=victim, duration_ms=int(PAUSE_S * 1000))
    ends.chaos(leader).PauseNode(request, timeout=5)
    paused = ends.chaos(leader).GetChaosStatus(cpb.GetChaosStatusRequest(), timeout=5).paused
    assert [p.node_id for p in paused] == [victim]

    def moved() -> bool:
        for wf_id in owned:
            wf = ends.get(wf_id).workflow  # type: ignore[union-attr]
            if wf.status == pb.WORKFLOW_STATUS_RUNNING and (wf.owner == victim or wf.epoch < 2):
                return False
        return True

    ends.wait_until(moved, PAUSE_S + 3, f"the workflows of paused {victim} to move")
    chaos_cluster.wait_until(lambda: chaos_cluster.is_serving(victim, timeout=0.5), 20, f"{victim} to resume")

    verdict = ends.verify(load.acknowledged, wait_s=60)
    assert verdict.ok, verdict.summary()
    assert verdict.succeeded == len(load.acknowledged)
    # Results the victim reached after the pause started were fenced off by the new epoch.
    stale = 0
    for wf_id in owned:
        for e in ends.get(wf_id).events:  # type: ignore[union-attr]
            ts = e.time.seconds + e.time.nanos / 1e9
            if e.node == victim and ts > t_pause + 0.2:
                assert e.type not in ("step_succeeded", "step_failed", "completed"), (wf_id, e)
            stale += e.type == "stale_result_rejected" and e.node == victim
    assert stale >= 1, "the resumed node proposed no result: nothing was fenced"
    print(f"moved {len(owned)} workflows off {victim}; {stale} stale results rejected")
