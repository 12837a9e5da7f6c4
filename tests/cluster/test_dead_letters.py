"""Dead-letter queue and retry from the failed step on a real 3-node cluster.

A side-effect log (``tests.fixtures.pysteps:record``: one line per executed attempt, with its idempotency
key) proves that a retry never runs a succeeded step again, even when the owner is SIGKILLed mid-retry.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner

from beamctl.main import app
from beamflowd.api.gen.beamflow.v1 import dlq_pb2, dlq_pb2_grpc
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.cluster.test_engine import steps_of, submit, wait_converged, wait_terminal
from tests.harness import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

GATED = """
name: gated
steps:
  - id: first
    run: python
    with: {function: "tests.fixtures.pysteps:record"}
  - id: gate
    run: python
    needs: first
    with: {function: "tests.fixtures.pysteps:gated", args: {gate: "${{ input.gate }}"}}
  - id: nap
    run: sleep
    needs: gate
    with: {duration: "${{ input.nap }}"}
  - id: last
    run: python
    needs: nap
    with: {function: "tests.fixtures.pysteps:record"}
"""


@pytest.fixture
def recorded_cluster(tmp_path: Path) -> Iterator[tuple[Cluster, Path]]:
    record = tmp_path / "record.txt"
    cluster = Cluster(tmp_path, env={"BEAMFLOW_TEST_RECORD_FILE": str(record)})
    try:
        cluster.start()
        cluster.wait_ready()
        yield cluster, record
    finally:
        cluster.close()


def dlq_stub(cluster: Cluster, node: str) -> Any:
    return dlq_pb2_grpc.DeadLetterServiceStub(cluster.channel(node))  # type: ignore[no-untyped-call, unused-ignore]


def beamctl(cluster: Cluster, *args: str) -> Any:
    """The real CLI in-process (CliRunner) against the real cluster; ``returncode`` is the exit code."""
    result = CliRunner().invoke(app, ["--endpoints", cluster.endpoints, *args])
    result.returncode = result.exit_code
    return result


def executions(record: Path) -> Counter[str]:
    """Idempotency key -> times its attempt ran."""
    lines = record.read_text(encoding="utf-8").splitlines() if record.exists() else []
    return Counter(line.split()[3] for line in lines)


def test_failed_workflow_is_dead_lettered_and_retried_from_the_failed_step_across_an_owner_kill(
    recorded_cluster: tuple[Cluster, Path], tmp_path: Path
) -> None:
    cluster, record = recorded_cluster
    gate = tmp_path / "gate"
    wf_id = submit(cluster.workflow_stub("n1"), GATED, {"gate": str(gate), "nap": "3s"})
    failed = wait_terminal(cluster, "n1", [wf_id])[wf_id]
    assert failed.status == pb.WORKFLOW_STATUS_FAILED
    assert steps_of(failed)["first"].status == pb.STEP_STATUS_SUCCEEDED

    # The entry is in the replicated state, readable on every node; the CLI shows it.
    listed = beamctl(cluster, "dlq", "list", "--state", "pending", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)["dead_letters"]
    assert (entry["workflow_id"], entry["step_id"], entry["error_class"]) == (wf_id, "gate", "permanent")
    for node in ("n2", "n3"):
        got = dlq_stub(cluster, node).GetDeadLetter(dlq_pb2.GetDeadLetterRequest(id=entry["id"]), timeout=10)
        assert got.dead_letter.state == dlq_pb2.DEAD_LETTER_STATE_PENDING

    # Resolving needs a reason; an unknown entry is exit 3.
    assert beamctl(cluster, "dlq", "resolve", entry["id"]).returncode == 2
    assert beamctl(cluster, "dlq", "show", "dlq-999").returncode == 3

    gate.touch()  # the operator fixed the cause
    retried = beamctl(cluster, "dlq", "retry", entry["id"], "--reason", "gate opened", "-o", "json")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["state"] == "retrying"
    # A running workflow cannot be retried: exit 5 (FAILED_PRECONDITION).
    running = beamctl(cluster, "workflow", "retry", wf_id, "--reason", "again")
    assert running.returncode == 5, running.stderr

    # SIGKILL the owner while the retried workflow sleeps in `nap`: a survivor finishes it.
    def napping() -> str | None:
        wf = (
            cluster.workflow_stub("n1")
            .GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10)
            .workflow
        )
        return wf.owner if steps_of(wf)["nap"].status == pb.STEP_STATUS_RUNNING else None

    owner = cluster.wait_until(napping, 30, "the retried workflow to reach its sleep")
    cluster.kill_node(owner)
    survivor = next(n for n in cluster.running_ids() if n != owner)
    done = wait_terminal(cluster, survivor, [wf_id], timeout=60)[wf_id]
    assert done.status == pb.WORKFLOW_STATUS_SUCCEEDED, done.error
    assert done.retries == 1 and done.owner != owner
    got = dlq_stub(cluster, survivor).GetDeadLetter(dlq_pb2.GetDeadLetterRequest(id=entry["id"]), timeout=10)
    assert got.dead_letter.state == dlq_pb2.DEAD_LETTER_STATE_RESOLVED

    # The side-effect log: `first` ran once (never again after the retry); the gate's successful attempt
    # has a fresh number (2: attempt 1 failed), and no attempt key ran twice.
    ran = executions(record)
    assert ran == {f"{wf_id}/first/1": 1, f"{wf_id}/gate/2": 1, f"{wf_id}/last/1": 1}, ran
    events = [
        e.type
        for e in cluster.workflow_stub(survivor)
        .GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10)
        .events
    ]
    assert "dead_lettered" in events and "retried" in events and events[-1] == "completed"
    cluster.start_node(owner)
    cluster.wait_ready()
    wait_converged(cluster)


def test_retry_from_a_step_resubmit_and_abandon(
    recorded_cluster: tuple[Cluster, Path], tmp_path: Path
) -> None:
    cluster, record = recorded_cluster
    gate = tmp_path / "gate"
    wf_id = submit(cluster.workflow_stub("n2"), GATED, {"gate": str(gate), "nap": "10ms"})
    wait_terminal(cluster, "n2", [wf_id])
    bad = cluster.workflow_stub("n3")
    with pytest.raises(grpc.RpcError) as err:
        bad.RetryWorkflow(
            pb.RetryWorkflowRequest(workflow_id=wf_id, from_step="nope", reason="x"), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "from_step" in (err.value.details() or "")

    gate.touch()
    response = bad.RetryWorkflow(
        pb.RetryWorkflowRequest(workflow_id=wf_id, from_step="first", reason="x"), timeout=10
    )
    assert response.dead_letter_id and response.workflow.epoch >= 2
    done = wait_terminal(cluster, "n3", [wf_id])[wf_id]
    assert done.status == pb.WORKFLOW_STATUS_SUCCEEDED
    # --from first re-ran `first` with the next attempt number.
    assert executions(record)[f"{wf_id}/first/2"] == 1

    copy = beamctl(cluster, "workflow", "resubmit", wf_id, "-o", "json")
    assert copy.returncode == 0, copy.stderr
    new_id = json.loads(copy.stdout)["workflow_id"]
    new = wait_terminal(cluster, "n1", [new_id])[new_id]
    assert new.status == pb.WORKFLOW_STATUS_SUCCEEDED and new.resubmitted_from == wf_id

    gate.unlink()
    failing = submit(cluster.workflow_stub("n1"), GATED, {"gate": str(gate), "nap": "10ms"})
    wait_terminal(cluster, "n1", [failing])
    listed = json.loads(beamctl(cluster, "dlq", "list", "-o", "json").stdout)
    pending = [e for e in listed["dead_letters"] if e["workflow_id"] == failing]
    assert listed["counts"]["resolved"] == 1 and [e["state"] for e in pending] == ["pending"]
    abandoned = beamctl(cluster, "dlq", "abandon", pending[0]["id"], "--reason", "not worth it", "-o", "json")
    assert abandoned.returncode == 0 and json.loads(abandoned.stdout)["state"] == "abandoned"
    again = beamctl(cluster, "dlq", "retry", pending[0]["id"], "--reason", "x")
    assert again.returncode == 5, again.stderr
    wait_converged(cluster)


RESULT = """
name: priced
steps:
  - {id: quote, run: demo, with: {output: {price: 12}}}
  - {id: charge, run: demo, needs: quote, with: {output: {id: "c-${{ input.n }}"}}}
