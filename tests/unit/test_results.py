"""A workflow's result: the ``output`` template (validated at submit) or the outputs of its sink steps."""

from __future__ import annotations

import pytest

from beamflowd.core.spec import SpecError, WorkflowSpec, parse_workflow, workflow_result

WITH_OUTPUT = """
name: priced
steps:
  - {id: quote, run: noop}
  - {id: charge, run: noop, needs: quote}
output:
  receipt: "rcpt-${{ steps.charge.id }}"
  total: "${{ steps.quote.price }}"
  customer: "${{ input.customer }}"
"""

SINKS = """
name: diamond
steps:
  - {id: a, run: noop}
  - {id: left, run: noop, needs: a}
  - {id: right, run: noop, needs: a}
"""


def test_output_template_is_resolved_over_input_and_step_outputs() -> None:
    spec = parse_workflow(WITH_OUTPUT)
    scope = {"input": {"customer": "ada"}, "steps": {"quote": {"price": 12}, "charge": {"id": 7}}}
    assert workflow_result(spec, scope) == {"receipt": "rcpt-7", "total": 12, "customer": "ada"}
    again = WorkflowSpec.from_plain(spec.to_plain())
    assert again.output == spec.output and workflow_result(again, scope) == workflow_result(spec, scope)


def test_without_output_the_result_is_the_sink_steps_outputs() -> None:
    spec = parse_workflow(SINKS)
    assert "output" not in spec.to_plain(), "definitions without output keep their content hash"
    scope = {"input": {}, "steps": {"a": 1, "left": {"l": 1}, "right": [2]}}
    assert workflow_result(spec, scope) == {"left": {"l": 1}, "right": [2]}


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ('"${{ steps.nope.x }}"', "reads unknown steps: nope"),
        ('"${{ steps }}"', "must read a named step"),
        ('"${{ input.[ }}"', "output"),
        ("2026-01-01", "not JSON"),
    ],
)
def test_a_bad_output_is_refused_at_submit_naming_the_field(output: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_workflow(SINKS + f"output: {output}\n", source="w.yaml")
    assert "output" in str(err.value) and message in str(err.value)
