"""beamflow.v1.WorkflowService: validate at the edge, write through Raft, read local state."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import uuid
from collections.abc import AsyncIterator

import grpc

from beamflowd.api import convert
from beamflowd.api.definitions import DefinitionBusy, DefinitionCompiler
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from beamflowd.api.gen.beamflow.v1 import workflow_pb2_grpc as pb_grpc
from beamflowd.api.status import abort
from beamflowd.changes import ChangeHub
from beamflowd.clock import now_ms
from beamflowd.core.commands import Cancel, Command, Signal, Submit
from beamflowd.core.scheduling import first_starts
from beamflowd.core.signals import SIGNAL_ID, SIGNAL_NAME, SIGNAL_PAYLOAD_BYTES_MAX, payload_problem
from beamflowd.core.spec import MAX_DEFINITION_BYTES, SpecError, WorkflowSpec, parse_input
from beamflowd.core.state import Result
from beamflowd.core.step_params import parse_wait
from beamflowd.core.vocabulary import CLOSING_EVENTS
from beamflowd.isolation import ModulePolicy
from beamflowd.proposer import ProposeError, Proposer
from beamflowd.replication import ReplicatedState

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_REASON = 1000
#: How a signal for a workflow this node has not applied yet waits for it: 20 polls of 50 ms (1 s at most).
CATCH_UP_POLLS_MAX = 20
CATCH_UP_POLL_S = 0.05
#: A watch stream re-checks state at least this often even without notifications.
WATCH_RECHECK_SECONDS = 5.0


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
    ) -> None:
        self.node_id = node_id
        #: What python steps may call on this node: a definition calling anything else is refused at submit.
        self.modules = modules or ModulePolicy()
        self.raft = raft
        self.proposer = proposer
        self.hub = hub
        self.definitions = DefinitionCompiler()

    async def _propose(self, context: grpc.aio.ServicerContext, cmd: Command) -> Result:
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
        )
        result = await self._propose(context, cmd)
        if not result.ok:
            await abort(context, result.code, result.message)
        return pb.SubmitWorkflowResponse(
            workflow_id=str(result.data["wf"]),
            owner=str(result.data["owner"]),
            existing=bool(result.data["existing"]),
        )

    async def GetWorkflow(
        self, request: pb.GetWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWorkflowResponse:
        with self.raft.read():
            wf = self.raft.sm.workflows.get(request.workflow_id)
            if wf is not None:
                response = pb.GetWorkflowResponse(
                    workflow=convert.workflow_message(wf, self.raft.sm.specs[wf.spec_hash].plain),
                    events=[convert.event_message(e) for e in wf.events],
                )
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
        page: list[pb.WorkflowSummary] = []
        total = 0
        with self.raft.read():
            for wf in self.raft.sm.iter_newest_first():
                if (status and wf.status != status) or (request.name and wf.name != request.name):
                    continue
                if offset <= total < offset + page_size:
                    page.append(convert.summary_message(wf))
                total += 1
        next_token = str(offset + page_size) if offset + page_size < total else ""
        return pb.ListWorkflowsResponse(workflows=page, next_page_token=next_token, total_matching=total)

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
        result = await self._propose(context, cmd)
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
                        status = convert.WORKFLOW_STATUS[wf.status]
                        terminal = wf.terminal
                if not found:
                    await abort(context, "NOT_FOUND", f"workflow {wf_id!r} not found")
                    return
                for event in fresh:
                    # The status *after* this event: only the closing event carries the terminal status.
                    after = status if event.type in CLOSING_EVENTS else pb.WORKFLOW_STATUS_RUNNING
                    yield pb.WatchWorkflowResponse(event=event, status=after)
                    last = event.seq
                if terminal:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), WATCH_RECHECK_SECONDS)
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
        await self._caught_up_with(request.workflow_id)
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
        result = await self._propose(context, cmd)
        if not result.ok:
            await abort(context, result.code, result.message)
        return pb.SignalWorkflowResponse(
            delivered=bool(result.data["delivered"]),
            step_id=str(result.data["step"]),
            duplicate=bool(result.data["duplicate"]),
            request_id=sid,
        )

    async def _caught_up_with(self, workflow_id: str) -> None:
        """A workflow just submitted through another node may not be applied here yet: before answering
        NOT_FOUND, give this node a moment (bounded) to apply it. An unknown id costs that moment."""
        for _ in range(CATCH_UP_POLLS_MAX):
            with self.raft.read():
                if workflow_id in self.raft.sm.workflows:
                    return
            await asyncio.sleep(CATCH_UP_POLL_S)


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
    import json

    return json.dumps(json.loads(input_json or "{}"), sort_keys=True, separators=(",", ":"))
