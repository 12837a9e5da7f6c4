"""``beamctl top``'s screen: a stats snapshot (the dict ``top --once -o json`` prints) -> rich renderables.

Pure functions of their inputs, no terminal and no network, so the renderer is tested on a recorded console
from a given snapshot. The dict is the contract: the table view and ``-o json`` always agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from beamflowd.api.gen.beamflow.v1 import stats_pb2

Json = dict[str, Any]

SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 60
TABLE_EVENTS = 12

_LIVENESS_STYLE = {"alive": "green", "suspect": "yellow", "dead": "bold red", "unknown": "red"}
_EVENT_STYLE = {
    "failed": "red",
    "step_failed": "yellow",
    "retry_scheduled": "magenta",
    "reassigned": "cyan",
    "node_down": "bold red",
    "cancelled": "yellow",
    "stale_result_rejected": "dim",
}


# -- protobuf -> dict (the JSON contract) --------------------------------------------------------------------


def _iso(message: Any) -> str | None:
    if message.seconds == 0 and message.nanos == 0:
        return None
    return str(message.ToDatetime().isoformat(timespec="milliseconds")) + "Z"


def snapshot_to_dict(snapshot: stats_pb2.StatsSnapshot) -> Json:
    """Plain JSON types (ints stay ints), every field present, names as in the proto."""
    w = snapshot.workflows
    return {
        "time": _iso(snapshot.time),
        "node_id": snapshot.node_id,
        "leader_id": snapshot.leader_id,
        "build_micros": snapshot.build_micros,
        "nodes": [
            {
                "id": n.id,
                "grpc_address": n.grpc_address,
                "role": n.role,
                "term": n.term,
                "commit_index": n.commit_index,
                "applied_index": n.applied_index,
                "liveness": n.liveness,
                "owned_workflows": n.owned_workflows,
                "partitioned": n.partitioned,
                "paused": n.paused,
                "reachable": n.reachable,
                "error": n.error,
                "last_heartbeat_age_ms": n.last_heartbeat_age_ms,
                "rss_bytes": n.rss_bytes,
                "actors": n.actors,
                "open_breakers": list(n.open_breakers),
            }
            for n in snapshot.nodes
        ],
        "workflows": {
            "submitted": w.submitted,
            "running": w.running,
            "succeeded": w.succeeded,
            "failed": w.failed,
            "cancelled": w.cancelled,
            "retries_scheduled": w.retries_scheduled,
            "reassigned": w.reassigned,
            "stale_rejected": w.stale_rejected,
            "success_rate": w.success_rate,
            "completed_per_second": w.completed_per_second,
            "failed_per_second": w.failed_per_second,
            "submitted_per_second": w.submitted_per_second,
            "completed_history": list(w.completed_history),
            "failed_history": list(w.failed_history),
            "submitted_history": list(w.submitted_history),
            "counters": dict(sorted(w.counters.items())),
            "waiting_by_signal": dict(sorted(w.waiting_by_signal.items())),
        },
        "latencies": [
            {
                "name": lat.name,
                "samples": lat.samples,
                "step_p50_ms": lat.step_p50_ms,
                "step_p95_ms": lat.step_p95_ms,
                "step_p99_ms": lat.step_p99_ms,
                "workflow_samples": lat.workflow_samples,
                "workflow_p50_ms": lat.workflow_p50_ms,
                "workflow_p95_ms": lat.workflow_p95_ms,
                "workflow_p99_ms": lat.workflow_p99_ms,
                "completed": lat.completed,
                "failed": lat.failed,
            }
            for lat in snapshot.latencies
        ],
        "failing_steps": [
            {"workflow_name": f.workflow_name, "step_id": f.step_id, "failures": f.failures}
            for f in snapshot.failing_steps
        ],
        "events": [
            {
                "time": _iso(e.time),
                "type": e.type,
                "workflow_id": e.workflow_id,
                "workflow_name": e.workflow_name,
                "step_id": e.step_id,
                "message": e.message,
                "node": e.node,
            }
            for e in snapshot.events
        ],
        "chaos": {
            "available": snapshot.chaos.available,
            "enabled": snapshot.chaos.enabled,
            "monkey_on": snapshot.chaos.monkey_on,
            "monkey_profile": snapshot.chaos.monkey_profile,
            "active": list(snapshot.chaos.active),
            "injections": dict(sorted(snapshot.chaos.injections.items())),
        },
    }


# -- small formatters ----------------------------------------------------------------------------------------


def sparkline(values: Sequence[float], width: int = SPARK_WIDTH) -> str:
    """Unicode bars scaled to the window's maximum; an all-zero window is a flat baseline."""
    tail = list(values)[-width:]
    if not tail:
        return ""
    top = max(tail)
    if top <= 0:
        return SPARK[0] * len(tail)
    steps = len(SPARK) - 1
    return "".join(SPARK[min(steps, round(v / top * steps))] for v in tail)


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{n}B"


