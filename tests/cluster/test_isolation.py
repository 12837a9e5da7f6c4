"""Hostile workloads on a real 3-node cluster: a bad workflow fails alone and never takes a node down.

Every hostile workflow is submitted while a steady background load of normal workflows runs. Afterwards: the
same three node processes are up, every background workflow succeeded, each hostile workflow FAILED with the
error class docs/workflow-format.md documents for it, and all replicas reach the same digest.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import grpc
import pytest

from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from beamflowd.core.spec import MAX_DEFINITION_BYTES
from tests.cluster.test_engine import submit, wait_converged, wait_terminal
from tests.harness import Cluster

#: Small, so the memory bomb hits its cap in well under a second.
MEMORY_LIMIT = "256MiB"
STREAM_BYTES = 50 * 1024 * 1024
STREAM_CHUNK_BYTES = 64 * 1024
#: Background load: one workflow per this many seconds, at least BACKGROUND_MIN and at most BACKGROUND_MAX.
BACKGROUND_PERIOD_S = 0.05
BACKGROUND_MAX = 400
BACKGROUND_MIN = 40
FIX = "tests.fixtures.pysteps:"
NESTED_INPUT_LEVELS = 5_000


def one_step(name: str, step: dict[str, Any], *, attempts: int = 1) -> str:
    """A definition with one hostile step and a step after it that must never run."""
    retry = {"max_attempts": attempts, "initial_interval": "10ms", "jitter": "none"}
    body = {"id": "bad", "retry": retry, **step}
    return json.dumps({"name": name, "steps": [body, {"id": "after", "run": "noop", "needs": "bad"}]})


def python(function: str, **extra: Any) -> dict[str, Any]:
    return {"run": "python", "with": {"function": function}, **extra}


BACKGROUND = json.dumps(
    {
        "name": "background",
        "steps": [
            {"id": "hello", "run": "python", "with": {"function": FIX + "greet"}},
            {"id": "again", "run": "python", "needs": "hello", "with": {"function": FIX + "greet_async"}},
            {"id": "done", "run": "noop", "needs": "again"},
        ],
    }
)


class _Streamer(BaseHTTPRequestHandler):
    """Streams STREAM_BYTES without a Content-Length (so only reading can tell the size)."""

    protocol_version = "HTTP/1.0"
    sent: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        chunk = b"x" * STREAM_CHUNK_BYTES
        sent = 0
        try:
            while sent < STREAM_BYTES:
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            _Streamer.sent.append(sent)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def streamer() -> Iterator[str]:
    _Streamer.sent = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Streamer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/big"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hostile_cluster(tmp_path: Path) -> Generator[Cluster, None, None]:
    cluster = Cluster(tmp_path, extra_args=["--step-memory-limit", MEMORY_LIMIT, "--step-workers", "2"])
    try:
        cluster.start()
        cluster.wait_ready(timeout=30)
        yield cluster
    finally:
        cluster.close()


class Background:
    """Submits normal workflows round-robin to every node until stopped (bounded in count)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.ids: list[str] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        nodes = list(self.cluster.nodes)
        for i in range(BACKGROUND_MAX):
            if self.stop.is_set():
                return
            try:
                self.ids.append(submit(self.cluster.workflow_stub(nodes[i % 3]), BACKGROUND, {"name": "bg"}))
            except grpc.RpcError as exc:
                self.errors.append(f"{exc.code()}: {exc.details()}")
            self.stop.wait(BACKGROUND_PERIOD_S)


