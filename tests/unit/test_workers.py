"""The step worker pool against real worker processes, the module allowlist, and the bounds on replies."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from beamflowd.api.workflows import check_python_functions
from beamflowd.config import ConfigError, build_config
from beamflowd.core.backoff import should_retry
from beamflowd.core.spec import RetryPolicy, SpecError, parse_workflow
from beamflowd.isolation import (
    MAX_ERROR_MESSAGE_BYTES,
    ModulePolicy,
    OutputError,
    bound_error_class,
    bound_message,
    encode_bounded_output,
)
from beamflowd.steps.base import PermanentError, StepContext, StepError
from beamflowd.workers import WorkerPool, _checked

T = TypeVar("T")
FIX = "tests.fixtures.pysteps:"
CTX = StepContext("wf-1", "s1", 1, "wf-1/s1/1", {"name": "Ada"}, {}, "node-a", True, {})


def with_pool(body: Callable[[WorkerPool], Awaitable[T]], *, size: int = 1, queue_max: int = 10) -> T:
    async def go() -> T:
        pool = WorkerPool(
            size=size,
            queue_max=queue_max,
            memory_limit_bytes=256 * 1024 * 1024,
            modules=ModulePolicy(["tests.fixtures.*"]),
        )
        await pool.start()
        try:
            return await body(pool)
        finally:
            await pool.close()

    return asyncio.run(go())


async def failure(pool: WorkerPool, function: str, timeout: float = 5.0) -> StepError:
    with pytest.raises(StepError) as info:
        await asyncio.wait_for(pool.run_python(CTX, FIX + function, {}), timeout)
    return info.value


# --- module policy ----------------------------------------------------------------------------------------


def test_module_policy_exact_and_prefix() -> None:
    policy = ModulePolicy(["mypkg", "other.*"])
    assert policy.refusal("mypkg:f") is None
    assert policy.refusal("other.sub.deep:f") is None
    assert policy.refusal("mypkg.sub:f") is not None  # "mypkg" is that module only
    assert policy.refusal("other:f") is not None  # "other.*" is below other only
    assert policy.refusal("otherwise:f") is not None
    assert "not in this node's python_modules" in str(policy.refusal("json:dumps"))


def test_never_callable_whatever_the_config() -> None:
    policy = ModulePolicy(["os", "sys", "subprocess.*", "builtins", "mypkg"])
    for function in ("os:_exit", "sys:exit", "subprocess.x:run", "builtins:exec", "ctypes:string_at"):
        assert "never callable" in str(policy.refusal(function)), function
    assert "dunder" in str(policy.refusal("mypkg:__builtins__.exec"))
    with pytest.raises(ValueError):
        ModulePolicy(["my pkg"])


def test_submit_refuses_a_denied_function_naming_step_and_field() -> None:
    definition = """
name: t
steps:
  - {id: fine, run: python, with: {function: "tests.fixtures.pysteps:greet"}}
  - {id: late, run: python, with: {function: "${{ input.fn }}"}}
  - {id: evil, run: python, with: {function: "os:system"}}
