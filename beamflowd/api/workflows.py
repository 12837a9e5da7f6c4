"""beamflow.v1.WorkflowService: validate at the edge, write through Raft, read local state."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from beamflowd.api import convert
from beamflowd.api.definitions import DefinitionBusy, DefinitionCompiler
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from beamflowd.api.gen.beamflow.v1 import workflow_pb2_grpc as pb_grpc
from beamflowd.api.read_barrier import ReadBarrier
from beamflowd.api.status import abort
from beamflowd.changes import ChangeHub
from beamflowd.clock import now_ms
from beamflowd.core.commands import Cancel, Command, Heartbeat, Pause, Resume, Retry, Signal, Submit
from beamflowd.core.scheduling import first_starts
from beamflowd.core.signals import SIGNAL_ID, SIGNAL_NAME, SIGNAL_PAYLOAD_BYTES_MAX, payload_problem
from beamflowd.core.spec import MAX_DEFINITION_BYTES, SpecError, WorkflowSpec, parse_input, workflow_result
from beamflowd.core.state import Query, Result, StateMachine
from beamflowd.core.step_params import parse_wait
from beamflowd.core.vocabulary import (
    ID_CONFLICT_FAIL,
    ID_CONFLICT_USE_EXISTING,
    ID_REUSE_ALLOW,
    ID_REUSE_FAILED_ONLY,
    ID_REUSE_REJECT,
    STATUS_OF_CLOSING_EVENT,
    WORKFLOW_SUCCEEDED,
)
from beamflowd.isolation import ModulePolicy
from beamflowd.proposer import ProposeError, Proposer
from beamflowd.replication import ReplicatedState

#: Wire policies -> the command's words (core/vocabulary.py).
_ID_REUSE = {
    pb.ID_REUSE_POLICY_ALLOW_DUPLICATE: ID_REUSE_ALLOW,
    pb.ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY: ID_REUSE_FAILED_ONLY,
    pb.ID_REUSE_POLICY_REJECT_DUPLICATE: ID_REUSE_REJECT,
}
_ID_CONFLICT = {
    pb.ID_CONFLICT_POLICY_FAIL: ID_CONFLICT_FAIL,
    pb.ID_CONFLICT_POLICY_USE_EXISTING: ID_CONFLICT_USE_EXISTING,
}
#: Ids per BulkWorkflowAction call (the client sends batches), and refusals listed in its answer.
BULK_IDS_MAX = 1000
BULK_ERRORS_LISTED = 10
_BULK_ACTIONS = frozenset(
    {pb.BULK_ACTION_CANCEL, pb.BULK_ACTION_PAUSE, pb.BULK_ACTION_RESUME, pb.BULK_ACTION_RETRY}
)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_REASON = 1000
#: Before answering NOT_FOUND, a node commits a read barrier (its own heartbeat) and applies up to it; if that
#: takes longer than this, it answers UNAVAILABLE instead (it may be cut off from the leader: ask another).
READ_BARRIER_TIMEOUT_S = 2.0
#: At most this share of the time left before the client's deadline goes to the barrier, so UNAVAILABLE
#: reaches the client in time to ask another node (the proposer may report a proposal that never committed
#: up to 0.5 s after its timeout).
READ_BARRIER_DEADLINE_SHARE = 0.5
#: A watch stream re-checks state at least this often even without notifications.
WATCH_RECHECK_SECONDS = 5.0
#: ``GetWorkflowResult(wait=true)`` answers DEADLINE_EXCEEDED after this long without a finish (bounds how
#: long a call without a deadline of its own holds a subscription; the client calls again).
RESULT_WAIT_S_MAX = 300.0
#: ``SubmitWorkflow(wait=true)`` answers (RUNNING) at least this long before the call's deadline.
SUBMIT_WAIT_MARGIN_S = 0.25


def new_workflow_id() -> str:
    """Time-ordered and unique enough: 12 hex digits of milliseconds + 8 random hex digits."""
    return f"wf-{now_ms():012x}{secrets.token_hex(4)}"


class WorkflowServicer(pb_grpc.WorkflowServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        node_id: str,
        raft: ReplicatedState,
        proposer: Proposer,
        hub: ChangeHub,
        *,
        modules: ModulePolicy | None = None,
        run_ahead: Callable[[Submit, WorkflowSpec], Awaitable[Result | None]] | None = None,
    ) -> None:
        self.node_id = node_id
        #: The executor's ``propose_submit``: commits a submit with its instant first steps run ahead.
        self.run_ahead = run_ahead
        #: What python steps may call on this node: a definition calling anything else is refused at submit.
        self.modules = modules or ModulePolicy()
        self.raft = raft
        self.proposer = proposer
        self.hub = hub
        self.definitions = DefinitionCompiler()
        self.read_barrier = ReadBarrier(
            lambda: self.proposer.propose(
                Heartbeat(node=self.node_id, ts=now_ms()), timeout=READ_BARRIER_TIMEOUT_S
            )
        )

    async def propose(self, context: grpc.aio.ServicerContext, cmd: Command) -> Result:
        try:
            return await self.proposer.propose(cmd)
        except ProposeError as exc:
            await abort(context, exc.code, exc.message)
            raise AssertionError("unreachable") from None

    async def SubmitWorkflow(
        self, request: pb.SubmitWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitWorkflowResponse:
        source = request.definition_source or "<definition>"
        if len(request.definition.encode()) > MAX_DEFINITION_BYTES:
            await abort(
                context,
                "INVALID_ARGUMENT",
                f"{source}: definition is larger than the limit of {MAX_DEFINITION_BYTES} bytes",
            )
        try:
            compiled = await self.definitions.compile(request.definition, source)
            check_python_functions(compiled.spec, self.modules, source)
            workflow_input = parse_input(request.input_json or "{}", source="input")
        except SpecError as exc:
            await abort(context, "INVALID_ARGUMENT", str(exc))
        except DefinitionBusy as exc:
            await abort(context, "RESOURCE_EXHAUSTED", str(exc))
        spec, spec_plain, spec_hash = compiled.spec, compiled.plain, compiled.spec_hash
        if request.workflow_id and not _ID.match(request.workflow_id):
            await abort(
                context, "INVALID_ARGUMENT", "workflow_id: must match [A-Za-z0-9][A-Za-z0-9_.:-]{0,127}"
            )
        if len(request.request_id) > 128:
            await abort(context, "INVALID_ARGUMENT", "request_id: longer than 128 characters")
        now = now_ms()
        cmd = Submit(
            rid=request.request_id or uuid.uuid4().hex,
            wf=request.workflow_id or new_workflow_id(),
            spec=spec_plain,
            spec_hash=spec_hash,
            input=_compact(request.input_json),
            ts=now,
            node=self.node_id,
            # Root steps start in the same entry: one round trip less per workflow.
            start=first_starts(spec, lambda _: "pending", {"input": workflow_input, "steps": {}}, now),
            labels=dict(request.labels) or None,
            prefer=self.raft.leader_node_id(),
            id_reuse=_ID_REUSE.get(request.id_reuse_policy),
            id_conflict=_ID_CONFLICT.get(request.id_conflict_policy),
        )
        if request.id_reuse_policy and cmd.id_reuse is None:
            await abort(
                context, "INVALID_ARGUMENT", f"id_reuse_policy: unknown value {request.id_reuse_policy}"
            )
        if request.id_conflict_policy and cmd.id_conflict is None:
            await abort(
                context, "INVALID_ARGUMENT", f"id_conflict_policy: unknown value {request.id_conflict_policy}"
            )
        ahead: Result | None = None
        if self.run_ahead is not None and not request.workflow_id:  # an id generated here: nobody has it
            try:
                ahead = await self.run_ahead(cmd, spec)
            except ProposeError as exc:
                await abort(context, exc.code, exc.message)
        result = ahead if ahead is not None else await self.propose(context, cmd)
        if not result.ok:
            await abort(context, result.code, result.message)
        response = pb.SubmitWorkflowResponse(
            workflow_id=str(result.data["wf"]),
            owner=str(result.data["owner"]),
            existing=bool(result.data["existing"]),
        )
        if request.wait:
            await self.wait_outcome(context, response)
        return response

    async def wait_outcome(
        self, context: grpc.aio.ServicerContext, response: pb.SubmitWorkflowResponse
    ) -> None:
        """Fill in the submitted workflow's outcome once it has finished, or RUNNING when the wait ends (in
        time for the answer, with the id the client may not know otherwise, to beat the call's deadline)."""
        remaining = context.time_remaining()
        limit = RESULT_WAIT_S_MAX
        if remaining is not None:
            limit = max(0.0, min(limit, remaining - max(SUBMIT_WAIT_MARGIN_S, remaining * 0.1)))
        try:
            await self.finished(response.workflow_id, limit)
        except OverflowError:  # committed already: answer with the id (RUNNING), never with an error
            response.status = pb.WORKFLOW_STATUS_RUNNING
            return
        outcome = self.outcome(response.workflow_id)
        if outcome is None:  # collected already (a tiny retention): only the status event could tell
            return
        status, result_json, error = outcome
        response.status = convert.WORKFLOW_STATUS[status]
        response.result_json = result_json or ""
        response.error = error

    async def GetWorkflow(
        self, request: pb.GetWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWorkflowResponse:
        await self.caught_up_with(context, request.workflow_id)
        with self.raft.read():
            wf = self.raft.sm.workflows.get(request.workflow_id)
            if wf is not None:
                response = pb.GetWorkflowResponse(
                    workflow=convert.workflow_message(wf, self.raft.sm.specs[wf.spec_hash].plain),
                    events=[convert.event_message(e) for e in wf.events],
                )
                response.workflow.dead_letter_id = self.raft.sm.dlq_open.get(wf.id, "")
        if wf is None:
            await abort(context, "NOT_FOUND", f"workflow {request.workflow_id!r} not found")
        return response

    async def ListWorkflows(
        self, request: pb.ListWorkflowsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWorkflowsResponse:
        status = convert.STATUS_NAME.get(request.status) if request.status else None
        if request.status and status is None:
            await abort(context, "INVALID_ARGUMENT", f"status: unknown value {request.status}")
        page_size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        try:
            offset = int(request.page_token) if request.page_token else 0
            if offset < 0:
                raise ValueError
        except ValueError:
            await abort(context, "INVALID_ARGUMENT", "page_token: not a token returned by ListWorkflows")
        query = self._query(status or "", request.name, request.filter)
        with self.raft.read():
            found, total = self.raft.sm.page(query, offset, page_size)
            page = [convert.summary_message(wf) for wf in found]
        next_token = str(offset + page_size) if offset + page_size < total else ""
        return pb.ListWorkflowsResponse(workflows=page, next_page_token=next_token, total_matching=total)

    @staticmethod
    def _query(status: str, name: str, spec: pb.WorkflowFilter) -> Query:
        return Query(
            status=status,
            name=name,
            labels=tuple(sorted(spec.labels.items())),
            created_after_ms=spec.created_after.ToMilliseconds() if spec.HasField("created_after") else 0,
            created_before_ms=spec.created_before.ToMilliseconds() if spec.HasField("created_before") else 0,
            failed_step=spec.failed_step,
            error_class=spec.error_class,
        )

    async def CountWorkflows(
        self, request: pb.CountWorkflowsRequest, context: grpc.aio.ServicerContext
    ) -> pb.CountWorkflowsResponse:
        status = convert.STATUS_NAME.get(request.status) if request.status else None
        if request.status and status is None:
            await abort(context, "INVALID_ARGUMENT", f"status: unknown value {request.status}")
        query = self._query(status or "", request.name, request.filter)
        with self.raft.read():
            count = self.raft.sm.count(query)
        return pb.CountWorkflowsResponse(count=count)

    async def BulkWorkflowAction(
        self, request: pb.BulkWorkflowActionRequest, context: grpc.aio.ServicerContext
    ) -> pb.BulkWorkflowActionResponse:
        if request.action not in _BULK_ACTIONS:
            await abort(context, "INVALID_ARGUMENT", f"action: unknown value {request.action}")
        if len(request.workflow_ids) > BULK_IDS_MAX:
            await abort(context, "INVALID_ARGUMENT", f"workflow_ids: more than {BULK_IDS_MAX}")
        if request.action != pb.BULK_ACTION_RESUME and not request.reason.strip():
            await abort(context, "INVALID_ARGUMENT", "reason: required for cancel, pause and retry")
        if len(request.reason) > MAX_REASON:
            await abort(context, "INVALID_ARGUMENT", f"reason: longer than {MAX_REASON} characters")
        now, node, reason = now_ms(), self.node_id, request.reason
        with self.raft.read():
            retries = {i: wf.retries for i in request.workflow_ids if (wf := self.raft.sm.workflows.get(i))}
        commands: list[Command] = []
        for wf_id in request.workflow_ids:
            if request.action == pb.BULK_ACTION_CANCEL:
                commands.append(Cancel(wf=wf_id, ts=now, reason=reason, node=node))
            elif request.action == pb.BULK_ACTION_PAUSE:
                commands.append(Pause(wf=wf_id, ts=now, reason=reason, node=node))
            elif request.action == pb.BULK_ACTION_RESUME:
                commands.append(Resume(wf=wf_id, ts=now, node=node))
            else:
                commands.append(Retry(wf=wf_id, seen=retries.get(wf_id, 0), reason=reason, ts=now, node=node))
        try:  # one proposal each; the proposer commits them in shared batches
            results = await asyncio.gather(*(self.proposer.propose(cmd) for cmd in commands))
        except ProposeError as exc:
            await abort(context, exc.code, exc.message)
        response = pb.BulkWorkflowActionResponse()
        for wf_id, result in zip(request.workflow_ids, results, strict=True):
            if result.code == "NOT_FOUND":
                response.not_found += 1
            elif result.ok and (
                result.data.get("cancelled") or result.data.get("changed") or "epoch" in result.data
            ):
                changed = not result.data.get("duplicate")
                response.changed += changed
                response.unchanged += not changed
            elif result.ok or result.code in ("FAILED_PRECONDITION", "ABORTED"):
                response.unchanged += 1
            elif len(response.errors) < BULK_ERRORS_LISTED:
                response.errors.append(f"{wf_id}: {result.code}: {result.message}")
        return response

    async def CancelWorkflow(
        self, request: pb.CancelWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelWorkflowResponse:
        if len(request.reason) > MAX_REASON:
            await abort(context, "INVALID_ARGUMENT", f"reason: longer than {MAX_REASON} characters")
        cmd = Cancel(
            wf=request.workflow_id,
            reason=request.reason,
            ts=now_ms(),
            node=self.node_id,
            compensate=True if request.compensate else None,
        )
        result = await self.propose(context, cmd)
        if not result.ok:
            await abort(context, result.code, result.message)
        with self.raft.read():
            wf = self.raft.sm.workflows[request.workflow_id]
            message = convert.workflow_message(wf, self.raft.sm.specs[wf.spec_hash].plain)
        return pb.CancelWorkflowResponse(workflow=message, cancelled=bool(result.data.get("cancelled")))

    async def WatchWorkflow(
        self, request: pb.WatchWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchWorkflowResponse]:
        wf_id = request.workflow_id
        try:
            changed = self.hub.subscribe(wf_id)
        except OverflowError as exc:
            await abort(context, "RESOURCE_EXHAUSTED", str(exc))
            return
        try:
            await self.caught_up_with(context, wf_id)
            last = request.after_seq
            while True:
                changed.clear()
                with self.raft.read():
                    wf = self.raft.sm.workflows.get(wf_id)
                    if wf is None:
                        found = False
                    else:
                        found = True
                        fresh = [convert.event_message(e) for e in wf.events if e[0] > last]
                        terminal = wf.terminal
                if not found:
                    await abort(context, "NOT_FOUND", f"workflow {wf_id!r} not found")
                    return
                for event in fresh:
                    # The status *after* this event: only the closing event carries the terminal status.
                    # A retried workflow has closed before: each closing event carries its own status.
                    closed = STATUS_OF_CLOSING_EVENT.get(event.type)
                    after = convert.WORKFLOW_STATUS[closed] if closed else pb.WORKFLOW_STATUS_RUNNING
                    yield pb.WatchWorkflowResponse(event=event, status=after)
                    last = event.seq
                if terminal:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), WATCH_RECHECK_SECONDS)
        finally:
            self.hub.unsubscribe(wf_id, changed)

    async def RetryWorkflow(
        self, request: pb.RetryWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetryWorkflowResponse:
        workflow, entry = await self.retry(context, request.workflow_id, request.from_step, request.reason)
        return pb.RetryWorkflowResponse(workflow=workflow, dead_letter_id=entry)

    async def retry(
        self, context: grpc.aio.ServicerContext, wf_id: str, from_step: str, reason: str
    ) -> tuple[pb.Workflow, str]:
        """Propose a retry of ``wf_id`` as last seen here; its workflow message and dead-letter entry id.

        Shared with ``DeadLetterService.RetryDeadLetter``. The command is fenced by the retry count read
        here, so two operators retrying at once retry once (the other is ABORTED).
        """
        if len(reason) > MAX_REASON:
            await abort(context, "INVALID_ARGUMENT", f"reason: longer than {MAX_REASON} characters")
        await self.caught_up_with(context, wf_id)
        with self.raft.read():
            wf = self.raft.sm.workflows.get(wf_id)
            seen = wf.retries if wf is not None else 0
        if wf is None:
            await abort(context, "NOT_FOUND", f"workflow {wf_id!r} not found")
        cmd = Retry(
            wf=wf_id, seen=seen, reason=reason, ts=now_ms(), from_step=from_step or None, node=self.node_id
        )
        result = await self.propose(context, cmd)
        if not result.ok:
            await abort(context, result.code, result.message)
        return self.workflow_now(wf_id), str(result.data.get("entry", ""))

    def workflow_now(self, wf_id: str) -> pb.Workflow:
        """The workflow's message from local state (applied: this node committed what it proposed)."""
        with self.raft.read():
            wf = self.raft.sm.workflows[wf_id]
            message = convert.workflow_message(wf, self.raft.sm.specs[wf.spec_hash].plain)
            message.dead_letter_id = self.raft.sm.dlq_open.get(wf_id, "")
        return message

    async def ResubmitWorkflow(
        self, request: pb.ResubmitWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResubmitWorkflowResponse:
        if request.new_workflow_id and not _ID.match(request.new_workflow_id):
            await abort(
                context, "INVALID_ARGUMENT", "new_workflow_id: must match [A-Za-z0-9][A-Za-z0-9_.:-]{0,127}"
            )
        if len(request.request_id) > 128:
            await abort(context, "INVALID_ARGUMENT", "request_id: longer than 128 characters")
        await self.caught_up_with(context, request.workflow_id)
        with self.raft.read():
            wf = self.raft.sm.workflows.get(request.workflow_id)
            if wf is not None:
                spec, spec_hash, labels = wf.spec, wf.spec_hash, dict(wf.labels)
                spec_plain, input_json = self.raft.sm.specs[spec_hash].plain, wf.input_json
        if wf is None:
            await abort(context, "NOT_FOUND", f"workflow {request.workflow_id!r} not found")
        now = now_ms()
        workflow_input = parse_input(input_json or "{}", source="input")
        cmd = Submit(
            rid=request.request_id or uuid.uuid4().hex,
            wf=request.new_workflow_id or new_workflow_id(),
            spec=spec_plain,
            spec_hash=spec_hash,
            input=input_json,
            ts=now,
            node=self.node_id,
            start=first_starts(spec, lambda _: "pending", {"input": workflow_input, "steps": {}}, now),
            origin=request.workflow_id,
            labels=labels or None,
            prefer=self.raft.leader_node_id(),
        )
        result = await self.propose(context, cmd)
        if not result.ok:
            await abort(context, result.code, result.message)
        return pb.ResubmitWorkflowResponse(
            workflow_id=str(result.data["wf"]), owner=str(result.data["owner"])
        )

    async def PauseWorkflow(
        self, request: pb.PauseWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> pb.PauseWorkflowResponse:
        if len(request.reason) > MAX_REASON:
            await abort(context, "INVALID_ARGUMENT", f"reason: longer than {MAX_REASON} characters")
        cmd = Pause(wf=request.workflow_id, ts=now_ms(), reason=request.reason, node=self.node_id)
        result = await self.propose(context, cmd)
        if not result.ok:
            await abort(context, result.code, result.message)
        workflow = self.workflow_now(request.workflow_id)
        return pb.PauseWorkflowResponse(workflow=workflow, changed=bool(result.data.get("changed")))

    async def ResumeWorkflow(
        self, request: pb.ResumeWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResumeWorkflowResponse:
        cmd = Resume(wf=request.workflow_id, ts=now_ms(), node=self.node_id)
        result = await self.propose(context, cmd)
        if not result.ok:
            await abort(context, result.code, result.message)
        workflow = self.workflow_now(request.workflow_id)
        return pb.ResumeWorkflowResponse(workflow=workflow, changed=bool(result.data.get("changed")))

    async def GetWorkflowResult(
        self, request: pb.GetWorkflowResultRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWorkflowResultResponse:
        wf_id = request.workflow_id
        await self.caught_up_with(context, wf_id)
        if request.wait:
            remaining = context.time_remaining()
            limit = RESULT_WAIT_S_MAX if remaining is None else min(RESULT_WAIT_S_MAX, remaining)
            try:
                done = await self.finished(wf_id, limit)
            except OverflowError as exc:
                await abort(context, "RESOURCE_EXHAUSTED", str(exc))
            if not done:
                await abort(
                    context, "DEADLINE_EXCEEDED", f"workflow {wf_id} still running after {limit:.0f} s"
                )
        outcome = self.outcome(wf_id)
        if outcome is None:
            await abort(context, "NOT_FOUND", f"workflow {wf_id!r} not found")
            raise AssertionError("unreachable")
        status, result_json, error = outcome
        if status != WORKFLOW_SUCCEEDED:
            why = f": {error}" if error else ""
            await abort(context, "FAILED_PRECONDITION", f"workflow {wf_id} is {status}{why}")
        if result_json is None:  # an output expression that fails on these outputs: the definition's fault
            await abort(context, "FAILED_PRECONDITION", error)
        return pb.GetWorkflowResultResponse(result_json=result_json, status=convert.WORKFLOW_STATUS[status])

    def outcome(self, wf_id: str) -> tuple[str, str | None, str] | None:
        """(status as shown, result JSON if it succeeded, error) of ``wf_id``; None if unknown here. A result
        that cannot be built (its ``output`` expression fails) is None, with ``output: <why>`` as error."""
        with self.raft.read():
            wf = self.raft.sm.workflows.get(wf_id)
            if wf is None:
                return None
            status, error, spec = convert.shown_status(wf), wf.error, wf.spec
            if status != WORKFLOW_SUCCEEDED:
                return status, None, error
            scope = {
                "input": json.loads(wf.input_json or "{}"),
                "steps": {s.id: json.loads(s.output_json) for s in wf.steps.values() if s.output_json},
            }
        try:
            return status, json.dumps(workflow_result(spec, scope), sort_keys=True), ""
        except ValueError as exc:
            return status, None, f"output: {exc}"

    async def finished(self, wf_id: str, limit_s: float) -> bool:
        """Whether ``wf_id`` finished (or left this node's state) within ``limit_s`` seconds; OverflowError
        when this node has too many watchers already."""
        changed = self.hub.subscribe(wf_id)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + limit_s
        try:
            while True:
                changed.clear()  # before reading: a change applied after the read sets it again
                with self.raft.read():
                    wf = self.raft.sm.workflows.get(wf_id)
                    if wf is None or wf.terminal:
                        return True
                left = give_up - loop.time()
                if left <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(left, WATCH_RECHECK_SECONDS))
        finally:
            self.hub.unsubscribe(wf_id, changed)

    async def SignalWorkflow(
        self, request: pb.SignalWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> pb.SignalWorkflowResponse:
        """Check everything the state cannot (name, JSON, the step's schema) before proposing anything."""
        if not SIGNAL_NAME.match(request.signal):
            await abort(context, "INVALID_ARGUMENT", f"signal: must match {SIGNAL_NAME.pattern}")
        if request.request_id and not SIGNAL_ID.match(request.request_id):
            await abort(context, "INVALID_ARGUMENT", f"request_id: must match {SIGNAL_ID.pattern}")
        size = len(request.payload_json.encode("utf-8", errors="surrogatepass"))
        if size > SIGNAL_PAYLOAD_BYTES_MAX:
            await abort(
                context,
                "RESOURCE_EXHAUSTED",
                f"payload_json: {size} bytes, over the limit of {SIGNAL_PAYLOAD_BYTES_MAX} bytes",
            )
        try:
            payload = parse_input(request.payload_json or "null", source="payload_json")
        except SpecError as exc:
            await abort(context, "INVALID_ARGUMENT", str(exc))
        await self.caught_up_with(context, request.workflow_id)
        with self.raft.read():
            wf = self.raft.sm.workflows.get(request.workflow_id)
            ended = "" if wf is None or not wf.terminal else wf.status
            schemas = (
                []
                if wf is None
                else [
                    (s.id, parse_wait(s.params, resolved=False).schema)
                    for s in wf.spec.steps
                    if s.signal == request.signal
                ]
            )
        if wf is None:
            await abort(context, "NOT_FOUND", f"workflow {request.workflow_id!r} not found")
        # An ended workflow: the state machine answers (a retried signal it took is a duplicate, OK; any other
        # is FAILED_PRECONDITION), whatever the payload.
        for step_id, schema in [] if ended else schemas:
            problem = None if schema is None else payload_problem(schema, payload)
            if problem is not None:
                await abort(
                    context,
                    "INVALID_ARGUMENT",
                    f"payload_json: does not match the schema of step {step_id!r}: {problem}",
                )
        sid = request.request_id or uuid.uuid4().hex
        cmd = Signal(
            wf=request.workflow_id,
            name=request.signal,
            payload=_compact(request.payload_json or "null"),
            sid=sid,
            ts=now_ms(),
            node=self.node_id,
        )
        result = await self.propose(context, cmd)
        if not result.ok:
            await abort(context, result.code, result.message)
        return pb.SignalWorkflowResponse(
            delivered=bool(result.data["delivered"]),
            step_id=str(result.data["step"]),
            duplicate=bool(result.data["duplicate"]),
            request_id=sid,
        )

    async def caught_up_with(self, context: grpc.aio.ServicerContext, workflow_id: str) -> None:
        """:meth:`caught_up`: return once this node knows ``workflow_id`` or has applied everything committed
        before the call (so that not knowing it means NOT_FOUND); abort UNAVAILABLE if it cannot tell."""
        await self.caught_up(context, lambda sm: workflow_id in sm.workflows, f"workflow {workflow_id!r}")

    async def caught_up(
        self, context: grpc.aio.ServicerContext, known: Callable[[StateMachine], bool], what: str
    ) -> None:
        """A read barrier before any NOT_FOUND, as linearizable reads do: a workflow submitted through another
        node (acknowledged there) may not be applied here yet, and a node cut off from the leader may never
        apply it. Unless ``known(state)`` already holds here, wait for a read barrier (this node's heartbeat,
        committed and applied here, shared with the reads that arrived meanwhile: :mod:`read_barrier`): it
        follows every entry committed before it, so the state then reflects them all. No commit within the
        bound: abort UNAVAILABLE (retryable)."""
        with self.raft.read() as sm:
            if known(sm):
                return
        remaining = context.time_remaining()
        timeout_s = READ_BARRIER_TIMEOUT_S
        if remaining is not None:
            timeout_s = max(0.0, min(timeout_s, remaining * READ_BARRIER_DEADLINE_SHARE))
        try:
            # The proposer's callback runs once the entry is applied on this node, follower or leader.
            await self.read_barrier.wait(timeout_s)
        except (ProposeError, TimeoutError) as exc:
            reason = exc.message if isinstance(exc, ProposeError) else f"no commit within {timeout_s:.1f} s"
            await abort(
                context,
                "UNAVAILABLE",
                f"{what} is not known to node {self.node_id}, which cannot reach a quorum to check that it"
                f" has applied everything committed ({reason}): retry, or ask another node",
            )


def check_python_functions(spec: WorkflowSpec, modules: ModulePolicy, source: str) -> None:
    """Refuse a python step whose literal function this node's ``python_modules`` does not allow.

    A function given by an expression is only known at run time, where the worker pool checks it again.
    """
    for step in spec.steps:
        function = step.params.get("function") if step.run == "python" else None
        if isinstance(function, str) and "${{" not in function:
            refusal = modules.refusal(function)
            if refusal is not None:
                raise SpecError(source=source, reason=refusal, step=step.id, field="with.function")


def _compact(input_json: str) -> str:
    """Canonical input text, so replicas and digests never depend on the client's whitespace."""
    return json.dumps(json.loads(input_json or "{}"), sort_keys=True, separators=(",", ":"))
