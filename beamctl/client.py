"""The one place that talks gRPC: channels, endpoints, fail-over, retries and error -> exit-code mapping.

Commands never touch ``grpc`` directly; they call :class:`Client`, which turns every gRPC outcome into a
result or a :class:`~beamctl.errors.CliError` with a documented exit code.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import grpc

from beamctl.errors import CliError, ExitCode, one_line
from beamctl.security import PLAINTEXT, Security, open_channel

# Re-exported: the light definitions live in beamctl.settings (loaded by --help without grpc).
from beamctl.settings import DEFAULT_ENDPOINTS as DEFAULT_ENDPOINTS
from beamctl.settings import ENDPOINTS_ENV as ENDPOINTS_ENV
from beamctl.settings import Settings as Settings
from beamctl.settings import default_endpoints as default_endpoints
from beamctl.settings import parse_endpoints as parse_endpoints
from beamctl.settings import settings_of as settings_of
from beamflowd.api.gen.beamflow.v1 import (
    cluster_pb2,
    cluster_pb2_grpc,
    dlq_pb2_grpc,
    workflow_pb2,
    workflow_pb2_grpc,
)
from beamflowd.core.channels import CHANNEL_OPTIONS
from beamflowd.core.vocabulary import CLOSING_EVENTS

#: Full passes over the endpoint list before giving up with exit 4; an election takes ~1 s (DESIGN 4a).
ROUNDS = 3
#: Pause before round 2, 3, ...: bounded, so a dead cluster fails in seconds, not minutes.
BACKOFF_S: tuple[float, ...] = (0.5, 1.0)
#: A watch stream with no event for this long is re-opened on the next endpoint: a hung node can't stall it.
WATCH_RESUBSCRIBE_S = 30.0
#: Deadline of a whole snapshot transfer (a large state streams for a while).
SNAPSHOT_TIMEOUT_S = 600.0
#: A membership change waits for a state command and a Raft configuration change (the server's cap is 10 s).
MEMBER_TIMEOUT_S = 15.0

TERMINAL_STATUSES = frozenset(
    {
        workflow_pb2.WORKFLOW_STATUS_SUCCEEDED,
        workflow_pb2.WORKFLOW_STATUS_FAILED,
        workflow_pb2.WORKFLOW_STATUS_CANCELLED,
        workflow_pb2.WORKFLOW_STATUS_COMPENSATED,
        workflow_pb2.WORKFLOW_STATUS_COMPENSATION_FAILED,
    }
)


_FAILOVER_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# A watch stream also breaks with CANCELLED when its node shuts down.
_STREAM_BREAK_CODES = _FAILOVER_CODES | {grpc.StatusCode.CANCELLED}

_EXIT_BY_CODE: dict[Any, ExitCode] = {
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.USAGE,
    grpc.StatusCode.OUT_OF_RANGE: ExitCode.USAGE,
    grpc.StatusCode.NOT_FOUND: ExitCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: ExitCode.CONFLICT,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.CONFLICT,
    grpc.StatusCode.ABORTED: ExitCode.CONFLICT,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.PERMISSION,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.PERMISSION,
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.UNAVAILABLE,
}

T = TypeVar("T")


def error_from_rpc(err: grpc.RpcError, endpoint: str) -> CliError:
    """Map a non-retryable gRPC status to a CliError; the server's message names the file/step/field."""
    code = err.code()
    details = one_line(err.details() or "") or (code.name if code is not None else "unknown error")
    exit_code = _EXIT_BY_CODE.get(code, ExitCode.INTERNAL)
    if exit_code is ExitCode.INTERNAL:
        name = code.name if code is not None else "UNKNOWN"
        return CliError(f"internal error from {endpoint} ({name}): {details}", exit_code)
    return CliError(details, exit_code)


def _workflows(channel: grpc.Channel) -> Any:
    return workflow_pb2_grpc.WorkflowServiceStub(channel)


def _dead_letters(channel: grpc.Channel) -> Any:
    return dlq_pb2_grpc.DeadLetterServiceStub(channel)  # type: ignore[no-untyped-call, unused-ignore]


def _cluster(channel: grpc.Channel) -> Any:
    return cluster_pb2_grpc.ClusterServiceStub(channel)


