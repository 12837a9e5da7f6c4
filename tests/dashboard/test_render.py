"""The dashboard renderer on a recorded console from a given snapshot (no terminal, no network)."""

from __future__ import annotations

from rich.console import Console

from beamctl.top_render import ViewState, render, snapshot_to_dict, sparkline
from beamflowd.api.gen.beamflow.v1 import stats_pb2 as pb


def given_snapshot() -> pb.StatsSnapshot:
    snap = pb.StatsSnapshot(node_id="n2", leader_id="n1", build_micros=900)
    snap.time.FromMilliseconds(1_800_000_000_000)
    snap.nodes.extend(
        [
            pb.NodeStats(
                id="n1",
                role="leader",
                term=3,
                commit_index=1200,
                applied_index=1200,
                liveness="alive",
                owned_workflows=3400,
                reachable=True,
                rss_bytes=80 * 2**20,
                actors=3400,
            ),
            pb.NodeStats(
                id="n2",
                role="follower",
                term=3,
                commit_index=1200,
                applied_index=1199,
                liveness="alive",
                owned_workflows=3300,
                reachable=True,
                partitioned=True,
                rss_bytes=79 * 2**20,
            ),
            pb.NodeStats(
                id="n3", role="unknown", liveness="dead", reachable=False, error="UNAVAILABLE: refused"
            ),
        ]
    )
    w = snap.workflows
    w.submitted, w.running, w.succeeded, w.failed, w.cancelled = 10_500, 6_700, 3_762, 38, 0
    w.retries_scheduled, w.reassigned, w.success_rate = 120, 3300, 0.99
    w.completed_per_second, w.failed_per_second, w.submitted_per_second = 250.0, 2.0, 500.0
    w.completed_history.extend([0, 50, 100, 200, 250])
    w.failed_history.extend([0, 1, 0, 2, 2])
    w.submitted_history.extend([500] * 5)
    snap.latencies.append(
        pb.Latency(
            name="insurance-claim",
            samples=2048,
            step_p50_ms=640,
            step_p95_ms=1300,
            step_p99_ms=1480,
            workflow_p50_ms=2400,
            workflow_p95_ms=3900,
            workflow_p99_ms=5200,
            workflow_samples=900,
            completed=3762,
            failed=38,
        )
    )
    snap.failing_steps.append(
        pb.FailingStep(workflow_name="insurance-claim", step_id="credit-score", failures=77)
    )
    event = pb.NotableEvent(type="node_down", message="node n3 declared down", node="n1")
    event.time.FromMilliseconds(1_800_000_000_000)
    snap.events.append(event)
    snap.chaos.CopyFrom(pb.ChaosStats(available=False))
    return snap


def record(snapshot: pb.StatsSnapshot, view: ViewState) -> str:
    console = Console(record=True, width=170, height=60, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(render(snapshot_to_dict(snapshot), view))
    console.file.close()
    return console.export_text()


def test_panels_from_a_given_snapshot() -> None:
    text = record(
        given_snapshot(),
        ViewState(endpoint="127.0.0.1:7002", status="live", refresh_s=1.0, bytes_per_update=3000),
    )
    for expected in (
        "BEAMFlow top",
        "[live]",
        "via 127.0.0.1:7002 (n2)",
        "refresh 1.00s",
        "2.9KiB/update",
        "Nodes · leader n1",
        "★ n1",
        "leader",
        "PARTITIONED",
        "UNREACHABLE",
        "DEAD",
        "Workflows",
        "6,700",
        "99.00%",
        "3,762",
        "Throughput",
        "250.0",
        "Latency",
        "insurance-claim",
        "640",
        "1480",
        "2400",
        "insurance-claim/credit-score: 77 failed attempts",
        "Events",
        "node_down",
        "node n3 declared down",
        "Chaos",
        "chaos: not available",
    ):
        assert expected in text, f"{expected!r} missing from:\n{text}"
    n3 = next(line for line in text.splitlines() if " n3 " in line)
    assert "dead" in n3 and "DEAD" in n3


def test_reconnecting_and_waiting_states() -> None:
    console = Console(record=True, width=120, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(render(None, ViewState(status="connecting")))
    console.file.close()
    assert "waiting for the first stats snapshot" in console.export_text()
    text = record(
        given_snapshot(),
        ViewState(
            endpoint="127.0.0.1:7003",
            status="reconnecting",
            message="reconnecting: 127.0.0.1:7001: UNAVAILABLE",
        ),
    )
    assert "[reconnecting]" in text and "reconnecting: 127.0.0.1:7001" in text


def test_json_contract_keeps_numbers_as_numbers() -> None:
    data = snapshot_to_dict(given_snapshot())
    assert data["leader_id"] == "n1"
    assert data["workflows"]["running"] == 6700
    assert data["nodes"][2]["liveness"] == "dead" and data["nodes"][2]["reachable"] is False
    assert data["latencies"][0]["step_p99_ms"] == 1480
    assert data["time"] == "2027-01-15T08:00:00.000Z"


def test_sparkline_scales_to_the_window() -> None:
    assert sparkline([]) == ""
    assert sparkline([0, 0, 0]) == "▁▁▁"
    assert sparkline([0, 5, 10]) == "▁▅█"
    assert len(sparkline(list(range(100)), width=60)) == 60


def test_narrow_terminal_stacks_the_panels() -> None:
    console = Console(record=True, width=80, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(render(snapshot_to_dict(given_snapshot()), ViewState(status="live"), width=80))
    console.file.close()
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    for expected in ("★ n1", "DEAD", "6,700", "99.00%", "insurance-claim", "chaos: not available"):
        assert expected in text, f"{expected!r} missing from:\n{text}"


def test_dead_letter_counts_in_the_workflows_panel() -> None:
    snapshot = given_snapshot()
    snapshot.workflows.counters.update(
        {"dlq_pending": 7, "dlq_retrying": 2, "dlq_resolved": 5, "dlq_overflow": 3}
    )
    text = record(snapshot, ViewState(status="live"))
    assert "dead letters pending" in text and "2 / 5" in text
    assert "DLQ FULL: not queued" in text
    assert "DLQ FULL" not in record(given_snapshot(), ViewState(status="live"))


def test_workflows_waiting_for_signals_are_shown() -> None:
    snapshot = given_snapshot()
    view = ViewState(endpoint="127.0.0.1:7002", status="live", refresh_s=1.0, bytes_per_update=3000)
    assert "for signal" not in record(snapshot, view)  # nothing waits: no row
    snapshot.workflows.waiting_by_signal.update({"approval": 12, "webhook": 3})
    text = record(snapshot, view)
    row = next(line for line in text.splitlines() if "for signal" in line)
    assert "waiting" in row and "15" in row and "approval 12" in row, row
    assert "webhook 3" in text  # the names may wrap onto the next line of a narrow panel
    assert snapshot_to_dict(snapshot)["workflows"]["waiting_by_signal"] == {"approval": 12, "webhook": 3}


def test_sagas_show_compensated_and_failed_compensations() -> None:
    snapshot = given_snapshot()
    assert "compensated" not in record(snapshot, ViewState(status="live"))
    snapshot.workflows.counters.update({"compensated": 12, "compensation_failed": 1})
    text = record(snapshot, ViewState(status="live"))
    row = next(line for line in text.splitlines() if "compensated" in line)
    assert "12" in row and "compensation failed" in row and "1" in row, row
