"""``beamctl cluster ...``: how the cluster looks from each node."""

from __future__ import annotations

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