def ms(value: float) -> str:
    if value <= 0:
        return "-"
    return f"{value:.0f}" if value < 10_000 else f"{value / 1000:.1f}s"


def count(n: int) -> str:
    return f"{n:,}"


# -- panels --------------------------------------------------------------------------------------------------


@dataclass
class ViewState:
    """What the screen says about the connection, beside the data."""

    endpoint: str = ""
    status: str = "connecting"  # connecting | live | reconnecting | paused
    message: str = ""
    refresh_s: float = 0.0
    bytes_per_update: int = 0
    age_s: float = 0.0


def node_flags(node: Mapping[str, Any]) -> Text:
    flags = Text()
    if not node["reachable"]:
        flags.append("UNREACHABLE ", style="bold red")
    if node["liveness"] == "dead":
        flags.append("DEAD ", style="bold red")
    if node["partitioned"]:
        flags.append("PARTITIONED ", style="bold magenta")
    if node["paused"]:
        flags.append("PAUSED ", style="bold yellow")
    if node.get("open_breakers"):
        flags.append(f"OPEN BREAKER {','.join(node['open_breakers'][:3])} ", style="bold red")
    return flags


#: Columns of the nodes panel; the compact set fits an 80-column terminal.
NODE_COLUMNS = ("NODE", "ROLE", "LIVENESS", "TERM", "COMMIT", "APPLIED", "OWNED", "ACTORS", "RSS", "FLAGS")
COMPACT_NODE_COLUMNS = ("NODE", "ROLE", "LIVENESS", "APPLIED", "OWNED", "RSS", "FLAGS")
_NUMERIC = {"TERM", "COMMIT", "APPLIED", "OWNED", "ACTORS", "RSS"}


def _node_cells(node: Mapping[str, Any], leader: bool) -> dict[str, Text]:
    reachable = node["reachable"]
    liveness = node["liveness"] or "unknown"

    def num(value: str) -> Text:
        return Text(value if reachable else "-")

    return {
        "NODE": Text(("★ " if leader else "  ") + node["id"], style="bold green" if leader else ""),
        "ROLE": Text(node["role"] or "unknown", style="bold green" if node["role"] == "leader" else ""),
        "LIVENESS": Text(liveness, style=_LIVENESS_STYLE.get(liveness, "")),
        "TERM": num(str(node["term"])),
        "COMMIT": num(count(node["commit_index"])),
        "APPLIED": num(count(node["applied_index"])),
        "OWNED": num(count(node["owned_workflows"])),
        "ACTORS": num(count(node["actors"])),
        "RSS": num(human_bytes(node["rss_bytes"])),
        "FLAGS": node_flags(node),
    }


def nodes_panel(data: Mapping[str, Any], compact: bool = False) -> Panel:
    table = Table(expand=True, show_edge=False, pad_edge=False, box=None)
    columns = COMPACT_NODE_COLUMNS if compact else NODE_COLUMNS
    for column in columns:
        table.add_column(
            column,
            no_wrap=True,
            justify="right" if column in _NUMERIC else "left",
            min_width=6 if column == "NODE" else None,
        )
    for node in data["nodes"]:
        cells = _node_cells(node, node["id"] == data["leader_id"] or node["role"] == "leader")
        table.add_row(*(cells[c] for c in columns))
    leader = data["leader_id"] or "none (election?)"
    return Panel(table, title=f"Nodes · leader {leader}", title_align="left", border_style="blue")


