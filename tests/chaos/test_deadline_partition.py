"""A workflow's deadline passes while its owner is cut off: the majority ends it as deadline_exceeded."""

from __future__ import annotations

import pytest

from beamflowd.api.gen.beamflow.v1 import chaos_pb2 as cpb
from beamflowd.api.gen.beamflow.v1 import dlq_pb2, dlq_pb2_grpc
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.chaos.support import Endpoints
from tests.harness import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

TIMED = """
name: timed
timeout: 5s
steps:
  - {id: nap, run: sleep, with: {duration: 10m}}
  - {id: after, run: noop, needs: nap}
"""


def test_deadline_passes_during_a_partition_of_the_owner(chaos_cluster: Cluster, ends: Endpoints) -> None:
    entry = ends.workflows("n1").SubmitWorkflow(
        pb.SubmitWorkflowRequest(definition=TIMED, definition_source="timed.yaml"), timeout=10
    )
    wf_id, owner = entry.workflow_id, entry.owner
    others = [n for n in ends.addrs if n != owner]
    cut = ends.chaos(others[0]).Partition(cpb.PartitionRequest(isolate=owner), timeout=5)
    assert sorted(cut.applied_on) == sorted(ends.addrs), cut

    def ended() -> pb.Workflow | None:
        wf = (
            ends.workflows(others[0])
            .GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=5)
            .workflow
        )
        return wf if wf.status == pb.WORKFLOW_STATUS_FAILED else None

    wf = ends.wait_until(ended, 40, "the majority to end the workflow at its deadline")
    assert "deadline exceeded" in wf.error and wf.owner != owner and wf.epoch >= 2
    assert next(s for s in wf.steps if s.id == "nap").error_class == "deadline_exceeded"
    dlq = dlq_pb2_grpc.DeadLetterServiceStub(ends.channel(others[1]))  # type: ignore[no-untyped-call, unused-ignore]
    listed = dlq.ListDeadLetters(dlq_pb2.ListDeadLettersRequest(), timeout=5)
    assert [(e.workflow_id, e.error_class) for e in listed.dead_letters] == [(wf_id, "deadline_exceeded")]

    healed = ends.chaos(others[0]).Heal(cpb.HealRequest(), timeout=5)
    assert sorted(healed.applied_on) == sorted(ends.addrs)
    verdict = ends.verify([wf_id], wait_s=60)
    assert verdict.ok and verdict.failed == 1, verdict.summary()
    assert verdict.digests_equal, verdict.digest_detail
