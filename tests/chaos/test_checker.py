"""The history checker on hand-made histories (pure, fast)."""

from __future__ import annotations

import json
from pathlib import Path

from beamctl.checker import History, check_digests, check_histories, load_acknowledged, verify
from beamflowd.api.gen.beamflow.v1 import cluster_pb2


def history(
    status: str, events: list[tuple[str, str]], steps: dict[str, str] | None = None, error: str = ""
) -> History:
    return History(
        status=status,
        error=error,
        steps=steps or {"a": "succeeded"},
        events=tuple((i + 1, kind, step, 1, "") for i, (kind, step) in enumerate(events)),
    )


GOOD = history(
    "succeeded", [("submitted", ""), ("step_started", "a"), ("step_succeeded", "a"), ("completed", "")]
)


def test_a_clean_history_passes() -> None:
    verdict = check_histories(["w1"], {"w1": GOOD})
    assert verdict.ok, verdict.summary()
    assert (verdict.succeeded, verdict.success_rate) == (1, 1.0)


def test_missing_and_running_workflows_fail() -> None:
    running = history("running", [("submitted", ""), ("step_started", "a")], {"a": "running"})
    verdict = check_histories(["w1", "w2"], {"w1": None, "w2": running})
    assert not verdict.ok
    assert verdict.missing == ["w1"] and verdict.not_terminal == ["w2"]


def test_completing_twice_changing_after_terminal_and_double_success_are_violations() -> None:
    twice = history(
        "succeeded", [("submitted", ""), ("step_succeeded", "a"), ("completed", ""), ("completed", "")]
    )
    after = history(
        "succeeded", [("submitted", ""), ("step_succeeded", "a"), ("completed", ""), ("step_started", "a")]
    )
    double = history(
        "running",
        [("submitted", ""), ("step_succeeded", "a"), ("step_succeeded", "a")],
        {"a": "succeeded", "b": "pending"},
    )
    wrong = history("failed", [("submitted", ""), ("step_succeeded", "a"), ("completed", "")])
    for wf, bad in {"twice": twice, "after": after, "double": double, "wrong": wrong}.items():
        verdict = check_histories([wf], {wf: bad}, require_terminal=False)
        assert verdict.violation_count >= 1, wf
        assert not verdict.ok


def test_failures_by_injected_faults_are_counted() -> None:
    failed = history(
        "failed",
        [("submitted", ""), ("step_failed", "a"), ("failed", "")],
        {"a": "failed"},
        error="step a failed after 5 attempt(s): [transient] chaos: injected error",
    )
    verdict = check_histories(["w1", "w2"], {"w1": failed, "w2": GOOD})
    assert verdict.ok
    assert (verdict.failed, verdict.failed_by_injection, verdict.success_rate) == (1, 1, 0.5)


def test_digests_must_match_at_one_index() -> None:
    def status(*nodes: tuple[str, int, str, bool]) -> cluster_pb2.GetClusterStatusResponse:
        return cluster_pb2.GetClusterStatusResponse(
            nodes=[
                cluster_pb2.NodeStatus(id=i, applied_index=a, digest=d, reachable=r) for i, a, d, r in nodes
            ]
        )

    assert check_digests(status(("n1", 5, "x", True), ("n2", 5, "x", True)), 2)[0]
    assert not check_digests(status(("n1", 5, "x", True), ("n2", 5, "y", True)), 2)[0]
    assert not check_digests(status(("n1", 5, "x", True), ("n2", 4, "x", True)), 2)[0]
    assert not check_digests(status(("n1", 5, "x", True), ("n2", 0, "", False)), 2)[0]


def test_verify_retries_until_the_deadline_with_a_fake_clock() -> None:
    now = [0.0]
    calls = {"n": 0}

    def get(wf_id: str) -> None:
        calls["n"] += 1
        return None

    def tick() -> None:
        now[0] += 1.0

    verdict = verify(["w1"], get, None, wait_s=5, clock=lambda: now[0], sleep=tick)  # type: ignore[arg-type]
    assert verdict.missing == ["w1"] and 5 <= calls["n"] <= 7


def test_load_acknowledged_formats(tmp_path: Path) -> None:
    cases = {
        "list.json": json.dumps(["a", "b"]),
        "obj.json": json.dumps({"workflow_ids": ["a", "b"]}),
        "lines.jsonl": '{"workflow_id": "a"}\n{"workflow_id": "b"}\n'
        '{"workflow_id": "c", "acknowledged": false}\n',
        "plain.txt": "# acknowledged\na\nb\n",
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        assert load_acknowledged(path) == ["a", "b"], name


RERUN_HEAD = [("submitted", ""), ("step_succeeded", "a"), ("failed", "")]


def test_retried_histories() -> None:
    """A `retried` event opens a new run: one closing event per run; a succeeded step runs again only
    after a retry --from (its step id set)."""
    fine = history(
        "succeeded",
        [
            ("submitted", ""),
            ("step_succeeded", "a"),
            ("step_failed", "b"),
            ("dead_lettered", "b"),
            ("failed", ""),
            ("retried", ""),
            ("step_succeeded", "b"),
            ("completed", ""),
        ],
        {"a": "succeeded", "b": "succeeded"},
    )
    verdict = check_histories(["w1"], {"w1": fine})
    assert verdict.ok and verdict.retried_workflows == 1, verdict.summary()
    rerun = history(
        "succeeded",
        [*RERUN_HEAD, ("retried", ""), ("step_succeeded", "a"), ("completed", "")],
    )
    assert not check_histories(["w1"], {"w1": rerun}).ok, "a plain retry re-ran a succeeded step"
    from_a = history(
        "succeeded",
        [*RERUN_HEAD, ("retried", "a"), ("step_succeeded", "a"), ("completed", "")],
    )
    assert check_histories(["w1"], {"w1": from_a}).ok
    running = history("failed", [("submitted", ""), ("retried", ""), ("failed", "")], {"a": "failed"})
    assert not check_histories(["w1"], {"w1": running}).ok, "retried while running"
    stale = history(
        "succeeded", [("submitted", ""), ("step_succeeded", "a"), ("failed", ""), ("retried", "")]
    )
    assert not check_histories(["w1"], {"w1": stale}, require_terminal=False).ok, (
        "status without its run's end"
    )


def test_skipped_steps_count_as_done_but_must_never_run() -> None:
    events = [("submitted", ""), ("step_started", "a"), ("step_succeeded", "a"), ("step_skipped", "b")]
    steps = {"a": "succeeded", "b": "skipped"}
    good = history("succeeded", [*events, ("completed", "")], steps)
    assert check_histories(["w"], {"w": good}).ok
    ran = history("succeeded", [*events, ("step_started", "b"), ("completed", "")], steps)
    verdict = check_histories(["w"], {"w": ran})
    assert not verdict.ok and "skipped but ran" in verdict.summary()


def test_a_signal_delivered_twice_is_a_violation() -> None:
    received = (1, "signal_received", "a", 1, "approval (sig-1)")
    twice = History(
        status="succeeded",
        error="",
        steps={"a": "succeeded"},
        events=(
            (0, "submitted", "", 0, ""),
            received,
            (2, "step_succeeded", "a", 1, ""),
            (3, *received[1:]),
            (4, "completed", "", 0, ""),
        ),
    )
    verdict = check_histories(["w"], {"w": twice})
    assert not verdict.ok and "delivered 2 times" in verdict.summary()
