"""beamctl's fast parameter path returns exactly what typer's own coercion returns, or lets typer decide.

Each case builds a real typer option, then coerces the same value through the fast path and through typer's
pydantic adapter: results (and types) must be equal, and values that need work must go to typer unchanged.
"""

import enum
from typing import Annotated, Any

import pytest
import typer
import typer.main
from typer import _click
from typer._coercion import build_runtime_param

from beamctl import fast_params


class Colour(enum.StrEnum):
    red = "red"
    blue = "blue"


def _option(annotation: Any, default: Any, **option: Any) -> Any:
    app = typer.Typer(add_completion=False)

    @app.command()
    def one(value: Annotated[annotation, typer.Option("--value", **option)] = default) -> None:  # type: ignore[valid-type]
        """A command with one option."""

    command = typer.main.get_command(app)
    fast_params.install(command)
    return command, command.params[0]


CASES = [
    (str, None, {}, "text"),
    (str, None, {}, ""),
    (float, 10.0, {"min": 0.1}, 10.0),
    (float, 10.0, {"min": 0.1}, "2.5"),  # typed on the command line: typer's adapter parses it
    (float, 10.0, {"min": 0.1, "max": 20}, 20.0),
    (int, 3, {"min": 1}, 3),
    (int, 3, {"min": 1}, "7"),
    (Colour, Colour.red, {}, Colour.blue),
    (Colour, Colour.red, {}, "blue"),
]


@pytest.mark.parametrize(("annotation", "default", "option", "value"), CASES)
def test_fast_path_agrees_with_typer(
    annotation: Any, default: Any, option: dict[str, Any], value: Any
) -> None:
    command, param = _option(annotation, default, **option)
    ctx = _click.Context(command)
    expected = build_runtime_param(param.type_descriptor).coerce(value, param=param, ctx=ctx)
    got = param.get_runtime_param().coerce(value, param=param, ctx=ctx)
    assert isinstance(param.get_runtime_param(), fast_params.FastRuntimeParam)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("annotation", "default", "option", "value"),
    [
        (float, 10.0, {"min": 0.1}, 0.01),
        (float, 10.0, {"min": 0.1}, "bogus"),
        (Colour, Colour.red, {}, "green"),
    ],
)
def test_values_typer_refuses_are_refused_with_typers_message(
    annotation: Any, default: Any, option: dict[str, Any], value: Any
) -> None:
    command, param = _option(annotation, default, **option)
    ctx = _click.Context(command)
    with pytest.raises(typer.BadParameter) as typer_error:
        build_runtime_param(param.type_descriptor).coerce(value, param=param, ctx=ctx)
    with pytest.raises(typer.BadParameter) as fast_error:
        param.get_runtime_param().coerce(value, param=param, ctx=ctx)
    assert fast_error.value.message == typer_error.value.message


def test_values_that_need_no_work_skip_pydantic() -> None:
    assert fast_params._as_is(_option(str, None)[1].type_descriptor, "x") == "x"
    assert fast_params._as_is(_option(float, 1.0, min=0.1)[1].type_descriptor, 0.01) is fast_params._DEFER
    assert fast_params._as_is(_option(float, 1.0, min=0.1)[1].type_descriptor, "2") is fast_params._DEFER
