"""A Typer group whose subcommands are imported only when they run.

Why: ``beamctl --help`` or ``beamctl workflow get`` should not pay for grpc, the checker, chaos and every
other command module (scripts call the CLI in loops; etcdctl-class tools start in tens of milliseconds).
The command tree is declared once, as a table of :class:`LazyCommand` (module, attribute, one-line summary);
listing it (root ``--help``, completion of the command name) reads only the table, running or helping a
subcommand imports its module and builds the real Click command, exactly as ``add_typer`` would have.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import typer
import typer.main
from typer import _click
from typer.core import TyperCommand, TyperGroup

from beamctl import fast_params


class LazyCommand(NamedTuple):
    """One subcommand: ``attribute`` of ``module`` is a ``typer.Typer`` (a group) or a command function."""

    module: str
    attribute: str
    summary: str
    epilog: str | None = None


def build(
    name: str, entry: LazyCommand, markup_mode: Any, help_option_names: Sequence[str] = ()
) -> _click.Command:
    """Import the module and build the Click command the way ``add_typer``/``app.command`` would."""
    target = getattr(importlib.import_module(entry.module), entry.attribute)
    if isinstance(target, typer.Typer):
        command: _click.Command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False, rich_markup_mode=markup_mode)
        single.command(name, epilog=entry.epilog)(target)
        command = typer.main.get_command(single)
    command.name = name
    _inherit_markup(command, markup_mode)
    fast_params.install(command, help_option_names)
    return command


def _inherit_markup(command: _click.Command, markup_mode: Any) -> None:
    """Sub-apps mounted with ``add_typer`` render help in the root's markup mode; keep that."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = markup_mode
    for child in getattr(command, "commands", {}).values():
        _inherit_markup(child, markup_mode)


class LazyGroup(TyperGroup):
    """The root group: ``lazy`` (set by a subclass) maps each subcommand name to where it lives."""

    lazy: Mapping[str, LazyCommand] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._summaries_only = False

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return [*self.lazy, *(name for name in super().list_commands(ctx) if name not in self.lazy)]

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        loaded = self.commands.get(cmd_name)
        if loaded is not None or cmd_name not in self.lazy:
            return loaded
        entry = self.lazy[cmd_name]
        if self._summaries_only:  # a listing needs the name and the line of help, not the module
            return TyperCommand(name=cmd_name, help=entry.summary)
        command = build(cmd_name, entry, self.rich_markup_mode, ctx.help_option_names if ctx else ())
        self.commands[cmd_name] = command
        return command

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        # Here, not in __init__: typer appends the completion options later.
        fast_params.install(self, ctx.help_option_names)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        self._summaries_only = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._summaries_only = False

    def shell_complete(self, ctx: _click.Context, incomplete: str) -> list[Any]:
        self._summaries_only = True
        try:
            return super().shell_complete(ctx, incomplete)
        finally:
            self._summaries_only = False
