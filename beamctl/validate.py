"""``beamctl workflow validate FILE...`` and ``beamctl workflow schema``: offline, no cluster needed.

Errors are the server's own validation (``beamflowd.core.spec.parse_workflow``, the same code); warnings are
the static audit (``beamflowd.core.audit``). Exit 0 valid, 1 only warnings under ``--strict``, 2 errors.
The one check the server adds is its node's ``python_modules`` allowlist, which is node configuration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from beamctl import output
from beamctl.output import OutputOption, output_format

# The parser, the audit and the schema (jsonschema, yaml: ~80 ms of start-up) are imported by the functions
# that use them: the `workflow` module registers these commands, and `workflow get` must not pay for them.

EXIT_VALID = 0
EXIT_WARNINGS = 1
EXIT_ERRORS = 2


def check_file(path: str) -> dict[str, Any]:
    """One file's verdict: ``{"file", "valid", "errors": [...], "warnings": [...]}``."""
    from beamflowd.core.audit import audit
    from beamflowd.core.spec import MAX_DEFINITION_BYTES, SpecError, parse_workflow

    errors: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_DEFINITION_BYTES + 1)  # bounded: the parser refuses anything larger anyway
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        errors.append({"step": None, "field": None, "message": f"{path}: cannot read: {err}"})
        return {"file": path, "valid": False, "errors": errors, "warnings": warnings}
    try:
        spec = parse_workflow(text, source=path)
    except SpecError as err:
        errors.append({"step": err.step, "field": err.field, "message": str(err)})
    else:
        for finding in audit(spec, text):
            warnings.append({**finding.to_plain(), "message": f"{path}: {finding}"})
    return {"file": path, "valid": not errors, "errors": errors, "warnings": warnings}


def validate(
    ctx: typer.Context,
    files: Annotated[
        list[str], typer.Argument(metavar="FILE...", help="Workflow definitions, YAML or JSON.")
    ],
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when there are warnings.")] = False,
    fmt: OutputOption = None,
) -> None:
    """Validate workflow files offline, with the server's own rules, and audit them.

    Exit 0 valid; 1 valid but with warnings under --strict; 2 any error. Warnings: a step that can never run,
    retries without max_interval, a wait without a timeout.
    Example: beamctl workflow validate deploy/workflows/*.yaml --strict
    """
    results = [check_file(path) for path in files]
    has_errors = any(r["errors"] for r in results)
    has_warnings = any(r["warnings"] for r in results)
    code = EXIT_ERRORS if has_errors else EXIT_WARNINGS if strict and has_warnings else EXIT_VALID
    if (out := output_format(ctx, fmt)) in output.DATA_FORMATS:
        output.emit_data({"files": results, "exit_code": code}, out)
    else:
        for result in results:
            for item in result["errors"]:
                output.line(f"error: {item['message']}")
            for item in result["warnings"]:
                output.line(f"warning: {item['message']}")
            if not result["errors"]:
                note = f" ({len(result['warnings'])} warnings)" if result["warnings"] else ""
                output.line(f"{result['file']}: valid{note}")
    raise typer.Exit(code)


def schema(
    ctx: typer.Context,
    fmt: OutputOption = None,
) -> None:
    """Print the JSON Schema (draft 2020-12) of the workflow format, for editors and CI.

    Shapes only: the graph rules (cycles, upstream references, choice branches) are validate's.
    Example: beamctl workflow schema > workflow.schema.json
    """
    from beamflowd.core.format_schema import workflow_schema

    out = output_format(ctx, fmt)
    if out in output.DATA_FORMATS and out != "json":
        output.emit_data(workflow_schema(), out)
    else:
        output.line(json.dumps(workflow_schema(), indent=2))
