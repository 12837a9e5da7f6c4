"""Exit codes and the one exception type commands raise: every failure ends as one line and a known code."""

from __future__ import annotations

import enum
import functools
import sys
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

import typer


class ExitCode(enum.IntEnum):
    """Documented process exit codes (docs/cli.md); scripts branch on these, so never renumber them."""

    OK = 0
    WORKFLOW_FAILED = 1
    USAGE = 2
    NOT_FOUND = 3
    UNAVAILABLE = 4
    CONFLICT = 5
    PERMISSION = 6
    WAIT_TIMEOUT = 7
    INTERNAL = 10
    INTERRUPTED = 130


class CliError(Exception):
    """A user-facing failure, printed as ``beamctl: error: <message>``; ``code`` is the exit status."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def one_line(text: str) -> str:
    """Collapse whitespace so a multi-line server message still prints as a single stderr line."""
    return " ".join(text.split())


P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: ExitCode) -> NoReturn:
    """Print the one error line and exit with ``code``."""
    sys.stderr.write(f"beamctl: error: {one_line(message)}\n")
    sys.stderr.flush()
    raise typer.Exit(int(code))


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so no failure escapes as a traceback: each becomes one stderr line and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # Typer's own exits and usage errors already carry their code
        except CliError as err:
            fail(err.message, err.code)
        except KeyboardInterrupt:
            fail("interrupted", ExitCode.INTERRUPTED)
        except BrokenPipeError:
            # `beamctl ... | head`: the reader left; nothing useful to say.
            raise typer.Exit(int(ExitCode.OK)) from None
        except OSError as err:
            fail(f"I/O error: {err}", ExitCode.INTERNAL)
        except Exception as err:
            fail(f"internal error: {type(err).__name__}: {err}", ExitCode.INTERNAL)

    return wrapper
