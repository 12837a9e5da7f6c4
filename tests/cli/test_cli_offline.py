"""beamctl without a cluster: help, usage errors, unreachable endpoints, and an in-process fake server.

The fake server checks the client side of the contract (JSON shapes, fail-over, idempotent request ids,
watch re-subscription with after_seq) without starting real nodes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from typer.testing import CliRunner

from beamctl.lazy_group import build
from beamctl.main import COMMANDS, app
from beamflowd.api.gen.beamflow.v1 import cluster_pb2, cluster_pb2_grpc, workflow_pb2, workflow_pb2_grpc
from tests.harness import free_ports

runner = CliRunner()

HELP_COMMANDS = [
    [],
    ["submit"],
    ["workflow"],
    ["workflow", "submit"],
    ["workflow", "get"],
    ["workflow", "list"],
    ["workflow", "watch"],
    ["workflow", "cancel"],
    ["cluster"],
    ["cluster", "status"],
]


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


@pytest.fixture
def closed_endpoint() -> str:
    """A loopback port nobody listens on."""
    return f"127.0.0.1:{free_ports(1)[0]}"


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    path = tmp_path / "hello.yaml"
    path.write_text("name: hello\nsteps:\n  - id: a\n    run: noop\n", encoding="utf-8")
    return path


# -- help and usage ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "beamctl")
def test_help(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    if command and command[-1] not in ("workflow", "cluster"):
        assert "Example:" in result.stdout


def test_shell_completion_script_is_offered() -> None:
    result = invoke("--show-completion", "bash")
    assert result.exit_code == 0, result.output
    assert "_beamctl_completion" in result.stdout and "complete" in result.stdout


def test_root_help_documents_exit_codes() -> None:
    result = invoke("--help")
    assert "Exit codes" in result.stdout
    assert "4 cluster unavailable" in result.stdout


def test_unknown_command_is_usage_error() -> None:
    assert invoke("workflow", "frobnicate").exit_code == 2


def test_bad_status_filter_is_usage_error() -> None:
    assert invoke("workflow", "list", "--status", "bogus").exit_code == 2


def test_bad_endpoint_is_usage_error() -> None:
    result = invoke("--endpoints", "no-port-here", "cluster", "status")
    assert result.exit_code == 2
    assert result.stderr.strip() == "beamctl: error: invalid endpoint 'no-port-here': expected host:port"


# -- unreachable cluster -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["workflow", "get", "wf-1"],
        ["workflow", "list"],
        ["cluster", "status"],
        ["workflow", "cancel", "wf-1"],
    ],
    ids=lambda c: " ".join(c),
)
def test_unreachable_cluster_exits_4(closed_endpoint: str, command: list[str]) -> None:
    result = invoke("--endpoints", closed_endpoint, "--timeout", "1", *command)
    assert result.exit_code == 4, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("beamctl: error: cluster unavailable")
    assert closed_endpoint in lines[0]
    assert "Traceback" not in result.output


def test_unreachable_submit_exits_4(closed_endpoint: str, hello: Path) -> None:
    result = invoke("--endpoints", closed_endpoint, "--timeout", "1", "submit", str(hello), "-o", "json")
    assert result.exit_code == 4, result.output
    assert result.stdout == ""


def test_endpoints_from_environment(closed_endpoint: str) -> None:
    result = runner.invoke(
        app, ["--timeout", "1", "cluster", "status"], env={"BEAMFLOW_ENDPOINTS": closed_endpoint}
    )
    assert result.exit_code == 4
    assert closed_endpoint in result.stderr


# -- invalid input -----------------------------------------------------------------------------------------


def test_missing_file_exits_2(closed_endpoint: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = invoke("--endpoints", closed_endpoint, "workflow", "submit", str(missing))
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"beamctl: error: cannot read workflow file {missing}: No such file or directory"
    )


@pytest.mark.parametrize("bad", ["{name: Ada}", "{", "'x'"])
def test_bad_input_json_exits_2(closed_endpoint: str, hello: Path, bad: str) -> None:
    result = invoke("--endpoints", closed_endpoint, "submit", str(hello), "--input", bad)
    assert result.exit_code == 2
    assert result.stderr.startswith("beamctl: error: --input is not valid JSON")
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_input_file_exits_2(closed_endpoint: str, hello: Path, tmp_path: Path) -> None:
    bad = tmp_path / "in.json"
    bad.write_text("not json", encoding="utf-8")
    result = invoke("--endpoints", closed_endpoint, "submit", str(hello), "--input-file", str(bad))
    assert result.exit_code == 2
    assert f"--input-file {bad} is not valid JSON" in result.stderr


def test_input_and_input_file_are_exclusive(closed_endpoint: str, hello: Path) -> None:
    result = invoke(
        "--endpoints", closed_endpoint, "submit", str(hello), "--input", "{}", "--input-file", "x"
    )
    assert result.exit_code == 2


def test_bad_timeout_wait_exits_2(closed_endpoint: str, hello: Path) -> None:
    result = invoke("--endpoints", closed_endpoint, "submit", str(hello), "--wait", "--timeout-wait", "5")
    assert result.exit_code == 2
    assert "--timeout-wait" in result.stderr


# -- a fake server: the client side of the contract --------------------------------------------------------


def _ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=500_000_000)


def _workflow(
    status: workflow_pb2.WorkflowStatus = workflow_pb2.WORKFLOW_STATUS_SUCCEEDED,
) -> workflow_pb2.Workflow:
    return workflow_pb2.Workflow(
        id="wf-1",
        name="hello",
        status=status,
        owner="n1",
        epoch=2,
        create_time=_ts(1_800_000_000),
        update_time=_ts(1_800_000_001),
        input_json='{"name": "Ada"}',
        steps=[
            workflow_pb2.Step(
                id="greet",
                kind="demo",
                status=workflow_pb2.STEP_STATUS_SUCCEEDED,
                attempts=1,
                output_json='{"message": "Hello, Ada!"}',
                start_time=_ts(1_800_000_000),
                end_time=_ts(1_800_000_001),
            ),
            workflow_pb2.Step(
                id="done", kind="noop", status=workflow_pb2.STEP_STATUS_PENDING, needs=["greet"]
            ),
        ],
    )


EVENTS = [
    workflow_pb2.WorkflowEvent(seq=1, type="submitted", time=_ts(1_800_000_000), node="n1"),
    workflow_pb2.WorkflowEvent(seq=2, type="step_started", step_id="greet", attempt=1, node="n1"),
    workflow_pb2.WorkflowEvent(seq=3, type="step_succeeded", step_id="greet", attempt=1, node="n1"),
    workflow_pb2.WorkflowEvent(seq=4, type="completed", node="n1", message="[bold]not markup[/bold]"),
]


class FakeServer(workflow_pb2_grpc.WorkflowServiceServicer, cluster_pb2_grpc.ClusterServiceServicer):
    """Just enough of the API; ``break_watch_after`` aborts the first watch stream after that many events."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.submits: list[workflow_pb2.SubmitWorkflowRequest] = []
        self.watch_requests: list[int] = []
        self.break_watch_after: int | None = None
        self.unavailable_submits = 0
        self.terminal_from_seq = 4  # the server may report the final status before the final event

    def SubmitWorkflow(self, request: Any, context: Any) -> Any:
        with self.lock:
            self.submits.append(request)
            if self.unavailable_submits > 0:
                self.unavailable_submits -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "no leader")
            existing = sum(1 for r in self.submits if r.request_id == request.request_id) > 1
        if "bogus" in request.definition:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{request.definition_source}: step 'a': bogus: unknown key (allowed: id, needs, run, with)",
            )
        return workflow_pb2.SubmitWorkflowResponse(workflow_id="wf-1", owner="n1", existing=existing)

    def GetWorkflow(self, request: Any, context: Any) -> Any:
        if request.workflow_id != "wf-1":
            context.abort(grpc.StatusCode.NOT_FOUND, f"workflow {request.workflow_id!r} not found")
        return workflow_pb2.GetWorkflowResponse(workflow=_workflow(), events=EVENTS)

    def ListWorkflows(self, request: Any, context: Any) -> Any:
        everything = [
            workflow_pb2.WorkflowSummary(
                id=f"wf-{i}", name="hello", status=workflow_pb2.WORKFLOW_STATUS_SUCCEEDED
            )
            for i in range(5)
        ]
        start = int(request.page_token or 0)
        size = request.page_size or 100
        page = everything[start : start + size]
        token = str(start + size) if start + size < len(everything) else ""
        return workflow_pb2.ListWorkflowsResponse(workflows=page, next_page_token=token, total_matching=5)

    def GetWorkflowResult(self, request: Any, context: Any) -> Any:
        return workflow_pb2.GetWorkflowResultResponse(
            result_json='{"greet": {"message": "Hello"}}', status=workflow_pb2.WORKFLOW_STATUS_SUCCEEDED
        )

    def CancelWorkflow(self, request: Any, context: Any) -> Any:
        return workflow_pb2.CancelWorkflowResponse(
            workflow=_workflow(workflow_pb2.WORKFLOW_STATUS_CANCELLED), cancelled=True
        )

    def WatchWorkflow(self, request: Any, context: Any) -> Iterator[Any]:
        with self.lock:
            self.watch_requests.append(request.after_seq)
            limit, self.break_watch_after = self.break_watch_after, None
        sent = 0
        for event in EVENTS:
            if event.seq <= request.after_seq:
                continue
            if limit is not None and sent >= limit:
                context.abort(grpc.StatusCode.UNAVAILABLE, "node shutting down")
            sent += 1
            done = event.seq >= self.terminal_from_seq
            yield workflow_pb2.WatchWorkflowResponse(
                event=event,
                status=workflow_pb2.WORKFLOW_STATUS_SUCCEEDED
                if done
                else workflow_pb2.WORKFLOW_STATUS_RUNNING,
            )

    def GetClusterStatus(self, request: Any, context: Any) -> Any:
        nodes = [
            cluster_pb2.NodeStatus(
                id=f"n{i}",
                raft_address=f"127.0.0.1:710{i}",
                grpc_address=f"127.0.0.1:700{i}",
                role=cluster_pb2.NODE_ROLE_LEADER if i == 1 else cluster_pb2.NODE_ROLE_FOLLOWER,
                term=3,
                commit_index=10,
                applied_index=10,
                reachable=True,
                digest="0123456789abcdef0123",
                liveness="alive",
            )
            for i in (1, 2)
        ]
        nodes.append(cluster_pb2.NodeStatus(id="n3", reachable=False, error="connection refused"))
        return cluster_pb2.GetClusterStatusResponse(
            nodes=nodes, leader_id="n1", dlq_pending=3, dlq_retrying=1, dlq_overflow=2
        )


