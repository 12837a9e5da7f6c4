"""The log contract (beamflowd/core/commands.py): round trips, refusals of malformed commands, fail-stop."""

from __future__ import annotations

import enum
import gzip
import json
import pickle
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamflowd.core import commands as c
from beamflowd.core import state as state_mod
from beamflowd.core.invariants import InvariantViolation
from beamflowd.core.state import FatalApplyError, Result, StateMachine
from beamflowd.core.vocabulary import DLQ_CLOSED, ID_CONFLICT_POLICIES, ID_REUSE_POLICIES
from tests.unit.state_strategies import draw_command, next_ts, submit_cmd
from tests.unit.test_state import cluster, histories

RECORDED = Path(__file__).parent.parent / "fixtures" / "recorded"

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_ints = st.integers(-(2**63), 2**63)
_texts = st.text(max_size=12)
#: Annotation -> values of that type.
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "int": _ints,
    "str": _texts,
    "bool": st.booleans(),
    "int | None": st.none() | _ints,
    "str | None": st.none() | _texts,
    "bool | None": st.none() | st.booleans(),
    "Starts": st.lists(st.tuples(_texts, _ints), max_size=3).map(tuple),
    "dict[str, Any]": st.dictionaries(st.text(max_size=8), _json, max_size=4),
    "dict[str, Any] | None": st.none()
    | st.dictionaries(st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True), _texts, max_size=4),
}


class Colour(enum.Enum):
    RED = "red"


class Text(enum.StrEnum):
    TRANSIENT = "transient"


class Number(enum.IntEnum):
    ONE = 1


#: Annotation -> values a wire field of that type must refuse (bool is not int; an Enum is not a str).
_WRONG: dict[str, list[Any]] = {
    "int": [True, False, "1", 1.0, None, [1], Number.ONE],
    "str": [1, None, b"x", True, ["a"], Text.TRANSIENT, Colour.RED],
    "bool": [1, 0, "true", None],
    "Starts": ["a", 5, None, [["a"]], [[1, 0]], [["a", True]], [["a", 0, 1]], {"a": 0}],
    "dict[str, Any]": [[], "x", None, {1: 2}],
}
_WRONG["int | None"] = _WRONG["int"]
_WRONG["str | None"] = _WRONG["str"]
_WRONG["bool | None"] = _WRONG["bool"]
_WRONG["dict[str, Any] | None"] = (
    _WRONG["dict[str, Any]"][:2] + _WRONG["dict[str, Any]"][3:]
)  # None is allowed


@st.composite
def commands(draw: st.DrawFn) -> c.Command:
    cls = draw(st.sampled_from(sorted(c.COMMANDS.values(), key=lambda k: k.OP)))
    kwargs = {f.name: draw(_VALUES[str(f.type)]) for f in fields(cls)}
    if cls is c.ChaosMonkey and kwargs["enabled"] and not kwargs["profile"]:
        kwargs["profile"] = "gentle"
    if cls is c.Submit:  # fields whose values _check restricts
        kwargs["id_reuse"] = draw(st.sampled_from([None, *ID_REUSE_POLICIES]))
        kwargs["id_conflict"] = draw(st.sampled_from([None, *ID_CONFLICT_POLICIES]))
        if kwargs["labels"] is not None:
            kwargs["labels"] = {k: v[:255] for k, v in kwargs["labels"].items()}
    if cls is c.DlqClose:
        kwargs["state"] = draw(st.sampled_from(sorted(DLQ_CLOSED)))
    if cls is c.Compensate:
        kwargs["phase"] = draw(st.sampled_from(c.COMPENSATE_PHASES))
    cmd: c.Command = cls(**kwargs)  # type: ignore[assignment]
    return cmd