@pytest.mark.timeout(90)
def test_hostile_workflows_fail_alone(hostile_cluster: Cluster, streamer: str) -> None:
    cluster = hostile_cluster
    pids = {nid: node.proc.pid for nid, node in cluster.nodes.items() if node.proc is not None}
    background = Background(cluster)
    background.thread.start()

    timeout = {"timeout": "1s"}
    cases: dict[str, tuple[str, str]] = {
        # name: (definition, error class docs/workflow-format.md gives for it)
        "sys-exit": (one_step("sys-exit", python(FIX + "exit_via_sys")), "crashed"),
        "os-exit": (one_step("os-exit", python(FIX + "exit_hard")), "crashed"),
        "segfault": (one_step("segfault", python(FIX + "segfault")), "crashed"),
        "spin": (one_step("spin", python(FIX + "spin", **timeout)), "timeout"),
        "memory": (one_step("memory", python(FIX + "memory_bomb"), attempts=2), "memory"),
        "hang": (one_step("hang", python(FIX + "hang", **timeout)), "timeout"),
        "stream": (one_step("stream", {"run": "http", "with": {"url": streamer}}), "permanent"),
        "unpicklable": (one_step("unpicklable", python(FIX + "unpicklable")), "permanent"),
        "odd-error": (one_step("odd-error", python(FIX + "weird_error")), "unknown"),
        "odd-message": (one_step("odd-message", python(FIX + "weird_exception")), "transient"),
        # Known only at run time (an expression): refused by the worker pool, permanently.
        "late-os": (one_step("late-os", python("${{ input.fn }}")), "permanent"),
        # Retried, but every attempt kills its worker: after max_deliveries (3) deaths in a row, poisoned.
        "poisoned": (one_step("poisoned", python(FIX + "exit_hard"), attempts=10), "poisoned"),
    }
    nodes = list(cluster.nodes)
    ids = {
        name: submit(cluster.workflow_stub(nodes[i % 3]), definition, {"fn": "os:_exit"})
        for i, (name, (definition, _)) in enumerate(cases.items())
    }

    # Refused at submit, nothing written: a never-callable module, one outside python_modules, a 256 KiB
    # definition of pathological expression text (quadratic to scan before), a 5,000-level nested input.
    braces = "${{ input.x " + "}}" * (MAX_DEFINITION_BYTES // 2 - 600)
    refusals = [
        (one_step("refused", python("sys:exit")), "{}", ("step 'bad'", "with.function")),
        (one_step("refused", python("json:dumps")), "{}", ("step 'bad'", "with.function")),
        (
            one_step("refused", {"run": "demo", "with": {"output": braces}}),
            "{}",
            ("step 'bad'", "with.output"),
        ),
        (BACKGROUND, "[" * NESTED_INPUT_LEVELS + "]" * NESTED_INPUT_LEVELS, ("input", "nested deeper")),
    ]
    stub = cluster.workflow_stub("n1")
    for n, (definition, input_json, named) in enumerate(refusals):
        wf_id = f"refused-{n}"
        with pytest.raises(grpc.RpcError) as info:
            stub.SubmitWorkflow(
                pb.SubmitWorkflowRequest(
                    definition=definition,
                    definition_source="refused.json",
                    input_json=input_json,
                    workflow_id=wf_id,
                ),
                timeout=10,
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert all(word in str(info.value.details()) for word in named), info.value.details()
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    finished = wait_terminal(cluster, "n1", list(ids.values()), timeout=60)
    # The load ran alongside every hostile workflow; let it reach a meaningful size before it stops.
    cluster.wait_until(lambda: len(background.ids) >= BACKGROUND_MIN, 30, "the background load")
    background.stop.set()
    background.thread.join(timeout=10)

    got = {}
    for name, wf_id in ids.items():
        wf = finished[wf_id]
        bad = {s.id: s for s in wf.steps}["bad"]
        got[name] = (pb.WorkflowStatus.Name(wf.status), bad.error_class)
        assert len(bad.error.encode()) <= 2048, name
    assert got == {name: ("WORKFLOW_STATUS_FAILED", cls) for name, (_, cls) in cases.items()}

    steps = {name: {s.id: s for s in finished[wf_id].steps}["bad"] for name, wf_id in ids.items()}
    assert steps["memory"].attempts == 2  # a worker failure counts against the retry policy like any other
    assert "response too large" in steps["stream"].error
    assert "never callable" in steps["late-os"].error
    assert "SIGSEGV" in steps["segfault"].error
    assert steps["poisoned"].attempts == 3  # max_deliveries, not the retry policy's 10
    assert "killed the process running them 3 times" in steps["poisoned"].error
    assert max(_Streamer.sent) < STREAM_BYTES  # the step stopped reading; the server was cut off

    assert not background.errors
    done = wait_terminal(cluster, "n1", background.ids, timeout=60)
    statuses = {pb.WorkflowStatus.Name(wf.status) for wf in done.values()}
    assert statuses == {"WORKFLOW_STATUS_SUCCEEDED"}

    for nid, node in cluster.nodes.items():
        assert node.proc is not None and node.proc.poll() is None, f"{nid} exited"
        assert node.proc.pid == pids[nid], f"{nid} was restarted"
    wait_converged(cluster)
