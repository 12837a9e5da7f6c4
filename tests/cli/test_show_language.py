"""``beamctl workflow show`` on a history with a skipped step and a signal (pure: timeline and render)."""

from __future__ import annotations

from rich.console import Console

from beamctl.show import render_timeline, timeline


def _event(seq: int, kind: str, step: str = "", message: str = "") -> dict[str, object]:
    return {
        "seq": seq,
        "time": f"2026-01-01T00:00:0{seq}Z",
        "type": kind,
        "step_id": step,
        "attempt": 1,
        "message": message,
        "node": "n1",
    }


def test_show_says_why_a_step_was_skipped_and_which_signal_completed_a_wait() -> None:
    data = {
        "id": "w", "name": "approval", "status": "succeeded", "owner": "n1", "epoch": 1,
        "create_time": "2026-01-01T00:00:00Z", "update_time": "2026-01-01T00:00:05Z", "error": "",
        "steps": [
            {"id": "approve", "kind": "wait", "status": "succeeded", "needs": []},
            {"id": "decline", "kind": "demo", "status": "skipped", "needs": ["approve"]},
        ],
        "events": [
            _event(1, "submitted"),
            _event(2, "step_started", "approve"),
            _event(3, "signal_received", "approve", "approval (sig-1)"),
            _event(4, "step_succeeded", "approve"),
            _event(5, "step_skipped", "decline", "choice decide took branch execute"),
            _event(6, "completed"),
        ],
    }  # fmt: skip
    t = timeline(data)
    steps = {s["id"]: s for s in t["steps"]}
    assert (
        steps["decline"]["skipped"] == "choice decide took branch execute"
        and steps["decline"]["attempts"] == []
    )
    assert steps["approve"]["attempts"][0]["signal"] == "approval (sig-1)"
    console = Console(record=True, width=140, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(render_timeline(t))
    text = console.export_text()
    console.file.close()
    assert "(choice decide took branch execute)" in text and "signal approval (sig-1)" in text, text
