"""Finding work: labels, filters and the name/label indexes behind ``workflow list`` and ``count``."""

from __future__ import annotations

import json

from beamflowd.core import commands as c
from beamflowd.core.invariants import check_invariants
from beamflowd.core.state import Query, StateMachine
from tests.unit.state_strategies import NODES, SPECS, join_cmd, step_cmd


def cluster() -> StateMachine:
    sm = StateMachine()
    for node in NODES:
        assert sm.apply(join_cmd(node, 0)).ok
    return sm


def submit(sm: StateMachine, wf: str, spec: str, ts: int, **labels: str) -> None:
    cmd = c.Submit(rid=f"r-{wf}", wf=wf, spec=SPECS[spec], input="{}", ts=ts, labels=labels or None)
    assert sm.apply(cmd.to_plain()).ok


def ids(sm: StateMachine, query: Query) -> list[str]:
    return [wf.id for wf in sm.find(query)]


def test_filters_by_name_labels_time_failed_step_and_error_class() -> None:
    sm = cluster()
    submit(sm, "w1", "sequential", 100, team="a")
    submit(sm, "w2", "diamond", 200, team="a", env="prod")
    submit(sm, "w3", "sequential", 300, team="b")
    assert sm.apply(step_cmd("start", "w3", 1, "a", 1, 310)).ok
    assert sm.apply(step_cmd("fail", "w3", 1, "a", 1, 320, error="x", error_class="permanent")).ok
    assert ids(sm, Query()) == ["w3", "w2", "w1"]
    assert ids(sm, Query(name="sequential")) == ["w3", "w1"]
    assert ids(sm, Query(labels=(("team", "a"),))) == ["w2", "w1"]
    assert ids(sm, Query(labels=(("team", "a"), ("env", "prod")))) == ["w2"]
    assert ids(sm, Query(created_after_ms=150, created_before_ms=300)) == ["w2"]
    assert ids(sm, Query(status="failed", failed_step="a", error_class="permanent")) == ["w3"]
    assert ids(sm, Query(error_class="timeout")) == []
    assert sm.workflows["w2"].labels == {"team": "a", "env": "prod"}
    restored = StateMachine.from_plain(json.loads(json.dumps(sm.to_plain())))
    assert ids(restored, Query(labels=(("team", "a"),))) == ["w2", "w1"] and restored.digest() == sm.digest()
    # Collected workflows leave the indexes.
    assert sm.apply(c.Gc(before=10**9, keep_max=0, ts=400).to_plain()).ok
    assert ids(sm, Query(labels=(("team", "b"),))) == [] and ids(sm, Query(name="sequential")) == ["w1"]
    check_invariants(sm)


def test_labels_are_bounded_and_checked() -> None:
    sm = cluster()
    base = c.Submit(rid="r", wf="w", spec=SPECS["sequential"], input="{}", ts=1).to_plain()
    for bad in ({"1bad": "x"}, {"k": 1}, {"k": "v" * 256}, {f"k{i}": "v" for i in range(17)}):
        result = sm.apply(dict(base, labels=bad))
        assert result.code == "INVALID_ARGUMENT" and "submit.labels" in result.message, bad
    assert not sm.workflows