@pytest.fixture
def fake() -> Iterator[tuple[FakeServer, str]]:
    """A fake server on two ports; yields it and endpoints ``closed,portA,portB`` (exercising fail-over)."""
    servicer = FakeServer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    workflow_pb2_grpc.add_WorkflowServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    cluster_pb2_grpc.add_ClusterServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    ports = [server.add_insecure_port("127.0.0.1:0") for _ in range(2)]
    server.start()
    closed = free_ports(1)[0]
    try:
        yield servicer, ",".join(f"127.0.0.1:{p}" for p in (closed, *ports))
    finally:
        server.stop(grace=None)


def test_submit_json_fails_over_and_reuses_request_id(fake: tuple[FakeServer, str], hello: Path) -> None:
    servicer, endpoints = fake
    servicer.unavailable_submits = 1
    result = invoke(
        "--endpoints",
        endpoints,
        "--timeout",
        "2",
        "-o",
        "json",
        "submit",
        str(hello),
        "--input",
        '{"name":"Ada"}',
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"workflow_id": "wf-1", "owner": "n1", "existing": True}
    assert len(servicer.submits) == 2
    first, second = servicer.submits
    assert first.request_id == second.request_id != ""
    assert second.definition_source == str(hello)
    assert json.loads(second.input_json) == {"name": "Ada"}


