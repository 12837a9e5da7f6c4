"""The core engine end to end: three real nodes, hundreds of mixed workflows, equal digests."""

from __future__ import annotations

import json
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from beamctl.main import app
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.harness import REPO_ROOT, Cluster

WORKFLOWS = REPO_ROOT / "deploy" / "workflows"

PYTHON_FLOW = """
name: python-flow
steps:
  - id: hello
    run: python
    with: {function: "tests.fixtures.pysteps:greet"}
  - id: hello-async
    run: python
    with: {function: "tests.fixtures.pysteps:greet_async"}
  - id: flaky
    run: python
    needs: [hello, hello-async]
    retry: {max_attempts: 4, initial_interval: 10ms, jitter: none}
    with: {function: "tests.fixtures.pysteps:flaky_until", args: {succeed_on: 3}}
  - id: echo
    run: python
    needs: [flaky]
    with:
      function: "tests.fixtures.pysteps:echo_args"
      args: {greeting: "${{ steps.hello.message }}", n: "${{ input.n }}"}
"""

SLEEPY = """
name: sleepy
steps:
  - {id: a, run: noop}
  - {id: nap, run: sleep, needs: a, with: {duration: "${{ input.nap }}"}}
  - {id: b, run: noop, needs: nap}
"""

PERMANENT = """
name: permanent
steps:
  - id: doomed
    run: python
    retry: {max_attempts: 5, initial_interval: 10ms}
    with: {function: "tests.fixtures.pysteps:always_permanent"}
  - {id: never, run: noop, needs: doomed}
"""

EXEC = """
name: exec-refused
steps:
  - {id: run, run: exec, with: {argv: ["/bin/true"]}}
"""


def submit(stub: object, definition: str, payload: object, source: str = "test.yaml") -> str:
    response = stub.SubmitWorkflow(  # type: ignore[attr-defined]
        pb.SubmitWorkflowRequest(
            definition=definition, definition_source=source, input_json=json.dumps(payload)
        ),
        timeout=30,
    )
    return str(response.workflow_id)


def wait_terminal(
    cluster: Cluster, node: str, wf_ids: list[str], timeout: float = 120
) -> dict[str, pb.Workflow]:
    stub = cluster.workflow_stub(node)
    done: dict[str, pb.Workflow] = {}

    def all_done() -> bool:
        for wf_id in wf_ids:
            if wf_id in done:
                continue
            wf = stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10).workflow
            if wf.status not in (pb.WORKFLOW_STATUS_UNSPECIFIED, pb.WORKFLOW_STATUS_RUNNING):
                done[wf_id] = wf
        return len(done) == len(wf_ids)

    cluster.wait_until(all_done, timeout, f"{len(wf_ids)} workflows to finish")
    return done


def wait_converged(cluster: Cluster, timeout: float = 30) -> str:
    """All nodes at the same applied index report the same digest."""

    def converged() -> str | None:
        status = cluster.cluster_status()
        nodes = [n for n in status.nodes if n.reachable]
        if len(nodes) != len(cluster.running_ids()):
            return None
        if len({n.applied_index for n in nodes}) == 1 and len({n.digest for n in nodes}) == 1:
            return nodes[0].digest
        return None

    return cluster.wait_until(converged, timeout, "all replicas to report the same digest")


def steps_of(wf: pb.Workflow) -> dict[str, pb.Step]:
    return {s.id: s for s in wf.steps}


