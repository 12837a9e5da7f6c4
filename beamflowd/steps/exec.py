"""``exec``: runs an argv (never a shell) on the node; off unless the node's config sets ``allow_exec``.

The program is started by a step worker (:mod:`beamflowd.workers`), never by the daemon: it inherits the
worker's memory cap and process group, so killing a timed-out worker kills the program and its children too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from typing import Any

from beamflowd.core.step_params import ParamError, parse_exec
from beamflowd.steps.base import (
    PermanentError,
    StepContext,
    StepError,
    param_error_to_step_error,
)

#: Stdout kept in the output (the rest is read and dropped so the child never blocks on a full pipe).
MAX_STDOUT_BYTES = 16 * 1024
#: Stderr tail kept for the error message of a failed run.
MAX_STDERR_BYTES = 2 * 1024
_CHUNK = 64 * 1024


async def _read_head(stream: asyncio.StreamReader, limit: int) -> tuple[bytes, bool]:
    """Read to EOF, keeping the first ``limit`` bytes; also report whether anything was dropped."""
    kept = bytearray()
    truncated = False
    while chunk := await stream.read(_CHUNK):
        room = limit - len(kept)
        if len(chunk) > room:
            truncated = True
        kept += chunk[: max(room, 0)]
    return bytes(kept), truncated


async def _read_tail(stream: asyncio.StreamReader, limit: int) -> bytes:
    """Read to EOF, keeping the last ``limit`` bytes (where the error usually is)."""
    tail = b""
    while chunk := await stream.read(_CHUNK):
        tail = (tail + chunk)[-limit:]
    return tail


def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


async def run_argv(
    ctx: StepContext, argv: list[str], extra_env: dict[str, str] | None, cwd: str | None
) -> dict[str, Any]:
    """Run ``argv`` to completion (in a step worker); exit code 0 succeeds, anything else is transient."""
    env = dict(os.environ)
    env.update(extra_env or {})
    env.update(
        BEAMFLOW_WORKFLOW_ID=ctx.workflow_id,
        BEAMFLOW_STEP_ID=ctx.step_id,
        BEAMFLOW_ATTEMPT=str(ctx.attempt),
        BEAMFLOW_IDEMPOTENCY_KEY=ctx.idempotency_key,
    )
    try:
        # Same process group as the worker: the daemon kills the group when the attempt times out.
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
    except OSError as exc:  # missing program, bad cwd, not executable: retrying will not help
        raise PermanentError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    assert proc.stdout is not None and proc.stderr is not None
    try:
        (stdout, truncated), stderr, exit_code = await asyncio.gather(
            _read_head(proc.stdout, MAX_STDOUT_BYTES),
            _read_tail(proc.stderr, MAX_STDERR_BYTES),
            proc.wait(),
        )
    except BaseException:  # cancelled: do not leave the child running
        _kill(proc)
        with contextlib.suppress(BaseException):
            await asyncio.shield(proc.wait())
        raise
    if exit_code != 0:
        how = f"killed by signal {-exit_code}" if exit_code < 0 else f"exited with code {exit_code}"
        tail = stderr.decode("utf-8", errors="replace").strip()
        raise StepError(f"{argv[0]} {how}" + (f"; stderr: {tail}" if tail else ""), "transient")
    return {
        "exit_code": exit_code,
        "stdout": stdout.decode("utf-8", errors="replace"),
        "stdout_truncated": truncated,
    }


class ExecStep:
    """Exit code 0 succeeds; anything else is a transient failure carrying the stderr tail."""

    name = "exec"

    async def run(self, ctx: StepContext, params: Mapping[str, Any]) -> Any:
        if not ctx.allow_exec:
            raise PermanentError(
                f"exec steps are disabled on node {ctx.node_id}: set allow_exec = true in its config"
            )
        try:
            argv, extra_env, cwd = parse_exec(params, resolved=True)
        except ParamError as exc:
            raise param_error_to_step_error(exc) from None
        assert argv is not None
        from beamflowd.workers import active_pool

        return await active_pool().run_exec(ctx, argv, extra_env, cwd)
