"""beamflow.v1.DeadLetterService: read the dead-letter queue from local state, change it through Raft."""

from __future__ import annotations

import grpc

from beamflowd.api import convert
from beamflowd.api.gen.beamflow.v1 import dlq_pb2 as pb
from beamflowd.api.gen.beamflow.v1 import dlq_pb2_grpc as pb_grpc
from beamflowd.api.status import abort
from beamflowd.api.workflows import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_REASON, WorkflowServicer
from beamflowd.clock import now_ms
from beamflowd.core.commands import DlqClose
from beamflowd.core.state import DlqEntry
from beamflowd.core.vocabulary import (
    DLQ_ABANDONED,
    DLQ_KINDS,
    DLQ_PENDING,
    DLQ_RESOLVED,
    DLQ_RETRYING,
    DLQ_STATES,
)

STATE = {
    DLQ_PENDING: pb.DEAD_LETTER_STATE_PENDING,
    DLQ_RETRYING: pb.DEAD_LETTER_STATE_RETRYING,
    DLQ_RESOLVED: pb.DEAD_LETTER_STATE_RESOLVED,
    DLQ_ABANDONED: pb.DEAD_LETTER_STATE_ABANDONED,
}
STATE_NAME = {v: k for k, v in STATE.items()}
assert set(STATE) == DLQ_STATES, "every entry state has a wire value"


def entry_message(entry: DlqEntry) -> pb.DeadLetter:
    return pb.DeadLetter(
        id=entry.id,
        workflow_id=entry.wf,
        workflow_name=entry.name,
        kind=entry.kind,
        state=STATE[entry.state],
        step_id=entry.step,
        error_class=entry.error_class,
        error=entry.error,
        attempts=entry.attempts,
        failures=entry.failures,
        retries=entry.retries,
        create_time=convert.timestamp(entry.created_ms),
        update_time=convert.timestamp(entry.updated_ms),
        reason=entry.reason,
        closed_by=entry.by,
    )


class DeadLetterServicer(pb_grpc.DeadLetterServiceServicer):  # type: ignore[misc, unused-ignore]
    def __init__(self, workflows: WorkflowServicer) -> None:
        #: Retrying an entry is retrying its workflow: one code path, shared with RetryWorkflow.
        self.workflows = workflows
        self.raft = workflows.raft

    async def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDeadLettersResponse:
        state = STATE_NAME.get(request.state) if request.state else None
        if request.state and state is None:
            await abort(context, "INVALID_ARGUMENT", f"state: unknown value {request.state}")
        if request.kind and request.kind not in DLQ_KINDS:
            await abort(context, "INVALID_ARGUMENT", f"kind: expected one of {', '.join(sorted(DLQ_KINDS))}")
        page_size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        try:
            offset = int(request.page_token) if request.page_token else 0
            if offset < 0:
                raise ValueError
        except ValueError:
            await abort(context, "INVALID_ARGUMENT", "page_token: not a token returned by ListDeadLetters")
        page: list[pb.DeadLetter] = []
        counts = dict.fromkeys(sorted(DLQ_STATES), 0)
        total = 0
        with self.raft.read():
            sm = self.raft.sm
            overflow = sm.dlq_overflow
            for entry in reversed(sm.dlq.values()):  # bounded by dlq_max
                counts[entry.state] += 1
                if (
                    (state and entry.state != state)
                    or (request.kind and entry.kind != request.kind)
                    or (request.workflow_name and entry.name != request.workflow_name)
                ):
                    continue
                if offset <= total < offset + page_size:
                    page.append(entry_message(entry))
                total += 1
        next_token = str(offset + page_size) if offset + page_size < total else ""
        return pb.ListDeadLettersResponse(
            dead_letters=page,
            next_page_token=next_token,
            total_matching=total,
            counts=counts,
            overflow=overflow,
        )

    async def _entry(self, context: grpc.aio.ServicerContext, entry_id: str) -> pb.DeadLetter:
        await self.workflows.caught_up(
            context, lambda sm: entry_id in sm.dlq, f"dead-letter entry {entry_id!r}"
        )
        with self.raft.read():
            entry = self.raft.sm.dlq.get(entry_id)
            message = entry_message(entry) if entry is not None else None
        if message is None:
            await abort(context, "NOT_FOUND", f"dead-letter entry {entry_id!r} not found")
        assert message is not None
        return message

    async def GetDeadLetter(
        self, request: pb.GetDeadLetterRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetDeadLetterResponse:
        return pb.GetDeadLetterResponse(dead_letter=await self._entry(context, request.id))

    async def RetryDeadLetter(
        self, request: pb.RetryDeadLetterRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetryDeadLetterResponse:
        entry = await self._entry(context, request.id)
        if entry.state != pb.DEAD_LETTER_STATE_PENDING:
            state = STATE_NAME[entry.state]
            await abort(context, "FAILED_PRECONDITION", f"entry {request.id} is {state}, not pending")
        workflow, _ = await self.workflows.retry(context, entry.workflow_id, "", request.reason)
        return pb.RetryDeadLetterResponse(
            dead_letter=await self._entry(context, request.id), workflow=workflow
        )

    async def _close(self, context: grpc.aio.ServicerContext, entry_id: str, state: str, reason: str) -> bool:
        if not reason.strip():
            await abort(context, "INVALID_ARGUMENT", "reason: required")
        if len(reason) > MAX_REASON:
            await abort(context, "INVALID_ARGUMENT", f"reason: longer than {MAX_REASON} characters")
        cmd = DlqClose(entry=entry_id, state=state, reason=reason, ts=now_ms(), node=self.workflows.node_id)
        result = await self.workflows.propose(context, cmd)
        if not result.ok:
            await abort(context, result.code, result.message)
        return bool(result.data.get("changed"))

    async def ResolveDeadLetter(
        self, request: pb.ResolveDeadLetterRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResolveDeadLetterResponse:
        changed = await self._close(context, request.id, DLQ_RESOLVED, request.reason)
        return pb.ResolveDeadLetterResponse(
            dead_letter=await self._entry(context, request.id), changed=changed
        )

    async def AbandonDeadLetter(
        self, request: pb.AbandonDeadLetterRequest, context: grpc.aio.ServicerContext
    ) -> pb.AbandonDeadLetterResponse:
        changed = await self._close(context, request.id, DLQ_ABANDONED, request.reason)
        return pb.AbandonDeadLetterResponse(
            dead_letter=await self._entry(context, request.id), changed=changed
        )
