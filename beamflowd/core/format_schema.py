"""A JSON Schema (draft 2020-12) of the workflow format, for editors and CI (``beamctl workflow schema``).

Built from the parser's own constants (names, patterns, kinds, policies, presets), so it cannot drift from
them in those. It is an approximation from outside: it checks shapes, not the graph (cycles, upstream
references, choice branches), nor each kind's params beyond ``choice`` and ``wait``. The parser stays the
authority; ``tests/unit/test_format_schema.py`` checks every example against it and that it rejects a sample
of what the parser rejects.
"""

from __future__ import annotations

from typing import Any

from beamflowd.core.durations import DURATION_RE
from beamflowd.core.signals import SIGNAL_NAME
from beamflowd.core.spec import (
    BREAKER_NAME_RE,
    FOR_EACH_CONCURRENCY_MAX,
    JITTER_MODES,
    MAX_DESCRIPTION_CHARS,
    MAX_STEPS,
    RETRY_PRESETS,
    STEP_ID_RE,
    WORKFLOW_NAME_RE,
)
from beamflowd.core.step_params import CHOICE_CASES_MAX, CHOICE_KIND, STEP_KIND_NAMES, WAIT_KIND
from beamflowd.core.vocabulary import NEEDS_POLICIES

SCHEMA_ID = "urn:beamflow:workflow:v1"
_DURATION = {"type": "string", "pattern": DURATION_RE.pattern}
_EXPRESSION = {"type": "string", "pattern": r"^\s*\$\{\{.*\}\}\s*$"}


def _retry() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "preset": {"enum": list(RETRY_PRESETS)},
            "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
            "initial_interval": {"$ref": "#/$defs/duration"},
            "max_interval": {"$ref": "#/$defs/duration"},
            "backoff_rate": {"type": "number", "minimum": 1, "maximum": 100},
            "jitter": {"enum": list(JITTER_MODES)},
            "non_retryable": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 64}},
        },
    }


def _kind_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """``if run == kind then with must match params`` (and be present when params require keys)."""
    then: dict[str, Any] = {"properties": {"with": params}}
    if params.get("required"):
        then["required"] = ["with"]
    return {"if": {"properties": {"run": {"const": kind}}, "required": ["run"]}, "then": then}


def workflow_schema() -> dict[str, Any]:
    """The schema as a JSON-able dict."""
    step_id = {"type": "string", "pattern": STEP_ID_RE.pattern}
    choice = {
        "type": "object",
        "additionalProperties": False,
        "required": ["cases", "default"],
        "properties": {
            "cases": {
                "type": "array",
                "minItems": 1,
                "maxItems": CHOICE_CASES_MAX,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["when", "next"],
                    "properties": {"when": {"$ref": "#/$defs/expression"}, "next": step_id},
                },
            },
            "default": step_id,
        },
    }
    wait = {
        "type": "object",
        "additionalProperties": False,
        "required": ["signal"],
        "properties": {
            "signal": {"type": "string", "pattern": SIGNAL_NAME.pattern},
            "timeout": {"$ref": "#/$defs/duration"},
            "schema": {"type": "object"},
        },
    }
    step = {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "run"],
        "properties": {
            "id": step_id,
            "run": {"enum": list(STEP_KIND_NAMES)},
            "with": {"type": "object"},
            "needs": {"oneOf": [step_id, {"type": "array", "items": step_id}]},
            "retry": {"$ref": "#/$defs/retry"},
            "timeout": {"$ref": "#/$defs/duration"},
            "when": {"$ref": "#/$defs/expression"},
            "needs_policy": {"enum": list(NEEDS_POLICIES)},
            "for_each": {"$ref": "#/$defs/expression"},
            "concurrency": {"type": "integer", "minimum": 1, "maximum": FOR_EACH_CONCURRENCY_MAX},
            "breaker": {"type": "string", "pattern": BREAKER_NAME_RE.pattern},
            "compensate": {
                "type": "object",
                "additionalProperties": False,
                "required": ["run"],
                "properties": {
                    "run": {"enum": [k for k in STEP_KIND_NAMES if k not in (CHOICE_KIND, WAIT_KIND)]},
                    "with": {"type": "object"},
                    "retry": {"$ref": "#/$defs/retry"},
                    "timeout": {"$ref": "#/$defs/duration"},
                },
            },
        },
        "dependentRequired": {"concurrency": ["for_each"]},
        "allOf": [_kind_params(CHOICE_KIND, choice), _kind_params(WAIT_KIND, wait)],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "BEAMFlow workflow definition",
        "description": "See docs/workflow-format.md; the parser (beamflowd/core/spec.py) is the authority.",
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "steps"],
        "properties": {
            "name": {"type": "string", "pattern": WORKFLOW_NAME_RE.pattern},
            "description": {"type": "string", "maxLength": MAX_DESCRIPTION_CHARS},
            "timeout": {"$ref": "#/$defs/duration"},
            "retry": {"$ref": "#/$defs/retry"},
            "steps": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_STEPS,
                "items": {"$ref": "#/$defs/step"},
            },
        },
        "$defs": {"duration": _DURATION, "expression": _EXPRESSION, "retry": _retry(), "step": step},
    }