def workflows_panel(data: Mapping[str, Any]) -> Panel:
    w = data["workflows"]
    grid = Table.grid(padding=(0, 2), expand=True)
    for _ in range(4):
        grid.add_column()
    rate = w["success_rate"] * 100
    rate_style = "green" if rate >= 99 else "yellow" if rate >= 90 else "red"
    grid.add_row(
        Text("running", style="bold"),
        Text(count(w["running"]), style="bold cyan"),
        Text("success rate", style="bold"),
        Text(f"{rate:.2f}%", style=f"bold {rate_style}"),
    )
    grid.add_row(
        Text("succeeded"),
        Text(count(w["succeeded"]), style="green"),
        Text("submitted"),
        Text(count(w["submitted"])),
    )
    grid.add_row(
        Text("failed"),
        Text(count(w["failed"]), style="red" if w["failed"] else ""),
        Text("cancelled"),
        Text(count(w["cancelled"])),
    )
    grid.add_row(
        Text("retries scheduled"),
        Text(count(w["retries_scheduled"])),
        Text("reassigned"),
        Text(count(w["reassigned"])),
    )
    # The dead-letter queue (replicated counts; absent from nodes that predate it).
    dead = w["counters"]
    pending, overflow = dead.get("dlq_pending", 0), dead.get("dlq_overflow", 0)
    grid.add_row(
        Text("dead letters pending"),
        Text(count(pending), style="bold red" if pending else ""),
        Text("retrying / resolved"),
        Text(f"{count(dead.get('dlq_retrying', 0))} / {count(dead.get('dlq_resolved', 0))}"),
    )
    if overflow:
        grid.add_row(Text("DLQ FULL: not queued", style="bold red"), Text(count(overflow), style="bold red"))
    # Sagas: failed for good, then undone (replicated counts, present once one happened).
    compensated, undo_failed = dead.get("compensated", 0), dead.get("compensation_failed", 0)
    if compensated or undo_failed:
        grid.add_row(
            Text("compensated"),
            Text(count(compensated), style="yellow"),
            Text("compensation failed"),
            Text(count(undo_failed), style="bold red" if undo_failed else ""),
        )
    waiting = w.get("waiting_by_signal") or {}
    if waiting:
        by_name = ", ".join(
            f"{name} {count(n)}" for name, n in sorted(waiting.items(), key=lambda kv: -kv[1])[:3]
        )
        grid.add_row(
            Text("waiting"),
            Text(count(sum(waiting.values())), style="cyan"),
            Text("for signal"),
            Text(by_name, style="cyan"),
        )
    return Panel(grid, title="Workflows", title_align="left", border_style="blue")


def throughput_panel(data: Mapping[str, Any], width: int = SPARK_WIDTH) -> Panel:
    w = data["workflows"]
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(justify="right", no_wrap=True)
    rows = (
        ("completed/s", "completed_history", "completed_per_second", "green"),
        ("failed/s", "failed_history", "failed_per_second", "red"),
        ("submitted/s", "submitted_history", "submitted_per_second", "cyan"),
    )
    for label, history, current, style in rows:
        grid.add_row(Text(label), Text(sparkline(w[history], width), style=style), Text(f"{w[current]:8.1f}"))
    return Panel(grid, title=f"Throughput (last {width}s)", title_align="left", border_style="blue")


def latency_panel(data: Mapping[str, Any]) -> Panel:
    table = Table(expand=True, show_edge=False, pad_edge=False, box=None)
    for column in ("WORKFLOW", "STEP p50", "p95", "p99", "E2E p50", "p95", "p99", "OK", "FAILED"):
        table.add_column(column, no_wrap=True, justify="left" if column == "WORKFLOW" else "right")
    for lat in data["latencies"]:
        table.add_row(
            Text(lat["name"]),
            Text(ms(lat["step_p50_ms"])),
            Text(ms(lat["step_p95_ms"])),
            Text(ms(lat["step_p99_ms"])),
            Text(ms(lat["workflow_p50_ms"])),
            Text(ms(lat["workflow_p95_ms"])),
            Text(ms(lat["workflow_p99_ms"])),
            Text(count(lat["completed"]), style="green"),
            Text(count(lat["failed"]), style="red" if lat["failed"] else ""),
        )
    if not data["latencies"]:
        table.add_row(Text("no finished steps yet", style="dim"), *(Text("") for _ in range(8)))
    failing = Text()
    for f in data["failing_steps"][:5]:
        failing.append(
            f"  {f['workflow_name']}/{f['step_id']}: {count(f['failures'])} failed attempts\n", style="yellow"
        )
    body: RenderableType = table
    if failing.plain:
        body = Group(table, Text("Top failing steps", style="bold"), failing)
    return Panel(body, title="Latency (ms, recent samples)", title_align="left", border_style="blue")


