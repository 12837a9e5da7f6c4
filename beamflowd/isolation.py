"""What user code may call, and how whatever it hands back is bounded before it can reach a command.

Shared by the daemon (submit checks, the worker pool's second check) and the worker process (first check), so
it imports nothing heavier than ``json`` and ``re``: the worker must start fast and small.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from beamflowd.core import vocabulary

#: Largest error message carried into a command, in UTF-8 bytes.
MAX_ERROR_MESSAGE_BYTES = 2 * 1024
#: Longest error class, in characters (the retry policy's ``non_retryable`` has the same limit).
MAX_ERROR_CLASS_CHARS = 64
#: Largest encoded step output (the same cap as ``beamflowd.steps.base.MAX_OUTPUT_BYTES``).
MAX_OUTPUT_BYTES = 64 * 1024

#: Classes the engine itself produces (core/vocabulary.py). A worker failure is one of ``crashed``,
#: ``timeout`` or ``memory``; all three are retried like ``transient`` unless the policy lists them.
ENGINE_ERROR_CLASSES = vocabulary.ENGINE_ERROR_CLASSES
#: A class a step function may name itself (``card_declined``): a short plain identifier; anything else (an
#: object, an Enum, a 10 KiB string, control characters) becomes ``unknown``.
_CLASS_RE = re.compile(rf"^[A-Za-z][A-Za-z0-9_.-]{{0,{MAX_ERROR_CLASS_CHARS - 1}}}$")

#: Top-level packages whose functions are never step functions, whatever ``python_modules`` says: they end the
#: worker, run code or programs, or reach past the sandbox (the engine's own packages included).
NEVER_CALLABLE = frozenset(
    {
        "builtins",
        "sys",
        "os",
        "posix",
        "nt",
        "subprocess",
        "shutil",
        "ctypes",
        "_ctypes",
        "importlib",
        "runpy",
        "signal",
        "_signal",
        "multiprocessing",
        "_multiprocessing",
        "_posixsubprocess",
        "_thread",
        "threading",
        "concurrent",
        "asyncio",
        "socket",
        "_socket",
        "pty",
        "code",
        "codeop",
        "pdb",
        "pickle",
        "_pickle",
        "marshal",
        "gc",
        "resource",
        "faulthandler",
        "atexit",
        "io",
        "_io",
        "tempfile",
        "pathlib",
        "webbrowser",
        "beamflowd",
        "beamctl",
    }
)

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_PATTERN_RE = re.compile(rf"^{_IDENT}(\.{_IDENT})*(\.\*)?$")


class ModulePolicy:
    """``python_modules`` of a node: ``mypkg`` allows that module, ``mypkg.*`` every module below it.

    Empty by default: a node runs no user code until its operator names the packages it trusts.
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = tuple(patterns)
        for pattern in self.patterns:
            if not _PATTERN_RE.match(pattern):
                raise ValueError(f"python_modules: expected 'pkg', 'pkg.mod' or 'pkg.*', got {pattern!r}")
        self._exact = frozenset(p for p in self.patterns if not p.endswith(".*"))
        self._prefixes = tuple(p[:-1] for p in self.patterns if p.endswith(".*"))  # "pkg.*" -> "pkg."

    def refusal(self, function: str) -> str | None:
        """Why ``module:attr`` may not be called on this node, or None if it may."""
        module, sep, attr = function.partition(":")
        if not sep or not module or not attr:
            return f"expected 'package.module:function', got {function!r}"
        if module.split(".")[0] in NEVER_CALLABLE:
            return f"module {module!r} is never callable from a python step"
        if any(part.startswith("__") for part in attr.split(".")):
            return f"{function!r}: dunder attributes are not callable from a python step"
        if module in self._exact or module.startswith(self._prefixes):
            return None
        allowed = ", ".join(self.patterns) if self.patterns else "none"
        return f"module {module!r} is not in this node's python_modules (allowed: {allowed})"


def bound_text(value: Any, limit_bytes: int) -> str:
    """Any value as a str of at most ``limit_bytes`` UTF-8 bytes; never raises (a ``__str__`` may)."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = str(value)
        except Exception:  # a hostile __str__: fall back to the type name, which is always a str
            text = f"<unprintable {type(value).__name__}>"
        if not isinstance(text, str):  # str() of a str subclass is fine; anything else is not
            text = f"<unprintable {type(value).__name__}>"
    text = str.__str__(text)  # a str subclass (with its own methods) becomes a plain str
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) <= limit_bytes:
        return encoded.decode("utf-8")
    marker = "... [truncated]"
    return encoded[: limit_bytes - len(marker)].decode("utf-8", errors="ignore") + marker


def bound_message(value: Any) -> str:
    return bound_text(value, MAX_ERROR_MESSAGE_BYTES)


def bound_error_class(value: Any) -> str:
    """A plain str of at most 64 characters: an engine class, a well-formed name, or ``unknown``."""
    if type(value) is not str:
        return "unknown"
    if value in ENGINE_ERROR_CLASSES or _CLASS_RE.match(value):
        return value
    return "unknown"


class OutputError(ValueError):
    """An output that cannot be stored: not plain JSON, or over the cap."""


def encode_bounded_output(value: Any) -> str:
    """Compact, deterministic JSON of at most 64 KiB (the form outputs take in the log)."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise OutputError(f"step output is not JSON-serializable: {bound_text(exc, 300)}") from None
    size = len(text.encode("utf-8"))
    if size > MAX_OUTPUT_BYTES:
        raise OutputError(
            f"step output is {size} bytes encoded, over the limit of {MAX_OUTPUT_BYTES} bytes (64 KiB): "
            "store large data elsewhere and return a reference"
        )
    return text
