"""``beamctl top`` / ``top --once`` / ``workflow show`` against live clusters of real processes.

The terminal test runs ``beamctl top`` inside tmux (a real pty), reads the screen with capture-pane, kills a
node with SIGKILL and quits with ``q``; it then checks the exit code and that the tty is back in canonical
mode with echo (the terminal was restored).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from typer.testing import CliRunner

from beamctl.main import app
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.harness import REPO_ROOT, Cluster, wait_until

SLEEPY = """
name: sleepy
steps:
  - {id: a, run: noop}
  - {id: nap, run: sleep, needs: a, with: {duration: 300ms}}
  - {id: b, run: noop, needs: nap}
"""

FLAKY = """
name: flaky-once
steps:
  - id: call
    run: demo
    retry: {max_attempts: 5, initial_interval: 10ms, jitter: none}
    with: {failure_rate: 1.0}
"""


def submit(cluster: Cluster, node: str, definition: str) -> str:
    response = cluster.workflow_stub(node).SubmitWorkflow(
        pb.SubmitWorkflowRequest(
            definition=definition, definition_source="t.yaml", request_id=uuid.uuid4().hex
        ),
        timeout=10,
    )
    return str(response.workflow_id)


def cli(cluster: Cluster, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--endpoints", cluster.endpoints, *args])
    return result.exit_code, result.output


@contextmanager
def steady_load(cluster: Cluster, node: str, per_batch: int = 10, max_total: int = 5000) -> Iterator[None]:
    """Submit sleepy workflows in the background until the block ends (bounded by max_total)."""
    stop = threading.Event()

    def run() -> None:
        sent = 0
        while not stop.is_set() and sent < max_total:
            for _ in range(per_batch):
                try:
                    submit(cluster, node, SLEEPY)
                    sent += 1
                except grpc.RpcError:
                    break  # during an election: try again next round
            stop.wait(0.2)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=15)


def test_top_once_json_and_workflow_show(cluster: Cluster) -> None:
    ok = submit(cluster, "n1", SLEEPY)
    bad = submit(cluster, "n2", FLAKY)

    def snapshot() -> dict[str, Any] | None:
        code, out = cli(cluster, "top", "--once", "-o", "json")
        assert code == 0, out
        data = json.loads(out)
        # The counters are replicated state; latencies, failing steps and events come from each node's
        # stats feed, a moment later: wait for all of them.
        done = (
            data["workflows"]["succeeded"] >= 1
            and data["workflows"]["failed"] >= 1
            and {"sleepy", "flaky-once"} <= {lat["name"] for lat in data["latencies"]}
            and any(f["step_id"] == "call" and f["failures"] == 5 for f in data["failing_steps"])
            and any(e["type"] == "failed" and e["workflow_id"] == bad for e in data["events"])
        )
        return data if done else None

    data = cluster.wait_until(snapshot, 30, "both workflows, their latencies, failures and events")
    assert data is not None
    assert [n["id"] for n in data["nodes"]] == ["n1", "n2", "n3"]
    assert all(n["liveness"] == "alive" and n["reachable"] for n in data["nodes"])
    assert data["leader_id"] in {"n1", "n2", "n3"}

    code, out = cli(cluster, "workflow", "show", bad, "-o", "json")
    assert code == 0, out
    timeline = json.loads(out)
    (step,) = timeline["steps"]
    assert [a["outcome"] for a in step["attempts"]] == ["failed"] * 5
    assert all(a["retry_in"] for a in step["attempts"][:4]) and step["attempts"][0]["node"]

    code, out = cli(cluster, "workflow", "show", ok)
    assert code == 0 and "nap succeeded" in out and "#1" in out, out
    follow = submit(cluster, "n3", SLEEPY)
    code, out = cli(cluster, "workflow", "show", follow, "--follow")
    assert code == 0 and "succeeded" in out, out
    code, _ = cli(cluster, "workflow", "show", bad, "--follow")
    assert code == 1  # like watch: a failed workflow exits 1


# -- the terminal test --------------------------------------------------------------------------------------


class Tmux:
    """One private tmux server (own socket), killed on close."""

    def __init__(self) -> None:
        self.socket = f"beamflow-test-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {done.stderr}")
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "top")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


def node_line(screen: str, node_id: str) -> str:
    for line in screen.splitlines():
        if re.search(rf"│\s*(★\s*)?{node_id}\s", line):
            return line
    return ""


def succeeded(screen: str) -> int | None:
    match = re.search(r"succeeded\s+([\d,]+)", screen)
    return int(match.group(1).replace(",", "")) if match else None


def test_top_in_tmux_survives_a_node_kill_and_restores_the_terminal(cluster: Cluster) -> None:
    assert shutil.which("tmux"), (
        "tmux is required for the terminal test (.ci/run installs it: apt-get install tmux)"
    )
    tmux = Tmux()
    command = (
        f"cd {REPO_ROOT} && env -u COLUMNS -u LINES BEAMFLOW_ENDPOINTS={cluster.endpoints} "
        f"{sys.executable} -c "
        f"'from beamctl.main import main; main()' top --interval 0.5; "
        f"echo EXIT=$?; stty -a | tr ';' '\\n' | grep -E 'icanon|echo' | tr '\\n' ' '; echo; "
        f"echo STTY-DONE; sleep 60"
    )
    try:
        with steady_load(cluster, "n2"):
            tmux.run("new-session", "-d", "-s", "top", "-x", "170", "-y", "50", command)

            def live_screen() -> str | None:
                screen = tmux.screen()
                ready = (
                    "[live]" in screen
                    and "★" in screen
                    and all(node_line(screen, n) for n in ("n1", "n2", "n3"))
                )
                return screen if ready and (succeeded(screen) or 0) > 0 else None

            what = "top to show nodes, a leader and finished workflows"
            first = wait_until(live_screen, 30, what, logs=tmux.screen)
            assert "Nodes · leader n" in first and "Throughput" in first and "Latency" in first
            before = succeeded(first) or 0
            cluster.wait_until(lambda: (succeeded(tmux.screen()) or 0) > before, 15, "the counts to move")

            cluster.kill_node("n1")  # SIGKILL; top reads from n1 (the first endpoint) and must move on

            def marked_dead() -> str | None:
                screen = tmux.screen()
                return screen if "dead" in node_line(screen, "n1") and "[live]" in screen else None

            dead = wait_until(marked_dead, 20, "n1 marked dead on the screen", logs=lambda: tmux.screen())
            assert "DEAD" in node_line(dead, "n1")
            assert f"via {cluster.grpc_addr('n1')}" not in dead  # it moved to another endpoint

        tmux.run("send-keys", "-t", "top", "q")

        def exited() -> str | None:
            screen = tmux.screen()
            # Wait for the marker after the terminal modes, not just EXIT= (the shell may still be writing).
            return screen if "EXIT=" in screen and "STTY-DONE" in screen else None

        after = wait_until(exited, 10, "top to exit", logs=tmux.screen)
        assert "EXIT=0" in after, after
        modes = after.split("EXIT=0", 1)[1]
        assert re.search(r"(?<!-)icanon", modes) and re.search(r"(?<![-a-z])echo\b", modes), modes
        assert "BEAMFlow top" not in after  # the alternate screen is gone
    finally:
        tmux.close()
