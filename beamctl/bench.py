"""``beamctl bench load``: a bounded load generator with a progress bar and a latency summary.

Why it looks like this: a load generator that is itself the bottleneck, or that never stops, measures
nothing. So: a fixed ``--total`` at a paced ``--rate`` (submit *i* is due at ``start + i/rate``; late ones go
at once, never in a burst beyond ``--concurrency`` in flight), every submit carrying its own request id (a
retry after fail-over is deduplicated by the server), then — unless ``--no-wait`` — waiting, bounded by
``--timeout-wait``, until every acknowledged workflow has ended, read back in pages of 1,000.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TextIO

import grpc
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from beamctl import output
from beamctl.client import Client, Settings, settings_of
from beamctl.errors import CliError, ExitCode, handle_errors
from beamctl.output import OutputOption, output_format
from beamctl.security import open_channel
from beamflowd.api.gen.beamflow.v1 import stats_pb2, stats_pb2_grpc, workflow_pb2
from beamflowd.core.channels import CHANNEL_OPTIONS
from beamflowd.core.durations import parse_duration

app = typer.Typer(name="bench", help="Generate load and measure it.", no_args_is_help=True)

#: Bounds that keep one run finite and the client honest.
MAX_TOTAL = 10_000_000
MAX_CONCURRENCY = 256
POLL_S = 1.0
LIST_PAGE = 1000
#: Pages read per poll at most (10 million workflows / 1,000).
MAX_PAGES = 10_000
#: Members whose CPU is read at most (a cluster is 3-7 nodes; this only bounds the loop).
CPU_NODES_MAX = 64
#: Bytes of a --compare file read at most (a result is a few kB).
COMPARE_BYTES_MAX = 1_000_000

_TERMINAL = {
    workflow_pb2.WORKFLOW_STATUS_SUCCEEDED: "succeeded",
    workflow_pb2.WORKFLOW_STATUS_FAILED: "failed",
    workflow_pb2.WORKFLOW_STATUS_CANCELLED: "cancelled",
}


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """Nearest-rank p50/p95/p99 and max, in ms (None without samples)."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 2)

    return {"p50": rank(0.5), "p95": rank(0.95), "p99": rank(0.99), "max": round(ordered[-1], 2)}


@dataclass
class Run:
    """Everything measured during one run; the summary is computed from it."""

    total: int
    rate: float
    acknowledged: dict[str, float] = field(default_factory=dict)  # workflow id -> submit latency ms
    errors: dict[str, int] = field(default_factory=dict)
    finished: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> (status, e2e ms)
    submit_started: float = 0.0
    submit_ended: float = 0.0
    ended: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    cpu_before: dict[str, float | None] = field(default_factory=dict)  # node id -> CPU s at the start
    cpu_after: dict[str, float | None] = field(default_factory=dict)

    def summary(self, waited: bool) -> dict[str, Any]:
        statuses = [status for status, _ in self.finished.values()]
        submit_s = max(1e-9, self.submit_ended - self.submit_started)
        wall_s = max(1e-9, (self.ended or self.submit_ended) - self.submit_started)
        done = len(self.finished)
        return {
            "total": self.total,
            "submitted": len(self.acknowledged),
            "submit_errors": sum(self.errors.values()),
            "errors": dict(self.errors),
            "completed": statuses.count("succeeded"),
            "failed": statuses.count("failed"),
            "cancelled": statuses.count("cancelled"),
            "unfinished": len(self.acknowledged) - done if waited else None,
            "target_rate": self.rate,
            "achieved_submit_rate": round(len(self.acknowledged) / submit_s, 1),
            "throughput_per_second": round(done / wall_s, 1) if waited else None,
            "submit_ms": percentiles(list(self.acknowledged.values())),
            "end_to_end_ms": percentiles(
                [ms for status, ms in self.finished.values() if status == "succeeded"]
            ),
            "wall_seconds": round(wall_s, 2),
            "cpu": self.cpu_summary(done if waited else 0),
        }

    def cpu_summary(self, finished: int) -> dict[str, Any]:
        """The nodes' CPU seconds over the run, per node and per finished workflow (None if not measurable).

        A node's figure is the delta of its own ``cpu_seconds`` (user + system of the node process) from
        before the first submit to after the last workflow ended; it includes the background work of the
        window (heartbeats, Raft ticks). A node missing at either end, or restarted in between (its counter
        went back), is listed as unmeasured and left out of the total.
        """
        nodes: dict[str, float | None] = {}
        for node_id in sorted(set(self.cpu_before) | set(self.cpu_after)):
            before, after = self.cpu_before.get(node_id), self.cpu_after.get(node_id)
            gone = before is None or after is None or after < before
            nodes[node_id] = None if before is None or after is None or gone else round(after - before, 3)
        measured = [v for v in nodes.values() if v is not None]
        total = round(sum(measured), 3) if measured else None
        return {
            "seconds": total,
            "ms_per_workflow": round(total * 1000 / finished, 3) if total is not None and finished else None,
            "nodes": nodes,
            "unmeasured_nodes": sorted(n for n, v in nodes.items() if v is None),
        }


