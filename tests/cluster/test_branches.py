"""Conditions and choices on a real 3-node cluster: each claim takes one branch, the rest is SKIPPED, the
join runs, and the decisions survive the owner's SIGKILL (committed state, re-read by the new owner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beamctl.main import app
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.cluster.test_engine import steps_of, submit, wait_converged, wait_terminal
from tests.harness import REPO_ROOT, Cluster

ROUTING = (REPO_ROOT / "deploy" / "workflows" / "claim-routing.yaml").read_text()
BRANCHES = ("auto-approve", "manual-review", "reject")


def _expected(risk: int) -> str:
    return "auto-approve" if risk < 30 else "manual-review" if risk < 70 else "reject"


def _check_claim(wf: pb.Workflow, risk: int, vip: bool) -> None:
    steps = steps_of(wf)
    taken = _expected(risk)
    assert wf.status == pb.WORKFLOW_STATUS_SUCCEEDED, wf.error
    assert json.loads(steps["route"].output_json) == {"branch": taken}
    for branch in BRANCHES:
        want = pb.STEP_STATUS_SUCCEEDED if branch == taken else pb.STEP_STATUS_SKIPPED
        assert steps[branch].status == want, (branch, steps[branch])
    review_ran = taken == "manual-review"
    assert steps["approve-after-review"].status == (
        pb.STEP_STATUS_SUCCEEDED if review_ran else pb.STEP_STATUS_SKIPPED
    )
    assert steps["notify"].status == pb.STEP_STATUS_SUCCEEDED, "needs_policy any: runs after the branch"
    assert json.loads(steps["notify"].output_json)["branch"] == taken
    assert steps["vip-call"].status == (pb.STEP_STATUS_SUCCEEDED if vip else pb.STEP_STATUS_SKIPPED)
    for step in wf.steps:
        if step.status == pb.STEP_STATUS_SKIPPED:
            assert step.attempts == 0 and not step.output_json, "a skipped step never ran"


@pytest.mark.timeout(180)
def test_each_claim_takes_one_branch_even_across_an_owner_kill(cluster: Cluster) -> None:
    stub = cluster.workflow_stub("n1")
    claims = {}
    for i in range(60):
        risk, vip = (i * 7) % 100, i % 3 == 0
        payload = {"claim_id": f"C-{i}", "risk": risk, "vip": vip}
        claims[submit(stub, ROUTING, payload, "claim-routing.yaml")] = (risk, vip)
    cluster.kill_node("n3")  # whatever n3 owned moves, mid-flight, with its committed decisions
    done = wait_terminal(cluster, "n1", list(claims), timeout=120)
    for wf_id, (risk, vip) in claims.items():
        _check_claim(done[wf_id], risk, vip)
    # The history says why each step was skipped.
    some = next(w for w, (risk, _) in claims.items() if _expected(risk) == "reject")
    events = (
        cluster.workflow_stub("n1").GetWorkflow(pb.GetWorkflowRequest(workflow_id=some), timeout=10).events
    )
    reasons = {e.step_id: e.message for e in events if e.type == "step_skipped"}
    assert reasons["auto-approve"] == "choice route took branch reject", reasons
    cluster.start_node("n3")
    cluster.wait_ready(nodes=["n3"])
    wait_converged(cluster)

    # `workflow get` shows the skipped steps (table and JSON).
    result = CliRunner().invoke(
        app, ["--endpoints", cluster.endpoints, "-o", "json", "workflow", "get", some]
    )
    assert result.exit_code == 0, result.output
    statuses = {s["id"]: s["status"] for s in json.loads(result.stdout)["steps"]}
    assert statuses["auto-approve"] == "skipped" and statuses["reject"] == "succeeded"
    table = CliRunner().invoke(app, ["--endpoints", cluster.endpoints, "workflow", "get", some])
    assert table.exit_code == 0 and "skipped" in table.output, table.output
    listed = CliRunner().invoke(app, ["--endpoints", cluster.endpoints, "-o", "json", "workflow", "list"])
    rows = {row["id"]: row for row in json.loads(listed.stdout)["workflows"]}
    # reject taken: auto-approve, manual-review, approve-after-review skipped (vip-call too for non-VIPs)
    assert rows[some]["steps_skipped"] >= 3 and rows[some]["status"] == "succeeded", rows[some]


def test_choice_without_default_is_refused_at_submit(cluster: Cluster, tmp_path: Path) -> None:
    bad = tmp_path / "claim.yaml"
    bad.write_text(ROUTING.replace("      default: reject\n", ""))
    result = CliRunner().invoke(
        app, ["--endpoints", cluster.endpoints, "workflow", "submit", str(bad), "--input", "{}"]
    )
    assert result.exit_code == 2, result.output
    assert "step 'route'" in result.output and "field 'with.default'" in result.output, result.output
