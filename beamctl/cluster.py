"""``beamctl cluster ...``: how the cluster looks from each node."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from beamctl import output
from beamctl.client import Client, settings_of
from beamctl.errors import handle_errors
from beamctl.output import OutputOption, output_format

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
