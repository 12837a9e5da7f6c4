"""The aggressive monkey (node kills, partitions) while an operator pauses, resumes and retries from the
dead-letter queue: the history checker still passes, and no succeeded step of a retried workflow ran again.

About 200 workflows over ~25 s; every 5th fails for good (a permanent error in its last step), lands in the
dead-letter queue and is retried from there (it fails again: its entry goes back to pending).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from typing import Any

import grpc
import pytest

from beamflowd.api.gen.beamflow.v1 import chaos_pb2 as cpb
from beamflowd.api.gen.beamflow.v1 import dlq_pb2, dlq_pb2_grpc
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.chaos.support import DevCluster, Load, definition
from tests.chaos.test_monkey import set_monkey

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420), pytest.mark.restart_delay("3s")]

TOTAL = 200
RATE = 8.0
OK_FLOW = definition("ops-ok", 3, latency="100ms", max_latency="400ms", attempts=25)
DOOMED = definition("ops-doomed", 3, latency="0ms", max_latency="20ms", attempts=25, doomed=True)
#: Calls that may fail under chaos and are simply tried again later (the operator's loop is best-effort).
EXPECTED = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.NOT_FOUND,
}
#: Retries of one dead-letter entry at most (each fails again: the workflow is doomed).
RETRIES_PER_ENTRY = 2


class Operator:
    """Pauses, resumes and retries while the monkey runs; counts what committed."""

    def __init__(self, dev: DevCluster) -> None:
        self.dev = dev
        self.done = Counter[str]()
        self.refused = Counter[str]()
        self.paused: set[str] = set()
        self.retried = Counter[str]()
        self.stop = threading.Event()
        self.rng = random.Random(11)

    def call(self, what: str, fn: Any) -> Any:
        for node in self.rng.sample(list(self.dev.addrs), len(self.dev.addrs)):
            try:
                result = fn(node)
            except grpc.RpcError as err:
                if err.code() not in EXPECTED:
                    raise
                self.refused[f"{what}:{err.code().name}"] += 1
                if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    continue
                return None
            self.done[what] += 1
            return result
        return None

    def dlq(self, node: str) -> Any:
        return dlq_pb2_grpc.DeadLetterServiceStub(self.dev.channel(node))  # type: ignore[no-untyped-call, unused-ignore]

    def step(self) -> None:
        running = self.call(
            "list",
            lambda n: self.dev.workflows(n).ListWorkflows(
                pb.ListWorkflowsRequest(status=pb.WORKFLOW_STATUS_RUNNING, page_size=20), timeout=5
            ),
        )
        if running is not None and running.workflows:
            wf_id = self.rng.choice(list(running.workflows)).id
            request = pb.PauseWorkflowRequest(workflow_id=wf_id, reason="ops test")
            if self.call("pause", lambda n: self.dev.workflows(n).PauseWorkflow(request, timeout=5)):
                self.paused.add(wf_id)
        if self.paused and self.rng.random() < 0.6:
            wf_id = self.rng.choice(sorted(self.paused))
            if self.call(
                "resume",
                lambda n: self.dev.workflows(n).ResumeWorkflow(
                    pb.ResumeWorkflowRequest(workflow_id=wf_id), timeout=5
                ),
            ):
                self.paused.discard(wf_id)
        pending = self.call(
            "dlq_list",
            lambda n: self.dlq(n).ListDeadLetters(
                dlq_pb2.ListDeadLettersRequest(state=dlq_pb2.DEAD_LETTER_STATE_PENDING, page_size=10),
                timeout=5,
            ),
        )
        for entry in pending.dead_letters if pending is not None else []:
            if self.retried[entry.id] < RETRIES_PER_ENTRY:
                request = dlq_pb2.RetryDeadLetterRequest(id=entry.id, reason="ops test")
                if self.call("retry", lambda n, r=request: self.dlq(n).RetryDeadLetter(r, timeout=5)):
                    self.retried[entry.id] += 1

    def run(self) -> None:
        while not self.stop.wait(0.3):
            self.step()

    def resume_all(self) -> None:
        """After the chaos: nothing stays paused, so every workflow can end."""

        def none_paused() -> bool:
            paused = self.call(
                "list_paused",
                lambda n: self.dev.workflows(n).ListWorkflows(
                    pb.ListWorkflowsRequest(status=pb.WORKFLOW_STATUS_PAUSED, page_size=1000), timeout=5
                ),
            )
            if paused is None:
                return False
            for wf in paused.workflows:
                self.call(
                    "resume",
                    lambda n, w=wf.id: self.dev.workflows(n).ResumeWorkflow(
                        pb.ResumeWorkflowRequest(workflow_id=w), timeout=5
                    ),
                )
            return not paused.workflows

        self.dev.wait_until(none_paused, 60, "every paused workflow to be resumed")


def test_monkey_with_pauses_resumes_and_dead_letter_retries(dev_cluster: DevCluster) -> None:
    dev = dev_cluster
    dev.wait_until(dev.leader, 15, "a leader")
    t0 = time.monotonic()
    set_monkey(
        dev,
        cpb.SetMonkeyRequest(
            enabled=True, profile="aggressive", kill_nodes=True, partitions=True, duration_ms=300_000
        ),
    )
    operator = Operator(dev)
    thread = threading.Thread(target=operator.run, daemon=True)
    thread.start()
    load = Load(dev)
    load.run([(DOOMED if i % 5 == 4 else OK_FLOW, None) for i in range(TOTAL)], rate=RATE)
    # Let the operator retry the last dead letters while the monkey still runs.
    dev.wait_until(lambda: operator.done["retry"] >= 5, 60, "dead-letter retries under chaos")
    set_monkey(dev, cpb.SetMonkeyRequest(enabled=False))
    operator.stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    operator.resume_all()

    verdict = dev.verify(load.acknowledged, wait_s=180)
    figures = {
        "acknowledged": verdict.acknowledged,
        "succeeded": verdict.succeeded,
        "failed": verdict.failed,
        "retried_workflows": verdict.retried_workflows,
        "committed": dict(sorted(operator.done.items())),
        "refused": dict(sorted(operator.refused.items())),
        "reassigned_workflows": verdict.reassigned_workflows,
        "stale_results_rejected": verdict.stale_results_rejected,
        "seconds": round(time.monotonic() - t0, 1),
        "verdict": "PASS" if verdict.ok else "FAIL",
    }
    print("OPS-MONKEY-FIGURES " + json.dumps(figures, sort_keys=True))
    assert verdict.ok, verdict.summary()
    assert verdict.running == 0
    assert verdict.retried_workflows >= 5 and operator.done["pause"] >= 1 and operator.done["resume"] >= 1
    # Only the doomed workflows fail (in their designed last step), never by an injected fault.
    assert verdict.failed <= TOTAL // 5 and verdict.failed_by_injection == 0, verdict.summary()