output: {receipt: "rcpt-${{ steps.charge.id }}", total: "${{ steps.quote.price }}"}
"""


def test_workflow_result_and_submit_wait_include_the_output(
    recorded_cluster: tuple[Cluster, Path], tmp_path: Path
) -> None:
    cluster, _ = recorded_cluster
    definition = tmp_path / "priced.yaml"
    definition.write_text(RESULT, encoding="utf-8")
    submitted = beamctl(
        cluster, "-o", "json", "workflow", "submit", str(definition), "-i", '{"n": 5}', "--wait"
    )
    assert submitted.returncode == 0, submitted.stdout
    data = json.loads(submitted.stdout)
    assert data["result"] == {"receipt": "rcpt-c-5", "total": 12}
    shown = beamctl(cluster, "workflow", "result", data["id"])
    assert shown.returncode == 0 and json.loads(shown.stdout) == data["result"]
    # A failed workflow has no result: exit 1.
    failing = submit(cluster.workflow_stub("n1"), GATED, {"gate": str(tmp_path / "closed"), "nap": "1ms"})
    assert beamctl(cluster, "workflow", "result", failing, "--wait").returncode == 1


def test_workflow_result_wait_answers_once_the_workflow_finishes(
    recorded_cluster: tuple[Cluster, Path], tmp_path: Path
) -> None:
    cluster, _ = recorded_cluster
    stub = cluster.workflow_stub("n2")
    napping = RESULT.replace(
        "  - {id: quote, run: demo,",
        "  - {id: nap, run: sleep, with: {duration: 300ms}}\n  - {id: quote, run: demo, needs: nap,",
    )
    wf_id = submit(stub, napping, {"n": 7})
    with pytest.raises(grpc.RpcError) as running:
        stub.GetWorkflowResult(pb.GetWorkflowResultRequest(workflow_id=wf_id), timeout=10)
    assert running.value.code() == grpc.StatusCode.FAILED_PRECONDITION, running.value.details()
    done = stub.GetWorkflowResult(pb.GetWorkflowResultRequest(workflow_id=wf_id, wait=True), timeout=30)
    assert json.loads(done.result_json) == {"receipt": "rcpt-c-7", "total": 12}
    assert done.status == pb.WORKFLOW_STATUS_SUCCEEDED
    # Still running at the call's deadline: DEADLINE_EXCEEDED, and the workflow runs on.
    long_id = submit(stub, "name: nap\nsteps:\n  - {id: z, run: sleep, with: {duration: 10m}}\n", {})
    with pytest.raises(grpc.RpcError) as late:
        stub.GetWorkflowResult(pb.GetWorkflowResultRequest(workflow_id=long_id, wait=True), timeout=1.0)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    got = stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=long_id), timeout=10).workflow
    assert got.status == pb.WORKFLOW_STATUS_RUNNING
    # A workflow that fails: the wait ends with its status, as for a finished one.
    failing = submit(stub, GATED, {"gate": str(tmp_path / "closed"), "nap": "1ms"})
    with pytest.raises(grpc.RpcError) as failed:
        stub.GetWorkflowResult(pb.GetWorkflowResultRequest(workflow_id=failing, wait=True), timeout=60)
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "failed" in (failed.value.details() or ""), failed.value.details()
    with pytest.raises(grpc.RpcError) as unknown:
        stub.GetWorkflowResult(pb.GetWorkflowResultRequest(workflow_id="wf-none", wait=True), timeout=10)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_submit_wait_answers_with_the_outcome_in_one_call(
    recorded_cluster: tuple[Cluster, Path], tmp_path: Path
) -> None:
    cluster, _ = recorded_cluster
    stub = cluster.workflow_stub("n3")

    def submit_wait(definition: str, payload: object, timeout: float) -> pb.SubmitWorkflowResponse:
        request = pb.SubmitWorkflowRequest(definition=definition, input_json=json.dumps(payload), wait=True)
        return stub.SubmitWorkflow(request, timeout=timeout)

    done = submit_wait(RESULT, {"n": 3}, 30)
    assert done.status == pb.WORKFLOW_STATUS_SUCCEEDED, done
    assert json.loads(done.result_json) == {"receipt": "rcpt-c-3", "total": 12}
    assert done.workflow_id and not done.error
    failed = submit_wait(GATED, {"gate": str(tmp_path / "closed"), "nap": "1ms"}, 60)
    assert failed.status == pb.WORKFLOW_STATUS_FAILED and failed.error and not failed.result_json, failed
    # Still running near the call's deadline: answered in time, RUNNING, with the id to wait on.
    started = time.monotonic()
    running = submit_wait("name: nap\nsteps:\n  - {id: z, run: sleep, with: {duration: 10m}}\n", {}, 2.0)
    assert running.status == pb.WORKFLOW_STATUS_RUNNING and running.workflow_id, running
    assert time.monotonic() - started < 2.0
    shown = stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=running.workflow_id), timeout=10).workflow
    assert shown.status == pb.WORKFLOW_STATUS_RUNNING
    # Without wait, nothing of the outcome is set.
    plain = stub.SubmitWorkflow(
        pb.SubmitWorkflowRequest(definition=RESULT, input_json='{"n": 1}'), timeout=30
    )
    assert plain.status == pb.WORKFLOW_STATUS_UNSPECIFIED and not plain.result_json


def test_submit_id_reuse_and_conflict_policies(
    recorded_cluster: tuple[Cluster, Path], tmp_path: Path
) -> None:
    cluster, _ = recorded_cluster
    definition = tmp_path / "priced.yaml"
    definition.write_text(RESULT, encoding="utf-8")

    def submit_id(*policy: str) -> Any:
        return beamctl(
            cluster, "-o", "json", "workflow", "submit", str(definition), "--id", "order-1", *policy
        )

    assert submit_id("--wait").returncode == 0
    # Finished: refused by default (exit 5) and by failed-only (it succeeded); allow-duplicate replaces it.
    assert submit_id().returncode == 5
    assert submit_id("--id-reuse", "allow-duplicate-failed-only").returncode == 5
    replaced = submit_id("--id-reuse", "allow-duplicate", "--wait")
    assert replaced.returncode == 0 and json.loads(replaced.stdout)["existing"] is False
    # Running: fail (exit 5) or use the running one.
    nap = tmp_path / "nap.yaml"
    nap.write_text("name: nap\nsteps:\n  - {id: z, run: sleep, with: {duration: 10m}}\n", encoding="utf-8")
    args = ("-o", "json", "workflow", "submit", str(nap), "--id", "long-1")
    first = beamctl(cluster, *args)
    assert first.returncode == 0, first.stdout
    assert beamctl(cluster, *args).returncode == 5
    again = beamctl(cluster, *args, "--id-conflict", "use-existing")
    assert again.returncode == 0 and json.loads(again.stdout)["existing"] is True


def test_labels_filters_and_count(recorded_cluster: tuple[Cluster, Path], tmp_path: Path) -> None:
    cluster, _ = recorded_cluster
    definition = tmp_path / "priced.yaml"
    definition.write_text(RESULT, encoding="utf-8")
    for team in ("claims", "claims", "billing"):
        args = ("-o", "json", "workflow", "submit", str(definition), "--label", f"team={team}", "--wait")
        assert beamctl(cluster, *args).returncode == 0
    listed = json.loads(beamctl(cluster, "-o", "json", "workflow", "list", "--label", "team=claims").stdout)
    assert listed["total_matching"] == 2
    shown = json.loads(beamctl(cluster, "-o", "json", "workflow", "get", listed["workflows"][0]["id"]).stdout)
    assert shown["labels"] == {"team": "claims"}
    counted = beamctl(
        cluster, "-o", "json", "workflow", "count", "--status", "succeeded", "--created-after", "1h"
    )
    assert counted.returncode == 0 and json.loads(counted.stdout) == {"count": 3}
    assert beamctl(cluster, "workflow", "count", "--label", "nokey").returncode == 2
    bad = beamctl(cluster, "workflow", "submit", str(definition), "--label", "1bad=x")
    assert bad.returncode == 2 and "labels" in bad.stdout + bad.stderr


BULK_COUNT = 1200  # more than one server batch of 1000


def test_bulk_pause_resume_cancel_and_retry_by_query(recorded_cluster: tuple[Cluster, Path]) -> None:
    cluster, _ = recorded_cluster
    stub = cluster.workflow_stub("n1")
    nap = "name: nap\nsteps:\n  - {id: z, run: sleep, with: {duration: 10m}}\n"
    for _ in range(BULK_COUNT):
        request = pb.SubmitWorkflowRequest(
            definition=nap, definition_source="nap.yaml", labels={"batch": "b1"}
        )
        stub.SubmitWorkflow(request, timeout=30)
    query = ("--query", "status=running name=nap label.batch=b1 created>1h")
    dry = beamctl(cluster, "-o", "json", "workflow", "pause", *query, "--reason", "maintenance")
    assert dry.returncode == 0, dry.stdout
    assert json.loads(dry.stdout)["matching"] == BULK_COUNT and json.loads(dry.stdout)["dry_run"] is True
    assert beamctl(cluster, "workflow", "count", "--status", "paused").stdout.strip() == "0"
    t0 = time.monotonic()
    paused = json.loads(
        beamctl(cluster, "-o", "json", "workflow", "pause", *query, "--reason", "m", "--yes").stdout
    )
    took_s = time.monotonic() - t0
    assert paused["changed"] == BULK_COUNT, paused
    print(f"BULK-FIGURES pause of {BULK_COUNT} by query: {took_s:.2f}s ({BULK_COUNT / took_s:.0f}/s)")
    # Idempotent: the same ids again change nothing.
    again = json.loads(
        beamctl(
            cluster, "-o", "json", "workflow", "pause", "--label", "batch=b1", "--reason", "m", "--yes"
        ).stdout
    )
    assert (again["changed"], again["unchanged"]) == (0, BULK_COUNT), again
    resumed = json.loads(
        beamctl(cluster, "-o", "json", "workflow", "resume", "--label", "batch=b1", "--yes").stdout
    )
    assert resumed["changed"] == BULK_COUNT
    assert beamctl(cluster, "workflow", "cancel", "--label", "batch=b1", "--yes").returncode == 2  # no reason
    cancelled = beamctl(
        cluster, "-o", "json", "workflow", "cancel", "--label", "batch=b1", "--reason", "x", "--yes"
    )
    assert json.loads(cancelled.stdout)["changed"] == BULK_COUNT
    retried = beamctl(
        cluster,
        "-o",
        "json",
        "workflow",
        "retry",
        "-q",
        "status=cancelled label.batch=b1",
        "--reason",
        "x",
        "--yes",
    )
    assert json.loads(retried.stdout)["changed"] == BULK_COUNT
    assert beamctl(
        cluster, "workflow", "count", "--status", "running", "--label", "batch=b1"
    ).stdout.strip() == str(BULK_COUNT)
    wait_converged(cluster)


BOUNDED = """
name: bounded
steps:
  - id: call
    run: python
    with: {function: "tests.fixtures.pysteps:flaky_until", args: {succeed_on: "${{ input.succeed_on }}"}}
    timeout: 30s
    deadline: 2s
    retry: {max_attempts: 50, initial_interval: 300ms, backoff_rate: 1, jitter: none}
  - id: after
    run: python
    needs: call
    with: {function: "tests.fixtures.pysteps:record"}
