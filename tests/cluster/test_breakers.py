"""Circuit breakers on a real 3-node cluster (thresholds from the nodes' TOML): failures open the owner's
breaker, attempts then fail fast with circuit_open and their retry waits until it half-opens, a failed
probe opens it again; `beamctl breakers list` shows every node's breakers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beamctl.main import app
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.cluster.test_engine import submit, wait_terminal
from tests.harness import Cluster

DOWN = """
name: down-api
steps:
  - id: call
    run: demo
    breaker: flaky-api
    retry: {max_attempts: 6, initial_interval: 10ms, max_interval: 20ms, jitter: none}
    with: {failure_rate: 1.0}
"""


@pytest.mark.timeout(120)
def test_failures_open_the_breaker_and_attempts_then_fail_fast_until_it_half_opens(tmp_path: Path) -> None:
    config = tmp_path / "breakers.toml"
    config.write_text("breaker_failures = 3\nbreaker_window = 60\nbreaker_open_for = 1.5\n")
    with Cluster(tmp_path, extra_args=["--config", str(config)]) as cluster:
        cluster.start()
        cluster.wait_ready()
        wf_id = submit(cluster.workflow_stub("n1"), DOWN, {})
        wf = wait_terminal(cluster, "n1", [wf_id], timeout=60)[wf_id]
        assert wf.status == pb.WORKFLOW_STATUS_FAILED
        events = (
            cluster.workflow_stub("n1")
            .GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10)
            .events
        )
        failures = [(e.attempt, e.message) for e in events if e.type == "step_failed"]
        classes = [m.split("]")[0].lstrip("[") for _, m in failures]
        # 3 real failures open it; the 4th attempt fails fast; the 5th is a probe after open_for (fails:
        # opens again); the 6th fails fast.
        assert classes == ["transient"] * 3 + ["circuit_open", "transient", "circuit_open"], failures
        starts = {e.attempt: e.time.ToMilliseconds() for e in events if e.type == "step_started"}
        assert starts[5] - starts[4] >= 1_000, "the retry after circuit_open waited for the half-open"

        result = CliRunner().invoke(app, ["--endpoints", cluster.endpoints, "-o", "json", "breakers", "list"])
        assert result.exit_code == 0, result.output
        nodes = {n["node_id"]: n for n in json.loads(result.stdout)["nodes"]}
        assert set(nodes) == {"n1", "n2", "n3"} and all(n["reachable"] for n in nodes.values())
        breaker = nodes[wf.owner]["breakers"][0]
        assert breaker["name"] == "flaky-api" and breaker["opened"] == 2 and breaker["rejected"] == 2, breaker
        others = [n for n in nodes if n != wf.owner]
        assert all(nodes[n]["breakers"] == [] for n in others), "breakers are per node"
        table = CliRunner().invoke(app, ["--endpoints", cluster.endpoints, "breakers", "list"])
        assert table.exit_code == 0 and "flaky-api" in table.output, table.output
