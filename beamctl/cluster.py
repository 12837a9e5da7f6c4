"""``beamctl cluster ...``: how the cluster looks from each node."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.table import Table

from beamctl import output
from beamctl.client import Client, settings_of
from beamctl.errors import handle_errors
from beamctl.output import OutputFormat, OutputOption, output_format
from beamflowd.api.gen.beamflow.v1 import cluster_pb2

app = typer.Typer(
    name="cluster", help="Inspect the cluster: nodes, roles, Raft indexes, liveness.", no_args_is_help=True
)


@app.command("status")
@handle_errors
def status(
    ctx: typer.Context,
    fmt: OutputOption = None,
) -> None:
    """Show every node: role, term, commit/applied index, reachability, liveness, owned workflows, digest.

    Equal applied indexes with different digests mean replicas diverged. Unreachable nodes are listed with
    the reason. JSON shows the full digest; the table shows its first 12 characters.

    Example: beamctl cluster status -o json | jq '.nodes[] | select(.role == "leader") | .id'
    """
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.cluster_status()
    data = output.cluster_to_dict(response)
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data(data, out)
    else:
        output.render_cluster(data)


snapshot_app = typer.Typer(
    name="snapshot",
    help="Back up the replicated state (restore with `beamflowd restore`).",
    no_args_is_help=True,
)
app.add_typer(snapshot_app, name="snapshot")

#: Progress lines on a terminal at most this often.
PROGRESS_PERIOD_S = 0.5


@snapshot_app.command("save")
@handle_errors
def snapshot_save(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="where to write the backup (replaced atomically)")],
    fmt: OutputOption = None,
) -> None:
    """Save a consistent snapshot from the leader: the state at one Raft index, with its sha256.

    The file is written beside FILE (FILE.part), checked, fsynced and renamed; a broken transfer leaves
    no file. Progress goes to stderr on a terminal. Needs the admin role.

    Example: beamctl cluster snapshot save /backup/beamflow-$(date +%F).db
    """
    show_progress = sys.stderr.isatty()
    last_shown = [0.0]

    def progress(received: int, workflows: int) -> None:
        now = time.monotonic()
        if show_progress and now - last_shown[0] >= PROGRESS_PERIOD_S:
            last_shown[0] = now
            output.info(f"received {received / 1048576:.1f} MiB ({workflows} workflows in the snapshot)")

    with Client.from_settings(settings_of(ctx)) as client:
        saved = client.save_snapshot(file, progress)
    data = {
        "path": saved.path,
        "raft_index": saved.raft_index,
        "workflows": saved.workflows,
        "size_bytes": saved.size_bytes,
        "sha256": saved.sha256,
        "leader": saved.leader_id,
    }
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data(data, out)
    else:
        output.line(
            f"saved {saved.path}: {saved.workflows} workflows at raft index {saved.raft_index} from leader "
            f"{saved.leader_id}, {saved.size_bytes} bytes, sha256 {saved.sha256}"
        )


member_app = typer.Typer(
    name="member",
    help="Change the membership: one change at a time, like etcdctl member.",
    no_args_is_help=True,
)
app.add_typer(member_app, name="member")


def _members_data(members: Sequence[cluster_pb2.Member]) -> list[dict[str, Any]]:
    return [
        {
            "id": m.id,
            "raft_address": m.raft_address,
            "grpc_address": m.grpc_address,
            "status": ("alive" if m.alive else "dead") if m.joined else "added, not started",
            "in_raft": m.in_raft,
            "owned_workflows": m.owned_workflows,
        }
        for m in members
    ]


def _emit_members(ctx: typer.Context, fmt: OutputFormat | None, data: dict[str, Any], headline: str) -> None:
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data(data, out)
        return
    if headline:
        output.line(headline)
    table = Table(box=None, pad_edge=False)
    for column in ("ID", "RAFT", "GRPC", "STATUS", "IN RAFT", "OWNED"):
        table.add_column(column)
    for m in data["members"]:
        table.add_row(
            m["id"],
            m["raft_address"],
            m["grpc_address"],
            m["status"],
            "yes" if m["in_raft"] else "no",
            str(m["owned_workflows"]),
        )
    output.console().print(table)


@member_app.command("list")
@handle_errors
def member_list(ctx: typer.Context, fmt: OutputOption = None) -> None:
    """List the members as the replicated state has them (any node answers from its own copy).

    Example: beamctl cluster member list -o json | jq -r '.members[].id'
    """
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.list_members()
    data = {"leader_id": response.leader_id, "members": _members_data(response.members)}
    _emit_members(ctx, fmt, data, "")


@member_app.command("add")
@handle_errors
def member_add(
    ctx: typer.Context,
    node_id: Annotated[str, typer.Argument(metavar="ID", help="the new node's id")],
    raft: Annotated[str, typer.Option("--raft", metavar="HOST:PORT", help="its Raft address")],
    grpc_addr: Annotated[str, typer.Option("--grpc", metavar="HOST:PORT", help="its gRPC address")],
    fmt: OutputOption = None,
) -> None:
    """Add a member, then start it with `beamflowd --join` (admin role). Idempotent.

    The member owns nothing until it has started and caught up. --initial-cluster of the new node: the
    current members plus itself.

    Example: beamctl cluster member add n4 --raft 10.0.0.4:7101 --grpc 10.0.0.4:7001
    """
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.add_member(node_id, raft, grpc_addr)
    data = {"added": response.added, "members": _members_data(response.members)}
    verb = "added" if response.added else "already a member:"
    _emit_members(ctx, fmt, data, f"{verb} {node_id}; start it with beamflowd --join")


@member_app.command("remove")
@handle_errors
def member_remove(
    ctx: typer.Context,
    node_id: Annotated[str, typer.Argument(metavar="ID", help="the member to remove")],
    fmt: OutputOption = None,
) -> None:
    """Remove a member: its workflows move to live members as after a death (admin role). Idempotent.

    A removed id cannot rejoin unless added again. The leader cannot remove itself: stop it first.

    Example: beamctl cluster member remove n3
    """
    with Client.from_settings(settings_of(ctx)) as client:
        response = client.remove_member(node_id)
    data = {
        "removed": response.removed,
        "moved_workflows": response.moved_workflows,
        "members": _members_data(response.members),
    }
    headline = (
        f"removed {node_id}; {response.moved_workflows} workflows moved"
        if response.removed
        else f"{node_id} is not a member"
    )
    _emit_members(ctx, fmt, data, headline)
