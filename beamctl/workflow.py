"""``beamctl workflow ...``: submit, get, list, watch and cancel workflows."""

from __future__ import annotations

import enum
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from beamctl import bulk, output, validate
from beamctl.client import TERMINAL_STATUSES, Client, settings_of
from beamctl.errors import CliError, ExitCode, handle_errors
from beamctl.output import OutputFormat, OutputOption, output_format
from beamctl.show import show
from beamflowd.api.gen.beamflow.v1 import workflow_pb2
from beamflowd.core.durations import parse_duration
from beamflowd.core.vocabulary import (
    ID_CONFLICT_FAIL,
    ID_CONFLICT_USE_EXISTING,
    ID_REUSE_ALLOW,
    ID_REUSE_FAILED_ONLY,
    ID_REUSE_REJECT,
)

app = typer.Typer(
    name="workflow",
    help="Submit, inspect, list, watch and cancel workflows.",
    no_args_is_help=True,
)

#: Hard bound on pages fetched by `list --all` (1000 per page): a runaway token loop can't spin forever.
MAX_PAGES = 10_000
#: After a watch saw the end, a lagging follower may still report RUNNING for a moment: re-read this often.
FINAL_READ_ATTEMPTS = 20
FINAL_READ_PAUSE_S = 0.1


class StatusFilter(enum.StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    paused = "paused"
    compensated = "compensated"
    compensation_failed = "compensation_failed"


_STATUS_FILTER = {
    StatusFilter.running: workflow_pb2.WORKFLOW_STATUS_RUNNING,
    StatusFilter.succeeded: workflow_pb2.WORKFLOW_STATUS_SUCCEEDED,
    StatusFilter.failed: workflow_pb2.WORKFLOW_STATUS_FAILED,
    StatusFilter.cancelled: workflow_pb2.WORKFLOW_STATUS_CANCELLED,
    StatusFilter.paused: workflow_pb2.WORKFLOW_STATUS_PAUSED,
    StatusFilter.compensated: workflow_pb2.WORKFLOW_STATUS_COMPENSATED,
    StatusFilter.compensation_failed: workflow_pb2.WORKFLOW_STATUS_COMPENSATION_FAILED,
}


class IdReuse(enum.StrEnum):
    allow_duplicate = ID_REUSE_ALLOW
    allow_duplicate_failed_only = ID_REUSE_FAILED_ONLY
    reject_duplicate = ID_REUSE_REJECT


class IdConflict(enum.StrEnum):
    fail = ID_CONFLICT_FAIL
    use_existing = ID_CONFLICT_USE_EXISTING


_ID_REUSE = {
    IdReuse.allow_duplicate: workflow_pb2.ID_REUSE_POLICY_ALLOW_DUPLICATE,
    IdReuse.allow_duplicate_failed_only: workflow_pb2.ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
    IdReuse.reject_duplicate: workflow_pb2.ID_REUSE_POLICY_REJECT_DUPLICATE,
}
_ID_CONFLICT = {
    IdConflict.fail: workflow_pb2.ID_CONFLICT_POLICY_FAIL,
    IdConflict.use_existing: workflow_pb2.ID_CONFLICT_POLICY_USE_EXISTING,
}

LabelOption = Annotated[
    list[str] | None, typer.Option("--label", "-l", metavar="KEY=VALUE", help="A label (repeatable).")
]
CreatedAfterOption = Annotated[
    str | None,
    typer.Option("--created-after", metavar="AGO|TIME", help="Created at or after: `2h` (ago) or ISO-8601."),
]
CreatedBeforeOption = Annotated[
    str | None,
    typer.Option("--created-before", metavar="AGO|TIME", help="Created before: `30m` (ago) or ISO-8601."),
]
FailedStepOption = Annotated[
    str | None, typer.Option("--failed-step", help="Only workflows where this step failed.")
]
ErrorClassOption = Annotated[
    str | None, typer.Option("--error-class", help="Only workflows with a failed step of this error class.")
]


def parse_labels(labels: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{k: v}``; exit 2 on an entry without ``=`` (the server checks the rest)."""
    out: dict[str, str] = {}
    for item in labels or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--label: expected KEY=VALUE, got {item!r}", ExitCode.USAGE)
        out[key] = value
    return out


def parse_time(text: str | None, option: str) -> int:
    """A time bound in ms: a duration means that long ago, else ISO-8601 (UTC unless it has an offset)."""
    if not text:
        return 0
    try:
        return int(time.time() * 1000) - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"{option}: expected a duration (2h) or an ISO-8601 time, got {text!r}", ExitCode.USAGE
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def workflow_filter(
    labels: list[str] | None,
    created_after: str | None,
    created_before: str | None,
    failed_step: str | None,
    error_class: str | None,
) -> workflow_pb2.WorkflowFilter:
    wanted = workflow_pb2.WorkflowFilter(
        labels=parse_labels(labels), failed_step=failed_step or "", error_class=error_class or ""
    )
    after, before = (
        parse_time(created_after, "--created-after"),
        parse_time(created_before, "--created-before"),
    )
    if after:
        wanted.created_after.FromMilliseconds(after)
    if before:
        wanted.created_before.FromMilliseconds(before)
    return wanted


QueryOption = Annotated[
    str | None,
    typer.Option(
        "--query",
        "-q",
        metavar="QUERY",
        help="Act on every match instead of ID: `status=failed name=claim created>2h label.team=a`.",
    ),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="With --query/--label: really do it.")]


def parse_query(text: str | None, labels: list[str] | None) -> workflow_pb2.ListWorkflowsRequest:
    """A bulk query as the list request it means. ``created>T``/``created<T``: created after/before T (a
    duration means that long ago, so ``created>2h`` is the last two hours)."""
    request = workflow_pb2.ListWorkflowsRequest(filter=workflow_filter(labels, None, None, None, None))
    for token in (text or "").split():
        for op in ("=", ">", "<"):
            key, sep, value = token.partition(op)
            if sep:
                break
        if not sep or not value:
            raise CliError(f"--query: expected KEY=VALUE or created>TIME, got {token!r}", ExitCode.USAGE)
        if key == "status" and op == "=":
            if value not in StatusFilter.__members__:
                raise CliError(f"--query: unknown status {value!r}", ExitCode.USAGE)
            request.status = _STATUS_FILTER[StatusFilter(value)]
        elif key == "name" and op == "=":
            request.name = value
        elif key in ("failed_step", "error_class") and op == "=":
            setattr(request.filter, key, value)
        elif key.startswith("label.") and op == "=" and len(key) > len("label."):
            request.filter.labels[key.removeprefix("label.")] = value
        elif key == "created" and op in "<>":
            bound = request.filter.created_after if op == ">" else request.filter.created_before
            bound.FromMilliseconds(parse_time(value, "--query created"))
        else:
            raise CliError(f"--query: unknown filter {token!r}", ExitCode.USAGE)
    return request


def bulk_or_none(
    ctx: typer.Context,
    action: str,
    query: str | None,
    labels: list[str] | None,
    reason: str,
    yes: bool,
    fmt: OutputFormat | None,
    workflow_id: str | None,
) -> bool:
    """Run the bulk form of ``action`` if a query or label was given (True); else check that an ID was."""
    if query is None and not labels:
        if not workflow_id:
            raise CliError("give a workflow ID, or --query/--label to act on many", ExitCode.USAGE)
        return False
    if workflow_id:
        raise CliError("give either a workflow ID or --query/--label, not both", ExitCode.USAGE)
    if action != "resume" and not reason.strip():
        raise CliError("--reason: required to act on many workflows", ExitCode.USAGE)
    template = parse_query(query, labels)
    out = output_format(ctx, fmt)
    with Client.from_settings(settings_of(ctx)) as client:
        data = bulk.run(client, action, template, reason, yes, out)
    if out in output.DATA_FORMATS:
        output.emit_data(data, out)
    return True


TimeoutWaitOption = Annotated[
    str | None,
    typer.Option(
        "--timeout-wait",
        metavar="DURATION",
        help="Give up waiting after this long (e.g. 30s, 5m) with exit 7. Default: wait until the end.",
        show_default=False,
    ),
]


# -- shared helpers ------------------------------------------------------------------------------------------


def wait_deadline(timeout_wait: str | None) -> float | None:
    """``--timeout-wait`` as a monotonic deadline; None means no limit."""
    if not timeout_wait:
        return None
    try:
        millis = parse_duration(timeout_wait)
    except ValueError as err:
        raise CliError(f"--timeout-wait: {err}", ExitCode.USAGE) from None
    return time.monotonic() + millis / 1000


def read_input(input_json: str | None, input_file: str | None) -> str:
    """The workflow input as JSON text, checked locally so a typo fails fast with exit 2."""
    if input_json is not None and input_file is not None:
        raise CliError("use either --input or --input-file, not both", ExitCode.USAGE)
    source = "--input"
    text = input_json
    if input_file is not None:
        source = f"--input-file {input_file}"
        try:
            text = Path(input_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise CliError(f"cannot read input file {input_file}: {_reason(err)}", ExitCode.USAGE) from None
    if text is None or not text.strip():
        return ""
    try:
        json.loads(text)
    except ValueError as err:
        raise CliError(f"{source} is not valid JSON: {err}", ExitCode.USAGE) from None
    return text


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err)


def follow(
    client: Client,
    workflow_id: str,
    deadline: float | None,
    on_event: Callable[[dict[str, Any]], None],
) -> workflow_pb2.GetWorkflowResponse:
    """Watch until the workflow ends, calling ``on_event`` per event; return the final workflow read back."""
    last_status = workflow_pb2.WORKFLOW_STATUS_UNSPECIFIED
    for response in client.watch_workflow(workflow_id, deadline=deadline):
        last_status = response.status
        on_event(output.watch_to_dict(response))
    final = client.get_workflow(workflow_id)
    for _ in range(FINAL_READ_ATTEMPTS):
        if final.workflow.status in TERMINAL_STATUSES or last_status not in TERMINAL_STATUSES:
            break
        time.sleep(FINAL_READ_PAUSE_S)
        final = client.get_workflow(workflow_id)
    if final.workflow.status not in TERMINAL_STATUSES and last_status in TERMINAL_STATUSES:
        final.workflow.status = last_status  # the stream saw the end; a lagging replica has not yet
    return final


def exit_for(status: int) -> None:
    """Exit 1 unless the workflow succeeded (the contract for --wait and watch)."""
    if status != workflow_pb2.WORKFLOW_STATUS_SUCCEEDED:
        raise typer.Exit(int(ExitCode.WORKFLOW_FAILED))


# -- commands ------------------------------------------------------------------------------------------------


@app.command("submit")
@handle_errors
def submit(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(metavar="FILE", help="Workflow definition, YAML or JSON.")],
    input_json: Annotated[
        str | None, typer.Option("--input", "-i", metavar="JSON", help="Workflow input as JSON text.")
    ] = None,
    input_file: Annotated[
        str | None,
        typer.Option("--input-file", metavar="FILE", help="Read the workflow input JSON from FILE."),
    ] = None,
    workflow_id: Annotated[
        str | None, typer.Option("--id", help="Workflow id to use; the server makes one when omitted.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Watch until the workflow ends; exit 1 unless it succeeded.")
    ] = False,
    timeout_wait: TimeoutWaitOption = None,
    fmt: OutputOption = None,
    id_reuse: Annotated[
        IdReuse,
        typer.Option(
            "--id-reuse", help="If --id names a finished workflow: replace it, only if it failed, or refuse."
        ),
    ] = IdReuse.reject_duplicate,
    id_conflict: Annotated[
        IdConflict,
        typer.Option("--id-conflict", help="If --id names a running workflow: fail (exit 5) or use it."),
    ] = IdConflict.fail,
    label: LabelOption = None,
) -> None:
    """Submit a workflow file and print its id.

    The submit carries one request id across retries and fail-over, so a retried submit never starts a
    second workflow. With --wait, progress goes to stderr and the final workflow to stdout.

    Example: beamctl workflow submit deploy/workflows/hello.yaml --input '{"name": "Ada"}' --wait
    """
    out = output_format(ctx, fmt)
    try:
        definition = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CliError(f"cannot read workflow file {file}: {_reason(err)}", ExitCode.USAGE) from None
    request = workflow_pb2.SubmitWorkflowRequest(
        definition=definition,
        definition_source=file,
        input_json=read_input(input_json, input_file),
        workflow_id=workflow_id or "",
        request_id=str(uuid.uuid4()),
        labels=parse_labels(label),
        id_reuse_policy=_ID_REUSE[id_reuse],
        id_conflict_policy=_ID_CONFLICT[id_conflict],
    )
    deadline = wait_deadline(timeout_wait)
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.submit_workflow(request)
        submitted = {
            "workflow_id": response.workflow_id,
            "owner": response.owner,
            "existing": response.existing,
        }
        if not wait:
            if out in output.DATA_FORMATS:
                output.emit_data(submitted, out)
            else:
                _print_submitted(submitted)
            return
        if out in output.DATA_FORMATS:
            final = follow(client, response.workflow_id, deadline, lambda _event: None)
            data = output.workflow_to_dict(final.workflow, final.events)
            data["existing"] = response.existing
            if final.workflow.status == workflow_pb2.WORKFLOW_STATUS_SUCCEEDED:
                data["result"] = output.parse_json_text(
                    client.workflow_result(response.workflow_id).result_json
                )
            output.emit_data(data, out)
        else:
            _print_submitted(submitted)
            final = follow(
                client, response.workflow_id, deadline, lambda e: output.info(output.event_line(e))
            )
            output.render_workflow(output.workflow_to_dict(final.workflow, final.events))
    exit_for(final.workflow.status)


def _print_submitted(submitted: dict[str, Any]) -> None:
    verb = "already submitted (same request)" if submitted["existing"] else "submitted"
    output.line(f"Workflow {submitted['workflow_id']} {verb}; owner {submitted['owner'] or '-'}")


@app.command("get")
@handle_errors
def get(
    ctx: typer.Context,
    workflow_id: Annotated[str, typer.Argument(metavar="ID", help="Workflow id.")],
    fmt: OutputOption = None,
) -> None:
    """Show one workflow: status, owner, every step and the latest events.

    Example: beamctl workflow get wf-123 -o json | jq .status
    """
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.get_workflow(workflow_id)
    data = output.workflow_to_dict(response.workflow, response.events)
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data(data, out)
    else:
        output.render_workflow(data)


@app.command("list")
@handle_errors
def list_(
    ctx: typer.Context,
    status: Annotated[
        StatusFilter | None, typer.Option("--status", help="Only workflows in this status.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Only workflows with this exact name.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many workflows.")] = 100,
    all_pages: Annotated[
        bool, typer.Option("--all", help="Fetch every matching workflow (ignores --limit).")
    ] = False,
    fmt: OutputOption = None,
    label: LabelOption = None,
    created_after: CreatedAfterOption = None,
    created_before: CreatedBeforeOption = None,
    failed_step: FailedStepOption = None,
    error_class: ErrorClassOption = None,
) -> None:
    """List workflows, newest first.

    Example: beamctl workflow list --status failed --name hello --label team=claims --created-after 2h
    """
    wanted = workflow_filter(label, created_after, created_before, failed_step, error_class)
    rows: list[dict[str, Any]] = []
    token = ""
    total = 0
    with Client.from_settings(settings_of(ctx)) as client:
        for _ in range(MAX_PAGES):
            want = 1000 if all_pages else min(1000, limit - len(rows))
            request = workflow_pb2.ListWorkflowsRequest(
                status=_STATUS_FILTER[status]
                if status is not None
                else workflow_pb2.WORKFLOW_STATUS_UNSPECIFIED,
                name=name or "",
                page_size=want,
                page_token=token,
                filter=wanted,
            )
            page = client.list_workflows(request)
            rows.extend(output.summary_to_dict(summary) for summary in page.workflows)
            total = page.total_matching
            # A server that returned the same token again would make us loop forever.
            token = "" if page.next_page_token == token else page.next_page_token
            if not token or (not all_pages and len(rows) >= limit) or not page.workflows:
                break
    if not all_pages:
        rows = rows[:limit]
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data({"workflows": rows, "total_matching": total, "next_page_token": token}, out)
    else:
        output.render_workflow_list(rows, total, bool(token))


@app.command("watch")
@handle_errors
def watch(
    ctx: typer.Context,
    workflow_id: Annotated[str, typer.Argument(metavar="ID", help="Workflow id.")],
    timeout_wait: TimeoutWaitOption = None,
    fmt: OutputOption = None,
) -> None:
    """Stream a workflow's events, history first, until it ends; exit 0 if it succeeded, 1 otherwise.

    If the node serving the stream goes away, the watch resumes on another endpoint without repeating
    events. With -o json every event is one JSON object per line (JSON Lines).

    Example: beamctl workflow watch wf-123
    """
    out = output_format(ctx, fmt)

    def show(event: dict[str, Any]) -> None:
        if out in output.DATA_FORMATS:
            output.emit_data_line(event, out)
        else:
            output.line(output.event_line(event))

    with Client.from_settings(settings_of(ctx)) as client:
        final = follow(client, workflow_id, wait_deadline(timeout_wait), show)
    if out not in output.DATA_FORMATS:
        status = output.workflow_status(final.workflow.status)
        error = f": {final.workflow.error}" if final.workflow.error else ""
        output.line(f"Workflow {workflow_id} {status}{error}")
    exit_for(final.workflow.status)


@app.command("cancel")
@handle_errors
def cancel(
    ctx: typer.Context,
    workflow_id: Annotated[str | None, typer.Argument(metavar="ID", help="Workflow id.")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded in the workflow's error.")] = "",
    compensate: Annotated[
        bool, typer.Option("--compensate", help="Undo its succeeded steps first (their `compensate`).")
    ] = False,
    fmt: OutputOption = None,
    query: QueryOption = None,
    label: LabelOption = None,
    yes: YesOption = False,
) -> None:
    """Cancel a running workflow. A workflow that already ended is left as it is (exit 0).

    With --query/--label instead of ID: every match (a dry run without --yes; --reason required).

    With --compensate the compensations of its succeeded steps run first, newest first; it then ends
    compensated (or compensation_failed), or cancelled if there is nothing to undo.

    Example: beamctl workflow cancel wf-123 --reason "wrong input"
    """
    if bulk_or_none(ctx, "cancel", query, label, reason, yes, fmt, workflow_id):
        return
    assert workflow_id is not None
    request = workflow_pb2.CancelWorkflowRequest(
        workflow_id=workflow_id, reason=reason, request_id=str(uuid.uuid4()), compensate=compensate
    )
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.cancel_workflow(request)
    status = output.workflow_status(response.workflow.status)
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data(
            {
                "workflow_id": workflow_id,
                "cancelled": response.cancelled,
                "status": status,
                "workflow": output.workflow_to_dict(response.workflow),
            },
            out,
        )
    elif response.cancelled:
        output.line(f"Workflow {workflow_id} cancelled")
    else:
        output.line(f"Workflow {workflow_id} had already ended: {status}")


@app.command("signal")
@handle_errors
def signal(
    ctx: typer.Context,
    workflow_id: Annotated[str, typer.Argument(metavar="ID", help="Workflow id.")],
    name: Annotated[str, typer.Argument(metavar="NAME", help="Signal name (a wait step's `signal`).")],
    data: Annotated[
        str, typer.Option("--data", "-d", metavar="JSON", help="Payload as JSON text (the step's output).")
    ] = "null",
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Idempotency key; the same id is delivered once.")
    ] = None,
    fmt: OutputOption = None,
) -> None:
    """Send a signal to a workflow: its waiting step takes the payload, or it is buffered until one waits.

    Exit 2 for a payload the step's schema refuses or no step waiting for NAME (nothing changes), 1 if the
    workflow has ended. Example: beamctl workflow signal wf-123 approval --data '{"approved": true}'
    """
    try:
        json.loads(data)
    except ValueError as err:
        raise CliError(f"--data: not valid JSON: {err}", ExitCode.USAGE) from None
    request = workflow_pb2.SignalWorkflowRequest(
        workflow_id=workflow_id, signal=name, payload_json=data, request_id=request_id or uuid.uuid4().hex
    )
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.signal_workflow(request)
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data(
            {
                "workflow_id": workflow_id,
                "signal": name,
                "delivered": response.delivered,
                "step_id": response.step_id,
                "duplicate": response.duplicate,
                "request_id": response.request_id,
            },
            out,
        )
    elif response.duplicate:
        output.line(f"Signal {name} to {workflow_id} was already accepted (request {response.request_id})")
    elif response.delivered:
        output.line(f"Signal {name} delivered to step {response.step_id} of {workflow_id}")
    else:
        output.line(f"Signal {name} buffered for {workflow_id}: delivered when a step waits for it")


app.command("show")(show)


@app.command("retry")
@handle_errors
def retry(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded in the `retried` event.")],
    workflow_id: Annotated[str | None, typer.Argument(metavar="ID", help="Workflow id.")] = None,
    from_step: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="STEP", help="Also re-run this succeeded step and everything downstream of it."
        ),
    ] = None,
    fmt: OutputOption = None,
    query: QueryOption = None,
    label: LabelOption = None,
    yes: YesOption = False,
) -> None:
    """Run a failed or cancelled workflow again from its failed step, keeping what succeeded.

    The failed step (or --from STEP and everything downstream of it) runs again with the next attempt
    numbers, under a new epoch. Exit 5 if the workflow is still running.

    Example: beamctl workflow retry wf-123 --reason "payment API fixed"
    """
    if not reason.strip():
        raise CliError("--reason: required", ExitCode.USAGE)
    if from_step is None and bulk_or_none(ctx, "retry", query, label, reason, yes, fmt, workflow_id):
        return
    assert workflow_id is not None
    request = workflow_pb2.RetryWorkflowRequest(
        workflow_id=workflow_id, from_step=from_step or "", reason=reason
    )
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.retry_workflow(request)
    wf = response.workflow
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data(
            {
                "workflow_id": workflow_id,
                "epoch": wf.epoch,
                "retries": wf.retries,
                "dead_letter_id": response.dead_letter_id,
                "workflow": output.workflow_to_dict(wf),
            },
            out,
        )
    else:
        again = [s.id for s in wf.steps if s.status != workflow_pb2.STEP_STATUS_SUCCEEDED]
        entry = f"; dead letter {response.dead_letter_id} is retrying" if response.dead_letter_id else ""
        output.line(
            f"Workflow {workflow_id} retried (epoch {wf.epoch}): re-running {', '.join(again)}{entry}"
        )


@app.command("resubmit")
@handle_errors
def resubmit(
    ctx: typer.Context,
    workflow_id: Annotated[str, typer.Argument(metavar="ID", help="Workflow to copy.")],
    new_id: Annotated[
        str | None, typer.Option("--id", metavar="ID", help="Id of the new workflow (default: generated).")
    ] = None,
    fmt: OutputOption = None,
) -> None:
    """Start a new workflow with the same definition and input as ID, linked to it.

    Example: beamctl workflow resubmit wf-123
    """
    request = workflow_pb2.ResubmitWorkflowRequest(
        workflow_id=workflow_id, new_workflow_id=new_id or "", request_id=str(uuid.uuid4())
    )
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.resubmit_workflow(request)
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data(
            {"workflow_id": response.workflow_id, "owner": response.owner, "resubmitted_from": workflow_id},
            out,
        )
    else:
        output.line(
            f"Workflow {response.workflow_id} submitted (owner {response.owner}), copy of {workflow_id}"
        )


def _paused_or_resumed(ctx: typer.Context, fmt: output.OutputFormat | None, wf: Any, changed: bool) -> None:
    status = output.workflow_status(wf.status)
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data(
            {
                "workflow_id": wf.id,
                "changed": changed,
                "status": status,
                "workflow": output.workflow_to_dict(wf),
            },
            out,
        )
    elif changed:
        output.line(f"Workflow {wf.id} {status}")
    else:
        output.line(f"Workflow {wf.id} was already {status}")


@app.command("pause")
@handle_errors
def pause(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option("--reason", help="Why; shown with the paused workflow.")],
    workflow_id: Annotated[str | None, typer.Argument(metavar="ID", help="Workflow id.")] = None,
    fmt: OutputOption = None,
    query: QueryOption = None,
    label: LabelOption = None,
    yes: YesOption = False,
) -> None:
    """Pause a running workflow: running attempts finish, no new attempt starts until `resume`.

    The pause is committed: it survives failover and restarts. Exit 5 if the workflow already ended.

    Example: beamctl workflow pause wf-123 --reason "downstream maintenance"
    """
    if not reason.strip():
        raise CliError("--reason: required", ExitCode.USAGE)
    if bulk_or_none(ctx, "pause", query, label, reason, yes, fmt, workflow_id):
        return
    assert workflow_id is not None
    request = workflow_pb2.PauseWorkflowRequest(workflow_id=workflow_id, reason=reason)
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.pause_workflow(request)
    _paused_or_resumed(ctx, fmt, response.workflow, response.changed)


@app.command("resume")
@handle_errors
def resume(
    ctx: typer.Context,
    workflow_id: Annotated[str | None, typer.Argument(metavar="ID", help="Workflow id.")] = None,
    fmt: OutputOption = None,
    query: QueryOption = None,
    label: LabelOption = None,
    yes: YesOption = False,
) -> None:
    """Resume a paused workflow. Exit 5 if the workflow already ended.

    Example: beamctl workflow resume wf-123
    """
    if bulk_or_none(ctx, "resume", query, label, "", yes, fmt, workflow_id):
        return
    assert workflow_id is not None
    request = workflow_pb2.ResumeWorkflowRequest(workflow_id=workflow_id)
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.resume_workflow(request)
    _paused_or_resumed(ctx, fmt, response.workflow, response.changed)


@app.command("result")
@handle_errors
def result(
    ctx: typer.Context,
    workflow_id: Annotated[str, typer.Argument(metavar="ID", help="Workflow id.")],
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait until the workflow ends.")] = False,
    timeout_wait: TimeoutWaitOption = None,
) -> None:
    """Print a succeeded workflow's result as JSON: its `output` template resolved, or the outputs of its
    sink steps by step id. Exit 1 if it failed or was cancelled, 5 if it is still running (without --wait).

    Example: beamctl workflow result wf-123 --wait | jq .receipt
    """
    with Client.from_settings(settings_of(ctx)) as client:
        if wait:
            final = follow(client, workflow_id, wait_deadline(timeout_wait), lambda _event: None)
        else:
            final = client.get_workflow(workflow_id)
        wf = final.workflow
        if wf.status != workflow_pb2.WORKFLOW_STATUS_SUCCEEDED:
            status = output.workflow_status(wf.status)
            why = f": {wf.error}" if wf.error else ""
            ended = wf.status in TERMINAL_STATUSES
            hint = "" if ended else " (use --wait)"
            code = ExitCode.WORKFLOW_FAILED if ended else ExitCode.CONFLICT
            raise CliError(f"workflow {workflow_id} is {status}{why}{hint}", code)
        response = client.workflow_result(workflow_id)
    output.emit_data(output.parse_json_text(response.result_json), "json")


@app.command("count")
@handle_errors
def count(
    ctx: typer.Context,
    status: Annotated[
        StatusFilter | None, typer.Option("--status", help="Only workflows in this status.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Only workflows with this exact name.")] = None,
    label: LabelOption = None,
    created_after: CreatedAfterOption = None,
    created_before: CreatedBeforeOption = None,
    failed_step: FailedStepOption = None,
    error_class: ErrorClassOption = None,
    fmt: OutputOption = None,
) -> None:
    """Count the workflows matching the same filters as `list`.

    Example: beamctl workflow count --status failed --error-class timeout
    """
    request = workflow_pb2.CountWorkflowsRequest(
        status=_STATUS_FILTER[status] if status is not None else workflow_pb2.WORKFLOW_STATUS_UNSPECIFIED,
        name=name or "",
        filter=workflow_filter(label, created_after, created_before, failed_step, error_class),
    )
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.count_workflows(request)
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data({"count": response.count}, out)
    else:
        output.line(str(response.count))


app.command("validate")(validate.validate)
app.command("schema")(validate.schema)
