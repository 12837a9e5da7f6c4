"""The ``beamctl`` entry point: global options, the command groups, and the short aliases."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from beamctl.errors import CliError, ExitCode, fail
from beamctl.lazy_group import LazyCommand, LazyGroup
from beamctl.settings import (
    CACERT_ENV,
    CERT_ENV,
    ENDPOINTS_ENV,
    KEY_ENV,
    TOKEN_ENV,
    OutputFormat,
    Security,
    Settings,
    default_endpoints,
    parse_endpoints,
)

EPILOG = (
    "Exit codes: 0 ok; 1 workflow failed or cancelled (--wait, watch); 2 usage error or invalid input; "
    "3 not found; 4 cluster unavailable (no endpoint answered); 5 conflict (already exists, failed "
    "precondition); 6 permission denied or unauthenticated; 7 --timeout-wait expired; 10 internal error; "
    "130 interrupted. See docs/cli.md."
)

#: The command tree, in the order of `beamctl --help`. Each module is imported only when its command runs
#: (beamctl/lazy_group.py); tests/cli/test_cli_offline.py checks every summary against the command's help.
COMMANDS = {
    # The famous one gets a top-level alias, as `temporal workflow start` users expect `beamctl submit`.
    "submit": LazyCommand(
        "beamctl.workflow",
        "submit",
        "Submit a workflow file and print its id.",
        epilog="Alias of `beamctl workflow submit`. " + EPILOG,
    ),
    "top": LazyCommand(
        "beamctl.top",
        "top",
        "Live dashboard: nodes, throughput, success rate, latency percentiles, events, chaos.",
        epilog=EPILOG,
    ),
    "workflow": LazyCommand("beamctl.workflow", "app", "Submit, inspect, list, watch and cancel workflows."),
    "cluster": LazyCommand(
        "beamctl.cluster", "app", "Inspect the cluster: nodes, roles, Raft indexes, liveness."
    ),
    "dlq": LazyCommand(
        "beamctl.dlq",
        "app",
        "The dead-letter queue: workflows that failed for good, waiting for an operator.",
    ),
    "chaos": LazyCommand(
        "beamctl.chaos",
        "app",
        "Inject faults on purpose (nodes need --enable-chaos) and verify that nothing was lost.",
    ),
    "dev": LazyCommand(
        "beamctl.dev",
        "app",
        "Local tooling: a supervised cluster (loopback, chaos enabled), throwaway certificates and tokens.",
    ),
    "bench": LazyCommand("beamctl.bench", "app", "Generate load and measure it."),
    "breakers": LazyCommand("beamctl.breakers", "app", "Circuit breakers of every node."),
}


class BeamctlGroup(LazyGroup):
    lazy = COMMANDS


app = typer.Typer(
    name="beamctl",
    cls=BeamctlGroup,
    help="Control a BEAMFlow cluster: submit and watch workflows, inspect the cluster.\n\n"
    "Example: beamctl --endpoints 127.0.0.1:7001 workflow submit hello.yaml --wait",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    endpoints: Annotated[
        str | None,
        typer.Option(
            "--endpoints",
            "-e",
            metavar="HOST:PORT,...",
            help=f"gRPC endpoints to try in order, with fail-over. Env {ENDPOINTS_ENV}; "
            "default 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, metavar="SECONDS", help="Deadline of each call.")
    ] = 10.0,
    fmt: Annotated[OutputFormat, typer.Option("--output", "-o", help="Output format.")] = OutputFormat.table,
    cacert: Annotated[
        str | None,
        typer.Option(
            "--cacert", metavar="FILE", envvar=CACERT_ENV, help="CA bundle to verify the nodes (TLS)."
        ),
    ] = None,
    cert: Annotated[
        str | None,
        typer.Option("--cert", metavar="FILE", envvar=CERT_ENV, help="Client certificate for mutual TLS."),
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", metavar="FILE", envvar=KEY_ENV, help="Private key of --cert.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            metavar="TOKEN",
            envvar=TOKEN_ENV,
            help=f"Bearer token (prefer env {TOKEN_ENV}: a flag shows in the process list).",
            show_envvar=False,
        ),
    ] = None,
) -> None:
    """Global options; every command reads them from the context object."""
    try:
        parsed = parse_endpoints(endpoints if endpoints is not None else default_endpoints())
        security = Security(cacert=cacert or None, cert=cert or None, key=key or None, token=token or None)
    except CliError as err:
        fail(err.message, err.code)
    ctx.obj = Settings(endpoints=parsed, timeout=timeout, output=str(fmt.value), security=security)


def main() -> None:
    """Console-script entry point (``beamctl = "beamctl.main:main"``)."""
    try:
        app(prog_name="beamctl")
    except KeyboardInterrupt:  # raised outside a command, e.g. while the CLI imports
        sys.stderr.write("beamctl: error: interrupted\n")
        sys.exit(int(ExitCode.INTERRUPTED))
