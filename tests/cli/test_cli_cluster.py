"""beamctl against a real 3-node cluster (CliRunner in-process, real beamflowd processes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from beamctl.main import app
from tests.harness import REPO_ROOT, Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]

HELLO = REPO_ROOT / "deploy" / "workflows" / "hello.yaml"
LONG_SLEEP = "name: long-sleep\nsteps:\n  - id: nap\n    run: sleep\n    with:\n      duration: 10m\n"
UNKNOWN_KEY = "name: typo\nsteps:\n  - id: greet\n    run: noop\n    retires: 3\n"

runner = CliRunner()


def beamctl(cluster: Cluster, *args: str) -> Any:
    return runner.invoke(app, ["--endpoints", cluster.endpoints, "--timeout", "5", *args])


def ok(result: Any) -> Any:
    assert result.exit_code == 0, (
        f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def submit_json(cluster: Cluster, path: Path, *extra: str) -> str:
    result = ok(beamctl(cluster, "-o", "json", "workflow", "submit", str(path), *extra))
    data = json.loads(result.stdout)
    assert data["existing"] is False
    assert data["owner"] in cluster.nodes
    return str(data["workflow_id"])


def get_json(cluster: Cluster, workflow_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        ok(beamctl(cluster, "workflow", "get", workflow_id, "-o", "json")).stdout
    )
    return data


def test_submit_wait_hello_succeeds_and_get_shows_it(cluster: Cluster) -> None:
    result = ok(
        beamctl(
            cluster, "submit", str(HELLO), "--input", '{"name": "Ada"}', "--wait", "--timeout-wait", "60s"
        )
    )
    assert "succeeded" in result.stdout
    assert "step_succeeded" in result.stderr  # progress goes to stderr in table mode

    workflow_id = json.loads(
        ok(beamctl(cluster, "-o", "json", "workflow", "list", "--name", "hello")).stdout
    )["workflows"][0]["id"]
    data = get_json(cluster, workflow_id)
    assert data["id"] == workflow_id
    assert data["name"] == "hello"
    assert data["status"] == "succeeded"
    assert data["owner"] in cluster.nodes
    assert isinstance(data["epoch"], int)
    assert data["create_time"].endswith("Z") and data["update_time"].endswith("Z")
    assert data["input"] == {"name": "Ada"}
    assert data["error"] == ""
    steps = {step["id"]: step for step in data["steps"]}
    assert set(steps) == {"greet", "pause", "done"}
    assert all(step["status"] == "succeeded" and step["attempts"] >= 1 for step in steps.values())
    assert steps["greet"]["kind"] == "demo"
    assert "Ada" in json.dumps(steps["greet"]["output"])
    # -o yaml carries the same document as -o json
    as_yaml = yaml.safe_load(ok(beamctl(cluster, "workflow", "get", workflow_id, "-o", "yaml")).stdout)
    assert as_yaml == data
    assert steps["pause"]["needs"] == ["greet"]
    for step in steps.values():
        for key in ("error", "error_class", "start_time", "end_time", "next_attempt_time"):
            assert key in step
    assert data["events"] and data["events"][0]["type"] == "submitted"
    assert data["events"][-1]["type"] == "completed"


def test_submit_wait_json_is_one_object(cluster: Cluster) -> None:
    result = ok(
        beamctl(
            cluster,
            "-o",
            "json",
            "submit",
            str(HELLO),
            "--input",
            '{"name":"Ada"}',
            "--wait",
            "--timeout-wait",
            "60s",
        )
    )
    data = json.loads(result.stdout)
    assert data["status"] == "succeeded"


def test_list_filters_by_status(cluster: Cluster) -> None:
    done_id = submit_json(cluster, HELLO, "--input", '{"name": "Ada"}')
    ok(beamctl(cluster, "workflow", "watch", done_id, "--timeout-wait", "60s"))

    succeeded = json.loads(
        ok(beamctl(cluster, "workflow", "list", "--status", "succeeded", "-o", "json")).stdout
    )
    assert done_id in [w["id"] for w in succeeded["workflows"]]
    assert all(w["status"] == "succeeded" for w in succeeded["workflows"])
    running = json.loads(ok(beamctl(cluster, "workflow", "list", "--status", "running", "-o", "json")).stdout)
    assert done_id not in [w["id"] for w in running["workflows"]]
    table = ok(beamctl(cluster, "workflow", "list"))
    assert done_id in table.stdout


def test_watch_streams_until_done(cluster: Cluster) -> None:
    workflow_id = submit_json(cluster, HELLO, "--input", '{"name": "Ada"}')
    result = ok(beamctl(cluster, "workflow", "watch", workflow_id, "-o", "json", "--timeout-wait", "60s"))
    events = [json.loads(line) for line in result.stdout.splitlines()]
    seqs = [event["seq"] for event in events]
    assert seqs == sorted(set(seqs)), "events repeated or out of order"
    assert events[0]["type"] == "submitted"
    assert events[-1]["status"] == "succeeded"
    assert events[-1]["type"] == "completed"
    table = ok(beamctl(cluster, "workflow", "watch", workflow_id, "--timeout-wait", "30s"))
    assert f"Workflow {workflow_id} succeeded" in table.stdout


def test_cancel_long_sleep(cluster: Cluster, tmp_path: Path) -> None:
    path = tmp_path / "long-sleep.yaml"
    path.write_text(LONG_SLEEP, encoding="utf-8")
    workflow_id = submit_json(cluster, path)

    cluster.wait_until(
        lambda: get_json(cluster, workflow_id)["steps"][0]["status"] != "pending",
        30,
        "the sleep step to start",
    )
    ok(beamctl(cluster, "workflow", "cancel", workflow_id, "--reason", "test"))
    data = get_json(cluster, workflow_id)
    assert data["status"] == "cancelled"
    assert data["steps"][0]["status"] != "succeeded"
    watched = beamctl(cluster, "workflow", "watch", workflow_id, "--timeout-wait", "30s")
    assert watched.exit_code == 1, watched.output

    again = ok(beamctl(cluster, "workflow", "cancel", workflow_id, "-o", "json"))
    assert json.loads(again.stdout)["cancelled"] is False


def test_submit_unknown_key_exits_2_with_server_message(cluster: Cluster, tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(UNKNOWN_KEY, encoding="utf-8")
    result = beamctl(cluster, "workflow", "submit", str(path))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("beamctl: error: ")
    assert str(path) in lines[0] and "greet" in lines[0] and "retires" in lines[0]


def test_get_unknown_exits_3(cluster: Cluster) -> None:
    result = beamctl(cluster, "workflow", "get", "no-such-workflow")
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("beamctl: error: ") and "no-such-workflow" in result.stderr


def test_cluster_status(cluster: Cluster) -> None:
    data = json.loads(ok(beamctl(cluster, "cluster", "status", "-o", "json")).stdout)
    assert data["leader_id"] in cluster.nodes
    nodes = data["nodes"]
    assert sorted(node["id"] for node in nodes) == ["n1", "n2", "n3"]
    fields = {
        "id",
        "raft_address",
        "grpc_address",
        "role",
        "term",
        "commit_index",
        "applied_index",
        "reachable",
        "liveness",
        "digest",
        "owned_workflows",
        "error",
    }
    for node in nodes:
        assert fields <= set(node), node
        assert node["reachable"] is True
        assert node["grpc_address"] == cluster.grpc_addr(node["id"])
        assert node["role"] in {"leader", "follower", "candidate", "unknown"}
    assert [node["role"] for node in nodes].count("leader") == 1
    table = ok(beamctl(cluster, "cluster", "status"))
    assert f"Leader: {data['leader_id']}" in table.stdout
    assert data["dead_letters"] == {"pending": 0, "retrying": 0, "overflow": 0}
    assert "Dead letters: 0 pending, 0 retrying" in table.stdout
    assert "queue full" not in table.stdout


def test_fail_over_when_first_endpoint_is_down(cluster: Cluster) -> None:
    cluster.kill_node("n1")
    result = ok(
        beamctl(
            cluster,
            "-o",
            "json",
            "submit",
            str(HELLO),
            "--input",
            '{"name":"Ada"}',
            "--wait",
            "--timeout-wait",
            "60s",
        )
    )
    assert json.loads(result.stdout)["status"] == "succeeded"
