"""The ``beamctl`` entry point: global options, the command groups, and the short aliases."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

import beamctl.breakers
import beamctl.chaos
import beamctl.dev
from beamctl import bench, cluster, dlq, top, workflow
from beamctl.client import ENDPOINTS_ENV, Settings, default_endpoints, parse_endpoints
from beamctl.errors import CliError, ExitCode, fail
from beamctl.output import OutputFormat
from beamctl.security import CACERT_ENV, CERT_ENV, KEY_ENV, TOKEN_ENV, Security

EPILOG = (
    "Exit codes: 0 ok; 1 workflow failed or cancelled (--wait, watch); 2 usage error or invalid input; "
    "3 not found; 4 cluster unavailable (no endpoint answered); 5 conflict (already exists, failed "
    "precondition); 6 permission denied or unauthenticated; 7 --timeout-wait expired; 10 internal error; "
    "130 interrupted. See docs/cli.md."
)

app = typer.Typer(
    name="beamctl",
    help="Control a BEAMFlow cluster: submit and watch workflows, inspect the cluster.\n\n"
    "Example: beamctl --endpoints 127.0.0.1:7001 workflow submit hello.yaml --wait",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(workflow.app, name="workflow")
app.add_typer(cluster.app, name="cluster")
app.add_typer(dlq.app, name="dlq")
app.add_typer(beamctl.chaos.app, name="chaos")
app.add_typer(beamctl.dev.app, name="dev")
# The famous one gets a top-level alias, as `temporal workflow start` users expect `beamctl submit`.
app.command("submit", epilog="Alias of `beamctl workflow submit`. " + EPILOG)(workflow.submit)
app.command("top", epilog=EPILOG)(top.top)
app.add_typer(bench.app, name="bench")
app.add_typer(beamctl.breakers.app, name="breakers")


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
