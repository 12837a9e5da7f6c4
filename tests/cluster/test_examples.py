"""Every example under deploy/workflows/ runs on a real 3-node cluster and ends the way its comments say.

The examples are what a new user copies first; a change that breaks one should fail here, not in their
hands. Workflows that wait for a person get their signal once the wait has started.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.cluster.test_engine import submit, wait_terminal
from tests.harness import REPO_ROOT, Cluster

EXAMPLES = REPO_ROOT / "deploy" / "workflows"
SUCCEEDED, COMPENSATED = "WORKFLOW_STATUS_SUCCEEDED", "WORKFLOW_STATUS_COMPENSATED"
APPROVED = {"approved": True, "by": "ada"}

#: file -> (input, signal to send once a step waits for it (name, payload) or None, statuses it may end in).
CASES: dict[str, tuple[dict[str, object], tuple[str, dict[str, object]] | None, set[str]]] = {
    "approval.yaml": ({"request": "R-1", "amount": 250}, ("approval", APPROVED), {SUCCEEDED}),
    "claim-routing.yaml": ({"claim_id": "C-7", "risk": 20, "vip": True}, None, {SUCCEEDED}),
    "diamond.yaml": ({"order_id": "A-17", "amount": 42}, None, {SUCCEEDED}),
    "fan-out.yaml": ({"orders": ["A-1", "A-2", "A-3"]}, None, {SUCCEEDED}),
    "flaky.yaml": ({}, None, {SUCCEEDED}),  # 0.3^8 odds of exhausting its retries
    "hello.yaml": ({"name": "Ada"}, None, {SUCCEEDED}),
    # Routed by a random score: approved at once, after a review, or rejected and its fee refunded.
    "insurance-claim.yaml": (
        {"claim_id": "C-1", "amount": 1800},
        ("review", APPROVED),
        {SUCCEEDED, COMPENSATED},
    ),
    "saga.yaml": ({"order": "A-1", "fail": True}, None, {COMPENSATED}),
    "three-step-demo.yaml": ({}, None, {SUCCEEDED}),
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("examples")) as started:
        started.start()
        started.wait_ready(timeout=30)
        yield started


def test_every_example_has_a_case() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(CASES)


@pytest.mark.timeout(240)
def test_every_example_runs_to_its_documented_end(cluster: Cluster) -> None:
    stub = cluster.workflow_stub("n1")
    ids = {
        name: submit(stub, (EXAMPLES / name).read_text(), payload, source=name)
        for name, (payload, _, _) in CASES.items()
    }
    signals = {name: case[1] for name, case in CASES.items() if case[1] is not None}

    def signalled_all_that_wait() -> bool:
        for name, (signal, payload) in list(signals.items()):
            wf = stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=ids[name]), timeout=10).workflow
            if wf.status != pb.WORKFLOW_STATUS_RUNNING:
                del signals[name]  # routed past the wait (insurance-claim's score), or already ended
            elif any(step.waiting_for == signal for step in wf.steps):
                stub.SignalWorkflow(
                    pb.SignalWorkflowRequest(
                        workflow_id=ids[name],
                        signal=signal,
                        payload_json=json.dumps(payload),
                        request_id=f"test-{name}",
                    ),
                    timeout=10,
                )
                del signals[name]
        return not signals

    cluster.wait_until(signalled_all_that_wait, 120, "the waiting examples to be signalled")
    finished = wait_terminal(cluster, "n1", list(ids.values()), timeout=180)
    ended = {name: pb.WorkflowStatus.Name(finished[wf_id].status) for name, wf_id in ids.items()}
    unexpected = {name: status for name, status in ended.items() if status not in CASES[name][2]}
    assert not unexpected, {name: (status, finished[ids[name]].error) for name, status in unexpected.items()}
