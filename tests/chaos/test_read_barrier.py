"""NOT_FOUND is linearizable: a node cut off from the leader has not applied a workflow submitted through the
majority, and must not call it unknown. Every RPC that answers NOT_FOUND for an id first commits a read
barrier; cut off, the node answers UNAVAILABLE (the client asks another node); healed, it answers with the
workflow, and NOT_FOUND only for an id nobody submitted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from beamflowd.api.gen.beamflow.v1 import chaos_pb2 as cpb
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from tests.chaos.support import Endpoints, Load
from tests.harness import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

WAITING = """
name: barrier-wait
steps:
  - {id: hook, run: wait, with: {signal: hook}}
"""
#: Client deadline of each call to the cut-off node: well above the node's read-barrier bound (2 s).
CALL_TIMEOUT_S = 10.0
LEADER_TIMEOUT_S = 15.0
SUBMIT_DEADLINE_S = 30.0
#: After the heal: the cut-off node reconnects (maybe after an election its higher term forces) and applies.
CATCH_UP_TIMEOUT_S = 30.0
#: The partition heals by itself after this long if the test dies before healing it.
HEAL_AFTER_MS = 120_000
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class _WrongAnswer(Exception):
    """An answer that no amount of waiting makes right (NOT_FOUND for a committed workflow)."""


def _calls(wf_id: str) -> dict[str, Callable[[Any], Any]]:
    """Each RPC of the CLI that can answer NOT_FOUND for ``wf_id`` (and changes nothing if refused)."""
    return {
        "get": lambda s: s.GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=CALL_TIMEOUT_S),
        "signal": lambda s: s.SignalWorkflow(
            pb.SignalWorkflowRequest(workflow_id=wf_id, signal="hook", payload_json="{}", request_id="sig-1"),
            timeout=CALL_TIMEOUT_S,
        ),
        "result": lambda s: s.GetWorkflowResult(
            pb.GetWorkflowResultRequest(workflow_id=wf_id), timeout=CALL_TIMEOUT_S
        ),
        "retry": lambda s: s.RetryWorkflow(
            pb.RetryWorkflowRequest(workflow_id=wf_id, reason="test"), timeout=CALL_TIMEOUT_S
        ),
        "resubmit": lambda s: s.ResubmitWorkflow(
            pb.ResubmitWorkflowRequest(workflow_id=wf_id, request_id="resubmit-1"), timeout=CALL_TIMEOUT_S
        ),
        "watch": lambda s: next(
            iter(s.WatchWorkflow(pb.WatchWorkflowRequest(workflow_id=wf_id), timeout=CALL_TIMEOUT_S))
        ),
    }


def _refusal(call: Callable[[Any], Any], stub: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(stub)
    return info.value.code(), info.value.details() or ""


def test_a_cut_off_node_answers_unavailable_not_not_found_then_catches_up(
    chaos_cluster: Cluster, ends: Endpoints
) -> None:
    leader = ends.wait_until(ends.leader, LEADER_TIMEOUT_S, "a leader")
    cut = next(n for n in ends.addrs if n != leader)
    majority = [n for n in ends.addrs if n != cut]
    partition = cpb.PartitionRequest(isolate=cut, heal_after_ms=HEAL_AFTER_MS)
    assert sorted(ends.chaos(leader).Partition(partition, timeout=5).applied_on) == sorted(ends.addrs)

    load = Load(ends, nodes=majority)
    wf_id = load.submit(WAITING, deadline_s=SUBMIT_DEADLINE_S)
    assert wf_id is not None, "the majority acknowledges a submission"
    assert ends.workflows(majority[0]).GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=5)

    # Cut off, the node cannot tell whether the workflow exists: retryable, never NOT_FOUND.
    stub = ends.workflows(cut)
    for name, call in _calls(wf_id).items():
        code, details = _refusal(call, stub)
        assert code == grpc.StatusCode.UNAVAILABLE, f"{name} on {cut}: {code.name}: {details}"
    code, details = _refusal(_calls("wf-nobody-submitted")["get"], stub)
    assert code == grpc.StatusCode.UNAVAILABLE, f"get of an unknown id on {cut}: {code.name}: {details}"

    healed = ends.chaos(leader).Heal(cpb.HealRequest(), timeout=5)
    assert sorted(healed.applied_on) == sorted(ends.addrs)

    def answered(wf: str, expected: grpc.StatusCode = grpc.StatusCode.OK) -> Any:
        """``get`` of ``wf`` on the healed node: its answer, or None while it is still reconnecting."""
        try:
            response = _calls(wf)["get"](stub)
        except grpc.RpcError as err:
            if err.code() == expected:
                return err.code()
            if err.code() in _RETRYABLE:
                return None
            raise _WrongAnswer(f"{cut} answered {err.code().name} for {wf}: {err.details()}") from err
        if expected != grpc.StatusCode.OK:
            raise _WrongAnswer(f"{cut} found {wf}, expected {expected.name}")
        return response

    def caught_up(wf: str, expected: grpc.StatusCode = grpc.StatusCode.OK) -> Any:
        what = f"{cut} to answer {expected.name} for {wf}"
        return wait_until(
            lambda: answered(wf, expected), CATCH_UP_TIMEOUT_S, what, logs=ends.logs, fatal=(_WrongAnswer,)
        )

    assert caught_up(wf_id).workflow.id == wf_id
    signalled = _calls(wf_id)["signal"](stub)
    assert not signalled.duplicate, "refused while cut off, so never proposed before"
    # Caught up and in touch with the leader, the node may say "not found", for an id nobody submitted.
    caught_up("wf-nobody-submitted", grpc.StatusCode.NOT_FOUND)
