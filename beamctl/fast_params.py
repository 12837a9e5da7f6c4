"""Values that need no coercion skip typer's pydantic adapters: a plain command never loads pydantic.

Why: typer 0.29 coerces every parameter through a pydantic ``TypeAdapter``; importing pydantic and building
the adapters is about 100 ms of CPU of ``beamctl workflow get`` (docs/performance.md). A value that already
is what the parameter wants (a str for a str option, a float default within its range, an exact enum value)
is returned as is; anything else (a number typed on the command line, a value out of range, a path, a list,
a custom parser) goes to typer's own coercion, built on first use, so conversions and error messages stay
exactly typer's. If typer's internals change shape, :func:`install` leaves the parameters alone.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from typer import _click

try:  # private to typer: without them, every parameter keeps typer's own coercion
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
except ImportError:  # pragma: no cover - another typer
    RuntimeParam = None  # type: ignore[assignment, misc]

_DEFER = object()


def _as_is(descriptor: Any, value: Any) -> Any:
    """``value`` itself when typer's coercion would return it unchanged (or the enum member); else _DEFER."""
    info = descriptor.parameter_info
    if descriptor.file_annotation is not None or getattr(info, "parser", None) is not None:
        return _DEFER
    if getattr(info, "click_type", None) is not None:
        return _DEFER
    annotation = descriptor.annotation
    if annotation is str:
        return value if isinstance(value, str) else _DEFER
    if annotation is float or annotation is int:
        if type(value) is not annotation or getattr(info, "clamp", False):
            return _DEFER
        low, high = getattr(info, "min", None), getattr(info, "max", None)
        in_range = (low is None or value >= low) and (high is None or value <= high)
        return value if in_range else _DEFER
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        if isinstance(value, annotation):
            return value
        members = annotation._value2member_map_
        if isinstance(value, str) and getattr(info, "case_sensitive", True) and value in members:
            return members[value]
    return _DEFER


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class FastRuntimeParam(RuntimeParam):
        """Returns values that need nothing done; builds typer's coercion for the rest on first use."""

        descriptor: TypeDescriptor
        annotation: Any
        parameter_info: Any
        full: list[RuntimeParam] = field(default_factory=list)  # typer's own, once built

        def _coerce_value(self, value: Any, param: Any, ctx: _click.Context) -> Any:
            fast = _as_is(self.descriptor, value)
            if fast is not _DEFER:
                return fast
            if not self.full:
                self.full.append(build_runtime_param(self.descriptor))
            return self.full[0]._coerce_value(value, param=param, ctx=ctx)


def install(command: _click.Command, help_option_names: Sequence[str] = ()) -> None:
    """Give every typer parameter of ``command`` and its subcommands the fast path (once).

    ``help_option_names`` (the root context's, which every subcommand inherits) lets the ``-h/--help`` option,
    which typer creates and caches on first parse, be created now with the same names and get it too.
    """
    if RuntimeParam is None:  # pragma: no cover - another typer
        return
    params = list(command.params)
    if help_option_names and getattr(command, "_help_option", "absent") is None:
        helper = command.get_help_option(_click.Context(command, help_option_names=list(help_option_names)))
        params += [helper] if helper is not None else []
    for param in params:
        if getattr(param, "_runtime_param", "absent") is None and hasattr(param, "type_descriptor"):
            descriptor = param.type_descriptor
            fast = FastRuntimeParam(
                descriptor=descriptor,
                annotation=descriptor.annotation,
                parameter_info=descriptor.parameter_info,
            )
            setattr(param, "_runtime_param", fast)  # noqa: B010 - typer's private slot
    for child in getattr(command, "commands", {}).values():
        install(child, help_option_names)
