"""Signals to ``wait`` steps: their names, limits and payload schemas, shared by the parser (a schema is
checked at submit), the API (a payload is checked before anything is proposed) and the state machine.

Payload schemas are JSON Schema draft 2020-12 (the ``jsonschema`` package). Validation is deterministic and
never fetches anything: a ``$ref`` to another document is an error, not a download.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import jsonschema
import jsonschema.exceptions
import referencing.exceptions

#: Signals buffered per workflow before a ``wait`` step takes them; beyond: RESOURCE_EXHAUSTED.
SIGNALS_BUFFERED_MAX: Final = 16
#: Size of one signal's payload (JSON text, UTF-8); beyond: RESOURCE_EXHAUSTED.
SIGNAL_PAYLOAD_BYTES_MAX: Final = 64 * 1024
#: Signal ids a workflow remembers (oldest forgotten first), so a retried signal is delivered once.
SIGNAL_IDS_MAX: Final = 64
#: A signal's name: what a ``wait`` step's ``signal`` and ``beamctl workflow signal ID NAME`` say.
SIGNAL_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
#: A signal's request id (client-chosen or generated).
SIGNAL_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why ``schema`` is not a valid draft 2020-12 schema, or None."""
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        return f"not a valid JSON Schema (draft 2020-12): {exc.message}"
    return None


def payload_problem(schema: Mapping[str, Any], payload: Any) -> str | None:
    """Why ``payload`` does not match ``schema`` (the first error, with its JSON path), or None."""
    validator = jsonschema.Draft202012Validator(schema)
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(payload))
    except referencing.exceptions.Unresolvable as exc:  # a $ref to another document: never fetched
        return f"the schema cannot be applied: {exc}"
    if error is None:
        return None
    return f"{error.json_path}: {error.message}"
