"""``beamctl bench load`` against a real 3-node cluster: the JSON figures, CPU per workflow, ``--compare``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from beamctl.main import app
from tests.harness import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]

THREE_STEPS = (
    "name: three\nsteps:\n  - id: a\n    run: noop\n  - id: b\n    run: noop\n  - id: c\n    run: noop\n"
)
TOTAL = 20

runner = CliRunner()


def bench(cluster: Cluster, workflow: Path, *extra: str) -> Any:
    args = ["--endpoints", cluster.endpoints, "--timeout", "5", "bench", "load", "-w", str(workflow)]
    result = runner.invoke(
        app, [*args, "--rate", "200", "--total", str(TOTAL), "--timeout-wait", "60s", *extra]
    )
    assert result.exit_code == 0, (
        f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def test_bench_reports_figures_cpu_per_workflow_and_compares(cluster: Cluster, tmp_path: Path) -> None:
    workflow = tmp_path / "three.yaml"
    workflow.write_text(THREE_STEPS, encoding="utf-8")

    first: dict[str, Any] = json.loads(bench(cluster, workflow, "-o", "json").stdout)
    assert (first["submitted"], first["completed"], first["unfinished"]) == (TOTAL, TOTAL, 0)
    assert first["throughput_per_second"] > 0
    for key in ("submit_ms", "end_to_end_ms"):
        assert 0 < first[key]["p50"] <= first[key]["p95"] <= first[key]["p99"] <= first[key]["max"]
    cpu = first["cpu"]
    assert sorted(cpu["nodes"]) == sorted(cluster.nodes) and cpu["unmeasured_nodes"] == []
    assert all(seconds >= 0 for seconds in cpu["nodes"].values())
    assert cpu["seconds"] > 0 and cpu["ms_per_workflow"] == pytest.approx(
        cpu["seconds"] * 1000 / TOTAL, rel=0.01
    )
    assert "compare" not in first

    earlier = tmp_path / "before.json"
    earlier.write_text(json.dumps(first), encoding="utf-8")
    second: dict[str, Any] = json.loads(
        bench(cluster, workflow, "-o", "json", "--compare", str(earlier)).stdout
    )
    ratios = second["compare"]["ratios"]
    assert second["compare"]["file"] == str(earlier)
    for name in ("throughput_per_second", "submit_ms.p50", "end_to_end_ms.p99", "cpu.ms_per_workflow"):
        assert ratios[name] > 0, name
    expected = second["throughput_per_second"] / first["throughput_per_second"]
    assert ratios["throughput_per_second"] == pytest.approx(expected, rel=0.01)

    table = bench(cluster, workflow, "--compare", str(earlier)).stdout
    assert "ms CPU per workflow" in table and f"vs {earlier}" in table and "throughput_per_second" in table


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"submit_ms": 3}', "'submit_ms' missing or not an object"),
        (
            '{"throughput_per_second": "fast", "submit_ms": {}, "end_to_end_ms": {}, "cpu": {}}',
            "is not a number",
        ),
    ],
)
def test_compare_refuses_a_file_that_is_not_a_result(tmp_path: Path, content: str, message: str) -> None:
    """Checked before any submit: a wrong --compare file fails with exit 2 and changes nothing."""
    workflow = tmp_path / "three.yaml"
    workflow.write_text(THREE_STEPS, encoding="utf-8")
    earlier = tmp_path / "before.json"
    earlier.write_text(content, encoding="utf-8")
    args = ["--endpoints", "127.0.0.1:1", "bench", "load", "-w", str(workflow), "-r", "1", "-n", "1"]
    result = runner.invoke(app, [*args, "--compare", str(earlier)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "--compare" in result.stderr