@pytest.mark.timeout(240)
def test_mixed_workflows_run_to_completion_and_replicas_converge(cluster: Cluster) -> None:
    hello = (WORKFLOWS / "hello.yaml").read_text()
    diamond = (WORKFLOWS / "diamond.yaml").read_text()
    flaky = (WORKFLOWS / "flaky.yaml").read_text()
    nodes = list(cluster.nodes)
    expected: dict[str, tuple[str, int]] = {}

    def one(i: int) -> tuple[str, str, int]:
        stub = cluster.workflow_stub(nodes[i % 3])  # every node accepts every call
        kind = ("hello", "diamond", "python", "sleepy", "flaky")[i % 5]
        if kind == "hello":
            return submit(stub, hello, {"name": f"user{i}"}, "hello.yaml"), kind, i
        if kind == "diamond":
            return submit(stub, diamond, {"order_id": f"A-{i}", "amount": i}, "diamond.yaml"), kind, i
        if kind == "python":
            return submit(stub, PYTHON_FLOW, {"name": f"py{i}", "n": i}), kind, i
        if kind == "sleepy":
            return submit(stub, SLEEPY, {"nap": "300ms"}), kind, i
        return submit(stub, flaky, {}, "flaky.yaml"), kind, i

    with ThreadPoolExecutor(max_workers=16) as pool:
        for wf_id, kind, i in pool.map(one, range(200)):
            expected[wf_id] = (kind, i)
    # And through the CLI: hello and diamond via `beamctl submit -o json`.
    for i in range(200, 220):
        kind, name, payload = (
            ("hello", "hello.yaml", {"name": f"user{i}"})
            if i % 2 == 0
            else ("diamond", "diamond.yaml", {"order_id": f"A-{i}", "amount": i})
        )
        result = CliRunner().invoke(
            app,
            [
                "--endpoints",
                cluster.endpoints,
                "-o",
                "json",
                "submit",
                str(WORKFLOWS / name),
                "--input",
                json.dumps(payload),
            ],
        )
        assert result.exit_code == 0, result.output
        expected[json.loads(result.stdout)["workflow_id"]] = (kind, i)
    assert len(expected) == 220, "every submission returns a distinct id"

    done = wait_terminal(cluster, "n2", list(expected))
    owners = {wf.owner for wf in done.values()}
    assert owners == set(nodes), f"placement spreads work over every node, got {owners}"
    for wf_id, (kind, i) in expected.items():
        wf = done[wf_id]
        steps = steps_of(wf)
        if kind == "flaky":
            # 30% failure rate with 8 attempts: failure of all is ~7e-5 per workflow.
            assert wf.status == pb.WORKFLOW_STATUS_SUCCEEDED, (wf_id, wf.error)
            continue
        assert wf.status == pb.WORKFLOW_STATUS_SUCCEEDED, (kind, wf_id, wf.error)
        if kind == "hello":
            assert json.loads(steps["greet"].output_json) == {"message": f"Hello, user{i}!"}
        elif kind == "diamond":
            ship = json.loads(steps["ship"].output_json)
            assert ship == {"summary": f"order A-{i}: stock=true, charged={i}", "receipt": f"rcpt-A-{i}"}
            assert steps["ship"].start_time.ToMilliseconds() >= max(
                steps["check-stock"].end_time.ToMilliseconds(), steps["charge-card"].end_time.ToMilliseconds()
            )
        elif kind == "python":
            assert steps["flaky"].attempts == 3, "retried until the third attempt succeeded"
            assert json.loads(steps["echo"].output_json)["args"]["greeting"] == f"Hello, py{i}"
            assert json.loads(steps["echo"].output_json)["args"]["n"] == i
        elif kind == "sleepy":
            nap = steps["nap"]
            assert nap.end_time.ToMilliseconds() - nap.start_time.ToMilliseconds() >= 300
    wait_converged(cluster)


def test_failures_cancel_and_exec_refusal(cluster: Cluster) -> None:
    stub = cluster.workflow_stub("n1")
    permanent = submit(stub, PERMANENT, {})
    refused = submit(stub, EXEC, {})
    long_sleep = submit(stub, SLEEPY, {"nap": "10m"})
    done = wait_terminal(cluster, "n3", [permanent, refused])
    wf = done[permanent]
    assert wf.status == pb.WORKFLOW_STATUS_FAILED
    assert steps_of(wf)["doomed"].attempts == 1, "a permanent error is never retried"
    assert steps_of(wf)["never"].status == pb.STEP_STATUS_CANCELLED
    assert "permanent" in wf.error
    wf = done[refused]
    assert wf.status == pb.WORKFLOW_STATUS_FAILED
    assert "allow_exec" in steps_of(wf)["run"].error

    response = cluster.workflow_stub("n2").CancelWorkflow(
        pb.CancelWorkflowRequest(workflow_id=long_sleep, reason="no longer needed"), timeout=10
    )
    assert response.cancelled
    assert response.workflow.status == pb.WORKFLOW_STATUS_CANCELLED
    assert response.workflow.error == "no longer needed"
    again = cluster.workflow_stub("n3").CancelWorkflow(
        pb.CancelWorkflowRequest(workflow_id=long_sleep), timeout=10
    )
    assert not again.cancelled, "cancelling a finished workflow changes nothing"
    events = [
        e.event.type
        for e in cluster.workflow_stub("n3").WatchWorkflow(
            pb.WatchWorkflowRequest(workflow_id=long_sleep), timeout=10
        )
    ]
    assert events[0] == "submitted" and events[-1] == "cancelled"
    wait_converged(cluster)


