"""The format's JSON Schema (``beamctl workflow schema``) against the parser: every example passes both, and
the schema refuses a sample of what the parser refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from beamflowd.core.format_schema import workflow_schema
from beamflowd.core.spec import SpecError, parse_workflow

WORKFLOWS = Path(__file__).resolve().parents[2] / "deploy" / "workflows"
VALIDATOR = jsonschema.Draft202012Validator(workflow_schema())

GOOD_STEP: dict[str, Any] = {"id": "a", "run": "noop"}
CHOICE = {
    "id": "c",
    "run": "choice",
    "needs": ["a"],
    "with": {"cases": [{"when": "${{ input.x }}", "next": "b"}], "default": "d"},
}
BRANCHES = [{"id": "b", "run": "noop", "needs": ["c"]}, {"id": "d", "run": "noop", "needs": ["c"]}]


def test_the_schema_is_a_valid_draft_2020_12_schema_and_plain_json() -> None:
    jsonschema.Draft202012Validator.check_schema(workflow_schema())
    assert json.loads(json.dumps(workflow_schema())) == workflow_schema()


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_validates_against_the_schema(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    errors = [e.message for e in VALIDATOR.iter_errors(doc)]
    assert errors == [], errors
    parse_workflow(path.read_text(), source=path.name)


def _wf(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "wf", **top, "steps": list(steps)}


REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("no name", {"steps": [GOOD_STEP]}),
    ("no steps", {"name": "wf"}),
    ("empty steps", _wf()),
    ("unknown top key", _wf(GOOD_STEP, retries=3)),
    ("bad name", {"name": "9 lives", "steps": [GOOD_STEP]}),
    ("unknown step key", _wf({**GOOD_STEP, "retires": 3})),
    ("bad step id", _wf({"id": "-a", "run": "noop"})),
    ("no run", _wf({"id": "a"})),
    ("unknown kind", _wf({"id": "a", "run": "teleport"})),
    ("bare number timeout", _wf({**GOOD_STEP, "timeout": 5})),
    ("bad duration", _wf({**GOOD_STEP, "timeout": "5 parsecs"})),
    ("max_attempts 0", _wf({**GOOD_STEP, "retry": {"max_attempts": 0}})),
    ("max_attempts true", _wf({**GOOD_STEP, "retry": {"max_attempts": True}})),
    ("unknown jitter", _wf({**GOOD_STEP, "retry": {"jitter": "lots"}})),
    ("unknown preset", _wf({**GOOD_STEP, "retry": {"preset": "fast"}})),
    ("unknown retry key", _wf({**GOOD_STEP, "retry": {"attempts": 3}})),
    ("needs not ids", _wf(GOOD_STEP, {"id": "b", "run": "noop", "needs": [1]})),
    ("when not an expression", _wf(GOOD_STEP, {"id": "b", "run": "noop", "needs": "a", "when": "true"})),
    (
        "unknown needs_policy",
        _wf(GOOD_STEP, {"id": "b", "run": "noop", "needs": "a", "needs_policy": "most"}),
    ),
    (
        "choice without default",
        _wf(GOOD_STEP, {**CHOICE, "with": {"cases": CHOICE["with"]["cases"]}}, *BRANCHES),
    ),
    ("choice without cases", _wf(GOOD_STEP, {**CHOICE, "with": {"cases": [], "default": "d"}}, *BRANCHES)),
    (
        "choice case without next",
        _wf(
            GOOD_STEP, {**CHOICE, "with": {"cases": [{"when": "${{ input.x }}"}], "default": "d"}}, *BRANCHES
        ),
    ),
    ("wait without signal", _wf({"id": "w", "run": "wait", "with": {"timeout": "1m"}})),
    ("wait without with", _wf({"id": "w", "run": "wait"})),
    ("wait bad signal", _wf({"id": "w", "run": "wait", "with": {"signal": "9x"}})),
    ("concurrency without for_each", _wf({**GOOD_STEP, "concurrency": 3})),
    ("for_each not an expression", _wf({**GOOD_STEP, "for_each": [1, 2]})),
    ("concurrency 0", _wf({**GOOD_STEP, "for_each": "${{ input.x }}", "concurrency": 0})),
    ("compensate without run", _wf({**GOOD_STEP, "compensate": {"with": {}}})),
    ("compensate with a choice", _wf({**GOOD_STEP, "compensate": {"run": "choice"}})),
    ("wait unknown key", _wf({"id": "w", "run": "wait", "with": {"signal": "s", "channel": "x"}})),
]


@pytest.mark.parametrize(("what", "doc"), REFUSED, ids=[what for what, _ in REFUSED])
def test_the_schema_refuses_what_the_parser_refuses(what: str, doc: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        parse_workflow(json.dumps(doc), source="x.json")
    assert list(VALIDATOR.iter_errors(doc)), f"the schema accepted {what}: {doc}"


def test_the_schema_accepts_the_new_keys_the_parser_accepts() -> None:
    doc = _wf(
        {**GOOD_STEP, "retry": {"preset": "api", "max_attempts": 6}},
        CHOICE,
        *BRANCHES,
        {"id": "j", "run": "noop", "needs": ["b", "d"], "needs_policy": "any", "when": "${{ input.x }}"},
        {
            "id": "w",
            "run": "wait",
            "needs": "j",
            "with": {"signal": "ok", "timeout": "1h", "schema": {"type": "object"}},
        },
    )
    parse_workflow(json.dumps(doc), source="x.json")
    assert [e.message for e in VALIDATOR.iter_errors(doc)] == []