"""
    spec = parse_workflow(definition, source="t.yaml")
    with pytest.raises(SpecError) as info:
        check_python_functions(spec, ModulePolicy(["tests.fixtures.*"]), "t.yaml")
    assert (info.value.step, info.value.field) == ("evil", "with.function")
    assert "never callable" in str(info.value)
    ok = parse_workflow(definition.replace("os:system", "tests.fixtures.pysteps:boom"), source="t.yaml")
    check_python_functions(ok, ModulePolicy(["tests.fixtures.*"]), "t.yaml")  # expressions wait for run time
    with pytest.raises(SpecError):
        check_python_functions(ok, ModulePolicy(), "t.yaml")  # nothing is allowed by default


# --- bounds -----------------------------------------------------------------------------------------------


class _NoStr:
    def __str__(self) -> str:
        raise RuntimeError("nope")


def test_bounds_on_messages_and_classes() -> None:
    assert bound_message("short") == "short"
    long = bound_message("é" * 10_000)
    assert len(long.encode()) <= MAX_ERROR_MESSAGE_BYTES and long.endswith("[truncated]")
    assert bound_message(_NoStr()) == "<unprintable _NoStr>"
    assert type(bound_message(type("S", (str,), {})("x"))) is str
    assert bound_error_class("card_declined") == "card_declined"
    assert bound_error_class("crashed") == "crashed"
    for bad in (None, 3, _NoStr(), "x" * 65, "has space", "", "new\nline"):
        assert bound_error_class(bad) == "unknown", bad
    assert encode_bounded_output({"b": 1, "a": 2}) == '{"a":2,"b":1}'
    for bad_output in ({"x": object()}, float("nan"), "x" * 70_000):
        with pytest.raises(OutputError):
            encode_bounded_output(bad_output)


def test_replies_are_checked_again_in_the_daemon() -> None:
    assert _checked({"ok": True, "output": '{"a":1}'}) == {"a": 1}
    for reply in ({"ok": True, "output": "{nope"}, {"ok": True, "output": 5}, {"ok": True}):
        with pytest.raises(StepError) as info:
            _checked(reply)
        assert info.value.error_class == "crashed"
    with pytest.raises(StepError) as info:
        _checked({"ok": False, "error": ["not", "text"] * 2000, "error_class": {"no": 1}})
    assert info.value.error_class == "unknown"
    assert len(info.value.message.encode()) <= MAX_ERROR_MESSAGE_BYTES
    with pytest.raises(PermanentError):
        _checked({"ok": False, "error": "x", "error_class": "permanent"})


def test_worker_failure_classes_are_retried() -> None:
    policy = RetryPolicy(max_attempts=3)
    for error_class in ("crashed", "timeout", "memory"):
        assert should_retry(policy, 1, error_class)
        assert not should_retry(policy, 3, error_class)
    assert not should_retry(RetryPolicy(max_attempts=3, non_retryable=("memory",)), 1, "memory")


# --- the pool ---------------------------------------------------------------------------------------------


def test_hostile_functions_kill_only_their_worker() -> None:
    async def body(pool: WorkerPool) -> dict[str, tuple[str, str]]:
        out = {}
        for function in ("exit_via_sys", "exit_hard", "segfault", "memory_bomb", "unpicklable"):
            exc = await failure(pool, function)
            out[function] = (exc.error_class, exc.message)
        for function in ("spin", "hang"):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(pool.run_python(CTX, FIX + function, {}), 0.5)
        # Every lost worker was replaced: the pool still answers, from a different process.
        assert await pool.run_python(CTX, FIX + "greet", {}) == {"message": "Hello, Ada"}
        assert pool.lost == 6 and pool.started == 7
        return out

    out = with_pool(body)
    assert {k: v[0] for k, v in out.items()} == {
        "exit_via_sys": "crashed",
        "exit_hard": "crashed",
        "segfault": "crashed",
        "memory_bomb": "memory",
        "unpicklable": "permanent",
    }
    assert "code 7" in out["exit_hard"][1] and "SIGSEGV" in out["segfault"][1]


def test_hostile_errors_are_bounded_plain_data() -> None:
    async def body(pool: WorkerPool) -> tuple[StepError, StepError, StepError]:
        return (
            await failure(pool, "weird_error"),
            await failure(pool, "weird_exception"),
            await failure(pool, "reexported_exit"),
        )

    weird, huge, reexported = with_pool(body)
    assert (weird.error_class, weird.message) == ("unknown", "<unprintable _HostileMessage>")
    assert huge.error_class == "transient" and len(huge.message.encode()) <= MAX_ERROR_MESSAGE_BYTES
    assert reexported.error_class == "permanent" and "never callable" in reexported.message


def test_the_daemon_never_imports_user_modules() -> None:
    import sys

    sys.modules.pop("tests.fixtures.pysteps", None)

    async def body(pool: WorkerPool) -> Any:
        return await pool.run_python(CTX, FIX + "greet", {})

    assert with_pool(body) == {"message": "Hello, Ada"}
    assert "tests.fixtures.pysteps" not in sys.modules


def test_refused_before_dispatch_and_async_runs_on_the_worker_loop() -> None:
    async def body(pool: WorkerPool) -> Any:
        with pytest.raises(PermanentError) as info:
            await pool.run_python(CTX, "json:dumps", {})
        assert "node-a" in info.value.message
        assert pool.started == 1 and pool.lost == 0
        return await pool.run_python(CTX, FIX + "greet_async", {})

    assert with_pool(body) == {"message": "Hello, Ada", "attempt": 1}


def test_bounded_queue() -> None:
    async def body(pool: WorkerPool) -> StepError:
        busy = asyncio.create_task(pool.run_python(CTX, FIX + "sleepy", {"seconds": 2}))
        queued = asyncio.create_task(pool.run_python(CTX, FIX + "greet", {}))
        await asyncio.sleep(0.2)
        with pytest.raises(StepError) as info:
            await pool.run_python(CTX, FIX + "greet", {})
        busy.cancel()  # kills the busy worker; its replacement serves the queued attempt
        assert await asyncio.wait_for(queued, 10) == {"message": "Hello, Ada"}
        return info.value

    exc = with_pool(body, queue_max=1)
    assert exc.error_class == "transient" and "step_queue_max" in exc.message


def test_workers_leave_with_the_pool() -> None:
    async def body(pool: WorkerPool) -> list[int]:
        return pool.pids()

    pids = with_pool(body, size=2)
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# --- config -----------------------------------------------------------------------------------------------


def config(**values: Any) -> Any:
    return build_config(values, {"node_id": "n1", "initial_cluster": "n1=127.0.0.1:7101"})


def test_worker_config() -> None:
    c = config()
    assert c.step_workers == (os.cpu_count() or 1) and c.step_memory_limit == 1024**3
    assert c.python_modules == () and c.http_deny_networks == ("169.254.0.0/16", "fe80::/10")
    c = config(step_memory_limit="512MiB", python_modules=["a", "b.*"], step_workers=3)
    assert (c.step_memory_limit, c.python_modules, c.step_workers) == (512 * 1024**2, ("a", "b.*"), 3)
    for bad in (
        {"step_workers": 0},
        {"step_memory_limit": "1MiB"},
        {"step_memory_limit": "lots"},
        {"python_modules": "a"},
        {"python_modules": ["a b"]},
        {"http_deny_networks": ["not-a-net"]},
    ):
        with pytest.raises(ConfigError):
            config(**bad)