@given(commands())
def test_wire_form_round_trips(cmd: c.Command) -> None:
    plain = cmd.to_plain()
    assert plain["v"] == c.SCHEMA_VERSION and plain["op"] == cmd.OP
    assert c.decode(plain) == cmd
    assert c.decode(pickle.loads(pickle.dumps(plain))) == cmd  # what pysyncobj stores
    assert c.decode(json.loads(json.dumps(plain))) == cmd  # what the recorded fixtures hold
    assert hash(c.decode(plain)) == hash(cmd)


def test_wire_keys_are_the_v1_keys() -> None:
    start = c.Start(wf="w", epoch=1, step="a", attempt=1, ts=5)
    assert start.to_plain() == {
        "v": 1,
        "op": "start",
        "wf": "w",
        "epoch": 1,
        "step": "a",
        "attempt": 1,
        "ts": 5,
        "wake": 0,
        "node": "",
    }
    assert "since" not in c.NodeDown(node="n1", ts=1).to_plain()
    assert "spec_hash" not in c.Submit(rid="r", wf="w", spec={}, input="{}", ts=1).to_plain()
    assert c.Gc(before=1, keep_max=2, ts=3).to_plain()["limit"] == c.GC_BATCH_MAX


def _recorded_commands() -> list[dict[str, Any]]:
    with gzip.open(RECORDED / "log_v1_cluster.json.gz", "rt") as f:
        cluster_log = json.load(f)
    with gzip.open(RECORDED / "log_v1_generated.json.gz", "rt") as f:
        generated = json.load(f)
    plains = [cmd for batch in cluster_log["batches"] for cmd in batch]
    return plains + [cmd for segment in generated["segments"] for cmd in segment["commands"]]


def test_recorded_commands_decode_and_re_encode_to_the_same_command() -> None:
    """The constructors write what v1 proposers wrote: a rolling upgrade works in both directions."""
    with gzip.open(RECORDED / "log_v1_cluster.json.gz", "rt") as f:
        cluster_log = json.load(f)
    sm = StateMachine()
    for batch in cluster_log["batches"]:
        sm.apply_all([c.decode(p).to_plain() for p in batch])
    assert sm.canonical_digest() == cluster_log["digest"]
    for plain in _recorded_commands():
        cmd = c.decode(plain)
        again = cmd.to_plain()
        assert c.decode(again) == cmd
        assert {k: v for k, v in again.items() if k in plain} == {
            k: v for k, v in plain.items() if k in again
        }, plain


# ------------------------------------------------------------------------------------ malformed commands
@st.composite
def malformed(draw: st.DrawFn) -> tuple[StateMachine, dict[str, Any], str, str]:
    """A non-trivial state and a command broken in one way: (state, command, op, field it must name)."""
    sm = StateMachine()
    sm.apply_all(draw(histories(max_len=30)))
    plain = draw_command(draw, sm, next_ts(draw, 100_000))
    op = plain["op"]
    table = {f.name: f for f in fields(c.COMMANDS[op])}
    kind = draw(st.sampled_from(["missing", "extra", "mistyped", "op", "version"]))
    if kind == "missing":
        required = [n for n, f in table.items() if f.default is MISSING and f.default_factory is MISSING]
        name = draw(st.sampled_from(required))
        del plain[name]
        return sm, plain, op, name
    if kind == "extra":
        name = draw(st.sampled_from(["bogus", "Wf", "owner", "limit ", "v2"]))
        plain[name] = draw(_json)
        return sm, plain, op, name
    if kind == "mistyped":
        name = draw(st.sampled_from(sorted(table)))
        plain[name] = draw(st.sampled_from(_WRONG[str(table[name].type)]))
        return sm, plain, op, name
    if kind == "op":
        plain["op"] = draw(st.sampled_from(["bogus", "Start", "submit ", "redrive"]))
        return sm, plain, plain["op"], "op"
    plain["v"] = draw(st.sampled_from([0, 2, -1, "1", 1.0, True, None]))
    return sm, plain, op, "v"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(malformed())