def events_panel(data: Mapping[str, Any], limit: int = TABLE_EVENTS) -> Panel:
    lines: list[Text] = []
    events = data["events"][-limit:]
    for event in reversed(events):  # newest first; one line each, cut at the panel's edge
        clock = (event["time"] or "")[11:19]
        target = event["workflow_id"] or ""
        if event["step_id"]:
            target += f"/{event['step_id']}"
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"{clock} ", style="dim")
        line.append(f"{event['type']:<16}", style=_EVENT_STYLE.get(event["type"], ""))
        line.append(f" {target} {event['message']}".rstrip())
        lines.append(line)
    if not events:
        lines.append(Text("no notable events yet", style="dim"))
    return Panel(Group(*lines), title="Events (newest first)", title_align="left", border_style="blue")


def chaos_panel(data: Mapping[str, Any], message: str = "") -> Panel:
    chaos = data["chaos"]
    text = Text()
    if not chaos["available"]:
        text.append("chaos: not available", style="dim")
        text.append(" (enabled on this node)\n" if chaos["enabled"] else "\n", style="dim")
    else:
        state = f"ON ({chaos['monkey_profile'] or 'default'})" if chaos["monkey_on"] else "off"
        text.append("monkey ", style="bold")
        text.append(state + "\n", style="bold red" if chaos["monkey_on"] else "green")
        for active in chaos["active"]:
            text.append(f"active: {active}\n", style="magenta")
        injected = {k: v for k, v in chaos["injections"].items() if v}
        summary = ", ".join(f"{k} {v}" for k, v in injected.items()) or "nothing yet"
        text.append(f"injected: {summary}\n")
    if message:
        text.append(message, style="bold yellow")
    return Panel(text, title="Chaos", title_align="left", border_style="red")


def header(data: Mapping[str, Any] | None, view: ViewState) -> Text:
    line = Text()
    line.append(" BEAMFlow top ", style="bold white on blue")
    status_style = {"live": "green", "paused": "yellow", "reconnecting": "bold red", "connecting": "yellow"}
    line.append(f"  [{view.status}]", style=status_style.get(view.status, ""))
    if view.endpoint:
        line.append(f"  via {view.endpoint}")
    if data is not None:
        line.append(f" ({data['node_id']})")
        line.append(f"  {(data['time'] or '')[11:19]}Z")
    if view.refresh_s:
        line.append(f"  refresh {view.refresh_s:.2f}s")
    if view.bytes_per_update:
        line.append(f"  {human_bytes(view.bytes_per_update)}/update")
    if view.message:
        line.append(f"  {view.message}", style="yellow")
    line.append("    q quit · p pause · m chaos monkey", style="dim")
    return line


#: Below this many columns the panels are stacked instead of side by side (e.g. an 80-column terminal).
WIDE_COLUMNS = 140


def render(
    data: Mapping[str, Any] | None, view: ViewState, chaos_message: str = "", width: int = 200
) -> RenderableType:
    """The whole screen; ``width`` is the terminal's, to choose between side-by-side and stacked panels."""
    if data is None:
        return Group(header(None, view), Text(""), Text("waiting for the first stats snapshot…", style="dim"))
    if width < WIDE_COLUMNS:
        return Group(
            header(data, view),
            nodes_panel(data, compact=True),
            workflows_panel(data),
            throughput_panel(data, width=max(10, width - 30)),
            latency_panel(data),
            chaos_panel(data, chaos_message),
            events_panel(data, limit=5),
        )
    top = Table.grid(expand=True, padding=(0, 1))
    top.add_column(ratio=3)
    top.add_column(ratio=2)
    top.add_row(nodes_panel(data), workflows_panel(data))
    bottom = Table.grid(expand=True, padding=(0, 1))
    bottom.add_column(ratio=3)
    bottom.add_column(ratio=2)
    bottom.add_row(events_panel(data), chaos_panel(data, chaos_message))
    return Group(header(data, view), top, throughput_panel(data), latency_panel(data), bottom)