class Client:
    """Calls the cluster with fail-over: start at the endpoint that last worked, rotate on UNAVAILABLE."""

    def __init__(
        self,
        endpoints: Sequence[str],
        timeout: float,
        *,
        rounds: int = ROUNDS,
        backoff: Sequence[float] = BACKOFF_S,
        sleep: Callable[[float], None] = time.sleep,
        security: Security = PLAINTEXT,
    ) -> None:
        if not endpoints:
            raise CliError("no endpoints given", ExitCode.USAGE)
        self.endpoints = tuple(endpoints)
        self.timeout = timeout
        self._rounds = max(1, rounds)
        self._backoff = tuple(backoff) or (0.0,)
        self._sleep = sleep
        self._security = security
        self._preferred = 0
        self._channels: dict[str, grpc.Channel] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Client:
        return cls(settings.endpoints, settings.timeout, security=settings.security)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    # -- plumbing --------------------------------------------------------------------------------------------

    def _channel(self, endpoint: str) -> grpc.Channel:
        channel = self._channels.get(endpoint)
        if channel is None:
            channel = open_channel(endpoint, self._security, CHANNEL_OPTIONS)
            self._channels[endpoint] = channel
        return channel

    def _pause(self, round_index: int, deadline: float | None = None) -> None:
        """Back off before round ``round_index`` (1-based), never past ``deadline``."""
        delay = self._backoff[min(round_index - 1, len(self._backoff) - 1)]
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - time.monotonic()))
        if delay > 0:
            self._sleep(delay)

    def _unavailable(self, what: str, last_error: str) -> CliError:
        tried = ",".join(self.endpoints)
        return CliError(
            f"cluster unavailable: {what} failed on every endpoint ({tried}) after {self._rounds} rounds; "
            f"last error: {last_error or 'none'}",
            ExitCode.UNAVAILABLE,
        )

    def unary(self, what: str, call: Callable[[grpc.Channel, float], T]) -> T:
        """Run ``call(channel, timeout)`` with fail-over; the request must be idempotent (request ids)."""
        last_error = ""
        count = len(self.endpoints)
        for round_index in range(self._rounds):
            if round_index:
                self._pause(round_index)
            start = self._preferred
            for offset in range(count):
                index = (start + offset) % count
                endpoint = self.endpoints[index]
                try:
                    result = call(self._channel(endpoint), self.timeout)
                except grpc.RpcError as err:
                    if err.code() in _FAILOVER_CODES:
                        last_error = f"{endpoint}: {err.code().name}: {one_line(err.details() or '')}"
                        continue
                    raise error_from_rpc(err, endpoint) from None
                self._preferred = index
                return result
        raise self._unavailable(what, last_error)

    # -- WorkflowService -------------------------------------------------------------------------------------

    def submit_workflow(
        self, request: workflow_pb2.SubmitWorkflowRequest
    ) -> workflow_pb2.SubmitWorkflowResponse:
        """Submit; set ``request.request_id`` so the server deduplicates a retry after fail-over."""
        response: workflow_pb2.SubmitWorkflowResponse = self.unary(
            "submit", lambda ch, t: _workflows(ch).SubmitWorkflow(request, timeout=t)
        )
        return response

    def get_workflow(self, workflow_id: str) -> workflow_pb2.GetWorkflowResponse:
        request = workflow_pb2.GetWorkflowRequest(workflow_id=workflow_id)
        response: workflow_pb2.GetWorkflowResponse = self.unary(
            "get", lambda ch, t: _workflows(ch).GetWorkflow(request, timeout=t)
        )
        return response

    def list_workflows(
        self, request: workflow_pb2.ListWorkflowsRequest
    ) -> workflow_pb2.ListWorkflowsResponse:
        response: workflow_pb2.ListWorkflowsResponse = self.unary(
            "list", lambda ch, t: _workflows(ch).ListWorkflows(request, timeout=t)
        )
        return response

    def cancel_workflow(
        self, request: workflow_pb2.CancelWorkflowRequest
    ) -> workflow_pb2.CancelWorkflowResponse:
        response: workflow_pb2.CancelWorkflowResponse = self.unary(
            "cancel", lambda ch, t: _workflows(ch).CancelWorkflow(request, timeout=t)
        )
        return response

    def retry_workflow(
        self, request: workflow_pb2.RetryWorkflowRequest
    ) -> workflow_pb2.RetryWorkflowResponse:
        response: workflow_pb2.RetryWorkflowResponse = self.unary(
            "retry", lambda ch, t: _workflows(ch).RetryWorkflow(request, timeout=t)
        )
        return response

    def resubmit_workflow(
        self, request: workflow_pb2.ResubmitWorkflowRequest
    ) -> workflow_pb2.ResubmitWorkflowResponse:
        """Resubmit; set ``request.request_id`` so the server deduplicates a retry after fail-over."""
        response: workflow_pb2.ResubmitWorkflowResponse = self.unary(
            "resubmit", lambda ch, t: _workflows(ch).ResubmitWorkflow(request, timeout=t)
        )
        return response

    def pause_workflow(
        self, request: workflow_pb2.PauseWorkflowRequest
    ) -> workflow_pb2.PauseWorkflowResponse:
        response: workflow_pb2.PauseWorkflowResponse = self.unary(
            "pause", lambda ch, t: _workflows(ch).PauseWorkflow(request, timeout=t)
        )
        return response

    def resume_workflow(
        self, request: workflow_pb2.ResumeWorkflowRequest
    ) -> workflow_pb2.ResumeWorkflowResponse:
        response: workflow_pb2.ResumeWorkflowResponse = self.unary(
            "resume", lambda ch, t: _workflows(ch).ResumeWorkflow(request, timeout=t)
        )
        return response

    def workflow_result(self, workflow_id: str) -> workflow_pb2.GetWorkflowResultResponse:
        request = workflow_pb2.GetWorkflowResultRequest(workflow_id=workflow_id)
        response: workflow_pb2.GetWorkflowResultResponse = self.unary(
            "result", lambda ch, t: _workflows(ch).GetWorkflowResult(request, timeout=t)
        )
        return response

    def count_workflows(
        self, request: workflow_pb2.CountWorkflowsRequest
    ) -> workflow_pb2.CountWorkflowsResponse:
        response: workflow_pb2.CountWorkflowsResponse = self.unary(
            "count", lambda ch, t: _workflows(ch).CountWorkflows(request, timeout=t)
        )
        return response

    def bulk_action(
        self, request: workflow_pb2.BulkWorkflowActionRequest
    ) -> workflow_pb2.BulkWorkflowActionResponse:
        """One batch (idempotent: each workflow's command is, so a retried batch changes nothing twice)."""
        response: workflow_pb2.BulkWorkflowActionResponse = self.unary(
            "bulk", lambda ch, t: _workflows(ch).BulkWorkflowAction(request, timeout=t)
        )
        return response

    def dead_letters(self, method: str, request: Any) -> Any:
        """Call ``DeadLetterService.<method>`` (ListDeadLetters, GetDeadLetter, RetryDeadLetter, ...)."""
        return self.unary(method, lambda ch, t: getattr(_dead_letters(ch), method)(request, timeout=t))

    def signal_workflow(
        self, request: workflow_pb2.SignalWorkflowRequest
    ) -> workflow_pb2.SignalWorkflowResponse:
        """Signal; set ``request.request_id`` so a retry after fail-over is delivered once."""
        response: workflow_pb2.SignalWorkflowResponse = self.unary(
            "signal", lambda ch, t: _workflows(ch).SignalWorkflow(request, timeout=t)
        )
        return response

    def watch_workflow(
        self,
        workflow_id: str,
        *,
        after_seq: int = 0,
        deadline: float | None = None,
        resubscribe_s: float = WATCH_RESUBSCRIBE_S,
    ) -> Iterator[workflow_pb2.WatchWorkflowResponse]:
        """Yield events until the workflow's end event, or the stream ends with the workflow finished.

        A broken stream is re-opened on the next endpoint with ``after_seq`` = the last event seen, so no
        event is shown twice. Consecutive breaks without progress are bounded like unary calls (then exit 4);
        ``deadline`` (a ``time.monotonic()`` value) bounds the whole watch (then exit 7).
        """
        count = len(self.endpoints)
        index = self._preferred
        failures = 0
        last_error = ""
        terminal_seen = False  # a response said the workflow ended; only its last events may be missing
        while True:
            period = resubscribe_s
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CliError(
                        f"timed out waiting for workflow {workflow_id} to end", ExitCode.WAIT_TIMEOUT
                    )
                period = min(period, remaining)
            endpoint = self.endpoints[index]
            request = workflow_pb2.WatchWorkflowRequest(workflow_id=workflow_id, after_seq=after_seq)
            stream = _workflows(self._channel(endpoint)).WatchWorkflow(request, timeout=period)
            progressed = False
            try:
                for response in stream:
                    progressed = True
                    failures = 0
                    self._preferred = index
                    after_seq = max(after_seq, response.event.seq)
                    yield response
                    if response.status in TERMINAL_STATUSES:
                        terminal_seen = True
                        if response.event.type in CLOSING_EVENTS:
                            return
                if terminal_seen:
                    return
                # The server ended the stream without a terminal status: finished, or the node is leaving.
                status = self.get_workflow(workflow_id).workflow.status
                if status in TERMINAL_STATUSES:
                    return
                last_error = f"{endpoint}: stream ended while the workflow was still running"
            except grpc.RpcError as err:
                code = err.code()
                if terminal_seen:
                    return
                if code not in _STREAM_BREAK_CODES:
                    raise error_from_rpc(err, endpoint) from None
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    # Our own re-subscribe timer (or the overall deadline, checked above): not a fault.
                    index = index if progressed else (index + 1) % count
                    continue
                last_error = f"{endpoint}: {code.name}: {one_line(err.details() or '')}"
            finally:
                stream.cancel()
            if not progressed:
                failures += 1
                if failures >= self._rounds * count:
                    raise self._unavailable("watch", last_error)
                if failures % count == 0:
                    self._pause(failures // count, deadline)
            index = (index + 1) % count

    # -- ClusterService --------------------------------------------------------------------------------------

    def cluster_status(self) -> cluster_pb2.GetClusterStatusResponse:
        request = cluster_pb2.GetClusterStatusRequest()
        response: cluster_pb2.GetClusterStatusResponse = self.unary(
            "cluster status", lambda ch, t: _cluster(ch).GetClusterStatus(request, timeout=t)
        )
        return response

    def add_member(self, node_id: str, raft: str, grpc_addr: str) -> cluster_pb2.AddMemberResponse:
        request = cluster_pb2.AddMemberRequest(node_id=node_id, raft_address=raft, grpc_address=grpc_addr)
        response: cluster_pb2.AddMemberResponse = self.unary(
            "member add", lambda ch, t: _cluster(ch).AddMember(request, timeout=max(t, MEMBER_TIMEOUT_S))
        )
        return response

    def remove_member(self, node_id: str) -> cluster_pb2.RemoveMemberResponse:
        request = cluster_pb2.RemoveMemberRequest(node_id=node_id)
        response: cluster_pb2.RemoveMemberResponse = self.unary(
            "member remove",
            lambda ch, t: _cluster(ch).RemoveMember(request, timeout=max(t, MEMBER_TIMEOUT_S)),
        )
        return response

    def list_members(self) -> cluster_pb2.ListMembersResponse:
        request = cluster_pb2.ListMembersRequest()
        response: cluster_pb2.ListMembersResponse = self.unary(
            "member list", lambda ch, t: _cluster(ch).ListMembers(request, timeout=t)
        )
        return response

    def list_breakers(self) -> cluster_pb2.ListBreakersResponse:
        request = cluster_pb2.ListBreakersRequest()
        response: cluster_pb2.ListBreakersResponse = self.unary(
            "breakers list", lambda ch, t: _cluster(ch).ListBreakers(request, timeout=t)
        )
        return response

    def save_snapshot(self, path: str, on_progress: Callable[[int, int], None]) -> SavedSnapshot:
        """Stream a backup from the leader into ``path``: written beside it, checked, fsynced, renamed.

        ``on_progress(bytes_received, workflows)`` is called per chunk. A transfer broken by an unavailable
        node starts again on the next endpoint; a wrong checksum or length is an error and leaves no file.
        """
        directory = os.path.dirname(os.path.abspath(path))
        partial = path + ".part"

        def call(channel: grpc.Channel, timeout: float) -> SavedSnapshot:
            stream = _cluster(channel).SaveSnapshot(
                cluster_pb2.SaveSnapshotRequest(), timeout=max(timeout, SNAPSHOT_TIMEOUT_S)
            )
            digest = hashlib.sha256()
            size, index, workflows, leader = 0, 0, 0, ""
            last: cluster_pb2.SaveSnapshotResponse | None = None
            try:
                with open(partial, "wb") as f:
                    for message in stream:
                        if message.raft_index:
                            index, workflows = message.raft_index, message.workflows
                            leader = message.leader_id
                        if message.data:
                            f.write(message.data)
                            digest.update(message.data)
                            size += len(message.data)
                            on_progress(size, workflows)
                        if message.trailer:
                            last = message
                    if last is None:
                        raise CliError("snapshot stream ended early (no trailer)", ExitCode.UNAVAILABLE)
                    if last.size_bytes != size or last.sha256 != digest.hexdigest():
                        raise CliError(
                            f"snapshot transfer corrupt: got {size} bytes with sha256 {digest.hexdigest()}, "
                            f"the leader sent {last.size_bytes} bytes with sha256 {last.sha256}",
                            ExitCode.INTERNAL,
                        )
                    f.write(last.trailer)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(partial, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(partial)
                raise
            finally:
                stream.cancel()
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return SavedSnapshot(path, index, workflows, size, last.sha256, leader)

        return self.unary("snapshot save", call)


@dataclass(frozen=True)
class SavedSnapshot:
    path: str
    raft_index: int
    workflows: int
    size_bytes: int
    sha256: str
    leader_id: str


def serving(endpoint: str, timeout: float = 1.0) -> bool:
    """Whether the node at ``endpoint`` answers the standard health check with SERVING (plaintext: the
    local dev cluster and the demo, whose nodes listen on loopback)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(endpoint, options=CHANNEL_OPTIONS) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
