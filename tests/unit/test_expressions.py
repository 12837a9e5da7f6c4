"""``${{ ... }}`` expressions: typed whole values, text interpolation, static reference analysis."""

from __future__ import annotations

from typing import Any

import pytest

from beamflowd.core.expressions import (
    ExpressionError,
    compile_all,
    expression_load,
    is_expression,
    referenced_steps,
    resolve,
)

SCOPE: dict[str, Any] = {
    "input": {"name": "Ada", "n": 3, "tags": ["a", "b"]},
    "steps": {"fetch": {"rows": [1, 2]}, "validate-identity": {"ok": True}},
}


def test_is_expression() -> None:
    assert is_expression("hi ${{ input.name }}")
    assert not is_expression("plain")
    assert not is_expression(3)


def test_whole_value_keeps_json_type() -> None:
    assert resolve("${{ input.n }}", SCOPE) == 3
    assert resolve("  ${{ steps.fetch.rows }}  ", SCOPE) == [1, 2]
    assert resolve('${{ steps."validate-identity".ok }}', SCOPE) is True
    assert resolve("${{ input.missing }}", SCOPE) is None


def test_interpolation_renders_text() -> None:
    assert resolve("Hello, ${{ input.name }}!", SCOPE) == "Hello, Ada!"
    assert resolve("${{ input.n }}/${{ input.tags }}", SCOPE) == '3/["a","b"]'
    assert resolve("x=${{ input.missing }}", SCOPE) == "x=null"


def test_recurses_into_values_not_keys() -> None:
    value = {"${{ input.name }}": ["${{ input.n }}", {"k": "${{ input.name }}"}], "lit": 1}
    assert resolve(value, SCOPE) == {"${{ input.name }}": [3, {"k": "Ada"}], "lit": 1}


def test_expression_containing_closing_braces() -> None:
    assert resolve("${{ {a: {b: input.n}} }}", SCOPE) == {"a": {"b": 3}}


@pytest.mark.parametrize(
    "bad", ["${{ input. }}", "${{ }}", "${{ input.name", "x ${{ [ }}", "${{ " + "a." * 600 + "a }}"]
)
def test_syntax_errors(bad: str) -> None:
    with pytest.raises(ExpressionError):
        compile_all({"p": [bad]})


def test_error_message_names_expression() -> None:
    with pytest.raises(ExpressionError, match=r"input\.\["):
        compile_all("${{ input.[ }}")


def test_runtime_error_is_expression_error() -> None:
    with pytest.raises(ExpressionError, match="length"):
        resolve("${{ length(input.n) }}", SCOPE)


def test_referenced_steps() -> None:
    value = {
        "a": "${{ steps.fetch.rows[0] }}",
        "b": ['x ${{ steps."validate-identity".ok }} ${{ input.name }}'],
        "c": "${{ sort_by(steps.sorted.items, &x) }} ${{ steps.piped | steps }}",
        "d": "${{ {x: steps.dict.a, y: [steps.listed]} }} ${{ input.steps.not_a_ref }}",
        "e": "${{ steps.proj[*].x }} ${{ steps.filt[?steps.relative].y }} ${{ @.steps.cur }}",
    }
    assert referenced_steps(value) == {
        "fetch", "validate-identity", "sorted", "piped", "dict", "listed", "proj", "filt", "cur",
    }  # fmt: skip
    assert referenced_steps("${{ input.x }}") == set()
    assert referenced_steps("no expressions") == set()


@pytest.mark.parametrize("whole", ["${{ steps }}", "${{ steps.* }}", "${{ @ }}", "${{ steps | keys(@) }}"])
def test_reading_all_steps_is_rejected(whole: str) -> None:
    with pytest.raises(ExpressionError, match="named step"):
        referenced_steps(whole)


def test_closing_braces_inside_quotes_do_not_end_the_expression() -> None:
    assert resolve("${{ join('}}', [input.name, 'x']) }}", SCOPE) == "Ada}}x"
    assert resolve('${{ {"}}": input.n} }}', SCOPE) == {"}}": 3}
    assert resolve('${{ `"}}"` }}!', SCOPE) == "}}!"


def test_text_after_an_expression_may_hold_closing_braces() -> None:
    assert resolve("${{ input.name }}}}", SCOPE) == "Ada}}"


def test_an_expression_longer_than_the_limit_is_refused_without_scanning_on() -> None:
    text = "${{ {a: b" + " " * 2_000 + "}}" * 50_000
    with pytest.raises(ExpressionError, match="longer than"):
        compile_all(text)


def test_expression_load_counts_before_compiling() -> None:
    assert expression_load({"a": ["${{ x }} ${{ y }}", "plain"], "b": "${{ z"}) == (3, 22)
