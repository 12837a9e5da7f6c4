"""Bulk cancel of 2,000 workflows by query, run by the real CLI in a real terminal (tmux), on 3 nodes.

The progress bar is drawn only on a terminal (rich), so the test runs ``beamctl workflow cancel --query ...
--yes`` inside tmux, reads the screen with capture-pane, and checks the bar, the printed counts, the exit code
and that every workflow ended cancelled. It prints the throughput (``BULK-FIGURES``) for docs/performance.md.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.cluster.test_dead_letters import beamctl
from tests.cluster.test_engine import wait_converged
from tests.dashboard.test_top_live import Tmux
from tests.harness import REPO_ROOT, Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]

#: Workflows cancelled by the one bulk command.
BULK_TERMINAL_COUNT = 2_000
#: Parallel submitters while filling the cluster.
SUBMITTERS = 8
NAP = "name: nap2k\nsteps:\n  - {id: z, run: sleep, with: {duration: 30m}}\n"
QUERY = "status=running name=nap2k label.batch=big created>1h"


def fill(cluster: Cluster, count: int) -> None:
    """Submit ``count`` long sleeps labelled ``batch=big``, spread over the three nodes."""
    nodes = sorted(cluster.nodes)

    def one(i: int) -> None:
        request = pb.SubmitWorkflowRequest(
            definition=NAP, definition_source="nap2k.yaml", labels={"batch": "big"}
        )
        cluster.workflow_stub(nodes[i % len(nodes)]).SubmitWorkflow(request, timeout=60)

    with ThreadPoolExecutor(SUBMITTERS) as pool:
        list(pool.map(one, range(count)))


def count(cluster: Cluster, *filters: str) -> int:
    result = beamctl(cluster, "workflow", "count", *filters)
    assert result.returncode == 0, result.stdout
    return int(result.stdout.strip())


def test_bulk_cancel_of_2000_by_query_shows_progress_in_a_terminal(cluster: Cluster) -> None:
    assert shutil.which("tmux"), "tmux is required for the terminal test (apt-get install tmux)"
    fill(cluster, BULK_TERMINAL_COUNT)
    assert count(cluster, "--status", "running", "--label", "batch=big") == BULK_TERMINAL_COUNT
    t0 = time.monotonic()
    dry = beamctl(cluster, "-o", "json", "workflow", "cancel", "--query", QUERY, "--reason", "x")
    print(
        f"BULK-FIGURES dry run (listing {BULK_TERMINAL_COUNT} ids, in-process): {time.monotonic() - t0:.2f}s"
    )
    assert dry.returncode == 0 and json.loads(dry.stdout)["matching"] == BULK_TERMINAL_COUNT, dry.stdout

    tmux = Tmux()
    command = (
        f"cd {REPO_ROOT} && T0=$(date +%s%N); env -u COLUMNS -u LINES BEAMFLOW_ENDPOINTS={cluster.endpoints} "
        f"{sys.executable} -c 'from beamctl.main import main; main()' "
        f"workflow cancel --query '{QUERY}' --reason 'bulk terminal test' --yes; "
        f"echo EXIT=$? MS=$(( ($(date +%s%N) - T0) / 1000000 )); echo DONE; sleep 120"
    )
    try:
        tmux.run("new-session", "-d", "-s", "top", "-x", "160", "-y", "30", command)

        def finished() -> str | None:
            screen = tmux.screen()
            return screen if "DONE" in screen else None

        screen = wait_until(finished, 240, "the bulk cancel to finish", logs=tmux.screen)
    finally:
        tmux.close()
    assert "EXIT=0" in screen, screen
    # The bar stays on the terminal when done: the action, a full bar, and N/N.
    bar = next((line for line in screen.splitlines() if line.startswith("cancel") and "━" in line), "")
    assert f"{BULK_TERMINAL_COUNT}/{BULK_TERMINAL_COUNT}" in bar, screen
    summary = (
        f"cancel: {BULK_TERMINAL_COUNT} changed, 0 already so or not eligible, 0 gone,"
        f" of {BULK_TERMINAL_COUNT} matching"
    )
    assert summary in screen, screen
    print(f"BULK-SCREEN {bar.strip()}")
    match = re.search(r"MS=(\d+)", screen)
    assert match, screen
    took_s = int(match.group(1)) / 1000
    print(
        f"BULK-FIGURES cancel of {BULK_TERMINAL_COUNT} by query in a terminal (CLI start-up, listing,"
        f" 2 batches): {took_s:.2f}s ({BULK_TERMINAL_COUNT / took_s:.0f} workflows/s)"
    )

    # Every one of them ended cancelled, on every replica.
    wait_converged(cluster)
    assert count(cluster, "--status", "cancelled", "--label", "batch=big") == BULK_TERMINAL_COUNT
    assert count(cluster, "--status", "running", "--label", "batch=big") == 0
    for node in sorted(cluster.nodes):
        response = cluster.workflow_stub(node).CountWorkflows(
            pb.CountWorkflowsRequest(
                status=pb.WORKFLOW_STATUS_CANCELLED, filter=pb.WorkflowFilter(labels={"batch": "big"})
            ),
            timeout=10,
        )
        assert response.count == BULK_TERMINAL_COUNT, (node, response)
    # The same command again changes nothing (nothing matches status=running any more).
    t0 = time.monotonic()
    again = beamctl(
        cluster, "-o", "json", "workflow", "cancel", "--label", "batch=big", "--reason", "x", "--yes"
    )
    assert again.returncode == 0, again.stdout
    again_data = json.loads(again.stdout)
    assert (again_data["changed"], again_data["unchanged"]) == (0, BULK_TERMINAL_COUNT), again_data
    print(
        f"BULK-FIGURES repeated cancel of {BULK_TERMINAL_COUNT} (none changed): {time.monotonic() - t0:.2f}s"
    )
