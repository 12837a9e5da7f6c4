"""Pipelined instant steps with real processes: a chain runs each next step before the previous result
commits (and the first before its submit commits, through the leader), yet every step still runs with its
predecessors' committed outputs, and a leader killed mid-chain
leaves every workflow succeeded with each step's attempt executed under one idempotency key.

Bounded in time and count; waits poll with deadlines.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.cluster.test_engine import submit, wait_converged, wait_terminal
from tests.cluster.test_faults import Submitter
from tests.cluster.test_observability import scrape, total
from tests.harness import Cluster

#: Four instant steps: three record their execution, the last echoes what it saw of the others.
CHAIN = """
name: pipelined-chain
steps:
  - id: one
    run: python
    with: {function: "tests.fixtures.pysteps:record", args: {file: "${{ input.file }}"}}
  - id: two
    run: python
    needs: one
    with: {function: "tests.fixtures.pysteps:record", args: {file: "${{ input.file }}"}}
  - id: three
    run: python
    needs: two
    with: {function: "tests.fixtures.pysteps:record", args: {file: "${{ input.file }}"}}
  - id: four
    run: python
    needs: three
    with: {function: "tests.fixtures.pysteps:echo_args", args: {seen: "${{ steps.three }}"}}
"""
RECORDING = ("one", "two", "three")
QUIET_WORKFLOWS = 20


def executions(record: Path) -> dict[tuple[str, str], list[str]]:
    """Idempotency keys recorded per (workflow, step), one per execution."""
    keys: dict[tuple[str, str], list[str]] = defaultdict(list)
    for line in record.read_text().splitlines():
        wf_id, step_id, _attempt, key = line.split()
        keys[(wf_id, step_id)].append(key)
    return keys


def speculation(cluster: Cluster) -> tuple[float, float]:
    """(speculative attempts, refused speculative results) summed over the running nodes."""
    samples = [scrape(cluster.nodes[n].metrics_addr) for n in cluster.running_ids()]
    return (
        sum(total(s, "beamflow_speculative_attempts_total") for s in samples),
        sum(total(s, "beamflow_speculative_results_refused_total") for s in samples),
    )


def assert_chain_output(wf: pb.Workflow) -> None:
    """Every step succeeded once, and the last one saw its predecessors' outputs."""
    assert wf.status == pb.WORKFLOW_STATUS_SUCCEEDED, (wf.id, wf.error)
    assert [s.status for s in wf.steps] == [pb.STEP_STATUS_SUCCEEDED] * 4, wf.id
    last = json.loads(next(s.output_json for s in wf.steps if s.id == "four"))
    assert last["args"]["seen"] == {"recorded": True}, last
    assert set(last["results"]) == {"one", "two", "three"}, last


def test_speculative_chain_runs_each_step_once_with_committed_inputs(
    cluster: Cluster, tmp_path: Path
) -> None:
    record = tmp_path / "record.txt"
    stub = cluster.workflow_stub("n1")
    ids = [submit(stub, CHAIN, {"file": str(record)}) for _ in range(QUIET_WORKFLOWS)]
    done = wait_terminal(cluster, "n1", ids, timeout=60)
    for wf in done.values():
        assert_chain_output(wf)
        assert all(s.attempts == 1 for s in wf.steps), wf
    keys = executions(record)
    for wf_id in ids:
        for step_id in RECORDING:
            # Exactly once: the committed start found the speculative attempt in place and ran nothing more.
            assert keys[(wf_id, step_id)] == [f"{wf_id}/{step_id}/1"], (
                wf_id,
                step_id,
                keys[(wf_id, step_id)],
            )
    speculated, refused = speculation(cluster)
    # Steps two, three and four of every chain ran ahead of the commit that started them.
    assert speculated >= 3 * QUIET_WORKFLOWS, speculated
    assert refused == 0, refused
    wait_converged(cluster)


def test_first_step_runs_ahead_of_a_submit_through_the_leader(cluster: Cluster, tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    leader = cluster.leader_id()
    stub = cluster.workflow_stub(leader)
    before, _ = speculation(cluster)
    done: dict[str, pb.Workflow] = {}
    for _ in range(QUIET_WORKFLOWS):  # one at a time: every load is 0, and the leader wins the tie
        wf_id = submit(stub, CHAIN, {"file": str(record)})
        done |= wait_terminal(cluster, leader, [wf_id], timeout=60)
    ids = list(done)
    for wf in done.values():
        assert_chain_output(wf)
        assert wf.owner == leader, (wf.id, wf.owner)
        assert all(s.attempts == 1 for s in wf.steps), wf
    keys = executions(record)
    for wf_id in ids:
        for step_id in RECORDING:
            # Once: the actor spawned by the committed submit found the run-ahead attempt in place.
            assert keys[(wf_id, step_id)] == [f"{wf_id}/{step_id}/1"], (
                wf_id,
                step_id,
                keys[(wf_id, step_id)],
            )
    speculated, refused = speculation(cluster)
    # All four steps of every chain ran ahead, the first one while its submit committed.
    assert speculated - before >= 4 * QUIET_WORKFLOWS, (before, speculated)
    assert refused == 0, refused
    wait_converged(cluster)


def test_leader_killed_mid_chain_completes_every_workflow(cluster: Cluster, tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    submitter = Submitter(cluster, CHAIN, {"file": str(record)}, limit=300)
    submitter.start()
    try:
        cluster.wait_until(lambda: len(submitter.acknowledged) >= 40, 30, "40 acknowledged submissions")
        leader = cluster.leader_id()
        cluster.kill_node(leader)
        count = len(submitter.acknowledged)
        cluster.wait_until(
            lambda: len(submitter.acknowledged) >= count + 40, 30, "submissions after the election"
        )
    finally:
        submitter.stop.set()
        submitter.join(timeout=60)
    assert not submitter.is_alive()
    survivor = cluster.running_ids()[0]
    done = wait_terminal(cluster, survivor, submitter.acknowledged, timeout=120)
    assert len(done) == len(set(submitter.acknowledged)) == len(submitter.acknowledged)
    for wf in done.values():
        assert_chain_output(wf)
    keys = executions(record)
    for wf_id in submitter.acknowledged:
        for step_id in RECORDING:
            # At least once, and always as the same attempt: a refused speculative result is run again
            # under its idempotency key, never as a new attempt.
            assert len(set(keys[(wf_id, step_id)])) == 1, (wf_id, step_id, keys[(wf_id, step_id)])
    speculated, refused = speculation(cluster)
    assert speculated > 0
    print(f"{len(done)} workflows; survivors speculated {speculated:.0f} attempts, {refused:.0f} refused")
    cluster.start_node(leader)
    cluster.wait_ready(nodes=[leader])
    wait_converged(cluster)
