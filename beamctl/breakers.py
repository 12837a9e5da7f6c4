"""``beamctl breakers list``: every node's circuit breakers (per node, per integration; not replicated)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from beamctl import output
from beamctl.client import Client, settings_of
from beamctl.errors import handle_errors
from beamctl.output import OutputOption, output_format
from beamflowd.api.gen.beamflow.v1 import cluster_pb2

app = typer.Typer(name="breakers", help="Circuit breakers of every node.", no_args_is_help=True)

_STATE_STYLE = {"closed": "green", "open": "bold red", "half_open": "yellow"}


def breakers_to_dict(response: cluster_pb2.ListBreakersResponse) -> dict[str, Any]:
    return {
        "nodes": [
            {
                "node_id": node.node_id,
                "reachable": node.reachable,
                "error": node.error,
                "breakers": [
                    {
                        "name": b.name,
                        "state": b.state,
                        "recent_failures": b.recent_failures,
                        "half_open_successes": b.half_open_successes,
                        "open_for_ms": b.open_for_ms,
                        "rejected": b.rejected,
                        "opened": b.opened,
                    }
                    for b in node.breakers
                ],
            }
            for node in response.nodes
        ]
    }


@app.command("list")
@handle_errors
def list_breakers(ctx: typer.Context, fmt: OutputOption = None) -> None:
    """Show each node's breakers: state, recent failures, how long an open one stays open, rejections.

    A breaker is a step's `breaker` (or "http:<host>" for an http step); each node judges it from its own
    attempts. Example: beamctl breakers list -o json | jq '.nodes[].breakers[] | select(.state == "open")'
    """
    with Client.from_settings(settings_of(ctx)) as client:
        data = breakers_to_dict(client.list_breakers())
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data(data, out)
        return
    table = Table(show_edge=False)
    for column in ("NODE", "BREAKER", "STATE", "FAILURES", "OPEN FOR", "REJECTED", "OPENED"):
        table.add_column(column, no_wrap=True)
    for node in data["nodes"]:
        if not node["reachable"]:
            table.add_row(
                Text(node["node_id"]), Text("-"), Text(f"unreachable: {node['error']}", style="red")
            )
            continue
        for b in node["breakers"]:
            table.add_row(
                Text(node["node_id"]),
                Text(b["name"]),
                Text(b["state"], style=_STATE_STYLE.get(b["state"], "")),
                Text(str(b["recent_failures"])),
                Text(f"{b['open_for_ms'] / 1000:.1f}s" if b["state"] == "open" else "-"),
                Text(str(b["rejected"])),
                Text(str(b["opened"])),
            )
    output.console().print(table)
