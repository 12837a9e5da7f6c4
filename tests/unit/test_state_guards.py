"""Guards of the state machine that keep a cluster alive: malformed commands and late node_down commands."""

from __future__ import annotations

from beamflowd.core.commands import SCHEMA_VERSION, Heartbeat, Join, NodeDown
from beamflowd.core.state import StateMachine


def joined(*nodes: str) -> StateMachine:
    sm = StateMachine()
    for i, node in enumerate(nodes):
        assert sm.apply(Join(node=node, raft="r", grpc="g", ts=i).to_plain()).ok
    return sm


def test_a_malformed_command_is_a_result_not_an_exception() -> None:
    sm = joined("n1")
    before, revision = sm.digest(), sm.revision
    result = sm.apply({"v": SCHEMA_VERSION, "op": "start"})  # no workflow, epoch, step...
    assert result.code == "INVALID_ARGUMENT" and result.message.startswith("start.wf: "), result
    assert sm.digest() == before and sm.revision == revision, "nothing half-applied"
    assert sm.apply(Heartbeat(node="n1", ts=5).to_plain()).ok, "the next command applies"


def test_a_late_node_down_does_not_kill_a_node_that_revived() -> None:
    sm = joined("n1", "n2", "n3")
    judged = sm.members["n2"].last_heartbeat_ms
    down = NodeDown(node="n2", ts=10, by="n1", since=judged).to_plain()
    assert sm.apply(down).data["moved"] == 0 and not sm.members["n2"].alive
    assert sm.apply(Heartbeat(node="n2", ts=20).to_plain()).data["revived"]
    late = {**down, "ts": 30}  # the same declaration, retried after a leader change, commits again
    assert sm.apply(late).data.get("stale") is True
    assert sm.members["n2"].alive, "a revival since the judgement wins"