def test_submit_invalid_argument_exits_2_with_server_message(
    fake: tuple[FakeServer, str], tmp_path: Path
) -> None:
    _, endpoints = fake
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - id: a\n    run: noop\n    bogus: 1\n", encoding="utf-8")
    result = invoke("--endpoints", endpoints, "submit", str(bad))
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"beamctl: error: {bad}: step 'a': bogus: unknown key (allowed: id, needs, run, with)\n"
    )


def test_get_json_shape(fake: tuple[FakeServer, str]) -> None:
    _, endpoints = fake
    result = invoke("--endpoints", endpoints, "workflow", "get", "wf-1", "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "succeeded"
    assert data["input"] == {"name": "Ada"}
    assert data["create_time"] == "2027-01-15T08:00:00.500000Z"
    greet, done = data["steps"]
    assert greet["output"] == {"message": "Hello, Ada!"}
    assert greet["start_time"] and greet["end_time"]
    assert done["status"] == "pending" and done["needs"] == ["greet"] and done["start_time"] is None
    assert [e["seq"] for e in data["events"]] == [1, 2, 3, 4]
    for key in ("id", "name", "owner", "epoch", "update_time", "error"):
        assert key in data


def test_get_table_is_literal_text(fake: tuple[FakeServer, str]) -> None:
    _, endpoints = fake
    result = invoke("--endpoints", endpoints, "workflow", "get", "wf-1")
    assert result.exit_code == 0, result.output
    assert "wf-1" in result.stdout and "greet" in result.stdout
    assert "[bold]not markup[/bold]" in result.stdout


def test_get_unknown_exits_3(fake: tuple[FakeServer, str]) -> None:
    _, endpoints = fake
    result = invoke("--endpoints", endpoints, "workflow", "get", "nope")
    assert result.exit_code == 3
    assert result.stderr == "beamctl: error: workflow 'nope' not found\n"


def test_list_pages(fake: tuple[FakeServer, str]) -> None:
    _, endpoints = fake
    limited = json.loads(
        invoke("--endpoints", endpoints, "workflow", "list", "--limit", "2", "-o", "json").stdout
    )
    assert [w["id"] for w in limited["workflows"]] == ["wf-0", "wf-1"]
    assert limited["total_matching"] == 5 and limited["next_page_token"]
    everything = invoke("--endpoints", endpoints, "-o", "json", "workflow", "list", "--all", "--limit", "2")
    assert [w["id"] for w in json.loads(everything.stdout)["workflows"]] == [f"wf-{i}" for i in range(5)]
    table = invoke("--endpoints", endpoints, "workflow", "list", "--limit", "2")
    assert table.exit_code == 0 and "wf-1" in table.stdout and "2 of 5" in table.stderr


def test_watch_resubscribes_without_repeating_events(fake: tuple[FakeServer, str]) -> None:
    servicer, endpoints = fake
    servicer.break_watch_after = 2
    result = invoke("--endpoints", endpoints, "workflow", "watch", "wf-1", "-o", "json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["seq"] for e in lines] == [1, 2, 3, 4]
    assert lines[-1]["status"] == "succeeded"
    assert servicer.watch_requests == [0, 2]


def test_watch_shows_the_end_event_after_an_early_terminal_status(fake: tuple[FakeServer, str]) -> None:
    servicer, endpoints = fake
    servicer.terminal_from_seq = 2
    result = invoke("--endpoints", endpoints, "workflow", "watch", "wf-1", "-o", "json")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["type"] for line in result.stdout.splitlines()][-1] == "completed"


def test_submit_wait_prints_progress_on_stderr(fake: tuple[FakeServer, str], hello: Path) -> None:
    _, endpoints = fake
    result = invoke("--endpoints", endpoints, "submit", str(hello), "--wait")
    assert result.exit_code == 0, result.output
    assert "step_started" in result.stderr
    assert "Workflow wf-1 submitted" in result.stdout and "succeeded" in result.stdout
    as_json = invoke("--endpoints", endpoints, "submit", str(hello), "--wait", "-o", "json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["status"] == "succeeded"
    assert json.loads(as_json.stdout)["result"] == {"greet": {"message": "Hello"}}


def test_cancel_json(fake: tuple[FakeServer, str]) -> None:
    _, endpoints = fake
    result = invoke("--endpoints", endpoints, "workflow", "cancel", "wf-1", "--reason", "test", "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["cancelled"] is True and data["status"] == "cancelled"


def test_cluster_status(fake: tuple[FakeServer, str]) -> None:
    _, endpoints = fake
    data = json.loads(invoke("--endpoints", endpoints, "cluster", "status", "-o", "json").stdout)
    assert data["leader_id"] == "n1"
    assert [n["role"] for n in data["nodes"]] == ["leader", "follower", "unknown"]
    assert data["nodes"][0]["digest"] == "0123456789abcdef0123"
    table = invoke("--endpoints", endpoints, "cluster", "status")
    assert table.exit_code == 0
    assert "0123456789ab " in table.stdout and "0123456789abc" not in table.stdout
    assert "Leader: n1" in table.stdout and "connection refused" in table.stdout
    assert data["dead_letters"] == {"pending": 3, "retrying": 1, "overflow": 2}
    assert "Dead letters: 3 pending, 1 retrying" in table.stdout
    assert "Dead-letter queue full: 2 failures not queued" in table.stdout


# -- lazy command modules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(COMMANDS))
def test_root_listing_says_what_each_command_says(name: str) -> None:
    """`beamctl --help` lists COMMANDS without importing them: each summary must match the command's help."""
    command = build(name, COMMANDS[name], "markdown")
    first_paragraph = (command.help or "").strip().split("\n\n")[0]
    assert " ".join(first_paragraph.split()) == COMMANDS[name].summary


def test_root_help_and_completion_import_no_command_module() -> None:
    """Startup cost: the root (help, global options) must not load grpc, protobuf or any command module."""
    script = (
        "import sys; from beamctl.main import main; sys.argv = ['beamctl', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('grpc', 'google')\n"
        "         or m in ('beamctl.client', 'beamctl.workflow', 'beamctl.chaos', 'beamctl.checker')]\n"
        "print(heavy, file=sys.stderr)\nsys.exit(1 if heavy else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout


def test_workflow_get_loads_neither_checker_chaos_progress_bars_nor_the_parser() -> None:
    script = (
        "import sys, typer.main; from beamctl.main import app\n"
        "typer.main.get_command(app).get_command(None, 'workflow')\n"
        "heavy = [m for m in ('beamctl.checker', 'beamctl.chaos', 'beamctl.bench', 'rich.progress',\n"
        "         'google.protobuf.json_format', 'beamflowd.core.spec', 'jsonschema', 'yaml')\n"
        "         if m in sys.modules]\n"
        "print(heavy, file=sys.stderr)\nsys.exit(1 if heavy else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_completion_of_command_names_reads_the_table() -> None:
    env = {**os.environ, "_BEAMCTL_COMPLETE": "complete_bash", "COMP_WORDS": "beamctl wor", "COMP_CWORD": "1"}
    done = subprocess.run(
        [sys.executable, "-c", "from beamctl.main import main; main()"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "workflow" in done.stdout.split()


def test_a_plain_command_does_not_load_pydantic(closed_endpoint: str) -> None:
    """typer coerces parameters through pydantic; values needing no work skip it (beamctl/fast_params.py)."""
    script = (
        "import sys; from beamctl.main import main\n"
        f"sys.argv = ['beamctl', '-e', {closed_endpoint!r}, '-o', 'json', 'workflow', 'get', 'wf-x']\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\n"
        "sys.exit(3 if 'pydantic' in sys.modules else code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 4, done.stderr  # unavailable, and pydantic never imported