def schedule(total: int, rate: float, start: float) -> Iterator[tuple[int, float]]:
    """(index, due time) of every submit: evenly paced from ``start``."""
    for i in range(total):
        yield i, start + i / rate


def submit_all(
    settings: Settings,
    run: Run,
    definition: str,
    source: str,
    input_json: str,
    concurrency: int,
    progress: Progress,
    record: TextIO | None,
) -> None:
    """Paced submits with at most ``concurrency`` in flight; each retried on the next endpoint by Client."""
    task = progress.add_task("submitted", total=run.total)
    slots = threading.BoundedSemaphore(concurrency)
    local = threading.local()

    def client() -> Client:
        if not hasattr(local, "client"):
            local.client = Client.from_settings(settings)
        c: Client = local.client
        return c

    def one() -> None:
        request = workflow_pb2.SubmitWorkflowRequest(
            definition=definition,
            definition_source=source,
            input_json=input_json,
            request_id=str(uuid.uuid4()),
        )
        started = time.perf_counter()
        try:
            response = client().submit_workflow(request)
        except CliError as err:
            with run.lock:
                key = err.message.split(":")[0][:80]
                run.errors[key] = run.errors.get(key, 0) + 1
        else:
            elapsed = (time.perf_counter() - started) * 1000
            with run.lock:
                run.acknowledged[response.workflow_id] = elapsed
                if record is not None:
                    record.write(
                        json.dumps({"workflow_id": response.workflow_id, "request_id": request.request_id})
                        + "\n"
                    )
        finally:
            slots.release()
            progress.advance(task)

    run.submit_started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="submit") as pool:
        for _, due in schedule(run.total, run.rate, run.submit_started):
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            slots.acquire()
            pool.submit(one)
    run.submit_ended = time.monotonic()


def poll_finished(client: Client, run: Run, name: str) -> None:
    """Read every workflow of ``name`` (pages of 1,000) and note the end of ours."""
    token = ""
    for _ in range(MAX_PAGES):
        response = client.list_workflows(
            workflow_pb2.ListWorkflowsRequest(name=name, page_size=LIST_PAGE, page_token=token)
        )
        for summary in response.workflows:
            status = _TERMINAL.get(summary.status)
            if status is None or summary.id not in run.acknowledged or summary.id in run.finished:
                continue
            e2e = summary.update_time.ToMilliseconds() - summary.create_time.ToMilliseconds()
            run.finished[summary.id] = (status, float(e2e))
        token = response.next_page_token
        if not token:
            return


def wait_all(settings: Settings, run: Run, name: str, deadline: float, progress: Progress) -> None:
    task = progress.add_task("finished", total=len(run.acknowledged))
    with Client.from_settings(settings) as client:
        while time.monotonic() < deadline:  # bounded by --timeout-wait
            poll_finished(client, run, name)
            progress.update(task, completed=len(run.finished))
            if len(run.finished) >= len(run.acknowledged):
                break
            time.sleep(POLL_S)
    run.ended = time.monotonic()


def workflow_name(definition: str, source: str) -> str:
    """The definition's ``name`` (used to read results back), validated like the server does."""
    from beamflowd.core.spec import SpecError, parse_workflow

    try:
        return parse_workflow(definition, source=source).name
    except SpecError as err:
        raise CliError(str(err), ExitCode.USAGE) from None