BAD_INPUTS = {
    "malformed": ("name: x\nsteps: [\n", "malformed YAML"),
    "unknown_key": ("name: x\ncolour: red\nsteps: [{id: a, run: noop}]\n", "colour"),
    "unknown_kind": ("name: x\nsteps: [{id: a, run: teleport}]\n", "teleport"),
    "duplicate_ids": ("name: x\nsteps: [{id: a, run: noop}, {id: a, run: noop}]\n", "duplicate"),
    "cycle": ("name: x\nsteps: [{id: a, run: noop, needs: b}, {id: b, run: noop, needs: a}]\n", "cycle"),
    "unknown_need": ("name: x\nsteps: [{id: a, run: noop, needs: ghost}]\n", "ghost"),
    "not_upstream": (
        "name: x\nsteps: [{id: a, run: noop}, {id: b, run: demo, with: {output: '${{ steps.a }}'}},"
        " {id: c, run: demo, with: {output: '${{ steps.b }}'}}]\n",
        "upstream",
    ),
    "bad_duration": ("name: x\nsteps: [{id: a, run: sleep, with: {duration: soon}}]\n", "duration"),
    "oversized": ("name: x\ndescription: " + "y" * 300_000 + "\nsteps: [{id: a, run: noop}]\n", "limit"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_definitions_are_rejected_and_write_nothing(cluster: Cluster, case: str) -> None:
    definition, needle = BAD_INPUTS[case]
    stub = cluster.workflow_stub("n1")
    before = stub.ListWorkflows(pb.ListWorkflowsRequest(), timeout=10).total_matching
    with pytest.raises(grpc.RpcError) as info:
        submit(stub, definition, {}, source=f"{case}.yaml")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{case}.yaml" in info.value.details() and needle in info.value.details(), info.value.details()
    assert stub.ListWorkflows(pb.ListWorkflowsRequest(), timeout=10).total_matching == before


def test_bad_input_and_ids(cluster: Cluster) -> None:
    stub = cluster.workflow_stub("n2")
    hello = (WORKFLOWS / "hello.yaml").read_text()
    with pytest.raises(grpc.RpcError) as info:
        stub.SubmitWorkflow(pb.SubmitWorkflowRequest(definition=hello, input_json="{not json"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "input" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.SubmitWorkflow(
            pb.SubmitWorkflowRequest(definition=hello, input_json=json.dumps({"blob": "x" * 70_000})),
            timeout=10,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id="wf-nope"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    # Idempotent submit: the same request id twice gives the same workflow, once.
    request = pb.SubmitWorkflowRequest(definition=hello, input_json='{"name": "Ada"}', request_id="req-1")
    first = stub.SubmitWorkflow(request, timeout=10)
    second = cluster.workflow_stub("n3").SubmitWorkflow(request, timeout=10)
    assert first.workflow_id == second.workflow_id and second.existing and not first.existing
    # A caller-chosen id is unique.
    stub.SubmitWorkflow(pb.SubmitWorkflowRequest(definition=hello, workflow_id="order-42"), timeout=10)
    with pytest.raises(grpc.RpcError) as info:
        stub.SubmitWorkflow(pb.SubmitWorkflowRequest(definition=hello, workflow_id="order-42"), timeout=10)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_list_filters_and_pages(cluster: Cluster) -> None:
    stub = cluster.workflow_stub("n1")
    hello = (WORKFLOWS / "hello.yaml").read_text()
    ids = [submit(stub, hello, {"name": str(i)}) for i in range(7)]
    sleeper = submit(stub, SLEEPY, {"nap": "10m"})
    wait_terminal(cluster, "n1", ids)
    seen: list[str] = []
    token = ""
    for _ in range(10):  # bounded paging
        page = stub.ListWorkflows(
            pb.ListWorkflowsRequest(name="hello", page_size=3, page_token=token), timeout=10
        )
        seen += [w.id for w in page.workflows]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids)), "newest first, every page once"
    running = stub.ListWorkflows(pb.ListWorkflowsRequest(status=pb.WORKFLOW_STATUS_RUNNING), timeout=10)
    assert [w.id for w in running.workflows] == [sleeper]


def test_sigterm_exits_cleanly(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        cluster.start()
        cluster.wait_ready()
        for node_id in list(cluster.nodes):
            assert cluster.stop_node(node_id, signal.SIGTERM) == 0, cluster.log_tail(node_id)


def test_finished_workflows_are_garbage_collected(tmp_path: Path) -> None:
    config = tmp_path / "retention.toml"
    config.write_text("retention_max_finished = 5\ngc_interval = 0.2\n")
    with Cluster(tmp_path, extra_args=["--config", str(config)]) as cluster:
        cluster.start()
        cluster.wait_ready()
        stub = cluster.workflow_stub("n1")
        hello = (WORKFLOWS / "hello.yaml").read_text()
        ids = []
        for i in range(12):  # one at a time, so they finish in the order they were submitted
            ids.append(submit(stub, hello, {"name": str(i)}))
            wait_terminal(cluster, "n1", ids[-1:], timeout=30)
        running = submit(stub, SLEEPY, {"nap": "10m"})

        def collected() -> bool:
            return stub.ListWorkflows(pb.ListWorkflowsRequest(), timeout=10).total_matching == 6

        cluster.wait_until(collected, 30, "the oldest finished workflows to be collected")
        kept = [w.id for w in stub.ListWorkflows(pb.ListWorkflowsRequest(), timeout=10).workflows]
        assert kept == [running, *reversed(ids[-5:])], "the last 5 to finish and the running one stay"
        with pytest.raises(grpc.RpcError) as info:
            stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=ids[0]), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        wait_converged(cluster)
