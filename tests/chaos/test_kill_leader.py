"""Kill the leader five times in a row under load, with `beamctl dev up` restarting it: nothing is lost."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from tests.chaos.support import DevCluster, Load, beamctl_cmd, definition
from tests.harness import REPO_ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

FLOW = definition("kill-leader", 3, latency="5ms", max_latency="50ms")
KILLS = 5


def test_kill_the_leader_five_times_under_load(dev_cluster: DevCluster) -> None:
    dev = dev_cluster
    load = Load(dev)
    stop = threading.Event()

    def steady_load() -> None:
        for _ in range(5000):  # bounded
            if stop.is_set():
                return
            load.submit(FLOW, deadline_s=30)
            time.sleep(0.02)

    loader = threading.Thread(target=steady_load)
    loader.start()
    elections: list[float] = []
    try:
        for i in range(KILLS):
            leader = dev.wait_until(dev.leader, 20, "a leader")
            before = dev.restarts(leader)
            count = len(load.acknowledged)
            # every node accepts the call and forwards it to the target; the CLI is the user's path
            cmd = beamctl_cmd("--endpoints", dev.endpoints, "chaos", "kill-node", leader)
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=REPO_ROOT)
            assert result.returncode == 0, result.stderr
            t0 = time.monotonic()
            dev.wait_until(lambda leader=leader: dev.leader(exclude=leader), 15, f"a new leader ({i + 1})")
            elections.append(time.monotonic() - t0)
            dev.wait_until(
                lambda leader=leader, before=before: dev.restarts(leader) > before,
                15,
                f"the supervisor to restart {leader}",
            )
            # the cluster keeps acknowledging submissions, and the restarted node is back in
            dev.wait_until(lambda count=count: len(load.acknowledged) > count + 5, 30, "more acks")
            dev.wait_until(lambda: all(n.reachable for n in dev.cluster_status().nodes), 30, "all nodes back")
    finally:
        stop.set()
        loader.join(timeout=60)
    verdict = dev.verify(load.acknowledged, wait_s=90)
    assert verdict.ok, verdict.summary()
    assert verdict.succeeded == verdict.acknowledged >= 50
    print(
        f"{KILLS} leader kills; {verdict.acknowledged} workflows acknowledged, all succeeded; "
        f"new leader seen after {', '.join(f'{s:.2f}' for s in elections)} s; "
        f"reassigned {verdict.reassigned_workflows}"
    )
