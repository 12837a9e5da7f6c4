"""Step kinds against real things: a local HTTP server, real subprocesses, real imports."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from beamflowd.config import DEFAULT_HTTP_DENY_NETWORKS
from beamflowd.core.step_params import STEP_KIND_NAMES, ParamError, durable_delay_ms, validate_params
from beamflowd.isolation import ModulePolicy
from beamflowd.steps import STEP_KINDS, aclose_http_client
from beamflowd.steps.base import (
    MAX_OUTPUT_BYTES,
    PermanentError,
    StepContext,
    StepError,
    encode_output,
)
from beamflowd.steps.exec import MAX_STDOUT_BYTES
from beamflowd.steps.http import configure_http, denied
from beamflowd.workers import WorkerPool, install_pool

T = TypeVar("T")

#: What the unit tests' pools may call.
TEST_MODULES = ModulePolicy(["tests.fixtures.*"])


async def with_pool(coro: Awaitable[T]) -> T:
    """Run ``coro`` with a one-worker pool installed (python and exec steps run in workers)."""
    pool = WorkerPool(size=1, queue_max=10, modules=TEST_MODULES)
    await pool.start()
    install_pool(pool)
    try:
        return await coro
    finally:
        install_pool(None)
        await pool.close()


def make_ctx(*, allow_exec: bool = False, attempt: int = 1, input: Any = None) -> StepContext:
    return StepContext(
        workflow_id="wf-1",
        step_id="s1",
        attempt=attempt,
        idempotency_key=f"wf-1/s1/{attempt}",
        input=input if input is not None else {"name": "Ada"},
        results={"prev": {"x": 1}},
        node_id="node-a",
        allow_exec=allow_exec,
        args={},
    )


def run(kind: str, params: Mapping[str, Any], ctx: StepContext | None = None) -> Any:
    validate_params(kind, params)
    coro = STEP_KINDS[kind].run(ctx or make_ctx(), params)
    return asyncio.run(with_pool(coro) if kind in ("python", "exec") else coro)


def invalid(kind: str, params: Any) -> ParamError:
    with pytest.raises(ParamError) as info:
        validate_params(kind, params)
    return info.value


def test_registry_has_all_kinds() -> None:
    assert (
        set(STEP_KINDS)
        == {"noop", "sleep", "demo", "python", "http", "exec", "choice", "wait"}
        == set(STEP_KIND_NAMES)
    )
    for name, kind in STEP_KINDS.items():
        assert kind.name == name


# --- validation -------------------------------------------------------------------------------------------


def test_unknown_param_names_field_and_allowed() -> None:
    err = invalid("sleep", {"duration": "1s", "durration": "2s"})
    assert err.field == "durration"
    assert "duration" in err.message
    err = invalid("noop", {"x": 1})
    assert err.field == "x"


def test_missing_required() -> None:
    assert invalid("sleep", {}).field == "duration"
    assert invalid("python", {}).field == "function"
    assert invalid("http", {}).field == "url"
    assert invalid("exec", {}).field == "argv"


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("sleep", {"duration": 5}, "duration"),
        ("sleep", {"duration": "5 parsecs"}, "duration"),
        ("demo", {"failure_rate": 1.5}, "failure_rate"),
        ("demo", {"failure_rate": True}, "failure_rate"),
        ("demo", {"failure_rate": 0.6, "timeout_rate": 0.6}, "failure_rate"),
        ("demo", {"min_latency": "2s", "max_latency": "1s"}, "max_latency"),
        ("demo", {"error_class": 3}, "error_class"),
        ("demo", {"output": {1, 2}}, "output"),
        ("python", {"function": "no_colon"}, "function"),
        ("python", {"function": "a.b:c", "args": [1]}, "args"),
        ("http", {"url": "ftp://x"}, "url"),
        ("http", {"url": "http://x", "method": "BREW"}, "method"),
        ("http", {"url": "http://x", "headers": {"a": 1}}, "headers.a"),
        ("http", {"url": "http://x", "expect_status": [200, 999]}, "expect_status[1]"),
        ("http", {"url": "http://x", "expect_status": []}, "expect_status"),
        ("exec", {"argv": []}, "argv"),
        ("exec", {"argv": "echo hi"}, "argv"),
        ("exec", {"argv": [1]}, "argv[0]"),
        ("exec", {"argv": ["echo"], "env": {"A": 1}}, "env.A"),
    ],
)
def test_bad_literals(kind: str, params: dict[str, Any], field: str) -> None:
    err = invalid(kind, params)
    assert err.field == field
    assert str(err).startswith(field)


def test_expressions_skip_type_checks() -> None:
    expr = "${{ input.x }}"
    validate_params("sleep", {"duration": expr})
    validate_params("demo", {"failure_rate": expr, "min_latency": expr})
    validate_params("http", {"url": expr, "headers": expr, "expect_status": [200, expr]})
    validate_params("exec", {"argv": expr})
    validate_params("exec", {"argv": ["echo", expr]})
    validate_params("python", {"function": expr})


def test_params_must_be_a_mapping() -> None:
    assert invalid("noop", ["x"]).field == "with"


# --- noop, sleep, demo ------------------------------------------------------------------------------------


def test_noop() -> None:
    assert run("noop", {}) is None
    assert durable_delay_ms("noop", {}) is None


def test_sleep_is_durable() -> None:
    assert durable_delay_ms("sleep", {"duration": "1.5s"}) == 1500
    assert run("sleep", {"duration": "2h"}) == {"slept_ms": 7_200_000}  # returns at once
    assert durable_delay_ms("demo", {}) is None


def test_demo_success_default_and_custom_output() -> None:
    out = run("demo", {"min_latency": "1ms", "max_latency": "3ms"})
    assert out["ok"] is True and 1 <= out["latency_ms"] <= 3
    assert run("demo", {"output": [1, "a"]}) == [1, "a"]
    assert run("demo", {"failure_rate": 0, "timeout_rate": 0}) == {"ok": True, "latency_ms": 0}


def test_demo_score_is_a_random_integer_in_its_range() -> None:
    scores = {run("demo", {"score": [3, 5], "output": {"claim": "C-1"}})["score"] for _ in range(200)}
    assert scores == {3, 4, 5}
    out = run("demo", {"score": [7, 7]})
    assert out["score"] == 7 and out["ok"] is True
    for bad in ({"score": [5, 3]}, {"score": [1]}, {"score": "high"}, {"score": [1, 2], "output": [1]}):
        with pytest.raises(PermanentError):
            asyncio.run(STEP_KINDS["demo"].run(make_ctx(), bad))


def test_demo_failure_and_timeout_rates() -> None:
    with pytest.raises(StepError) as info:
        run("demo", {"failure_rate": 1, "error_class": "flaky"})
    assert info.value.error_class == "flaky"
    assert "simulated failure" in info.value.message
    with pytest.raises(StepError) as info:
        run("demo", {"timeout_rate": 1.0})
    assert info.value.error_class == "timeout"
    with pytest.raises(StepError) as info:
        run("demo", {"failure_rate": 1})
    assert info.value.error_class == "transient"


def test_demo_bad_resolved_param_is_permanent() -> None:
    with pytest.raises(PermanentError):
        asyncio.run(STEP_KINDS["demo"].run(make_ctx(), {"failure_rate": "lots"}))


# --- python -----------------------------------------------------------------------------------------------


def test_python_sync_and_async() -> None:
    assert run("python", {"function": "tests.fixtures.pysteps:greet"}) == {"message": "Hello, Ada"}
    out = run("python", {"function": "tests.fixtures.pysteps:greet_async"}, make_ctx(attempt=3))
    assert out == {"message": "Hello, Ada", "attempt": 3}


def test_python_args_are_the_args_param() -> None:
    out = run("python", {"function": "tests.fixtures.pysteps:echo_args", "args": {"k": "v"}})
    assert out == {"args": {"k": "v"}, "results": {"prev": {"x": 1}}}
    out = run("python", {"function": "tests.fixtures.pysteps:echo_args"})
    assert out["args"] == {}


def test_python_errors() -> None:
    fn = "tests.fixtures.pysteps:"
    with pytest.raises(PermanentError):
        run("python", {"function": fn + "always_permanent"})
    with pytest.raises(StepError) as info:
        run("python", {"function": fn + "flaky_until", "args": {"succeed_on": 2}})
    assert info.value.error_class == "transient"
    flaky = {"function": fn + "flaky_until", "args": {"succeed_on": 2}}
    assert run("python", flaky, make_ctx(attempt=2)) == {"attempt": 2}
    with pytest.raises(StepError) as info:
        run("python", {"function": fn + "boom"})
    assert info.value.error_class == "transient"
    assert info.value.message == "RuntimeError: boom"
    for missing in ("no_such_module_xyz:f", fn + "nope", fn + "not_callable"):
        with pytest.raises(PermanentError):
            run("python", {"function": missing})


def test_python_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BEAMFLOW_TEST_RECORD_FILE", raising=False)
    path = tmp_path / "rec.txt"
    params = {"function": "tests.fixtures.pysteps:record", "args": {"file": str(path)}}
    assert run("python", params, make_ctx(attempt=2)) == {"recorded": True}
    assert path.read_text() == "wf-1 s1 2 wf-1/s1/2\n"


# --- http -------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/ok":
            self._send(200, b'{"hello": "world"}')
        elif self.path == "/text":
            self._send(200, b"plain", "text/plain")
        elif self.path == "/fail":
            self._send(500, b'{"error": "down"}')
        elif self.path == "/throttle":
            self._send(429, b"slow down", "text/plain")
        elif self.path in ("/endless", "/endless-error"):
            self._stream(200 if self.path == "/endless" else 503)
        elif self.path == "/declared-big":
            self._send(200, b"x" * (MAX_OUTPUT_BYTES + 1), "text/plain")
        else:
            self._send(404, b'{"error": "missing"}')

    def _stream(self, status: int) -> None:
        """Up to 16 MiB without a Content-Length: only reading tells the size."""
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for _ in range(256):
                self.wfile.write(b"y" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        payload = json.loads(self.rfile.read(length) or b"null")
        body = {"got": payload, "idempotency_key": self.headers.get("Idempotency-Key")}
        self._send(201, json.dumps(body).encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run_http(params: Mapping[str, Any]) -> Any:
    async def go() -> Any:
        try:
            validate_params("http", params)
            return await STEP_KINDS["http"].run(make_ctx(), params)
        finally:
            await aclose_http_client()

    return asyncio.run(go())


def test_http_ok(server: str) -> None:
    assert run_http({"url": server + "/ok"}) == {"status": 200, "body": {"hello": "world"}}
    assert run_http({"url": server + "/text"}) == {"status": 200, "body": "plain"}


def test_http_post_json_and_idempotency_key(server: str) -> None:
    out = run_http({"method": "post", "url": server + "/echo", "json": {"a": 1}})
    assert out == {"status": 201, "body": {"got": {"a": 1}, "idempotency_key": "wf-1/s1/1"}}
    out = run_http({"method": "POST", "url": server + "/x", "headers": {"idempotency-key": "mine"}})
    assert out["body"]["idempotency_key"] == "mine"


def test_http_transient_vs_permanent(server: str) -> None:
    for path in ("/fail", "/throttle"):
        with pytest.raises(StepError) as info:
            run_http({"url": server + path})
        assert info.value.error_class == "transient", path
    with pytest.raises(PermanentError) as perm:
        run_http({"url": server + "/missing"})
    assert "404" in perm.value.message
    # A 404 can be expected; then a 200 is not.
    assert run_http({"url": server + "/missing", "expect_status": [404]})["status"] == 404
    with pytest.raises(PermanentError):
        run_http({"url": server + "/ok", "expect_status": [404]})


def test_http_connect_error_is_transient(server: str) -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused.
    with pytest.raises(StepError) as info:
        run_http({"url": "http://127.0.0.1:1/"})
    assert info.value.error_class == "transient"


def test_http_body_capped_while_streaming(server: str) -> None:
    for path in ("/endless", "/declared-big"):
        with pytest.raises(PermanentError) as info:
            run_http({"url": server + path})
        assert "response too large" in info.value.message, path
    # An error status reads only the start of the body, for the message: still transient.
    with pytest.raises(StepError) as err:
        run_http({"url": server + "/endless-error"})
    assert err.value.error_class == "transient" and "503" in err.value.message
    assert len(err.value.message) < 500


def test_http_deny_networks_checked_after_resolution(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(PermanentError) as info:
        run_http({"url": "http://169.254.169.254/latest/meta-data/"})  # denied by default, never connected
    assert "http_deny_networks" in info.value.message
    assert time.monotonic() - started < 5
    port = server.rsplit(":", 1)[1]
    configure_http(deny_networks=["127.0.0.0/8", "::1/128"])
    try:
        with pytest.raises(PermanentError) as local:
            run_http({"url": f"http://localhost:{port}/ok"})  # a name: denied by what it resolves to
        assert "http_deny_networks" in local.value.message
    finally:
        configure_http(deny_networks=DEFAULT_HTTP_DENY_NETWORKS)
    assert run_http({"url": f"http://localhost:{port}/ok"})["status"] == 200
    assert denied("::ffff:169.254.1.1") and denied("fe80::1%eth0") and not denied("10.0.0.1")


# --- exec -------------------------------------------------------------------------------------------------


def test_exec_refused_unless_allowed() -> None:
    with pytest.raises(PermanentError) as info:
        run("exec", {"argv": ["/bin/echo", "hi"]})
    assert "node-a" in info.value.message and "allow_exec" in info.value.message


def test_exec_echo_and_exit_code() -> None:
    ctx = make_ctx(allow_exec=True)
    out = run("exec", {"argv": ["/bin/echo", "hello", "world"]}, ctx)
    assert out == {"exit_code": 0, "stdout": "hello world\n", "stdout_truncated": False}
    with pytest.raises(StepError) as info:
        run("exec", {"argv": ["sh", "-c", "echo bad thing >&2; exit 3"]}, ctx)
    assert info.value.error_class == "transient"
    assert "code 3" in info.value.message and "bad thing" in info.value.message
    with pytest.raises(PermanentError):
        run("exec", {"argv": ["/no/such/program"]}, ctx)


def test_exec_env(tmp_path: Path) -> None:
    params = {"argv": ["/usr/bin/env"], "env": {"EXTRA": "yes"}, "cwd": str(tmp_path)}
    out = run("exec", params, make_ctx(allow_exec=True, attempt=4))
    env = dict(line.split("=", 1) for line in out["stdout"].splitlines() if "=" in line)
    assert env["EXTRA"] == "yes"
    assert env["BEAMFLOW_WORKFLOW_ID"] == "wf-1"
    assert env["BEAMFLOW_STEP_ID"] == "s1"
    assert env["BEAMFLOW_ATTEMPT"] == "4"
    assert env["BEAMFLOW_IDEMPOTENCY_KEY"] == "wf-1/s1/4"
    assert "PATH" in env  # the node's env is inherited


def test_exec_stdout_truncated() -> None:
    params = {"argv": ["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x"]}
    out = run("exec", params, make_ctx(allow_exec=True))
    assert out["stdout_truncated"] is True
    assert out["stdout"] == "x" * MAX_STDOUT_BYTES
    assert len(encode_output(out)) < MAX_OUTPUT_BYTES


def test_exec_cancellation_kills_child(tmp_path: Path) -> None:
    marker = tmp_path / "done"

    async def go() -> None:
        params = {"argv": ["sh", "-c", f"sleep 1; touch {marker}"]}
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(STEP_KINDS["exec"].run(make_ctx(allow_exec=True), params), 0.2)

    asyncio.run(with_pool(go()))
    time.sleep(1.3)
    assert not marker.exists()


# --- encode_output ----------------------------------------------------------------------------------------


def test_encode_output() -> None:
    assert encode_output({"b": 1, "a": [None, True]}) == '{"a":[null,true],"b":1}'
    assert encode_output(None) == "null"
    encode_output("x" * (MAX_OUTPUT_BYTES - 2))  # exactly at the limit, with quotes
    with pytest.raises(StepError) as info:
        encode_output("x" * MAX_OUTPUT_BYTES)
    assert info.value.error_class == "permanent" and "65536" in info.value.message
    with pytest.raises(StepError) as info:
        encode_output({"s": {1, 2}})
    assert info.value.error_class == "permanent"
    with pytest.raises(StepError):
        encode_output(float("nan"))