def test_a_malformed_command_is_refused_before_it_touches_the_state(
    case: tuple[StateMachine, dict[str, Any], str, str],
) -> None:
    sm, plain, op, field = case
    digest, revision, plain_state = sm.digest(), sm.revision, sm.to_plain()
    sm.drain_changed()
    result = sm.apply(plain)
    assert result.code == "INVALID_ARGUMENT", (plain, result)
    assert result.message.startswith(f"{op}.{field}: "), (plain, result)
    assert sm.digest() == digest and sm.revision == revision
    assert sm.to_plain() == plain_state
    assert not sm.drain_changed(), "no workflow touched"


def test_enabled_chaos_monkey_needs_a_profile() -> None:
    sm = cluster()
    result = sm.apply(c.ChaosMonkey(ts=1, enabled=True).to_plain())
    assert result == Result("INVALID_ARGUMENT", "chaos_monkey.profile: required when enabled")
    assert sm.chaos_monkey == {}


def test_a_definition_apply_could_trip_over_is_refused() -> None:
    sm = cluster()
    digest = sm.digest()
    plain = submit_cmd("r1", "w1", "sequential", 10)
    plain["spec"] = dict(plain["spec"], steps=[dict(plain["spec"]["steps"][1], needs=["nope"])])
    result = sm.apply(plain)
    assert result.code == "INVALID_ARGUMENT" and result.message.startswith("submit.spec: "), result
    assert sm.apply({**plain, "spec": {"name": "x"}}).code == "INVALID_ARGUMENT"
    assert sm.digest() == digest


# -------------------------------------------------------------------------------------------- fail-stop
def test_a_handler_bug_is_fatal_and_not_a_result(monkeypatch: pytest.MonkeyPatch) -> None:
    sm = cluster()
    assert sm.apply(submit_cmd("r1", "w1", "sequential", 10)).ok
    revision = sm.revision

    def buggy(machine: StateMachine, cmd: c.Start) -> Result:
        machine.workflows[cmd.wf].epoch += 1  # a half-applied change: the node must not go on with it
        raise KeyError("bug")

    monkeypatch.setitem(state_mod._HANDLERS, c.Start, buggy)
    start = c.Start(wf="w1", epoch=1, step="a", attempt=1, ts=20).to_plain()
    with pytest.raises(FatalApplyError) as raised:
        sm.apply_all([c.Heartbeat(node="n1", ts=20).to_plain(), start])
    assert raised.value.op == "start" and isinstance(raised.value.cause, KeyError)
    assert sm.revision == revision, "nothing acknowledged as applied"
    # Validation failures stay results, even with the buggy handler installed.
    assert sm.apply({"v": 1, "op": "start", "wf": "w1"}).code == "INVALID_ARGUMENT"


def test_a_broken_invariant_is_fatal_in_debug_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    sm = cluster()
    assert sm.apply(submit_cmd("r1", "w1", "sequential", 10)).ok

    def corrupting(machine: StateMachine, cmd: c.Cancel) -> Result:
        machine.owned["n1"] += 5
        return Result("OK")

    monkeypatch.setitem(state_mod._HANDLERS, c.Cancel, corrupting)
    cancel = c.Cancel(wf="w1", ts=30).to_plain()
    assert sm.apply(cancel).ok, "without the debug flag nothing checks"
    monkeypatch.setattr(StateMachine, "debug_invariants", True)
    with pytest.raises(FatalApplyError) as raised:
        sm.apply(cancel)
    assert isinstance(raised.value.cause, InvariantViolation)
    assert "owned counts" in str(raised.value)


def test_a_snapshot_that_breaks_an_invariant_is_refused() -> None:
    sm = cluster()
    assert sm.apply(submit_cmd("r1", "w1", "sequential", 10)).ok
    snapshot = json.loads(json.dumps(sm.to_plain()))
    assert StateMachine.from_plain(snapshot).digest() == sm.digest()
    snapshot["counters"]["submitted"] = 7
    with pytest.raises(InvariantViolation, match="submitted 7"):
        StateMachine.from_plain(snapshot)
