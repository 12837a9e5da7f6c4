"""Result codes -> gRPC status: the state machine and the node speak gRPC code *names* (``"NOT_FOUND"``),
so the core needs no grpc import; servicers turn them into a status here, in one place.
"""

from __future__ import annotations

import grpc


def status_code(name: str) -> grpc.StatusCode:
    """The gRPC status of a code name; an unknown name is ``INTERNAL`` (a bug, never a client error)."""
    code = getattr(grpc.StatusCode, name, None)
    return (
        code
        if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK
        else grpc.StatusCode.INTERNAL
    )


async def abort(context: grpc.aio.ServicerContext, code: str, message: str) -> None:
    """End the call with ``code`` (a name such as ``"INVALID_ARGUMENT"``) and a message naming the field."""
    await context.abort(status_code(code), message)
