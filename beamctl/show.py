"""``beamctl workflow show ID [--follow]``: one workflow's timeline, step by step and attempt by attempt.

Why a separate view from ``get``: ``get`` is the current state; ``show`` answers "what happened": every
attempt of every step with its node, duration and error, the retries in between and the reassignments
(owner deaths) — rebuilt from the workflow's committed event history, so it is the same on every node.
``--follow`` redraws it as events arrive (the watch stream, with the CLI's usual fail-over) until the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from beamctl import output
from beamctl.client import Client, settings_of
from beamctl.errors import ExitCode, handle_errors
from beamctl.output import OutputOption, output_format
from beamflowd.core.vocabulary import EVENT_SIGNAL_RECEIVED, EVENT_STEP_SKIPPED

Json = dict[str, Any]

_OUTCOME_STYLE = {"succeeded": "green", "failed": "red", "running": "cyan", "interrupted": "yellow"}


def _ms_between(start: str | None, end: str | None) -> int | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000)


def timeline(data: Mapping[str, Any]) -> Json:
    """``workflow get``'s dict -> per-step attempts, retries and reassignments, from the events."""
    steps: dict[str, Json] = {
        s["id"]: {
            "id": s["id"],
            "kind": s["kind"],
            "status": s["status"],
            "needs": s["needs"],
            "attempts": [],
            "skipped": "",
        }
        for s in data["steps"]
    }
    workflow_events: list[Json] = []
    open_attempt: dict[str, Json] = {}
    for event in data["events"]:
        kind, step_id = event["type"], event["step_id"]
        step = steps.get(step_id)
        if kind == "step_started" and step is not None:
            previous = open_attempt.get(step_id)
            if previous is not None and previous["outcome"] == "running":
                previous["outcome"] = "interrupted"  # restarted after a reassignment or crash
            attempt = {
                "attempt": event["attempt"],
                "node": event["node"],
                "started": event["time"],
                "ended": None,
                "duration_ms": None,
                "outcome": "running",
                "error": "",
                "retry_in": "",
                "signal": "",
            }
            step["attempts"].append(attempt)
            open_attempt[step_id] = attempt
        elif kind in ("step_succeeded", "step_failed") and step_id in open_attempt:
            attempt = open_attempt[step_id]
            attempt["ended"] = event["time"]
            attempt["duration_ms"] = _ms_between(attempt["started"], event["time"])
            attempt["outcome"] = "succeeded" if kind == "step_succeeded" else "failed"
            attempt["error"] = event["message"] if kind == "step_failed" else ""
        elif kind == "retry_scheduled" and step_id in open_attempt:
            open_attempt[step_id]["retry_in"] = event["message"]
        elif kind == EVENT_STEP_SKIPPED and step is not None:
            step["skipped"] = event["message"]  # why it never ran
        elif kind == EVENT_SIGNAL_RECEIVED and step_id in open_attempt:
            open_attempt[step_id]["signal"] = event["message"]  # "<name> (<signal id>)"
        elif not step_id:
            workflow_events.append(
                {"time": event["time"], "type": kind, "message": event["message"], "node": event["node"]}
            )
    return {
        "id": data["id"],
        "name": data["name"],
        "status": data["status"],
        "owner": data["owner"],
        "epoch": data["epoch"],
        "create_time": data["create_time"],
        "update_time": data["update_time"],
        "duration_ms": _ms_between(data["create_time"], data["update_time"])
        if data["status"] != "running"
        else None,
        "error": data["error"],
        "steps": list(steps.values()),
        "workflow_events": workflow_events,
        "reassignments": [e for e in workflow_events if e["type"] == "reassigned"],
    }


def _duration(ms: int | None) -> str:
    if ms is None:
        return "…"
    return f"{ms}ms" if ms < 1000 else f"{ms / 1000:.2f}s"


def render_timeline(t: Mapping[str, Any]) -> RenderableType:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("Workflow", Text(f"{t['id']} ({t['name']})"))
    head.add_row("Status", Text(t["status"], style=output._STATUS_STYLE.get(t["status"], "")))
    head.add_row("Owner", Text(f"{t['owner'] or '-'} (epoch {t['epoch']})"))
    head.add_row("Created", Text(output.short_time(t["create_time"])))
    if t["duration_ms"] is not None:
        head.add_row("Took", Text(_duration(t["duration_ms"])))
    if t["error"]:
        head.add_row("Error", Text(t["error"], style="red"))
    tree = Tree(Text("Steps", style="bold"))
    for step in t["steps"]:
        label = Text(f"{step['id']} ", style="bold")
        label.append(step["status"], style=output._STATUS_STYLE.get(step["status"], ""))
        label.append(f"  {step['kind']}, {len(step['attempts'])} attempt(s)", style="dim")
        if step["needs"]:
            label.append(f", needs {','.join(step['needs'])}", style="dim")
        if step["skipped"]:
            label.append(f"  ({step['skipped']})", style="dim italic")
        branch = tree.add(label)
        for a in step["attempts"]:
            line = Text(f"#{a['attempt']} {output.clock(a['started'])} on {a['node'] or '?'}  ")
            line.append(
                f"{a['outcome']} after {_duration(a['duration_ms'])}" if a["ended"] else a["outcome"],
                style=_OUTCOME_STYLE.get(a["outcome"], ""),
            )
            if a["error"]:
                line.append(f"  {a['error']}", style="red")
            if a["retry_in"]:
                line.append(f"  → retry {a['retry_in']}", style="magenta")
            if a["signal"]:
                line.append(f"  signal {a['signal']}", style="cyan")
            branch.add(line)
    events = Text()
    for e in t["workflow_events"]:
        style = "cyan" if e["type"] == "reassigned" else ""
        events.append(f"{output.clock(e['time'])}  {e['type']:<10} {e['message']}\n", style=style)
    parts: list[RenderableType] = [head, tree]
    if events.plain:
        parts += [Text("Workflow events", style="bold"), events]
    return Group(*parts)


def _fetch(client: Client, workflow_id: str) -> Json:
    response = client.get_workflow(workflow_id)
    return timeline(output.workflow_to_dict(response.workflow, response.events))


@handle_errors
def show(
    ctx: typer.Context,
    workflow_id: Annotated[str, typer.Argument(metavar="ID", help="Workflow id.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Redraw as events arrive, until the end.")
    ] = False,
    fmt: OutputOption = None,
) -> None:
    """One workflow's timeline: every step's attempts (node, duration, error), retries and reassignments.

    Example: beamctl workflow show wf-0192... --follow
    """
    settings = settings_of(ctx)
    out = output_format(ctx, fmt)
    as_data = out in output.DATA_FORMATS
    with Client.from_settings(settings) as client:
        t = _fetch(client, workflow_id)
        if follow and t["status"] == "running":
            console = output.console()
            with Live(render_timeline(t), console=console, auto_refresh=False, transient=as_data) as live:
                for _ in client.watch_workflow(workflow_id):  # ends with the workflow (bounded by the watch)
                    t = _fetch(client, workflow_id)
                    live.update(render_timeline(t), refresh=True)
            t = _fetch(client, workflow_id)
            if as_data:
                output.emit_data(t, out)
        elif as_data:
            output.emit_data(t, out)
        else:
            output.console().print(render_timeline(t))
    if follow and t["status"] != "succeeded":
        raise typer.Exit(int(ExitCode.WORKFLOW_FAILED))  # the contract of --wait and watch
