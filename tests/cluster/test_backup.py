"""Disaster recovery on real processes: save a backup, destroy every data dir, restore, resume.

Three nodes run workflows; ``beamctl cluster snapshot save`` writes a backup (once through the leader's
endpoint list, once through a follower that relays the leader's stream); every node is killed and its data
dir deleted; ``beamflowd restore`` seeds fresh dirs (a damaged copy is refused first, writing nothing); the
nodes start on them and every workflow that was running at the snapshot finishes; replicas converge.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from beamctl.main import app
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from beamflowd.backup import read_backup
from tests.cluster.test_engine import SLEEPY, submit, wait_converged, wait_terminal
from tests.harness import REPO_ROOT, Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

runner = CliRunner()
QUICK = "name: quick\nsteps:\n  - {id: a, run: noop}\n  - {id: b, run: noop, needs: a}\n"
RUNNING_N = 30
FINISHED_N = 10


def beamctl(endpoints: str, *args: str) -> Any:
    result = runner.invoke(app, ["--endpoints", endpoints, "--timeout", "10", *args])
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def restore(cluster: Cluster, backup: Path, node_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "beamflowd",
            "restore",
            str(backup),
            "--data-dir",
            str(cluster.nodes[node_id].data_dir),
            "--node-id",
            node_id,
            "--initial-cluster",
            cluster.initial_cluster,
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=cluster.env,
        timeout=60,
        check=False,
    )


def test_restore_into_fresh_dirs_resumes_every_running_workflow(cluster: Cluster, tmp_path: Path) -> None:
    stub = cluster.workflow_stub("n1")
    finished = [submit(stub, QUICK, {}) for _ in range(FINISHED_N)]
    wait_terminal(cluster, "n1", finished, timeout=60)
    running = [submit(stub, SLEEPY, {"nap": "8s"}) for _ in range(RUNNING_N)]

    backup = tmp_path / "backups" / "beamflow.db"
    backup.parent.mkdir()
    saved = json.loads(
        beamctl(cluster.endpoints, "-o", "json", "cluster", "snapshot", "save", str(backup)).stdout
    )
    assert saved["workflows"] == FINISHED_N + RUNNING_N and saved["raft_index"] > 0
    assert not (backup.parent / "beamflow.db.part").exists()
    _, info = read_backup(str(backup))
    assert (info.raft_index, info.sha256, info.leader) == (
        saved["raft_index"],
        saved["sha256"],
        saved["leader"],
    )
    states = [stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=w), timeout=10).workflow for w in running]
    assert all(wf.status == pb.WORKFLOW_STATUS_RUNNING for wf in states), "they were running at the snapshot"

    follower = next(n for n in cluster.nodes if n != saved["leader"])
    relayed = tmp_path / "backups" / "relayed.db"
    again = json.loads(
        beamctl(cluster.grpc_addr(follower), "-o", "json", "cluster", "snapshot", "save", str(relayed)).stdout
    )
    assert again["leader"] == saved["leader"] and again["raft_index"] >= saved["raft_index"]
    read_backup(str(relayed))

    for node_id in cluster.nodes:
        cluster.kill_node(node_id)
    for node in cluster.nodes.values():
        shutil.rmtree(node.data_dir)

    damaged = tmp_path / "backups" / "damaged.db"
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    refused = restore(cluster, damaged, "n1")
    assert refused.returncode == 1 and "sha256 does not match" in refused.stderr, refused.stderr
    assert not cluster.nodes["n1"].data_dir.exists(), "a refused restore writes nothing"

    for node_id in cluster.nodes:
        done = restore(cluster, backup, node_id)
        assert done.returncode == 0, done.stderr
        assert f"at raft index {saved['raft_index']}" in done.stdout
    started = time.monotonic()
    cluster.start()
    cluster.wait_ready(timeout=60)
    ready_s = time.monotonic() - started

    results = wait_terminal(cluster, "n2", running + finished, timeout=120)
    assert all(wf.status == pb.WORKFLOW_STATUS_SUCCEEDED for wf in results.values()), {
        w: pb.WorkflowStatus.Name(wf.status) for w, wf in results.items()
    }
    wait_converged(cluster, timeout=60)
    print(f"restored cluster serving after {ready_s:.1f} s")
