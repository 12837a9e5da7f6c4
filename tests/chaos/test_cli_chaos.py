"""`beamctl chaos ...` and `beamctl dev ...` against live clusters (CliRunner in-process, real nodes)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner

from beamctl.main import app
from beamflowd.api.gen.beamflow.v1 import chaos_pb2 as cpb
from beamflowd.chaos import FORWARDED
from tests.chaos.support import DevCluster, Endpoints, Load, beamctl_cmd, definition
from tests.harness import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

runner = CliRunner()
NAP = "name: nap\nsteps:\n  - id: nap\n    run: sleep\n    with: {duration: 10m}\n"


def beamctl(endpoints: str, *args: str) -> Any:
    return runner.invoke(app, ["--endpoints", endpoints, "--timeout", "5", *args])


def ok(result: Any) -> Any:
    assert result.exit_code == 0, f"exit {result.exit_code}\nout:\n{result.stdout}\nerr:\n{result.stderr}"
    return result


def data_ids() -> tuple[str, ...]:
    return ("n1", "n2", "n3")


def status_json(endpoints: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(beamctl(endpoints, "-o", "json", "chaos", "status")).stdout)
    return data


def test_every_chaos_command(chaos_cluster: Cluster, ends: Endpoints, tmp_path: Path) -> None:
    e = chaos_cluster.endpoints
    text = ok(beamctl(e, "chaos", "status")).stdout
    assert "monkey: off" in text and "partition: none" in text

    # partition --isolate with auto-heal, status shows it with time left, heal clears it everywhere
    out = ok(beamctl(e, "chaos", "partition", "--isolate", "n3", "--for", "30s")).stdout
    assert "partitioned n3 | n1,n2" in out
    data = status_json(e)
    assert {n["node_id"]: n["partition"] for n in data["nodes"]} == dict.fromkeys(data_ids(), "n3 | n1,n2")
    assert all(int(n["heal_at_unix_ms"]) > 0 for n in data["nodes"])
    assert "heals in" in ok(beamctl(e, "chaos", "status")).stdout
    assert "healed (n1, n2, n3)" in ok(beamctl(e, "chaos", "heal")).stdout
    assert all(not n["blocked_node_ids"] for n in status_json(e)["nodes"])

    # partition --groups, no auto-heal
    out = ok(beamctl(e, "chaos", "partition", "--groups", "n1/n2,n3")).stdout
    assert "partitioned n1 | n2,n3" in out
    assert "until healed" in ok(beamctl(e, "chaos", "status")).stdout
    ok(beamctl(e, "chaos", "heal"))

    # usage errors: exit 2, one line, no traceback
    for args in (
        ["partition"],
        ["partition", "--isolate", "n9"],
        ["partition", "--groups", "n1/n1"],
        ["kill-actor"],
        ["monkey", "on", "--profile", "wild"],
        ["pause-node", "n1", "--for", "soon"],
    ):
        result = beamctl(e, "chaos", *args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr

    # kill-actor: one by id, then random; supervision restarts them
    load = Load(ends)
    wf_id = load.submit(NAP)
    assert wf_id
    ends.wait_until(
        lambda: beamctl(e, "chaos", "kill-actor", wf_id).stdout.startswith("crashed 1"),
        10,
        "the actor to exist and be crashed",
    )
    ends.wait_until(lambda: int(status_json(e)["actor_restarts"]) >= 1, 10, "the actor restart to be counted")
    assert "crashed" in ok(beamctl(e, "chaos", "kill-actor", "--random", "1")).stdout
    assert int(status_json(e)["injections"]["actor_crash"]) >= 1

    # monkey on/off: replicated, visible from every node
    out = ok(beamctl(e, "chaos", "monkey", "on", "--profile", "gentle", "--duration", "1m")).stdout
    assert "monkey on: gentle" in out and "every 10s" in out
    for node in chaos_cluster.nodes:  # each replica applies the setting (followers a moment later)

        def gentle(node: str = node) -> bool:
            monkey = status_json(chaos_cluster.grpc_addr(node))["monkey"]
            return bool(
                monkey["enabled"] and monkey["profile"] == "gentle" and int(monkey["until_unix_ms"]) > 0
            )

        chaos_cluster.wait_until(gentle, 5, f"{node} to apply the monkey setting")
    assert "monkey off" in ok(beamctl(e, "chaos", "monkey", "off")).stdout
    assert status_json(e)["monkey"]["enabled"] is False

    # pause durations are bounded on every path, forwarded ones included (a 0 ms pause could lose its SIGCONT)
    for duration_ms, forwarded in ((0, ""), (50, "1"), (50, "record"), (600_001, "1")):
        metadata = ((FORWARDED, forwarded),) if forwarded else ()
        with pytest.raises(grpc.RpcError) as info:
            ends.chaos("n3").PauseNode(
                cpb.PauseNodeRequest(node_id="n3", duration_ms=duration_ms), metadata=metadata, timeout=5
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (duration_ms, forwarded)
        assert "duration" in (info.value.details() or "")
    assert chaos_cluster.is_serving("n3", timeout=2)

    # pause-node: the node stops answering, status (from another node) lists it, then it is back
    ok(beamctl(e, "chaos", "pause-node", "n3", "--for", "2s"))
    others = ",".join(chaos_cluster.grpc_addr(n) for n in ("n1", "n2"))
    assert [p["node_id"] for p in status_json(others)["paused"]] == ["n3"]
    chaos_cluster.wait_until(lambda: chaos_cluster.is_serving("n3", timeout=0.5), 15, "n3 to resume")

    ok(beamctl(e, "workflow", "cancel", wf_id))
    acked = tmp_path / "acked.json"
    acked.write_text(json.dumps([wf_id]))

    # kill-node: the process dies as SIGKILL leaves it
    assert "killed n3" in ok(beamctl(e, "chaos", "kill-node", "n3")).stdout
    proc = chaos_cluster.nodes["n3"].proc
    assert proc is not None
    chaos_cluster.wait_until(lambda: proc.poll() is not None, 10, "n3 to exit")
    assert proc.returncode == -signal.SIGKILL

    # verify: PASS against the survivors (exit 0), JSON figures
    result = ok(
        beamctl(others, "chaos", "verify", "--acknowledged", str(acked), "--wait", "20s", "--nodes", "2")
    )
    assert "verdict: PASS" in result.stdout and "cancelled 1" in result.stdout
    data = json.loads(
        ok(beamctl(others, "-o", "json", "chaos", "verify", "--nodes", "2", "--wait", "5s")).stdout
    )
    assert data["ok"] and data["acknowledged"] >= 1
    missing = tmp_path / "missing.txt"
    missing.write_text("wf-does-not-exist\n")
    failed = beamctl(others, "chaos", "verify", "-f", str(missing), "--wait", "1s", "--nodes", "2")
    assert failed.exit_code == 1 and "verdict: FAIL" in failed.stdout


def test_chaos_is_refused_unless_enabled(cluster: Cluster) -> None:
    e = cluster.endpoints
    for args in (
        ["kill-node", "n1"],
        ["partition", "--isolate", "n1"],
        ["heal"],
        ["pause-node", "n1", "--for", "1s"],
        ["kill-actor", "--random", "1"],
        ["monkey", "on"],
        ["monkey", "off"],
    ):
        result = beamctl(e, "chaos", *args)
        assert result.exit_code == 6, (args, result.stdout, result.stderr)
        assert "chaos is disabled" in result.stderr and "--enable-chaos" in result.stderr
    assert all(node.running for node in cluster.nodes.values())
    assert "chaos disabled" in ok(beamctl(e, "chaos", "status")).stdout


def test_dev_up_status_down_and_restart(dev_cluster: DevCluster) -> None:
    e = dev_cluster.endpoints
    args = ["dev", "status", "--dir", str(dev_cluster.dir), "-o", "json"]
    status = json.loads(ok(runner.invoke(app, args)).stdout)
    assert status["supervisor_pid"] and all(n["serving"] for n in status["nodes"])
    assert status["endpoints"] == e
    # a second `dev up` on the same dir refuses while the supervisor runs (exit 5)
    again = runner.invoke(app, ["dev", "up", "-d", "--dir", str(dev_cluster.dir)])
    assert again.exit_code == 5, again.stderr
    # the supervisor restarts a node that dies
    ok(beamctl(e, "chaos", "kill-node", "n2"))
    dev_cluster.wait_until(lambda: dev_cluster.restarts("n2") >= 1, 15, "the supervisor to restart n2")
    dev_cluster.wait_until(
        lambda: dev_cluster.leader() and all(n.reachable for n in dev_cluster.cluster_status().nodes),
        30,
        "n2 back",
    )
    load = Load(dev_cluster)
    wf = load.submit(definition("after-restart", 2))
    assert wf
    assert dev_cluster.verify(load.acknowledged, wait_s=30).ok
    # down, then up again on the same dir: same data
    import subprocess

    from tests.harness import REPO_ROOT

    down = subprocess.run(
        beamctl_cmd("dev", "down", "--dir", str(dev_cluster.dir)),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert down.returncode == 0, down.stderr
    assert "not running" in ok(runner.invoke(app, ["dev", "status", "--dir", str(dev_cluster.dir)])).stdout
    dev_cluster.up()
    assert dev_cluster.get(wf) is not None
