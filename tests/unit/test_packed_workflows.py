"""Finished workflows restored packed (summary now, line decoded on first read), tested on the core directly.

* A state restored packed at any point of a random log, then fed the rest of the log, gives the same results
  and digests as the original, whatever share of the restored digest the background had added meanwhile.
* The restore itself (whole-state checks, list index, GC heap, digest) decodes no finished workflow; the
  first read of a field outside the summary does, and keeps fields assigned before it.
* A line that disagrees with its summary is a broken invariant, at restore (running) or at first read.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beamflowd.core.invariants import InvariantViolation, check_invariants, check_workflow
from beamflowd.core.packed_workflows import PackedWorkflow, summary_of
from beamflowd.core.state import StateMachine, encode_plain
from tests.unit.state_strategies import cancel_cmd, submit_cmd
from tests.unit.test_state import PROPERTY_SETTINGS, cluster, histories, run_step

Plain = dict[str, Any]


def restore_packed(sm: StateMachine, *, check_finished: bool = False) -> StateMachine:
    """``sm`` through the plain form a v3 snapshot keeps: header, then (summary, line) per workflow."""
    header = json.loads(json.dumps(sm.to_plain(bulk=False)))
    header["request_ids"] = [list(item) for item in sm.request_ids.items()]
    plains = [json.loads(json.dumps(wf.to_plain())) for wf in sm.workflows.values()]
    lines = {p["id"]: encode_plain(p) for p in plains}
    packed = [(summary_of(p), lines[p["id"]]) for p in plains]
    return StateMachine.from_plain(header, lines, check_finished=check_finished, packed=packed)


def still_packed(sm: StateMachine) -> int:
    return sum(1 for wf in sm.workflows.values() if isinstance(wf, PackedWorkflow) and wf.packed)


def finished_state(n: int) -> StateMachine:
    sm = cluster()
    for i in range(n):
        assert sm.apply(submit_cmd(f"r{i}", f"w{i}", "sequential", 10 + i)).ok
        for step in ("a", "b", "c"):
            run_step(sm, f"w{i}", step, 100 + 10 * i)
    return sm


@PROPERTY_SETTINGS
@given(histories(), st.data())
def test_a_packed_restore_goes_on_as_the_original_would(log: list[Plain], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(log)), label="cut")
    original = StateMachine()
    original.apply_all(log[:cut])
    restored = restore_packed(original)
    assert restored.to_plain() == original.to_plain()
    assert restored.digest() == original.digest() == restored.full_digest()
    restored = restore_packed(original)  # again, so that the digest is still unsettled below
    for cmd in log[cut:]:
        # Between commands the background adds a few restored shares (n > 0), or the encoder settles the
        # changed workflows' shares from their new lines (-2), or a status call takes the digest (-1).
        settle = data.draw(st.sampled_from([0, 1, 3, -1, -2]), label="restored shares settled")
        if settle > 0:
            restored.settle_restored(settle)
        elif settle == -1:
            assert restored.digest() == original.digest(), cmd
        elif settle == -2:
            for wf_id, wf in restored.workflows.items():
                restored.settle_digest(wf_id, encode_plain(wf.to_plain()))
        assert restored.apply(cmd) == original.apply(cmd), cmd
    assert restored.digest() == original.digest() == restored.full_digest()
    assert restored.to_plain() == original.to_plain()
    check_invariants(restored)


def test_the_restore_decodes_no_finished_workflow_and_a_first_read_decodes_one() -> None:
    sm = finished_state(20)
    assert sm.apply(submit_cmd("r-run", "w-run", "sequential", 900)).ok  # one still running
    restored = restore_packed(sm)
    assert still_packed(restored) == 20, "checks, index and GC heap read only the summary"
    assert restored.digest() == sm.digest(), "the digest comes from the lines"
    assert still_packed(restored) == 20
    assert not isinstance(restored.workflows["w-run"], PackedWorkflow)
    assert restored.workflows["w3"] == sm.workflows["w3"]  # equality reads every field
    assert still_packed(restored) == 19
    wf = restored.workflows["w4"]
    wf.error = "set before the first read"
    assert [s.status for s in wf.steps.values()] == ["succeeded"] * 3  # decodes the rest
    assert wf.error == "set before the first read" and not wf.packed
    assert wf.events == sm.workflows["w4"].events
    # With the finished workflows' own checks, the restore reads (and decodes) them all.
    assert still_packed(restore_packed(sm, check_finished=True)) == 0


def test_a_workflow_changed_after_the_restore_never_gets_its_restored_digest_share() -> None:
    sm = finished_state(3)
    assert sm.apply(submit_cmd("r-run", "w-run", "sequential", 900)).ok
    restored = restore_packed(sm)
    cancel = cancel_cmd("w-run", 1000)
    assert restored.apply(cancel) == sm.apply(cancel)
    # The encoder settles the changed workflow's share from its new line, then the background adds the
    # restored shares left: the old line's share must not replace the new one.
    restored.settle_digest("w-run", encode_plain(restored.workflows["w-run"].to_plain()))
    assert restored.settle_restored() == 0
    assert restored.digest() == sm.digest() == restored.full_digest()


def test_a_line_that_disagrees_with_its_summary_breaks_an_invariant() -> None:
    sm = finished_state(2)
    restored = restore_packed(sm)
    wf = restored.workflows["w1"]
    assert isinstance(wf, PackedWorkflow)
    summary, line = wf._packed
    wf._packed = (summary, line.replace(b'"status":"succeeded"', b'"status":"failed"', 1))
    with pytest.raises(InvariantViolation, match=r"w1.*disagrees with its summary"):
        check_workflow(restored, wf)

    header = json.loads(json.dumps(sm.to_plain(bulk=False)))
    header["request_ids"] = []
    plain = sm.workflows["w0"].to_plain()
    running = summary_of(plain)
    running[7] = "running"  # the summary says running: decoded at once, and refused
    with pytest.raises(InvariantViolation, match=r"w0.*disagrees"):
        StateMachine.from_plain(header, {}, packed=[(running, encode_plain(plain))])
