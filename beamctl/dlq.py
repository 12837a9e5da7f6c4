"""``beamctl dlq ...``: the dead-letter queue: list, show, retry, resolve and abandon entries."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from beamctl import output
from beamctl.client import Client, settings_of
from beamctl.errors import CliError, ExitCode, handle_errors
from beamctl.output import OutputOption, output_format
from beamflowd.api.gen.beamflow.v1 import dlq_pb2
from beamflowd.core.vocabulary import DLQ_KIND_WORKFLOW_FAILED

app = typer.Typer(
    name="dlq",
    help="The dead-letter queue: workflows that failed for good, waiting for an operator.",
    no_args_is_help=True,
)

#: Hard bound on pages fetched by `list --all` (1000 per page).
MAX_PAGES = 1_000


class StateFilter(enum.StrEnum):
    pending = "pending"
    retrying = "retrying"
    resolved = "resolved"
    abandoned = "abandoned"


_STATE_FILTER: dict[StateFilter, dlq_pb2.DeadLetterState] = {
    StateFilter.pending: dlq_pb2.DEAD_LETTER_STATE_PENDING,
    StateFilter.retrying: dlq_pb2.DEAD_LETTER_STATE_RETRYING,
    StateFilter.resolved: dlq_pb2.DEAD_LETTER_STATE_RESOLVED,
    StateFilter.abandoned: dlq_pb2.DEAD_LETTER_STATE_ABANDONED,
}


class KindFilter(enum.StrEnum):
    workflow_failed = DLQ_KIND_WORKFLOW_FAILED


def state_name(value: int) -> str:
    """``DEAD_LETTER_STATE_PENDING`` -> ``pending``."""
    return dlq_pb2.DeadLetterState.Name(value).removeprefix("DEAD_LETTER_STATE_").lower()


def entry_to_dict(entry: dlq_pb2.DeadLetter) -> dict[str, Any]:
    return {
        "id": entry.id,
        "workflow_id": entry.workflow_id,
        "workflow_name": entry.workflow_name,
        "kind": entry.kind,
        "state": state_name(entry.state),
        "step_id": entry.step_id,
        "error_class": entry.error_class,
        "error": entry.error,
        "attempts": entry.attempts,
        "failures": entry.failures,
        "retries": entry.retries,
        "create_time": output.timestamp(entry, "create_time"),
        "update_time": output.timestamp(entry, "update_time"),
        "reason": entry.reason,
        "closed_by": entry.closed_by,
    }


def render_entries(
    rows: Sequence[Mapping[str, Any]], total: int, counts: Mapping[str, int], overflow: int
) -> None:
    out = output.console()
    table = Table(show_edge=False)
    for column in ("ENTRY", "WORKFLOW", "NAME", "STATE", "STEP", "ERROR", "FAILURES", "UPDATED"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        error = f"[{row['error_class']}] {row['error']}" if row["error_class"] else row["error"]
        table.add_row(
            Text(row["id"]),
            Text(row["workflow_id"]),
            Text(row["workflow_name"]),
            Text(row["state"]),
            Text(row["step_id"] or "-"),
            Text(error[:59] + "…" if len(error) > 60 else error),
            Text(str(row["failures"])),
            Text(output.short_time(row["update_time"])),
        )
    out.print(table)
    by_state = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    full = f"; {overflow} failures not queued (queue full)" if overflow else ""
    output.info(f"{len(rows)} of {total} matching entries ({by_state}){full}")


def render_entry(data: Mapping[str, Any]) -> None:
    out = output.console()
    for key, value in data.items():
        out.print(Text(f"{key + ':':<16}{'-' if value in ('', None) else value}"))


def _emit_entry(ctx: typer.Context, fmt: output.OutputFormat | None, data: dict[str, Any], text: str) -> None:
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data(data, out)
    else:
        output.line(text)


def _reason(reason: str) -> str:
    if not reason.strip():
        raise CliError("--reason: required", ExitCode.USAGE)
    return reason


@app.command("list")
@handle_errors
def list_entries(
    ctx: typer.Context,
    state: Annotated[StateFilter | None, typer.Option("--state", help="Only entries in this state.")] = None,
    kind: Annotated[KindFilter | None, typer.Option("--kind", help="Only entries of this kind.")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Only entries of workflows with this name.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many entries.")] = 100,
    all_pages: Annotated[bool, typer.Option("--all", help="Every matching entry (pages through).")] = False,
    fmt: OutputOption = None,
) -> None:
    """List dead-letter entries, newest first, with counts by state.

    Example: beamctl dlq list --state pending --name claim
    """
    rows: list[dict[str, Any]] = []
    token = ""
    page = dlq_pb2.ListDeadLettersResponse()
    with Client.from_settings(settings_of(ctx)) as client:
        for _ in range(MAX_PAGES):
            request = dlq_pb2.ListDeadLettersRequest(
                state=_STATE_FILTER[state] if state else dlq_pb2.DEAD_LETTER_STATE_UNSPECIFIED,
                kind=kind.value if kind else "",
                workflow_name=name or "",
                page_size=1000 if all_pages else min(1000, limit - len(rows)),
                page_token=token,
            )
            page = client.dead_letters("ListDeadLetters", request)
            rows.extend(entry_to_dict(entry) for entry in page.dead_letters)
            token = "" if page.next_page_token == token else page.next_page_token
            if not token or (not all_pages and len(rows) >= limit) or not page.dead_letters:
                break
    counts = dict(page.counts)
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        data = {
            "dead_letters": rows,
            "total_matching": page.total_matching,
            "counts": counts,
            "overflow": page.overflow,
            "next_page_token": token,
        }
        output.emit_data(data, out)
    else:
        render_entries(rows, page.total_matching, counts, page.overflow)


@app.command("show")
@handle_errors
def show_entry(
    ctx: typer.Context,
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="Entry id (dlq-N).")],
    fmt: OutputOption = None,
) -> None:
    """Show one dead-letter entry. Exit 3 if there is none with this id.

    Example: beamctl dlq show dlq-7
    """
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.dead_letters("GetDeadLetter", dlq_pb2.GetDeadLetterRequest(id=entry_id))
    data = entry_to_dict(response.dead_letter)
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data(data, out)
    else:
        render_entry(data)


@app.command("retry")
@handle_errors
def retry_entry(
    ctx: typer.Context,
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="Entry id (dlq-N).")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why; recorded in the workflow's `retried` event.")
    ] = "",
    fmt: OutputOption = None,
) -> None:
    """Retry the entry's workflow from its failed step; the entry becomes retrying, then resolved when the
    workflow succeeds or pending again when it fails. Exit 5 unless the entry is pending.

    Example: beamctl dlq retry dlq-7 --reason "downstream fixed"
    """
    request = dlq_pb2.RetryDeadLetterRequest(id=entry_id, reason=reason)
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.dead_letters("RetryDeadLetter", request)
    data = entry_to_dict(response.dead_letter)
    data["workflow"] = output.workflow_to_dict(response.workflow)
    wf = response.workflow
    text = f"Entry {entry_id} retrying: workflow {wf.id} runs again (epoch {wf.epoch})"
    _emit_entry(ctx, fmt, data, text)


def _close(
    ctx: typer.Context, method: str, entry_id: str, reason: str, fmt: output.OutputFormat | None
) -> None:
    request_cls = (
        dlq_pb2.ResolveDeadLetterRequest
        if method == "ResolveDeadLetter"
        else dlq_pb2.AbandonDeadLetterRequest
    )
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.dead_letters(method, request_cls(id=entry_id, reason=_reason(reason)))
    data = entry_to_dict(response.dead_letter) | {"changed": response.changed}
    state = data["state"]
    text = f"Entry {entry_id} {state}" if response.changed else f"Entry {entry_id} was already {state}"
    _emit_entry(ctx, fmt, data, text)


@app.command("resolve")
@handle_errors
def resolve_entry(
    ctx: typer.Context,
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="Entry id (dlq-N).")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is resolved (required).")] = "",
    fmt: OutputOption = None,
) -> None:
    """Close a pending entry as handled (final; its workflow may then be garbage-collected).

    Example: beamctl dlq resolve dlq-7 --reason "refunded by hand"
    """
    _close(ctx, "ResolveDeadLetter", entry_id, reason, fmt)


@app.command("abandon")
@handle_errors
def abandon_entry(
    ctx: typer.Context,
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="Entry id (dlq-N).")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is given up (required).")] = "",
    fmt: OutputOption = None,
) -> None:
    """Close a pending entry as given up (final; its workflow may then be garbage-collected).

    Example: beamctl dlq abandon dlq-7 --reason "customer closed the account"
    """
    _close(ctx, "AbandonDeadLetter", entry_id, reason, fmt)
