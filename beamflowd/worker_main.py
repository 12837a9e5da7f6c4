"""``python -m beamflowd.worker_main``: one step worker, a child of ``beamflowd`` that runs user code.

It speaks length-prefixed JSON (4-byte big-endian length, then UTF-8 JSON) on the pipes it was started
with and runs one job at a time: a ``python`` function (sync in this thread, async on this process's own
event loop) or an ``exec`` argv. Everything it sends back is plain, bounded JSON (:mod:`beamflowd.isolation`);
the daemon checks it again. The daemon kills this process when an attempt times out; this process caps its
own address space (RLIMIT_AS) and dies with its parent.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib
import inspect
import json
import os
import resource
import signal
import struct
import sys
from collections.abc import Callable
from typing import Any

from beamflowd.isolation import (
    NEVER_CALLABLE,
    ModulePolicy,
    OutputError,
    bound_error_class,
    bound_message,
    encode_bounded_output,
)

#: Exit code after a MemoryError: the daemon reports ``memory`` instead of ``crashed``.
MEMORY_EXIT_CODE = 86
#: Exit code after user code raised SystemExit / KeyboardInterrupt (already reported as ``crashed``).
ABANDONED_EXIT_CODE = 87
#: Largest request frame accepted from the daemon, in bytes (inputs and outputs are bounded far lower).
MAX_REQUEST_BYTES = 64 * 1024 * 1024
#: Kept aside and released on MemoryError, so the reply can still be built and sent.
_RESERVE_BYTES = 1024 * 1024
_HEADER = struct.Struct(">I")
_PR_SET_PDEATHSIG = 1


class _Failure(Exception):
    def __init__(self, message: str, error_class: str) -> None:
        super().__init__(message)
        self.message = message
        self.error_class = error_class


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks: list[bytes] = []
    remaining = n
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> Any:
    """The next request, or None at EOF (the daemon closed the pipe: time to go)."""
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_REQUEST_BYTES:
        raise SystemExit(f"worker: request of {size} bytes is over {MAX_REQUEST_BYTES}")
    body = _read_exact(fd, size)
    return None if body is None else json.loads(body)


def write_frame(fd: int, message: dict[str, Any]) -> None:
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    data = _HEADER.pack(len(body)) + body
    while data:
        data = data[os.write(fd, data) :]


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL us when the daemon dies, even by SIGKILL (we lead our own session, so no group kill)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the closed pipe still ends us once the current job returns
    if os.getppid() != parent:  # the daemon died before prctl took effect
        os._exit(0)


class Worker:
    """Runs jobs; caches resolved functions (imports are slow, and a worker serves many attempts)."""

    def __init__(self, policy: ModulePolicy) -> None:
        self.policy = policy
        self.loop = asyncio.new_event_loop()
        self.functions: dict[str, Callable[..., Any]] = {}

    def resolve(self, spec: str) -> Callable[..., Any]:
        fn = self.functions.get(spec)
        if fn is not None:
            return fn
        refusal = self.policy.refusal(spec)
        if refusal is not None:
            raise _Failure(f"python function {spec!r} refused: {refusal}", "permanent")
        module_name, _, attr_path = spec.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr_path.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            message = f"cannot load python function {spec!r}: {type(exc).__name__}: {exc}"
            raise _Failure(message, "permanent") from None
        if not callable(obj):
            raise _Failure(f"python function {spec!r} is not callable ({type(obj).__name__})", "permanent")
        origin = getattr(obj, "__module__", None)
        if isinstance(origin, str) and origin.split(".")[0] in NEVER_CALLABLE:
            # An allowed module re-exporting os.system or sys.exit under its own name.
            raise _Failure(f"python function {spec!r} is {origin}'s, which is never callable", "permanent")
        self.functions[spec] = obj
        return obj  # type: ignore[no-any-return]

    def run_python(self, job: dict[str, Any]) -> Any:
        from beamflowd.steps.base import StepContext

        fn = self.resolve(str(job["function"]))
        ctx = StepContext(**job["ctx"])
        if inspect.iscoroutinefunction(fn):
            return self.loop.run_until_complete(fn(ctx))
        result = fn(ctx)
        if inspect.isawaitable(result):  # a partial or a sync wrapper of an async function
            result = self.loop.run_until_complete(_awaited(result))
        return result

    def run_exec(self, job: dict[str, Any]) -> Any:
        from beamflowd.steps.base import StepContext
        from beamflowd.steps.exec import run_argv

        ctx = StepContext(**job["ctx"])
        return self.loop.run_until_complete(run_argv(ctx, list(job["argv"]), job.get("env"), job.get("cwd")))

    def handle(self, job: dict[str, Any]) -> dict[str, Any]:
        """One job -> one reply; the step's failures are data here, never an exit."""
        from beamflowd.steps.base import StepError

        try:
            output = self.run_python(job) if job.get("kind") == "python" else self.run_exec(job)
            return {"ok": True, "output": encode_bounded_output(output)}
        except _Failure as exc:
            return _error(exc.message, exc.error_class)
        except OutputError as exc:
            return _error(str(exc), "permanent")
        except StepError as exc:
            return _error(getattr(exc, "message", ""), getattr(exc, "error_class", "transient"))
        except MemoryError:
            raise
        except Exception as exc:
            return _error(f"{type(exc).__name__}: {bound_message(exc)}", "transient")


async def _awaited(value: Any) -> Any:
    return await value


def _error(message: Any, error_class: Any) -> dict[str, Any]:
    return {"ok": False, "error": bound_message(message), "error_class": bound_error_class(error_class)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="beamflowd.worker_main")
    ap.add_argument("--memory-limit", type=int, default=0, help="RLIMIT_AS in bytes (0: none)")
    ap.add_argument("--allow", action="append", default=[], help="a python_modules pattern")
    ap.add_argument("--parent", type=int, default=0, help="the daemon's pid")
    args = ap.parse_args(argv)
    # Private protocol pipes; user code's print() goes to stderr (the node log), its input() sees EOF.
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the daemon, which stops us
    faulthandler.enable()  # a segfault in user code leaves a traceback in the node log
    if args.parent:
        _die_with_parent(args.parent)
    if args.memory_limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (args.memory_limit, args.memory_limit))
    worker = Worker(ModulePolicy(args.allow))
    reserve = [bytearray(_RESERVE_BYTES)]
    write_frame(proto_out, {"ready": os.getpid()})
    while True:
        job = read_frame(proto_in)
        if job is None:
            return
        try:
            reply = worker.handle(job)
        except MemoryError:
            reserve.clear()
            write_frame(
                proto_out,
                {**_error("the step ran out of memory (step_memory_limit)", "memory"), "exit": True},
            )
            os._exit(MEMORY_EXIT_CODE)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt, GeneratorExit from user code
            message = f"step function raised {type(exc).__name__}: {bound_message(exc)}"
            write_frame(proto_out, {**_error(message, "crashed"), "exit": True})
            os._exit(ABANDONED_EXIT_CODE)
        write_frame(proto_out, reply)


if __name__ == "__main__":
    main()
    sys.exit(0)
