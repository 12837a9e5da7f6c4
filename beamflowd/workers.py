"""The step worker pool: user code (``python`` and ``exec`` steps) runs in supervised child processes.

Each worker is ``python -m beamflowd.worker_main``, started with ``asyncio.create_subprocess_exec`` (a fresh
interpreter: nothing of the daemon -- gRPC, Raft threads, state -- is forked into it) and driven over its
pipes with length-prefixed JSON, one job at a time. A worker that exits, segfaults, is killed, hangs past its
attempt's timeout (the attempt is cancelled) or runs out of memory (RLIMIT_AS, set by the worker itself) is
killed with its process group and replaced; the attempt fails as ``crashed``, ``timeout`` or ``memory``.
Replies are untrusted: they are size-capped, parsed as JSON, and their output, message and class re-bounded.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import signal
import struct
import sys
from collections.abc import Mapping
from typing import Any

from beamflowd.isolation import (
    MAX_OUTPUT_BYTES,
    ModulePolicy,
    OutputError,
    bound_error_class,
    bound_message,
    encode_bounded_output,
)
from beamflowd.steps.base import PermanentError, StepContext, StepError
from beamflowd.worker_main import ABANDONED_EXIT_CODE, MEMORY_EXIT_CODE

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
#: Largest reply accepted from a worker, in bytes: a 64 KiB output and a 2 KiB message, JSON-escaped.
MAX_REPLY_BYTES = 8 * MAX_OUTPUT_BYTES
#: A new worker must say it is ready within this long (an interpreter start on a loaded machine).
READY_TIMEOUT_S = 30.0
#: How long a worker whose pipe closed may take to exit before it is killed.
EXIT_GRACE_S = 2.0
#: Back-off between failed worker starts (a broken environment must not spin the CPU).
RESPAWN_DELAY_MIN_S = 0.1
RESPAWN_DELAY_MAX_S = 5.0
DEFAULT_MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024
#: A worker's stderr line (user code's print, a traceback) is logged cut to this many characters.
STDERR_LINE_CHARS_MAX = 2000


async def _log_stderr(worker: _Worker, stream: asyncio.StreamReader) -> None:
    """Log each line a worker writes to stderr (as one structured record, never raw into the node's log),
    with the ids of the attempt it was running (a worker runs one job at a time)."""
    pid = worker.pid
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line beyond the reader's limit: asyncio dropped it
            log.warning("step worker %d wrote an over-long stderr line (dropped)", pid, extra={"worker": pid})
            continue
        except (ConnectionError, OSError):
            return
        if not raw:
            return
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if len(line) > STDERR_LINE_CHARS_MAX:
            line = line[:STDERR_LINE_CHARS_MAX] + "..."
        log.info("step worker %d: %s", pid, line, extra={"worker": pid, "stream": "stderr", **worker.job_ids})


class _WorkerLost(Exception):
    """The worker died or broke the protocol mid-job: the attempt fails with ``error_class``."""

    def __init__(self, message: str, error_class: str) -> None:
        super().__init__(message)
        self.message = message
        self.error_class = error_class


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.jobs = 0
        #: workflow, step and attempt of the job running now ({} when idle), for its stderr lines.
        self.job_ids: dict[str, Any] = {}

    async def read_reply(self) -> dict[str, Any] | None:
        """The next frame, or None if the pipe closed; a frame that breaks the protocol raises _WorkerLost."""
        assert self.proc.stdout is not None
        try:
            header = await self.proc.stdout.readexactly(_HEADER.size)
            (size,) = _HEADER.unpack(header)
            if size > MAX_REPLY_BYTES:
                raise _WorkerLost(
                    f"step worker sent a {size}-byte reply (limit {MAX_REPLY_BYTES})", "crashed"
                )
            body = await self.proc.stdout.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        try:
            reply = json.loads(body)
        except (ValueError, RecursionError):
            raise _WorkerLost("step worker sent a reply that is not JSON", "crashed") from None
        if not isinstance(reply, dict):
            raise _WorkerLost("step worker sent a reply that is not an object", "crashed")
        return reply

    async def call(self, frame: bytes) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.jobs += 1
        try:
            self.proc.stdin.write(frame)
            await self.proc.stdin.drain()
        except ConnectionError:
            pass  # it died before reading: read_reply sees EOF and the exit code says why
        reply = await self.read_reply()
        if reply is None:
            raise await self._lost()
        return reply

    async def _lost(self) -> _WorkerLost:
        try:
            code = await asyncio.wait_for(self.proc.wait(), EXIT_GRACE_S)
        except TimeoutError:
            return _WorkerLost("step worker closed its pipe but did not exit", "crashed")
        if code == MEMORY_EXIT_CODE:
            return _WorkerLost("step worker ran out of memory (step_memory_limit)", "memory")
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return _WorkerLost(f"step worker was killed by {name}", "crashed")
        return _WorkerLost(f"step worker exited with code {code}", "crashed")

    def kill(self) -> None:
        """SIGKILL the worker and everything it started (it leads its own process group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


class WorkerPool:
    """``size`` workers, at most ``queue_max`` attempts waiting for one; used on one event loop."""

    def __init__(
        self,
        *,
        size: int,
        queue_max: int,
        memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
        modules: ModulePolicy | None = None,
    ) -> None:
        if size < 1 or queue_max < 0:
            raise ValueError("a worker pool needs size >= 1 and queue_max >= 0")
        self.size = size
        self.queue_max = queue_max
        self.memory_limit_bytes = memory_limit_bytes
        self.modules = modules or ModulePolicy()
        self._idle: collections.deque[_Worker] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[_Worker]] = collections.deque()
        self._all: dict[int, _Worker] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Killed workers not yet reaped (close waits for them: no process or transport outlives the pool).
        self._reaping: set[asyncio.Task[int]] = set()
        #: One task per worker copying its stderr into the node's log; ends when the worker's stderr closes.
        self._pumps: set[asyncio.Task[None]] = set()
        self._closed = False
        #: Workers started and workers lost (killed, crashed, out of memory) since start.
        self.started = 0
        self.lost = 0

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker now (first attempts should not pay for an interpreter start)."""
        for _ in range(self.size):
            self._spawn_soon()
        # Wait for the first round, neither failing nor cancelling: a worker that cannot start is retried.
        await asyncio.wait(list(self._tasks), timeout=READY_TIMEOUT_S)

    async def close(self) -> None:
        self._closed = True
        for task in [*self._tasks, *self._pumps]:
            task.cancel()
        for fut in self._waiters:
            if not fut.done():
                fut.set_exception(StepError("the node is shutting down", "transient"))
        self._waiters.clear()
        workers = list(self._all.values())
        for w in workers:
            w.kill()
        await asyncio.gather(*(w.proc.wait() for w in workers), *self._reaping, return_exceptions=True)
        self._all.clear()
        self._idle.clear()

    def pids(self) -> list[int]:
        return sorted(self._all)

    def _command(self) -> list[str]:
        argv = [sys.executable, "-m", "beamflowd.worker_main", "--memory-limit", str(self.memory_limit_bytes)]
        argv += ["--parent", str(os.getpid())]
        for pattern in self.modules.patterns:
            argv += ["--allow", pattern]
        return argv

    def _spawn_soon(self) -> None:
        task = asyncio.create_task(self._spawn(), name="step-worker-start")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self) -> None:
        delay = RESPAWN_DELAY_MIN_S
        while not self._closed:
            proc: asyncio.subprocess.Process | None = None
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self._command(),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
                worker = _Worker(proc)
                if proc.stderr is not None:
                    pump = asyncio.create_task(_log_stderr(worker, proc.stderr), name="step-worker-stderr")
                    self._pumps.add(pump)
                    pump.add_done_callback(self._pumps.discard)
                hello = await asyncio.wait_for(worker.read_reply(), READY_TIMEOUT_S)
                if hello is None or hello.get("ready") != proc.pid:
                    raise _WorkerLost("step worker did not start", "crashed")
            except (OSError, TimeoutError, _WorkerLost) as exc:
                if proc is not None and proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
                log.error("cannot start a step worker (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESPAWN_DELAY_MAX_S)
                continue
            except asyncio.CancelledError:
                if proc is not None and proc.returncode is None:
                    proc.kill()
                raise
            self.started += 1
            self._all[worker.pid] = worker
            self._release(worker)
            return

    # -- dispatch -------------------------------------------------------------------------------------------

    async def _acquire(self) -> _Worker:
        if self._closed:
            raise StepError("the node is shutting down", "transient")
        if self._idle:
            return self._idle.popleft()
        if len(self._waiters) >= self.queue_max:
            raise StepError(
                f"all {self.size} step workers are busy and {len(self._waiters)} attempts are queued "
                "(step_queue_max)",
                "transient",
            )
        fut: asyncio.Future[_Worker] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._release(fut.result())  # handed a worker just as we were cancelled: pass it on
            raise

    def _release(self, worker: _Worker) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(worker)
                return
        self._idle.append(worker)

    def _discard(self, worker: _Worker) -> None:
        """Kill and forget ``worker``; a replacement starts at once."""
        worker.kill()
        if self._all.pop(worker.pid, None) is not None:
            self.lost += 1
        reap = asyncio.create_task(worker.proc.wait(), name="step-worker-reap")
        self._reaping.add(reap)
        reap.add_done_callback(self._reaping.discard)
        if not self._closed:
            self._spawn_soon()

    async def _run(self, job: dict[str, Any]) -> Any:
        try:
            frame_body = json.dumps(job, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"step input is not plain JSON: {exc}") from None
        frame = _HEADER.pack(len(frame_body)) + frame_body
        worker = await self._acquire()
        ctx = job.get("ctx", {})
        worker.job_ids = {
            "workflow": ctx.get("workflow_id"),
            "step": ctx.get("step_id"),
            "attempt": ctx.get("attempt"),
        }
        try:
            reply = await worker.call(frame)
        except asyncio.CancelledError:  # the attempt timed out (or the node stops): the job must not go on
            self._discard(worker)
            raise
        except _WorkerLost as lost:
            log.warning("step worker %d lost: %s", worker.pid, lost.message)
            self._discard(worker)
            raise StepError(lost.message, lost.error_class) from None
        if reply.get("exit") is True or worker.proc.returncode is not None:
            self._discard(worker)  # out of memory or SystemExit: it said so and is exiting
        else:
            self._release(worker)
        return _checked(reply)

    async def run_python(self, ctx: StepContext, function: str, args: Mapping[str, Any]) -> Any:
        refusal = self.modules.refusal(function)
        if refusal is not None:
            raise PermanentError(f"python function {function!r} refused on node {ctx.node_id}: {refusal}")
        return await self._run({"kind": "python", "function": function, "ctx": _ctx(ctx, args)})

    async def run_exec(
        self, ctx: StepContext, argv: list[str], env: Mapping[str, str] | None, cwd: str | None
    ) -> Any:
        job = {"kind": "exec", "argv": argv, "env": dict(env or {}), "cwd": cwd, "ctx": _ctx(ctx, ctx.args)}
        return await self._run(job)


def _ctx(ctx: StepContext, args: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "workflow_id": ctx.workflow_id,
        "step_id": ctx.step_id,
        "attempt": ctx.attempt,
        "idempotency_key": ctx.idempotency_key,
        "input": ctx.input,
        "results": dict(ctx.results),
        "node_id": ctx.node_id,
        "allow_exec": ctx.allow_exec,
        "args": dict(args),
    }


def _checked(reply: Mapping[str, Any]) -> Any:
    """The worker's reply, trusted for nothing: plain bounded output, or a bounded StepError."""
    if reply.get("ok") is True:
        text = reply.get("output")
        if not isinstance(text, str) or len(text) > MAX_OUTPUT_BYTES:
            raise StepError("step worker sent an output that is not bounded JSON text", "crashed")
        try:
            value = json.loads(text)
            encode_bounded_output(value)
        except (ValueError, RecursionError, OutputError) as exc:
            raise StepError(f"step worker sent an invalid output: {bound_message(exc)}", "crashed") from None
        return value
    message, error_class = bound_message(reply.get("error", "")), bound_error_class(reply.get("error_class"))
    raise PermanentError(message) if error_class == "permanent" else StepError(message, error_class)


_active: WorkerPool | None = None


def install_pool(pool: WorkerPool | None) -> None:
    """Make ``pool`` the one the ``python`` and ``exec`` kinds use (the node installs one at start)."""
    global _active
    _active = pool


def active_pool() -> WorkerPool:
    if _active is None:
        raise StepError("no step worker pool is running on this node", "transient")
    return _active


__all__ = [
    "ABANDONED_EXIT_CODE",
    "DEFAULT_MEMORY_LIMIT_BYTES",
    "MEMORY_EXIT_CODE",
    "WorkerPool",
    "active_pool",
    "install_pool",
]
