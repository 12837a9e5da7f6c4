"""``beamctl chaos ...``: kill nodes, cut the network, pause nodes, crash actors, run the monkey, verify.

Every command but ``status`` and ``verify`` needs nodes started with ``--enable-chaos`` (else exit 6).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import grpc
import typer
from google.protobuf.json_format import MessageToDict

from beamctl import checker, output
from beamctl.client import Client, settings_of
from beamctl.errors import CliError, ExitCode, handle_errors
from beamctl.output import OutputOption, output_format
from beamflowd.api.gen.beamflow.v1 import chaos_pb2 as pb
from beamflowd.api.gen.beamflow.v1 import chaos_pb2_grpc as pb_grpc
from beamflowd.api.gen.beamflow.v1 import workflow_pb2
from beamflowd.core.durations import parse_duration

app = typer.Typer(
    name="chaos",
    help="Inject faults on purpose (nodes need --enable-chaos) and verify that nothing was lost.",
    no_args_is_help=True,
)
monkey_app = typer.Typer(name="monkey", help="The cluster-wide chaos monkey.", no_args_is_help=True)
app.add_typer(monkey_app, name="monkey")

PROFILES = ("gentle", "moderate", "aggressive")


def _stub(channel: grpc.Channel) -> Any:
    return pb_grpc.ChaosServiceStub(channel)  # type: ignore[no-untyped-call, unused-ignore]


def _call(ctx: typer.Context, what: str, method: str, request: Any) -> Any:
    with Client.from_settings(settings_of(ctx)) as client:
        return client.unary(what, lambda ch, t: getattr(_stub(ch), method)(request, timeout=t))


def _duration(value: str | None, flag: str) -> int:
    if value is None:
        return 0
    try:
        return parse_duration(value)
    except ValueError as err:
        raise CliError(f"{flag}: {err}", ExitCode.USAGE) from None


def _emit(ctx: typer.Context, fmt: output.OutputFormat | None, message: Any, text: str) -> None:
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data(
            MessageToDict(
                message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            ),
            out,
        )
    else:
        output.line(text)


@app.command("kill-node")
@handle_errors
def kill_node(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="Node id, e.g. n2.")],
    fmt: OutputOption = None,
) -> None:
    """Make NODE exit at once, as SIGKILL would (no graceful shutdown). Restarting it is the supervisor's job.

    Example: beamctl chaos kill-node n2
    """
    response = _call(ctx, "kill-node", "KillNode", pb.KillNodeRequest(node_id=node))
    _emit(ctx, fmt, response, f"killed {node}")


@app.command("partition")
@handle_errors
def partition(
    ctx: typer.Context,
    isolate: Annotated[
        str | None, typer.Option("--isolate", metavar="NODE", help="Cut NODE off from all others.")
    ] = None,
    groups: Annotated[
        str | None, typer.Option("--groups", metavar="A,B/C", help="Sides separated by '/', nodes by ','.")
    ] = None,
    duration: Annotated[
        str | None, typer.Option("--for", metavar="DURATION", help="Heal automatically after this long.")
    ] = None,
    fmt: OutputOption = None,
) -> None:
    """Split the Raft network (the gRPC port stays reachable, so `heal` always works).

    Examples: beamctl chaos partition --isolate n1 --for 10s;  beamctl chaos partition --groups "n1,n2/n3"
    """
    if bool(isolate) == bool(groups):
        raise CliError("give exactly one of --isolate or --groups", ExitCode.USAGE)
    sides = [
        pb.NodeGroup(node_ids=[n.strip() for n in side.split(",") if n.strip()])
        for side in (groups or "").split("/")
        if side.strip()
    ]
    heal_ms = _duration(duration, "--for")
    request = pb.PartitionRequest(isolate=isolate or "", groups=sides, heal_after_ms=heal_ms)
    response = _call(ctx, "partition", "Partition", request)
    heal = f", heals in {duration}" if duration else "; run `beamctl chaos heal` to end it"
    text = f"partitioned {response.description} (on {', '.join(response.applied_on)}){heal}"
    if response.errors:
        text += "\nnot applied: " + "; ".join(response.errors)
    _emit(ctx, fmt, response, text)


@app.command("heal")
@handle_errors
def heal(ctx: typer.Context, fmt: OutputOption = None) -> None:
    """Clear every partition on every reachable node."""
    response = _call(ctx, "heal", "Heal", pb.HealRequest())
    text = f"healed ({', '.join(response.applied_on)})"
    if response.errors:
        text += "\nnot reached: " + "; ".join(response.errors)
    _emit(ctx, fmt, response, text)


@app.command("pause-node")
@handle_errors
def pause_node(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="Node id.")],
    duration: Annotated[str, typer.Option("--for", metavar="DURATION", help="How long, e.g. 5s.")],
    fmt: OutputOption = None,
) -> None:
    """Freeze NODE (SIGSTOP: Raft and executor stop, like a long GC pause); it resumes by itself.

    Example: beamctl chaos pause-node n2 --for 5s
    """
    ms = _duration(duration, "--for")
    response = _call(ctx, "pause-node", "PauseNode", pb.PauseNodeRequest(node_id=node, duration_ms=ms))
    _emit(ctx, fmt, response, f"paused {node} for {duration}")


@app.command("kill-actor")
@handle_errors
def kill_actor(
    ctx: typer.Context,
    workflow_id: Annotated[str | None, typer.Argument(help="Workflow whose actor to crash.")] = None,
    random: Annotated[int, typer.Option("--random", min=0, metavar="N", help="Crash N random actors.")] = 0,
    fmt: OutputOption = None,
) -> None:
    """Crash workflow actors; supervision restarts them from committed state.

    Examples: beamctl chaos kill-actor wf-0123;  beamctl chaos kill-actor --random 5
    """
    if bool(workflow_id) == bool(random):
        raise CliError("give a WORKFLOW_ID or --random N", ExitCode.USAGE)
    request = pb.KillActorRequest(workflow_id=workflow_id or "", random=random)
    response = _call(ctx, "kill-actor", "KillActor", request)
    ids = list(response.workflow_ids)
    _emit(ctx, fmt, response, f"crashed {len(ids)} actor(s)" + (f": {', '.join(ids)}" if ids else ""))


@monkey_app.command("on")
@handle_errors
def monkey_on(
    ctx: typer.Context,
    profile: Annotated[str, typer.Option("--profile", help="gentle, moderate or aggressive.")] = "moderate",
    nodes: Annotated[bool, typer.Option("--nodes", help="Also kill nodes (one at a time).")] = False,
    partitions: Annotated[bool, typer.Option("--partitions", help="Also isolate nodes briefly.")] = False,
    duration: Annotated[
        str | None, typer.Option("--duration", metavar="DURATION", help="Turn off by itself after this long.")
    ] = None,
    fmt: OutputOption = None,
) -> None:
    """Start the monkey: step errors, timeouts, latency and actor crashes at the profile's rates.

    Example: beamctl chaos monkey on --profile aggressive --nodes --partitions --duration 5m
    """
    if profile not in PROFILES:
        raise CliError(f"--profile: expected one of {', '.join(PROFILES)}, got {profile!r}", ExitCode.USAGE)
    request = pb.SetMonkeyRequest(
        enabled=True,
        profile=profile,
        kill_nodes=nodes,
        partitions=partitions,
        duration_ms=_duration(duration, "--duration"),
    )
    response = _call(ctx, "monkey on", "SetMonkey", request)
    _emit(ctx, fmt, response, f"monkey on: {_monkey_text(response.monkey)}")


@monkey_app.command("off")
@handle_errors
def monkey_off(ctx: typer.Context, fmt: OutputOption = None) -> None:
    """Stop the monkey (partitions it made still heal on their own timers)."""
    response = _call(ctx, "monkey off", "SetMonkey", pb.SetMonkeyRequest(enabled=False))
    _emit(ctx, fmt, response, "monkey off")


def _monkey_text(m: pb.MonkeyStatus) -> str:
    if not m.enabled:
        return "off"
    extras = [x for x, on in (("node kills", m.kill_nodes), ("partitions", m.partitions)) if on]
    left = ""
    if m.until_unix_ms:
        left = f", {max(0, m.until_unix_ms - int(time.time() * 1000)) / 1000:.0f}s left"
    return (
        f"{m.profile} (crash {m.crash_rate:g}, timeout {m.timeout_rate:g}, error {m.error_rate:g}, "
        f"latency {m.latency_rate:g} of {m.latency_min_ms}-{m.latency_max_ms}ms, every "
        f"{m.interval_ms / 1000:g}s{'; ' + ', '.join(extras) if extras else ''}{left})"
    )


@app.command("status")
@handle_errors
def status(ctx: typer.Context, fmt: OutputOption = None) -> None:
    """What is active (partitions, paused nodes, monkey, time left); injection and recovery counters."""
    response: pb.GetChaosStatusResponse = _call(
        ctx, "chaos status", "GetChaosStatus", pb.GetChaosStatusRequest()
    )
    if output_format(ctx, fmt) in output.DATA_FORMATS:
        _emit(ctx, fmt, response, "")
        return
    now = int(time.time() * 1000)
    lines = [f"monkey: {_monkey_text(response.monkey)}"]
    parts = sorted({n.partition for n in response.nodes if n.partition})
    for part in parts:
        heal_at = max((n.heal_at_unix_ms for n in response.nodes if n.partition == part), default=0)
        left = f" (heals in {max(0, heal_at - now) / 1000:.0f}s)" if heal_at else " (until healed)"
        lines.append(f"partition: {part}{left}")
    if not parts:
        lines.append("partition: none")
    for p in response.paused:
        lines.append(f"paused: {p.node_id} ({max(0, p.until_unix_ms - now) / 1000:.0f}s left)")
    lines.append("nodes:")
    for n in response.nodes:
        if not n.reachable:
            lines.append(f"  {n.node_id}: unreachable ({n.error})")
            continue
        blocked = f", drops Raft traffic with {','.join(n.blocked_node_ids)}" if n.blocked_node_ids else ""
        enabled = "" if n.chaos_enabled else ", chaos disabled"
        lines.append(f"  {n.node_id}: {n.actors} actors, {n.actor_restarts} actor restarts{blocked}{enabled}")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(response.injections.items()))
    lines.append(f"injections: {counts}")
    lines.append(
        f"recoveries: actors restarted {response.actor_restarts}, "
        f"workflows reassigned {response.workflows_reassigned}"
    )
    output.line("\n".join(lines))


@app.command("verify")
@handle_errors
def verify(
    ctx: typer.Context,
    acknowledged: Annotated[
        str | None,
        typer.Option(
            "--acknowledged",
            "-f",
            metavar="FILE",
            help="Record of acknowledged submissions (JSON list, JSON lines with workflow_id, or one id per "
            "line), e.g. written by `beamctl bench load`. Default: every workflow listed.",
        ),
    ] = None,
    wait: Annotated[
        str, typer.Option("--wait", metavar="DURATION", help="How long to wait for running workflows to end.")
    ] = "60s",
    nodes: Annotated[
        int | None, typer.Option("--nodes", min=1, help="Replicas expected (default: all members).")
    ] = None,
    fmt: OutputOption = None,
) -> None:
    """Check the history: every acknowledged workflow exists and ended, none ended twice or changed after,
    each step succeeded at most once, and all replicas report the same digest. Exit 1 when it fails.

    Example: beamctl chaos verify --acknowledged acked.json --wait 2m
    """
    wait_ms = _duration(wait, "--wait")
    with Client.from_settings(settings_of(ctx)) as client:
        if acknowledged:
            try:
                ids = checker.load_acknowledged(acknowledged)
            except (OSError, ValueError) as err:
                raise CliError(f"--acknowledged: {err}", ExitCode.USAGE) from None
        else:
            ids = _all_ids(client)

        def get(wf_id: str) -> workflow_pb2.GetWorkflowResponse | None:
            try:
                return client.get_workflow(wf_id)
            except CliError as err:
                if err.code == ExitCode.NOT_FOUND:
                    return None
                raise

        verdict = checker.verify(ids, get, client.cluster_status, wait_s=wait_ms / 1000, expected_nodes=nodes)
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data(verdict.to_dict(), out)
    else:
        output.line(verdict.summary())
    if not verdict.ok:
        raise typer.Exit(int(ExitCode.WORKFLOW_FAILED))


def _all_ids(client: Client) -> list[str]:
    ids: list[str] = []
    token = ""
    for _ in range(10_000):
        page = client.list_workflows(workflow_pb2.ListWorkflowsRequest(page_size=1000, page_token=token))
        ids.extend(w.id for w in page.workflows)
        token = page.next_page_token
        if not token:
            break
    return ids
