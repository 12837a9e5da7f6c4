"""``beamctl workflow ...``: submit, get, list, watch and cancel workflows."""

from __future__ import annotations

import enum
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from beamctl import output, validate
from beamctl.client import TERMINAL_STATUSES, Client, settings_of
from beamctl.errors import CliError, ExitCode, handle_errors
from beamctl.output import OutputOption, output_format
from beamctl.show import show
from beamflowd.api.gen.beamflow.v1 import workflow_pb2
from beamflowd.core.durations import parse_duration

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
    compensated = "compensated"
    compensation_failed = "compensation_failed"


_STATUS_FILTER = {
    StatusFilter.running: workflow_pb2.WORKFLOW_STATUS_RUNNING,
    StatusFilter.succeeded: workflow_pb2.WORKFLOW_STATUS_SUCCEEDED,
    StatusFilter.failed: workflow_pb2.WORKFLOW_STATUS_FAILED,
    StatusFilter.cancelled: workflow_pb2.WORKFLOW_STATUS_CANCELLED,
    StatusFilter.compensated: workflow_pb2.WORKFLOW_STATUS_COMPENSATED,
    StatusFilter.compensation_failed: workflow_pb2.WORKFLOW_STATUS_COMPENSATION_FAILED,
}

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
) -> None:
    """List workflows, newest first.

    Example: beamctl workflow list --status failed --name hello --limit 20
    """
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
    workflow_id: Annotated[str, typer.Argument(metavar="ID", help="Workflow id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded in the workflow's error.")] = "",
    compensate: Annotated[
        bool, typer.Option("--compensate", help="Undo its succeeded steps first (their `compensate`).")
    ] = False,
    fmt: OutputOption = None,
) -> None:
    """Cancel a running workflow. A workflow that already ended is left as it is (exit 0).

    With --compensate the compensations of its succeeded steps run first, newest first; it then ends
    compensated (or compensation_failed), or cancelled if there is nothing to undo.

    Example: beamctl workflow cancel wf-123 --reason "wrong input"
    """
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
app.command("validate")(validate.validate)
app.command("schema")(validate.schema)
