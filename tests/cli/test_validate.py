"""``beamctl workflow validate`` and ``beamctl workflow schema``: offline (no cluster), exit 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml
from typer.testing import CliRunner

from beamctl.main import app
from tests.harness import REPO_ROOT

WORKFLOWS = sorted(str(p) for p in (REPO_ROOT / "deploy" / "workflows").glob("*.yaml"))
runner = CliRunner()

#: Legal but suspicious: both branches joined with all_success (never runs), a wait without a timeout,
#: retries without max_interval.
SUSPICIOUS = """
name: suspicious
steps:
  - {id: a, run: noop, retry: {max_attempts: 5}}
  - id: c
    run: choice
    needs: [a]
    with:
      cases: [{when: "${{ input.x }}", next: b}]
      default: d
  - {id: b, run: noop, needs: [c]}
  - {id: d, run: noop, needs: [c]}
  - {id: join, run: noop, needs: [b, d]}
  - {id: after, run: noop, needs: [join]}
  - {id: ok-join, run: noop, needs: [b, d], needs_policy: any}
  - {id: hook, run: wait, needs: [ok-join], with: {signal: go}}
  - {id: each, run: noop, needs: [hook], for_each: "${{ input.items }}"}
"""


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_every_example_is_valid_even_strictly() -> None:
    result = runner.invoke(app, ["workflow", "validate", *WORKFLOWS, "--strict"])
    assert result.exit_code == 0, result.output
    assert result.output.count(": valid") == len(WORKFLOWS)


def test_warnings_exit_1_only_under_strict_and_name_step_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "suspicious.yaml", SUSPICIOUS)
    assert runner.invoke(app, ["workflow", "validate", path]).exit_code == 0
    result = runner.invoke(app, ["-o", "json", "workflow", "validate", path, "--strict"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["exit_code"] == 1
    found = {(w["step"], w["field"]) for w in data["files"][0]["warnings"]}
    assert found == {
        ("join", "needs"),
        ("after", "needs"),
        ("hook", "with.timeout"),
        ("a", "retry.max_interval"),
        ("each", "concurrency"),
    }, found
    messages = " ".join(w["message"] for w in data["files"][0]["warnings"])
    assert "branches b and d of choice 'c'" in messages and "its need 'join' can never run" in messages


def test_errors_exit_2_with_the_servers_message(tmp_path: Path) -> None:
    good = _write(tmp_path, "good.yaml", "name: ok\nsteps: [{id: a, run: noop}]\n")
    bad = _write(tmp_path, "bad.yaml", "name: bad\nsteps: [{id: a, run: choice, with: {cases: []}}]\n")
    result = runner.invoke(app, ["workflow", "validate", good, bad, str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2, result.output
    assert f"error: {bad}: step 'a': field 'with.default': a choice must have a default" in result.output
    assert "missing.yaml: cannot read" in result.output and f"{good}: valid" in result.output
    data = json.loads(runner.invoke(app, ["-o", "json", "workflow", "validate", bad]).stdout)
    assert data["files"][0]["errors"][0]["field"] == "with.default" and data["exit_code"] == 2


def test_schema_prints_a_draft_2020_12_schema_that_examples_satisfy() -> None:
    result = runner.invoke(app, ["workflow", "schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    validator = jsonschema.Draft202012Validator(schema)
    for path in WORKFLOWS:
        assert not list(validator.iter_errors(yaml.safe_load(Path(path).read_text()))), path
