"""Replicated membership in the pure state machine: member_add and member_remove.

An added member is known but not alive (never placed) until its own join; a removed member's workflows
move as after a death, it is forgotten, and its join is refused until it is added again. Both are idempotent;
conflicting ids and addresses are refused without a change. (Hypothesis mixes both ops with every other op
through tests/unit/state_strategies.py.)
"""

from __future__ import annotations

from beamflowd.core import commands as c
from beamflowd.core.invariants import check_invariants
from beamflowd.core.state import StateMachine
from tests.unit.state_strategies import join_cmd, submit_cmd


def three_nodes_with_work(n: int = 9) -> StateMachine:
    sm = StateMachine()
    for i, node in enumerate(("n1", "n2", "n3")):
        assert sm.apply(join_cmd(node, 10 + i)).ok
    for i in range(n):
        assert sm.apply(submit_cmd(f"r{i}", f"w{i}", "sequential", 100 + i)).ok
    return sm


def add(node: str, port: int, ts: int = 500) -> dict[str, object]:
    return c.MemberAdd(
        node=node, raft=f"127.0.0.1:{7000 + port}", grpc=f"127.0.0.1:{8000 + port}", ts=ts, by="n1"
    ).to_plain()


def remove(node: str, ts: int = 600) -> dict[str, object]:
    return c.MemberRemove(node=node, ts=ts, by="n1").to_plain()


def test_an_added_member_is_not_placed_until_it_joins() -> None:
    sm = three_nodes_with_work(0)
    result = sm.apply(add("n4", 4))
    assert result.ok and result.data == {"added": True}
    assert not sm.members["n4"].alive
    assert sm.apply(add("n4", 4)).data == {"added": False}, "idempotent"
    for i in range(6):
        assert sm.apply(submit_cmd(f"r{i}", f"w{i}", "sequential", 700 + i)).ok
    assert sm.owned_by("n4") == 0
    assert sm.apply(join_cmd("n4", 800)).ok
    assert sm.members["n4"].alive
    assert sm.apply(submit_cmd("r9", "w9", "sequential", 900)).ok
    assert sm.workflows["w9"].owner == "n4", "least loaded once it joined"
    check_invariants(sm)


def test_conflicting_adds_are_refused_without_a_change() -> None:
    sm = three_nodes_with_work(0)
    digest = sm.digest()
    taken = sm.apply(add("n1", 9))
    assert taken.code == "ALREADY_EXISTS" and "'n1' is already a member" in taken.message
    raft_taken = sm.apply(c.MemberAdd(node="n4", raft="127.0.0.1:7002", grpc="x:1", ts=1).to_plain())
    assert raft_taken.code == "ALREADY_EXISTS" and raft_taken.message.startswith("raft: 127.0.0.1:7002")
    grpc_taken = sm.apply(c.MemberAdd(node="n4", raft="x:1", grpc="127.0.0.1:8003", ts=1).to_plain())
    assert grpc_taken.code == "ALREADY_EXISTS" and grpc_taken.message.startswith("grpc: 127.0.0.1:8003")
    assert sm.digest() == digest


def test_remove_moves_workflows_like_a_death_and_refuses_a_rejoin() -> None:
    sm = three_nodes_with_work()
    owned = sorted(w.id for w in sm.workflows.values() if w.owner == "n3")
    assert owned
    epochs = {w: sm.workflows[w].epoch for w in owned}
    result = sm.apply(remove("n3"))
    assert result.ok and result.data == {"removed": True, "moved": len(owned)}
    assert "n3" not in sm.members and sm.owned_by("n3") == 0
    for wf_id in owned:
        wf = sm.workflows[wf_id]
        assert wf.owner in ("n1", "n2") and wf.epoch == epochs[wf_id] + 1, "fenced like after a death"
    refused = sm.apply(join_cmd("n3", 700))
    assert refused.code == "FAILED_PRECONDITION" and "was removed" in refused.message
    assert sm.apply(heartbeat := c.Heartbeat(node="n3", ts=701).to_plain()).code == "NOT_FOUND", heartbeat
    assert sm.apply(remove("n3")).data == {"removed": False, "moved": 0}, "idempotent"
    check_invariants(sm)
    assert sm.apply(add("n3", 3, ts=800)).ok and sm.apply(join_cmd("n3", 801)).ok, "added again, it may join"
    check_invariants(sm)


def test_the_last_live_member_cannot_be_removed() -> None:
    sm = three_nodes_with_work(3)
    assert sm.apply(remove("n2")).ok and sm.apply(remove("n3")).ok
    refused = sm.apply(remove("n1"))
    assert refused.code == "FAILED_PRECONDITION" and "last live member" in refused.message
    assert "n1" in sm.members


def test_membership_survives_a_snapshot_and_leaves_other_states_alone() -> None:
    sm = three_nodes_with_work()
    before = sm.to_plain()
    assert "removed" not in before, "a state that never removed anyone encodes as before"
    assert sm.apply(remove("n2")).ok and sm.apply(add("n4", 4)).ok
    again = StateMachine.from_plain(sm.to_plain())
    assert again.digest() == sm.digest()
    assert again.removed == {"n2"} and not again.members["n4"].alive


def test_a_node_started_with_join_must_have_been_added() -> None:
    sm = three_nodes_with_work(0)
    plain = c.Join(node="n4", raft="127.0.0.1:7004", grpc="127.0.0.1:8004", ts=900, existing=True).to_plain()
    refused = sm.apply(plain)
    assert refused.code == "FAILED_PRECONDITION" and "beamctl cluster member add n4" in refused.message
    assert "n4" not in sm.members
    assert sm.apply(add("n4", 4)).ok and sm.apply(plain).ok and sm.members["n4"].alive
    assert "existing" not in join_cmd("n1", 1), "a join without --join keeps its old wire form"