def render_summary(data: dict[str, Any]) -> None:
    out = output.console()
    out.print(
        f"submitted {data['submitted']:,}/{data['total']:,} at {data['achieved_submit_rate']}/s "
        f"(target {data['target_rate']}/s), submit errors {data['submit_errors']}"
    )
    if data["unfinished"] is not None:
        out.print(
            f"completed {data['completed']:,}  failed {data['failed']:,}  cancelled {data['cancelled']:,}  "
            f"unfinished {data['unfinished']:,}  throughput {data['throughput_per_second']}/s"
        )
    for label, key in (("submit acknowledged", "submit_ms"), ("end to end (succeeded)", "end_to_end_ms")):
        p = data[key]
        if p["p50"] is not None:
            out.print(
                f"{label:<24} p50 {p['p50']} ms  p95 {p['p95']} ms  p99 {p['p99']} ms  max {p['max']} ms"
            )
    cpu = data["cpu"]
    if cpu["seconds"] is not None:
        per = f"{cpu['ms_per_workflow']} ms CPU per workflow, " if cpu["ms_per_workflow"] is not None else ""
        nodes = "  ".join(f"{n} {v if v is not None else '?'} s" for n, v in cpu["nodes"].items())
        out.print(f"{'cluster CPU':<24} {per}{cpu['seconds']} s in all ({nodes})")
    if cpu["unmeasured_nodes"]:
        out.print(f"CPU not measured on: {', '.join(cpu['unmeasured_nodes'])}")
    for error, n in data["errors"].items():
        out.print(f"error x{n}: {error}")
    if "compare" in data:
        ratios = data["compare"]["ratios"]
        shown = "  ".join(f"{k} {v}x" for k, v in ratios.items() if v is not None)
        out.print(f"vs {data['compare']['file']} (this / that): {shown or 'nothing comparable'}")


