"""Guards of the state machine that keep a cluster alive: malformed commands and late node_down commands."""

from __future__ import annotations

from beamflowd.core.state import SCHEMA_VERSION, StateMachine


def joined(*nodes: str) -> StateMachine:
    sm = StateMachine()
    for i, node in enumerate(nodes):
        join = {"v": SCHEMA_VERSION, "op": "join", "node": node, "raft": "r", "grpc": "g", "ts": i}
        assert sm.apply(join).ok
    return sm


def test_a_malformed_command_is_a_result_not_an_exception() -> None:
    sm = joined("n1")
    before = sm.digest()
    result = sm.apply({"v": SCHEMA_VERSION, "op": "start"})  # no workflow, epoch, step...
    assert result.code == "INTERNAL" and "KeyError" in result.message
    assert sm.digest() == before, "nothing half-applied"
    heartbeat = {"v": SCHEMA_VERSION, "op": "heartbeat", "node": "n1", "ts": 5}
    assert sm.apply(heartbeat).ok, "the next command applies"


def test_a_late_node_down_does_not_kill_a_node_that_revived() -> None:
    sm = joined("n1", "n2", "n3")
    judged = sm.members["n2"].last_heartbeat_ms
    down = {"v": SCHEMA_VERSION, "op": "node_down", "node": "n2", "ts": 10, "by": "n1", "since": judged}
    assert sm.apply(down).data["moved"] == 0 and not sm.members["n2"].alive
    assert sm.apply({"v": SCHEMA_VERSION, "op": "heartbeat", "node": "n2", "ts": 20}).data["revived"]
    late = {**down, "ts": 30}  # the same declaration, retried after a leader change, commits again
    assert sm.apply(late).data.get("stale") is True
    assert sm.members["n2"].alive, "a revival since the judgement wins"
