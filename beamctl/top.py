"""``beamctl top``: the live cluster dashboard (rich ``Live``, full screen), and ``top --once`` for scripts.

Keys: ``q`` quits, ``p`` pauses the display (the feed keeps running, so un-pausing is instant), ``m`` toggles
the chaos monkey (``ChaosService.SetMonkey``; profile from ``--monkey-profile``). The terminal is restored on
every exit path: ``q``, Ctrl-C, SIGTERM, an error. Ctrl-C and ``q`` both exit 0: quitting a dashboard is not
a failure.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Annotated, Any

import grpc
import typer
from rich.console import Console
from rich.live import Live

from beamctl import output
from beamctl.client import Client, Settings, settings_of
from beamctl.errors import CliError, ExitCode, handle_errors, one_line
from beamctl.output import OutputOption, output_format
from beamctl.stats_feed import StatsFeed
from beamctl.top_render import ViewState, render, snapshot_to_dict
from beamflowd.api.gen.beamflow.v1 import stats_pb2, stats_pb2_grpc

#: Screen redraws per second at most (new snapshots redraw at once; this keeps the "age" moving).
FRAME_S = 0.25
#: How long a chaos key's outcome stays on screen.
MESSAGE_S = 6.0
CHAOS_TIMEOUT_S = 5.0


class _Terminated(Exception):
    """SIGTERM while the dashboard runs: unwind through the finally blocks that restore the terminal."""


def get_snapshot(settings: Settings, max_events: int) -> stats_pb2.StatsSnapshot:
    """One cluster snapshot with the CLI's usual fail-over (``top --once``)."""
    request = stats_pb2.GetStatsRequest(max_events=max_events)
    with Client.from_settings(settings) as client:
        response: stats_pb2.GetStatsResponse = client.unary(
            "stats",
            lambda ch, t: stats_pb2_grpc.StatsServiceStub(ch).GetStats(  # type: ignore[no-untyped-call, unused-ignore]
                request, timeout=t
            ),
        )
    return response.snapshot


def toggle_monkey(settings: Settings, currently_on: bool, profile: str) -> str:
    """Flip the chaos monkey through ChaosService; a one-line outcome for the chaos panel."""
    try:
        from beamflowd.api.gen.beamflow.v1 import chaos_pb2, chaos_pb2_grpc
    except ImportError:
        return "chaos: not available (this build has no ChaosService)"
    request = chaos_pb2.SetMonkeyRequest(enabled=not currently_on, profile=profile)
    try:
        timeout = min(settings.timeout, CHAOS_TIMEOUT_S)
        with Client(settings.endpoints, timeout, rounds=1, security=settings.security) as client:
            client.unary(
                "chaos monkey",
                lambda ch, t: chaos_pb2_grpc.ChaosServiceStub(  # type: ignore[no-untyped-call, unused-ignore]
                    ch
                ).SetMonkey(request, timeout=t),
            )
    except CliError as err:
        if err.code is ExitCode.PERMISSION:
            return "chaos: not enabled on this cluster (start nodes with --enable-chaos)"
        return f"chaos: {err.message}"
    return f"chaos monkey turned {'off' if currently_on else f'on ({profile})'}"


@contextlib.contextmanager
def raw_keys() -> Iterator[Callable[[float], str]]:
    """Single-key reads without echo (cbreak mode: Ctrl-C still interrupts); restores the tty on exit."""
    fd = sys.stdin.fileno() if sys.stdin.isatty() else -1
    saved = termios.tcgetattr(fd) if fd >= 0 else None

    def read_key(timeout: float) -> str:
        if fd < 0:
            time.sleep(timeout)
            return ""
        ready, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, 32).decode(errors="ignore") if ready else ""

    try:
        if fd >= 0:
            tty.setcbreak(fd)
        yield read_key
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


def run_dashboard(
    settings: Settings, interval_ms: int, max_events: int, monkey_profile: str, console: Console | None = None
) -> None:
    """The live screen until ``q``/Ctrl-C/SIGTERM. Every loop iteration is bounded by FRAME_S."""
    feed = StatsFeed(
        settings.endpoints, interval_ms=interval_ms, max_events=max_events, security=settings.security
    )
    console = console or Console()
    view = ViewState()
    paused = False
    chaos_message, chaos_message_until = "", 0.0
    shown: tuple[int, Any] = (-1, None)
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    feed.start()
    try:
        with (
            raw_keys() as read_key,
            Live(
                console=console, screen=True, auto_refresh=False, redirect_stdout=False, redirect_stderr=False
            ) as live,
        ):
            while True:  # one frame per iteration; exits on q / Ctrl-C / SIGTERM
                feed.check_stall()
                state = feed.state()
                fresh = state.sequence != shown[0] and state.snapshot is not None
                if fresh and (not paused or shown[1] is None):
                    assert state.snapshot is not None
                    shown = (state.sequence, snapshot_to_dict(state.snapshot))
                now = time.monotonic()
                view.endpoint = state.endpoint
                view.status = "paused" if paused else state.status
                view.message = f"reconnecting: {state.error}" if state.status == "reconnecting" else ""
                view.refresh_s, view.bytes_per_update = state.refresh_s, state.size_bytes
                if now > chaos_message_until:
                    chaos_message = ""
                live.update(render(shown[1], view, chaos_message, console.size.width), refresh=True)
                key = read_key(FRAME_S)
                if key in ("q", "Q"):
                    return
                if key in ("p", "P", " "):
                    paused = not paused
                elif key in ("m", "M"):
                    data = shown[1]
                    on = bool(data and data["chaos"]["monkey_on"])
                    chaos_message = toggle_monkey(settings, on, monkey_profile)
                    chaos_message_until = time.monotonic() + MESSAGE_S
    except (KeyboardInterrupt, _Terminated):
        return
    finally:
        feed.stop()
        signal.signal(signal.SIGTERM, previous_term)


@handle_errors
def top(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Print one snapshot and exit (-o json for scripts).")
    ] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", min=0.2, max=60.0, metavar="SECONDS", help="Seconds between updates."),
    ] = 1.0,
    events: Annotated[int, typer.Option("--events", min=0, max=200, help="Events kept in the feed.")] = 20,
    monkey_profile: Annotated[
        str, typer.Option("--monkey-profile", help="Profile the `m` key turns on.")
    ] = "moderate",
    fmt: OutputOption = None,
) -> None:
    """Live dashboard: nodes, throughput, success rate, latency percentiles, events, chaos.

    Keys: q quit, p pause, m toggle the chaos monkey. Example: beamctl top; beamctl top --once -o json
    """
    settings = settings_of(ctx)
    if once:
        data = snapshot_to_dict(get_snapshot(settings, events))
        if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
            output.emit_data(data, out)
        else:
            console = output.console()
            console.print(render(data, ViewState(status="once"), width=console.width))
        return
    if not sys.stdout.isatty():
        raise CliError("top needs a terminal; use `beamctl top --once -o json` in scripts", ExitCode.USAGE)
    try:
        run_dashboard(settings, int(interval * 1000), events, monkey_profile)
    except grpc.RpcError as err:  # pragma: no cover - the feed handles its own errors
        raise CliError(one_line(str(err)), ExitCode.UNAVAILABLE) from None