@app.command("load")
@handle_errors
def load(
    ctx: typer.Context,
    workflow: Annotated[Path, typer.Option("--workflow", "-w", metavar="FILE", help="Workflow definition.")],
    rate: Annotated[float, typer.Option("--rate", "-r", min=0.1, max=100_000, help="Submits per second.")],
    total: Annotated[int, typer.Option("--total", "-n", min=1, max=MAX_TOTAL, help="Workflows to submit.")],
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", "-c", min=1, max=MAX_CONCURRENCY, help="Submits in flight at most."),
    ] = 16,
    input_json: Annotated[str, typer.Option("--input", "-i", help="Input JSON of every workflow.")] = "{}",
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for every workflow to end.")] = True,
    timeout_wait: Annotated[
        str, typer.Option("--timeout-wait", metavar="DURATION", help="Give up waiting after this long.")
    ] = "5m",
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            metavar="FILE",
            help="Write acknowledged ids as JSON lines (input of `beamctl chaos verify -f`).",
        ),
    ] = None,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            metavar="FILE",
            help="An earlier `-o json` result: print each figure's ratio to it (this run / that run).",
        ),
    ] = None,
    fmt: OutputOption = None,
) -> None:
    """Submit --total workflows at --rate per second, then wait for them and print the figures.

    Figures: throughput, submit and end-to-end percentiles, the cluster's CPU per workflow (the node
    processes' own CPU seconds over the run, from GetStats), and with --compare the ratios to an earlier run.

    Example: beamctl bench load --workflow deploy/workflows/insurance-claim.yaml --rate 50 --total 500
    """
    settings = settings_of(ctx)
    try:
        definition = workflow.read_text(encoding="utf-8")
        json.loads(input_json)
        wait_ms = parse_duration(timeout_wait)
    except OSError as err:
        raise CliError(f"cannot read {workflow}: {err.strerror or err}", ExitCode.USAGE) from None
    except ValueError as err:
        raise CliError(f"invalid option: {err}", ExitCode.USAGE) from None
    name = workflow_name(definition, str(workflow))
    earlier = read_result(compare) if compare is not None else None
    run = Run(total=total, rate=rate)
    run.cpu_before = nodes_cpu(settings)
    stderr = Console(stderr=True)
    columns = (TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    record_file = open(record, "w", encoding="utf-8") if record else None  # noqa: SIM115 - closed below
    try:
        with Progress(*columns, console=stderr, transient=True, disable=not sys.stderr.isatty()) as progress:
            submit_all(
                settings, run, definition, workflow.name, input_json, concurrency, progress, record_file
            )
            if wait and run.acknowledged:
                wait_all(settings, run, name, time.monotonic() + wait_ms / 1000, progress)
    finally:
        if record_file is not None:
            record_file.close()
    run.cpu_after = nodes_cpu(settings, list(run.cpu_before))
    data = run.summary(waited=wait)
    if earlier is not None:
        data["compare"] = {"file": str(compare), "ratios": ratios(data, earlier)}
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data(data, out)
    else:
        render_summary(data)
    if not run.acknowledged:
        raise CliError(
            f"no submit was acknowledged ({sum(run.errors.values())} errors)", ExitCode.UNAVAILABLE
        )


# -- CPU of the nodes and comparison with an earlier result --------------------------------------------------


def _stats(address: str, settings: Settings, scope: stats_pb2.StatsScope) -> stats_pb2.StatsSnapshot:
    channel = open_channel(address, settings.security, CHANNEL_OPTIONS)
    try:
        stub = stats_pb2_grpc.StatsServiceStub(channel)
        request = stats_pb2.GetStatsRequest(scope=scope, max_events=1)
        response: stats_pb2.GetStatsResponse = stub.GetStats(request, timeout=settings.timeout)
        return response.snapshot
    finally:
        channel.close()


def nodes_cpu(settings: Settings, expected: Sequence[str] = ()) -> dict[str, float | None]:
    """Each member's ``cpu_seconds``, asked of the node itself (scope NODE: no shared, cached snapshot).

    The members come from the first endpoint that answers a cluster snapshot; ``expected`` (the ids seen
    at the start) are reported as None if they are gone. Never raises: CPU is a figure, not a precondition.
    """
    members: dict[str, str] = {}
    for endpoint in settings.endpoints:
        try:
            snapshot = _stats(endpoint, settings, stats_pb2.STATS_SCOPE_CLUSTER)
        except grpc.RpcError:
            continue
        members = {n.id: n.grpc_address for n in snapshot.nodes[:CPU_NODES_MAX] if n.grpc_address}
        break
    cpu: dict[str, float | None] = dict.fromkeys(expected)
    for node_id, address in members.items():
        try:
            own = _stats(address, settings, stats_pb2.STATS_SCOPE_NODE).nodes
        except grpc.RpcError:
            cpu[node_id] = None
            continue
        # 0 means a node too old to report the field (a live process has always used some CPU).
        cpu[node_id] = own[0].cpu_seconds if own and own[0].cpu_seconds > 0 else None
    return cpu


#: Figures compared by --compare: (section, key) in the JSON result; None = top level.
COMPARED: tuple[tuple[str | None, str], ...] = (
    (None, "throughput_per_second"),
    (None, "achieved_submit_rate"),
    ("submit_ms", "p50"),
    ("submit_ms", "p95"),
    ("submit_ms", "p99"),
    ("end_to_end_ms", "p50"),
    ("end_to_end_ms", "p95"),
    ("end_to_end_ms", "p99"),
    ("cpu", "ms_per_workflow"),
)


def read_result(path: Path) -> dict[str, Any]:
    """An earlier ``bench load -o json`` result, checked enough that a wrong file fails clearly (exit 2)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(COMPARE_BYTES_MAX + 1)
    except OSError as err:
        raise CliError(f"--compare: cannot read {path}: {err.strerror or err}", ExitCode.USAGE) from None
    if len(text) > COMPARE_BYTES_MAX:
        raise CliError(f"--compare: {path} is larger than {COMPARE_BYTES_MAX} bytes", ExitCode.USAGE)
    try:
        data = json.loads(text)
    except ValueError as err:
        raise CliError(f"--compare: {path} is not JSON: {err}", ExitCode.USAGE) from None
    if not isinstance(data, dict):
        raise CliError(f"--compare: {path}: expected a JSON object (a `-o json` result)", ExitCode.USAGE)
    for section, key in COMPARED:
        holder = data if section is None else data.get(section)
        name = key if section is None else f"{section}.{key}"
        if section is not None and not isinstance(holder, dict):
            raise CliError(f"--compare: {path}: field {section!r} missing or not an object", ExitCode.USAGE)
        value = holder.get(key) if isinstance(holder, dict) else None
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise CliError(f"--compare: {path}: field {name!r} is not a number", ExitCode.USAGE)
    return data


def _figure(data: dict[str, Any], section: str | None, key: str) -> float | None:
    holder = data if section is None else data.get(section)
    value = holder.get(key) if isinstance(holder, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def ratios(now: dict[str, Any], earlier: dict[str, Any]) -> dict[str, float | None]:
    """This run's figure / the earlier one's, per compared figure (None where either side has none)."""
    out: dict[str, float | None] = {}
    for section, key in COMPARED:
        new, old = _figure(now, section, key), _figure(earlier, section, key)
        name = key if section is None else f"{section}.{key}"
        out[name] = round(new / old, 3) if new is not None and old else None
    return out
