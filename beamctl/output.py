"""Rendering: protobuf messages -> plain dicts (the JSON contract) -> rich tables or JSON on stdout.

Tables are drawn from the same dicts that ``-o json`` prints, so both views always agree.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, TextIO

import typer
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table
from rich.text import Text

from beamctl.client import settings_of
from beamctl.settings import OutputFormat as OutputFormat  # re-exported; defined where --help loads it
from beamflowd.api.gen.beamflow.v1 import cluster_pb2, workflow_pb2
from beamflowd.core.vocabulary import DLQ_PENDING, DLQ_RETRYING

#: Formats for scripts: one document with every field, no decoration.
DATA_FORMATS = frozenset({"json", "yaml"})


OutputOption = Annotated[
    OutputFormat | None,
    typer.Option("--output", "-o", help="table or json; overrides the global -o.", show_default=False),
]

DIGEST_SHORT = 12
#: Events shown under ``workflow get`` in table mode; ``-o json`` has them all.
TABLE_EVENTS = 10

_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "compensated": "yellow",
    "compensation_failed": "bold red",
    "running": "cyan",
    "retry_wait": "magenta",
    "pending": "dim",
    "skipped": "dim italic",
}

Json = dict[str, Any]


# -- protobuf -> dict ----------------------------------------------------------------------------------------


def _enum_name(name: str, prefix: str) -> str:
    return name.removeprefix(prefix).lower()


def workflow_status(value: int) -> str:
    """``WORKFLOW_STATUS_SUCCEEDED`` -> ``succeeded`` (the form scripts compare against)."""
    return _enum_name(workflow_pb2.WorkflowStatus.Name(value), "WORKFLOW_STATUS_")


def step_status(value: int) -> str:
    return _enum_name(workflow_pb2.StepStatus.Name(value), "STEP_STATUS_")


def node_role(value: int) -> str:
    """Lowercase role; UNSPECIFIED (e.g. an unreachable node) reads as ``unknown``."""
    if value == cluster_pb2.NODE_ROLE_UNSPECIFIED:
        return "unknown"
    return _enum_name(cluster_pb2.NodeRole.Name(value), "NODE_ROLE_")


def timestamp(message: Message, field: str) -> str | None:
    """ISO-8601 UTC (``...Z``) or None when the field is unset."""
    if not message.HasField(field):
        return None
    value = getattr(message, field)
    if value.seconds == 0 and value.nanos == 0:
        return None
    return str(value.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z"))


def parse_json_text(text: str, empty: Any = None) -> Any:
    """Decode a JSON field; a value that is not JSON is returned as the raw string rather than failing."""
    if not text:
        return empty
    try:
        return json.loads(text)
    except ValueError:
        return text


def event_to_dict(event: workflow_pb2.WorkflowEvent) -> Json:
    return {
        "seq": event.seq,
        "time": timestamp(event, "time"),
        "type": event.type,
        "step_id": event.step_id,
        "attempt": event.attempt,
        "message": event.message,
        "node": event.node,
    }


def watch_to_dict(response: workflow_pb2.WatchWorkflowResponse) -> Json:
    """One watch line: the event plus the workflow status after it."""
    data = event_to_dict(response.event)
    data["status"] = workflow_status(response.status)
    return data


def step_to_dict(step: workflow_pb2.Step) -> Json:
    return {
        "id": step.id,
        "kind": step.kind,
        "status": step_status(step.status),
        "attempts": step.attempts,
        "output": parse_json_text(step.output_json),
        "error": step.error,
        "error_class": step.error_class,
        "needs": list(step.needs),
        "start_time": timestamp(step, "start_time"),
        "end_time": timestamp(step, "end_time"),
        "next_attempt_time": timestamp(step, "next_attempt_time"),
        "waiting_for": step.waiting_for,
        "deadline_time": timestamp(step, "deadline_time"),
    }


def workflow_to_dict(
    workflow: workflow_pb2.Workflow, events: Iterable[workflow_pb2.WorkflowEvent] = ()
) -> Json:
    return {
        "id": workflow.id,
        "name": workflow.name,
        "description": workflow.description,
        "status": workflow_status(workflow.status),
        "owner": workflow.owner,
        "epoch": workflow.epoch,
        "create_time": timestamp(workflow, "create_time"),
        "update_time": timestamp(workflow, "update_time"),
        "input": parse_json_text(workflow.input_json, {}),
        "error": workflow.error,
        "steps": [step_to_dict(step) for step in workflow.steps],
        "events": [event_to_dict(event) for event in events],
        "definition": parse_json_text(workflow.definition_json),
        "retries": workflow.retries,
        "resubmitted_from": workflow.resubmitted_from,
        "dead_letter_id": workflow.dead_letter_id,
        "labels": dict(sorted(workflow.labels.items())),
        "waiting_for": [step.waiting_for for step in workflow.steps if step.waiting_for],
        "signals_buffered": workflow.signals_buffered,
    }


def summary_to_dict(summary: workflow_pb2.WorkflowSummary) -> Json:
    return {
        "id": summary.id,
        "name": summary.name,
        "status": workflow_status(summary.status),
        "owner": summary.owner,
        "epoch": summary.epoch,
        "create_time": timestamp(summary, "create_time"),
        "update_time": timestamp(summary, "update_time"),
        "steps_total": summary.steps_total,
        "steps_succeeded": summary.steps_succeeded,
        "waiting_for": list(summary.waiting_for),
        "steps_skipped": summary.steps_skipped,
    }


def node_to_dict(node: cluster_pb2.NodeStatus) -> Json:
    return {
        "id": node.id,
        "raft_address": node.raft_address,
        "grpc_address": node.grpc_address,
        "role": node_role(node.role),
        "term": node.term,
        "commit_index": node.commit_index,
        "applied_index": node.applied_index,
        "reachable": node.reachable,
        "liveness": node.liveness,
        "digest": node.digest,
        "owned_workflows": node.owned_workflows,
        "leader_id": node.leader_id,
        "last_heartbeat_age_ms": node.last_heartbeat_age_ms,
        "error": node.error,
    }


def cluster_to_dict(response: cluster_pb2.GetClusterStatusResponse) -> Json:
    return {
        "leader_id": response.leader_id,
        "nodes": [node_to_dict(node) for node in response.nodes],
        "dead_letters": {
            DLQ_PENDING: response.dlq_pending,
            DLQ_RETRYING: response.dlq_retrying,
            "overflow": response.dlq_overflow,
        },
    }


def output_format(ctx: typer.Context, override: OutputFormat | None) -> str:
    """The per-command ``-o`` if given, else the global one."""
    return str(override.value) if override is not None else settings_of(ctx).output


# -- writers -------------------------------------------------------------------------------------------------


def console(*, stderr: bool = False) -> Console:
    """A console on the *current* stdout/stderr (CliRunner swaps them); wide when piped so ids never wrap."""
    file: TextIO = sys.stderr if stderr else sys.stdout
    width = None if file.isatty() else 200
    return Console(file=file, width=width, highlight=False, soft_wrap=False)


def emit_data(value: Any, fmt: str) -> None:
    """Exactly one JSON or YAML document on stdout, nothing else."""
    if fmt == "yaml":
        import yaml  # only `-o yaml` pays for it

        text = yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False)
    else:
        text = json.dumps(value, indent=2) + "\n"
    sys.stdout.write(text)
    sys.stdout.flush()


def emit_data_line(value: Any, fmt: str) -> None:
    """One record of a stream (``watch``): a compact JSON line, or a YAML document after ``---``."""
    if fmt == "yaml":
        import yaml

        text = "---\n" + yaml.safe_dump(value, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(value, separators=(",", ":")) + "\n"
    sys.stdout.write(text)
    sys.stdout.flush()


def info(message: str) -> None:
    """A progress/notice line on stderr, so stdout stays clean for pipes."""
    console(stderr=True).print(Text(message))


def line(message: str) -> None:
    console().print(Text(message))


# -- tables --------------------------------------------------------------------------------------------------


def _status_text(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def _text(value: Any) -> Text:
    """Server strings as literal text: a ``[`` in a message must not be read as rich markup."""
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, str):
        return Text(value) if value else Text("-", style="dim")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, (dict, list)):
        return Text(json.dumps(value, separators=(",", ":")))
    return Text(str(value))


def _clip(value: Any, limit: int = 60) -> Text:
    text = _text(value)
    if len(text.plain) > limit:
        text = Text(text.plain[: limit - 1] + "…")
    return text


def short_time(iso: str | None) -> str:
    """``2026-01-02T03:04:05.678Z`` -> ``2026-01-02 03:04:05`` for tables."""
    if not iso:
        return "-"
    return iso.replace("T", " ")[:19]


def clock(iso: str | None) -> str:
    """Time of day with milliseconds, for event lines."""
    if not iso:
        return "--:--:--.---"
    return iso[11:23]


def _duration(start: str | None, end: str | None) -> str:
    if not start or not end:
        return "-"
    seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


def event_line(event: Mapping[str, Any]) -> str:
    """One human line per event, used by ``watch`` and ``submit --wait`` progress."""
    parts = [clock(event.get("time")), f"#{event['seq']}", str(event["type"])]
    if event.get("step_id"):
        parts.append(f"step={event['step_id']}")
    if event.get("attempt"):
        parts.append(f"attempt={event['attempt']}")
    if event.get("node"):
        parts.append(f"node={event['node']}")
    if event.get("message"):
        parts.append(str(event["message"]))
    return "  ".join(parts)


def render_workflow(data: Mapping[str, Any]) -> None:
    """Header fields, the steps table and the newest events."""
    out = console()
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    header.add_row("ID", _text(data["id"]))
    header.add_row("Name", _text(data["name"]))
    header.add_row("Status", _status_text(data["status"]))
    header.add_row("Owner", Text(f"{data['owner'] or '-'} (epoch {data['epoch']})"))
    header.add_row("Created", Text(short_time(data["create_time"])))
    header.add_row("Updated", Text(short_time(data["update_time"])))
    header.add_row("Input", _clip(data["input"], 100))
    if data["error"]:
        header.add_row("Error", Text(data["error"], style="red"))
    if data["waiting_for"]:
        buffered = f" ({data['signals_buffered']} signals buffered)" if data["signals_buffered"] else ""
        header.add_row(
            "Waiting", Text(f"for signal {', '.join(data['waiting_for'])}{buffered}", style="cyan")
        )
    out.print(header)

    steps = Table(title="Steps", title_justify="left", show_edge=False)
    for column in ("STEP", "KIND", "STATUS", "ATTEMPTS", "NEEDS", "STARTED", "DURATION", "OUTPUT / ERROR"):
        steps.add_column(column, no_wrap=column != "OUTPUT / ERROR")
    for step in data["steps"]:
        result = (
            _clip(f"{step['error_class'] or 'error'}: {step['error']}")
            if step["error"]
            else _clip(step["output"])
        )
        if step["status"] == "retry_wait" and step["next_attempt_time"]:
            result = Text(f"next attempt {short_time(step['next_attempt_time'])}")
        if step["waiting_for"]:
            deadline = step["next_attempt_time"]
            until = f" until {short_time(deadline)}" if deadline else ""
            result = Text(f"waiting for signal {step['waiting_for']}{until}", style="cyan")
        if step["status"] in ("running", "retry_wait") and step["deadline_time"]:
            shown = f"{result.plain}, " if result.plain not in ("", "-") else ""
            result = Text(f"{shown}deadline {short_time(step['deadline_time'])}")
        steps.add_row(
            _text(step["id"]),
            _text(step["kind"]),
            _status_text(step["status"]),
            Text(str(step["attempts"])),
            _text(",".join(step["needs"])),
            Text(short_time(step["start_time"])),
            Text(_duration(step["start_time"], step["end_time"])),
            result,
        )
    out.print()
    out.print(steps)

    events: Sequence[Mapping[str, Any]] = data["events"][-TABLE_EVENTS:]
    if events:
        out.print()
        out.print(Text(f"Last {len(events)} events", style="bold"))
        for event in events:
            out.print(Text(event_line(event)))


def render_workflow_list(rows: Sequence[Mapping[str, Any]], total: int, more: bool) -> None:
    out = console()
    table = Table(show_edge=False)
    for column in ("WORKFLOW ID", "NAME", "STATUS", "STEPS", "OWNER", "CREATED", "UPDATED"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(
            _text(row["id"]),
            _text(row["name"]),
            _status_text(row["status"])
            + (Text(" (waiting)", style="cyan") if row["waiting_for"] else Text()),
            Text(
                f"{row['steps_succeeded']}/{row['steps_total']}"
                + (f" ({row['steps_skipped']} skipped)" if row["steps_skipped"] else "")
            ),
            _text(row["owner"]),
            Text(short_time(row["create_time"])),
            Text(short_time(row["update_time"])),
        )
    out.print(table)
    hint = " (more: use --all or a larger --limit)" if more else ""
    info(f"{len(rows)} of {total} matching workflows{hint}")


def render_cluster(data: Mapping[str, Any]) -> None:
    out = console()
    table = Table(show_edge=False)
    columns = (
        "NODE",
        "RAFT",
        "GRPC",
        "ROLE",
        "TERM",
        "COMMIT",
        "APPLIED",
        "REACHABLE",
        "LIVENESS",
        "OWNED",
        "DIGEST",
    )
    for column in columns:
        table.add_column(column, no_wrap=True)
    for node in data["nodes"]:
        role = node["role"]
        table.add_row(
            _text(node["id"]),
            _text(node["raft_address"]),
            _text(node["grpc_address"]),
            Text(role, style="bold green" if role == "leader" else ""),
            Text(str(node["term"])),
            Text(str(node["commit_index"])),
            Text(str(node["applied_index"])),
            Text("yes" if node["reachable"] else "no", style="" if node["reachable"] else "red"),
            _text(node["liveness"]),
            Text(str(node["owned_workflows"])),
            _text(node["digest"][:DIGEST_SHORT]),
        )
    out.print(table)
    for node in data["nodes"]:
        if node["error"]:
            out.print(Text(f"{node['id']}: {node['error']}", style="red"))
    out.print(Text(f"Leader: {data['leader_id'] or 'none (election in progress?)'}"))
    dlq = data["dead_letters"]
    out.print(Text(f"Dead letters: {dlq[DLQ_PENDING]} pending, {dlq[DLQ_RETRYING]} retrying"))
    if dlq["overflow"]:
        out.print(Text(f"Dead-letter queue full: {dlq['overflow']} failures not queued", style="red"))