"""


def test_a_step_deadline_ends_its_retries_and_dead_letters_the_workflow(
    recorded_cluster: tuple[Cluster, Path],
) -> None:
    """``deadline`` bounds a step across its attempts (each far shorter than its 30s ``timeout``): the
    owner commits the expiry, the step fails with deadline_exceeded long before its 50 attempts, the
    workflow fails and is dead-lettered, and the downstream step never runs."""
    cluster, record = recorded_cluster
    stub = cluster.workflow_stub("n1")
    doomed = submit(stub, BOUNDED, {"succeed_on": 1_000})
    lucky = submit(stub, BOUNDED, {"succeed_on": 2})  # retried once, well within its deadline

    def deadline_shown() -> str | None:
        shown = beamctl(cluster, "workflow", "get", doomed).stdout
        return shown if re.search(r"deadline \d{4}-\d\d-\d\d ", shown) else None

    cluster.wait_until(deadline_shown, 10, "`workflow get` to show the running step's deadline")
    done = wait_terminal(cluster, "n2", [doomed, lucky], timeout=60)
    assert done[lucky].status == pb.WORKFLOW_STATUS_SUCCEEDED, done[lucky].error

    failed = done[doomed]
    assert failed.status == pb.WORKFLOW_STATUS_FAILED and "deadline_exceeded" in failed.error
    call, after = steps_of(failed)["call"], steps_of(failed)["after"]
    assert (call.status, call.error_class) == (pb.STEP_STATUS_FAILED, "deadline_exceeded")
    assert 2 <= call.attempts < 50, call.attempts  # several attempts, cut by the deadline, not the policy
    spent_s = call.end_time.ToMilliseconds() / 1000 - failed.create_time.ToMilliseconds() / 1000
    assert 2 <= spent_s < 10, spent_s
    deadline_ms = call.deadline_time.ToMilliseconds()  # its first attempt's start + 2s
    assert 2_000 <= deadline_ms - failed.create_time.ToMilliseconds() < 4_000
    assert call.end_time.ToMilliseconds() >= deadline_ms
    assert after.status == pb.STEP_STATUS_CANCELLED
    events = [e.type for e in stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=doomed), timeout=10).events]
    assert "deadline_exceeded" in events and events[-1] == "failed"

    listed = beamctl(cluster, "dlq", "list", "--state", "pending", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)["dead_letters"]
    assert (entry["workflow_id"], entry["step_id"], entry["error_class"]) == (
        doomed,
        "call",
        "deadline_exceeded",
    )
    assert executions(record) == {f"{lucky}/after/1": 1}  # `after` of the doomed one never ran
    # `cluster status` counts the open entry (from any node's replicated state).
    status = beamctl(cluster, "cluster", "status", "-o", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["dead_letters"] == {"pending": 1, "retrying": 0, "overflow": 0}
    assert "Dead letters: 1 pending, 0 retrying" in beamctl(cluster, "cluster", "status").stdout
    wait_converged(cluster)


def test_a_step_deadline_holds_across_an_owner_kill(recorded_cluster: tuple[Cluster, Path]) -> None:
    """The step's deadline is committed (its first attempt's start), not kept by the owner: SIGKILL the
    owner while the step retries, and the survivor that takes the workflow over expires it against the same
    committed deadline (not one restarted from its own first attempt)."""
    cluster, _ = recorded_cluster
    definition = BOUNDED.replace("deadline: 2s", "deadline: 3s")
    wf_id = submit(cluster.workflow_stub("n1"), definition, {"succeed_on": 1_000})

    def retrying_owner() -> str | None:
        wf = (
            cluster.workflow_stub("n1")
            .GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10)
            .workflow
        )
        return wf.owner if steps_of(wf)["call"].attempts >= 1 and wf.owner else None

    owner = cluster.wait_until(retrying_owner, 10, "the step's first attempt")
    before = cluster.workflow_stub("n1").GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10)
    deadline_ms = steps_of(before.workflow)["call"].deadline_time.ToMilliseconds()
    cluster.kill_node(owner)
    survivor = next(n for n in cluster.running_ids() if n != owner)
    failed = wait_terminal(cluster, survivor, [wf_id], timeout=60)[wf_id]
    assert failed.status == pb.WORKFLOW_STATUS_FAILED and failed.owner != owner
    call = steps_of(failed)["call"]
    assert (call.error_class, call.deadline_time.ToMilliseconds()) == ("deadline_exceeded", deadline_ms)
    assert call.end_time.ToMilliseconds() >= deadline_ms
    cluster.start_node(owner)
    cluster.wait_ready()
    wait_converged(cluster)
