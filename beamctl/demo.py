"""``make demo`` (``python -m beamctl.demo``): a local 3-node cluster, a steady insurance-claim load, ``top``.

Why one command: the showcase's face is the dashboard under load; a new user should see it without reading
anything. The cluster is started with ``beamctl dev up -d`` (the local supervisor, which also restarts nodes
killed by chaos) when this build has it, else as three ``beamflowd`` processes started directly; data and logs
live under ``.beamflow/demo``. Quitting ``top`` (q or Ctrl-C) stops the load and whatever this command
started; a demo cluster that was already running is left running.

Claims routed to a manual review are answered by :mod:`beamctl.reviewer` (most approved, some denied, whose
fee the saga refunds). Environment: ``DEMO_RATE`` (workflows/s, default 25), ``DEMO_BASE_PORT`` (default
7401; Raft ports +100).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from beamctl.client import Settings, parse_endpoints, serving
from beamctl.reviewer import Reviewer
from beamctl.top import run_dashboard

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / ".beamflow" / "demo"
WORKFLOW = ROOT / "deploy" / "workflows" / "insurance-claim.yaml"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
#: The load generator's total: bounded, but more than any demo session needs (hours at the default rate).
LOAD_TOTAL = 1_000_000


def beamctl_argv(*args: str) -> list[str]:
    return [sys.executable, "-c", "from beamctl.main import main; main()", *args]


def wait_serving(endpoints: list[str], procs: list[subprocess.Popen[bytes]]) -> None:
    """Poll health until every node serves (bounded); fail at once if a process we started died."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise SystemExit(f"demo: a node exited with code {dead[0].returncode}; see {DEMO_DIR / 'logs'}")
        if all(serving(e, timeout=0.5) for e in endpoints):
            return
        time.sleep(0.2)
    raise SystemExit(f"demo: the cluster did not become ready in {READY_TIMEOUT_S:.0f}s; see {DEMO_DIR}")


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
    print(f"demo: starting a 3-node cluster in {DEMO_DIR} …", flush=True)
    endpoints, started = start_with_dev(base_port)
    load: subprocess.Popen[bytes] | None = None
    reviewer: Reviewer | None = None
    try:
        print(
            f"demo: cluster ready at {','.join(endpoints)}; starting {rate:g} insurance claims/s", flush=True
        )
        load = start_load(endpoints, rate)
        settings = Settings(endpoints=parse_endpoints(",".join(endpoints)), timeout=5.0)
        # Claims routed to a person wait for a `review` signal: a simulated reviewer answers them.
        reviewer = Reviewer(settings)
        reviewer.start()
        if sys.stdout.isatty():
            run_dashboard(settings, 1000, 20, "moderate")
        else:
            print("demo: stdout is not a terminal; not opening top", flush=True)
    finally:
        if reviewer is not None:
            reviewer.stop()
        if load is not None:
            stop_process_group(load)
        if started:
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
