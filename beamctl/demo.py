"""``make demo`` (``python -m beamctl.demo``): a local 3-node cluster, a steady insurance-claim load, ``top``.

Why one command: the showcase's face is the dashboard under load; a new user should see it without reading
anything. The cluster is started with ``beamctl dev up -d`` (the local supervisor, which also restarts nodes
killed by chaos) when this build has it, else as three ``beamflowd`` processes started directly; data and logs
live under ``.beamflow/demo``. Quitting ``top`` (q or Ctrl-C) stops the load and whatever this command
started; a demo cluster that was already running is left running.

Environment: ``DEMO_RATE`` (workflows/s, default 25), ``DEMO_BASE_PORT`` (default 7401; Raft ports +100).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from beamctl.client import Settings, parse_endpoints
from beamctl.top import run_dashboard

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / ".beamflow" / "demo"
WORKFLOW = ROOT / "deploy" / "workflows" / "insurance-claim.yaml"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
#: The load generator's total: bounded, but more than any demo session needs (hours at the default rate).
LOAD_TOTAL = 1_000_000
#: The example step functions shipped in ``examples/`` (the same list ``beamctl dev up`` writes).
EXAMPLE_PYTHON_MODULES = ("examples", "examples.*")


def beamctl_argv(*args: str) -> list[str]:
    return [sys.executable, "-c", "from beamctl.main import main; main()", *args]


def serving(endpoint: str) -> bool:
    with grpc.insecure_channel(endpoint, options=[("grpc.enable_http_proxy", 0)]) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def wait_serving(endpoints: list[str], procs: list[subprocess.Popen[bytes]]) -> None:
    """Poll health until every node serves (bounded); fail at once if a process we started died."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise SystemExit(f"demo: a node exited with code {dead[0].returncode}; see {DEMO_DIR / 'logs'}")
        if all(serving(e) for e in endpoints):
            return
        time.sleep(0.2)
    raise SystemExit(f"demo: the cluster did not become ready in {READY_TIMEOUT_S:.0f}s; see {DEMO_DIR}")


class DirectCluster:
    """Fallback without ``beamctl dev``: three beamflowd processes, each in its own process group."""

    def __init__(self, base_port: int) -> None:
        self.ids = ["n1", "n2", "n3"]
        self.grpc = {nid: f"127.0.0.1:{base_port + i}" for i, nid in enumerate(self.ids)}
        self.raft = {nid: f"127.0.0.1:{base_port + 100 + i}" for i, nid in enumerate(self.ids)}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> list[str]:
        initial = ",".join(f"{nid}={addr}" for nid, addr in self.raft.items())
        (DEMO_DIR / "logs").mkdir(parents=True, exist_ok=True)
        for nid in self.ids:
            with open(DEMO_DIR / "logs" / f"{nid}.log", "ab") as log:
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "beamflowd",
                            "--node-id",
                            nid,
                            "--initial-cluster",
                            initial,
                            "--grpc-addr",
                            self.grpc[nid],
                            "--data-dir",
                            str(DEMO_DIR / nid / "data"),
                            "--enable-chaos",
                            *(a for p in EXAMPLE_PYTHON_MODULES for a in ("--python-module", p)),
                        ],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=ROOT,
                        start_new_session=True,
                    )
                )
        endpoints = list(self.grpc.values())
        wait_serving(endpoints, self.procs)
        return endpoints

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)


def start_with_dev(base_port: int) -> tuple[list[str], bool]:
    """(endpoints, started_by_us) using ``beamctl dev up -d``; an already running demo cluster is reused."""
    up = subprocess.run(
        beamctl_argv("dev", "up", "-d", "--dir", str(DEMO_DIR), "--base-port", str(base_port)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=READY_TIMEOUT_S + 30,
        check=False,
    )
    endpoints = [f"127.0.0.1:{base_port + i}" for i in range(3)]
    if up.returncode == 0:
        return endpoints, True
    if "already runs" in up.stderr:
        wait_serving(endpoints, [])
        return endpoints, False
    raise SystemExit(f"demo: `beamctl dev up` failed ({up.returncode}): {up.stderr.strip()}")


def start_load(endpoints: list[str], rate: float) -> subprocess.Popen[bytes]:
    log = open(DEMO_DIR / "load.log", "ab")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(
            beamctl_argv(
                "--endpoints",
                ",".join(endpoints),
                "bench",
                "load",
                "--workflow",
                str(WORKFLOW),
                "--rate",
                str(rate),
                "--total",
                str(LOAD_TOTAL),
                "--no-wait",
                "--concurrency",
                "8",
                "--input",
                '{"claim_id": "C-demo", "amount": 1800}',
            ),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    finally:
        log.close()


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)


def main() -> None:
    rate = float(os.environ.get("DEMO_RATE", "25"))
    base_port = int(os.environ.get("DEMO_BASE_PORT", "7401"))
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    direct: DirectCluster | None = None
    started = True
    print(f"demo: starting a 3-node cluster in {DEMO_DIR} …", flush=True)
    if importlib.util.find_spec("beamctl.dev") is not None:
        endpoints, started = start_with_dev(base_port)
    else:
        direct = DirectCluster(base_port)
        endpoints = direct.start()
    load: subprocess.Popen[bytes] | None = None
    try:
        print(
            f"demo: cluster ready at {','.join(endpoints)}; starting {rate:g} insurance claims/s", flush=True
        )
        load = start_load(endpoints, rate)
        settings = Settings(endpoints=parse_endpoints(",".join(endpoints)), timeout=5.0)
        if sys.stdout.isatty():
            run_dashboard(settings, 1000, 20, "moderate")
        else:
            print("demo: stdout is not a terminal; not opening top", flush=True)
    finally:
        if load is not None:
            stop_process_group(load)
        if direct is not None:
            direct.stop()
        elif started:
            subprocess.run(
                beamctl_argv("dev", "down", "--dir", str(DEMO_DIR)),
                cwd=ROOT,
                check=False,
                timeout=STOP_TIMEOUT_S + 30,
                capture_output=True,
            )
        print(
            "demo: load stopped"
            + (", cluster stopped" if started else "; the cluster was already running and is left running")
            + f". Logs: {DEMO_DIR}",
            flush=True,
        )


if __name__ == "__main__":
    main()
