"""What each step kind's ``with`` params mean: the static rules, shared by submit-time validation,
offline validation in ``beamctl`` and the kinds' run-time parsing.

These rules are deterministic (no I/O), so they live in the core: the spec parser, the scheduler (durable
timers) and the CLI use them without importing the I/O side of the step kinds (``beamflowd/steps/``).
Each ``parse_<kind>`` reads params with ``resolved=False`` at submit time (expressions are skipped, their
values are only known at run time) and ``resolved=True`` at run time (every value checked).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from beamflowd.core.durations import parse_duration
from beamflowd.core.signals import SIGNAL_NAME, schema_problem


class ParamError(ValueError):
    """A step's ``with`` params are invalid; ``field`` names the offending param (e.g. ``argv[0]``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def is_unresolved(value: object) -> bool:
    """True for an expression, whose value (and so type) is only known at run time."""
    return isinstance(value, str) and "${{" in value


class Params:
    """Typed reader over a step's ``with`` mapping, shared by ``validate`` (static) and ``run`` (resolved).

    With ``resolved=False`` a value that is an expression is skipped (readers return None); with
    ``resolved=True`` every value is checked, since expressions have been substituted.
    """

    def __init__(
        self,
        kind: str,
        params: Mapping[str, Any],
        allowed: Sequence[str],
        required: Sequence[str] = (),
        *,
        resolved: bool,
    ) -> None:
        if not isinstance(params, Mapping):
            raise ParamError("with", f"expected a mapping of parameters, got {type(params).__name__}")
        for key in params:
            if key not in allowed:
                hint = f"allowed: {', '.join(allowed)}" if allowed else "it takes no parameters"
                raise ParamError(str(key), f"unknown parameter for step kind {kind!r} ({hint})")
        for key in required:
            if key not in params:
                raise ParamError(key, f"required parameter for step kind {kind!r} is missing")
        self.kind = kind
        self.raw = params
        self.resolved = resolved

    def deferred(self, value: object) -> bool:
        """True if ``value`` must be skipped now because it is an unresolved expression."""
        return not self.resolved and is_unresolved(value)

    def get(self, field: str, default: Any = None) -> Any:
        """The raw value, unchecked (for params that take any JSON)."""
        return self.raw.get(field, default)

    def text(self, field: str, default: str | None = None) -> str | None:
        value = self.raw.get(field, default)
        if value is None or self.deferred(value):
            return None
        if not isinstance(value, str):
            raise ParamError(field, f"expected a string, got {_describe(value)}")
        return value

    def duration_ms(self, field: str, default: str | None = None) -> int | None:
        value = self.raw.get(field, default)
        if value is None or self.deferred(value):
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ParamError(field, str(exc)) from None

    def probability(self, field: str, default: float) -> float | None:
        value = self.raw.get(field, default)
        if self.deferred(value):
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamError(field, f"expected a number between 0 and 1, got {_describe(value)}")
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ParamError(field, f"expected a number between 0 and 1, got {value!r}")
        return float(value)

    def str_mapping(self, field: str) -> dict[str, str] | None:
        """A mapping of strings to strings (headers, env); values that are expressions are kept as-is."""
        value = self.raw.get(field)
        if value is None or self.deferred(value):
            return None
        if not isinstance(value, Mapping):
            raise ParamError(field, f"expected a mapping of strings, got {_describe(value)}")
        out: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ParamError(field, f"keys must be strings, got {_describe(key)}")
            if not isinstance(item, str):
                raise ParamError(f"{field}.{key}", f"expected a string, got {_describe(item)}")
            out[key] = item
        return out

    def mapping(self, field: str) -> Mapping[str, Any] | None:
        value = self.raw.get(field)
        if value is None or self.deferred(value):
            return None
        if not isinstance(value, Mapping):
            raise ParamError(field, f"expected a mapping, got {_describe(value)}")
        for key in value:
            if not isinstance(key, str):
                raise ParamError(field, f"keys must be strings, got {_describe(key)}")
        return value

    def str_list(self, field: str, *, non_empty: bool = False) -> list[str] | None:
        value = self.raw.get(field)
        if value is None or self.deferred(value):
            return None
        if not isinstance(value, list | tuple):
            raise ParamError(field, f"expected a list of strings, got {_describe(value)}")
        if non_empty and not value:
            raise ParamError(field, "must not be empty")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ParamError(f"{field}[{i}]", f"expected a string, got {_describe(item)}")
        return list(value)

    def int_list(self, field: str, *, lo: int, hi: int) -> list[int] | None:
        """A non-empty list of ints in [lo, hi]; elements that are expressions are skipped."""
        value = self.raw.get(field)
        if value is None or self.deferred(value):
            return None
        if not isinstance(value, list | tuple) or not value:
            raise ParamError(field, f"expected a non-empty list of integers, got {_describe(value)}")
        out: list[int] = []
        for i, item in enumerate(value):
            if self.deferred(item):
                continue
            if isinstance(item, bool) or not isinstance(item, int) or not lo <= item <= hi:
                raise ParamError(f"{field}[{i}]", f"expected an integer from {lo} to {hi}, got {item!r}")
            out.append(item)
        return out


# --------------------------------------------------------------------------------------------- the kinds
SLEEP_PARAMS = ("duration",)
DEMO_PARAMS = ("min_latency", "max_latency", "failure_rate", "timeout_rate", "error_class", "output", "score")
#: Bounds of a demo step's simulated ``score`` (e.g. a credit score).
DEMO_SCORE_MIN, DEMO_SCORE_MAX = 0, 1_000_000
PYTHON_PARAMS = ("function", "args")
EXEC_PARAMS = ("argv", "env", "cwd")
HTTP_PARAMS = ("method", "url", "headers", "json", "expect_status")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
PYTHON_FUNCTION_RE = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*$")


def parse_noop(params: Mapping[str, Any], *, resolved: bool) -> None:
    Params("noop", params, allowed=(), resolved=resolved)


def parse_sleep(params: Mapping[str, Any], *, resolved: bool) -> int | None:
    """The duration in ms (None while it is an unresolved expression)."""
    return Params(
        "sleep", params, allowed=SLEEP_PARAMS, required=SLEEP_PARAMS, resolved=resolved
    ).duration_ms("duration")


@dataclass(frozen=True)
class DemoParams:
    min_ms: int | None
    max_ms: int | None
    failure_rate: float | None
    timeout_rate: float | None
    error_class: str | None
    #: ``[lo, hi]``: the output gets a uniformly random integer ``score`` in that range (None: no score).
    score: tuple[int, int] | None = None


def parse_demo(params: Mapping[str, Any], *, resolved: bool) -> DemoParams:
    p = Params("demo", params, allowed=DEMO_PARAMS, resolved=resolved)
    cfg = DemoParams(
        min_ms=p.duration_ms("min_latency", "0ms"),
        max_ms=p.duration_ms("max_latency", "0ms"),
        failure_rate=p.probability("failure_rate", 0.0),
        timeout_rate=p.probability("timeout_rate", 0.0),
        error_class=p.text("error_class", "transient"),
    )
    if cfg.min_ms is not None and cfg.max_ms is not None and cfg.max_ms < cfg.min_ms:
        raise ParamError("max_latency", "must be greater than or equal to min_latency")
    if (
        cfg.failure_rate is not None
        and cfg.timeout_rate is not None
        and cfg.failure_rate + cfg.timeout_rate > 1.0 + 1e-9
    ):
        raise ParamError("failure_rate", "failure_rate + timeout_rate must not exceed 1")
    if cfg.error_class is not None and not cfg.error_class.strip():
        raise ParamError("error_class", "must not be empty")
    if "output" in params:
        try:
            json.dumps(params["output"], allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ParamError("output", f"must be a JSON value: {exc}") from None
        if "score" in params and not isinstance(params["output"], dict):
            raise ParamError("output", "must be an object when score is set (the score is added to it)")
    score = p.int_list("score", lo=DEMO_SCORE_MIN, hi=DEMO_SCORE_MAX)
    if score is not None:
        if len(score) != 2 or score[0] > score[1]:
            raise ParamError("score", f"expected [lo, hi] with lo <= hi, got {params['score']!r}")
        cfg = dataclasses.replace(cfg, score=(score[0], score[1]))
    return cfg


def parse_python(params: Mapping[str, Any], *, resolved: bool) -> tuple[str | None, Mapping[str, Any] | None]:
    """``(module:function, args)``."""
    p = Params("python", params, allowed=PYTHON_PARAMS, required=("function",), resolved=resolved)
    function = p.text("function")
    if function is not None and not PYTHON_FUNCTION_RE.match(function):
        raise ParamError("function", f"expected 'package.module:function', got {function!r}")
    return function, p.mapping("args")


def parse_exec(
    params: Mapping[str, Any], *, resolved: bool
) -> tuple[list[str] | None, dict[str, str] | None, str | None]:
    """``(argv, env, cwd)``."""
    p = Params("exec", params, allowed=EXEC_PARAMS, required=("argv",), resolved=resolved)
    argv = p.str_list("argv", non_empty=True)
    if argv is not None and not argv[0]:
        raise ParamError("argv[0]", "the program must not be empty")
    cwd = p.text("cwd")
    if cwd is not None and not cwd:
        raise ParamError("cwd", "must not be empty")
    return argv, p.str_mapping("env"), cwd


@dataclass(frozen=True)
class HttpParams:
    method: str | None
    url: str | None
    headers: dict[str, str] | None
    expect_status: list[int] | None


def parse_http(params: Mapping[str, Any], *, resolved: bool) -> HttpParams:
    p = Params("http", params, allowed=HTTP_PARAMS, required=("url",), resolved=resolved)
    method = p.text("method", "GET")
    if method is not None:
        method = method.upper()
        if method not in HTTP_METHODS:
            raise ParamError("method", f"unsupported method {method!r}; allowed: {', '.join(HTTP_METHODS)}")
    url = p.text("url")
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ParamError("url", f"expected an absolute http:// or https:// URL, got {url!r}")
    return HttpParams(
        method=method,
        url=url,
        headers=p.str_mapping("headers"),
        expect_status=p.int_list("expect_status", lo=100, hi=599),
    )


#: The step kind that picks one of its dependents as the branch to run (the others are skipped).
CHOICE_KIND = "choice"
CHOICE_PARAMS = ("cases", "default")
CHOICE_CASE_KEYS = ("when", "next")
#: Cases of one ``choice`` (each is a JMESPath compile at submit and an evaluation at run time).
CHOICE_CASES_MAX = 50


@dataclass(frozen=True)
class ChoiceParams:
    """``cases`` as ``(condition, next)`` pairs, in order (a condition is None while unresolved), and the
    ``default`` branch taken when no condition holds."""

    cases: tuple[tuple[object, str], ...]
    default: str

    @property
    def targets(self) -> tuple[str, ...]:
        """Every branch this choice may take: the cases' ``next`` then the default."""
        return (*(target for _, target in self.cases), self.default)


def parse_choice(params: Mapping[str, Any], *, resolved: bool) -> ChoiceParams:
    """Cases and default. ``next`` and ``default`` are literal step ids (the graph is checked at submit);
    before resolution each ``when`` must be an expression, after it any JSON value (JMESPath truthiness)."""
    if isinstance(params, Mapping) and "default" not in params:
        raise ParamError(
            "default", "a choice must have a default branch (the step to run when no case holds)"
        )
    p = Params(CHOICE_KIND, params, allowed=CHOICE_PARAMS, required=CHOICE_PARAMS, resolved=resolved)
    raw_cases = p.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise ParamError("cases", f"expected a non-empty list of {{when, next}}, got {_describe(raw_cases)}")
    if len(raw_cases) > CHOICE_CASES_MAX:
        raise ParamError("cases", f"{len(raw_cases)} cases, over the limit of {CHOICE_CASES_MAX}")
    cases: list[tuple[object, str]] = []
    for i, case in enumerate(raw_cases):
        where = f"cases[{i}]"
        if not isinstance(case, Mapping):
            raise ParamError(where, f"expected a mapping with 'when' and 'next', got {_describe(case)}")
        for key in case:
            if key not in CHOICE_CASE_KEYS:
                raise ParamError(f"{where}.{key}", "unknown key (allowed: next, when)")
        for key in CHOICE_CASE_KEYS:
            if key not in case:
                raise ParamError(f"{where}.{key}", "required key is missing")
        condition = case["when"]
        if not resolved and not is_unresolved(condition):
            raise ParamError(
                f"{where}.when", f"expected an expression '${{{{ ... }}}}', got {_describe(condition)}"
            )
        cases.append((condition if resolved else None, _branch_id(case["next"], f"{where}.next")))
    return ChoiceParams(tuple(cases), _branch_id(p.get("default"), "default"))


def _branch_id(value: object, field: str) -> str:
    if not isinstance(value, str) or is_unresolved(value) or not value:
        raise ParamError(field, f"expected the id of a step (literal, no expression), got {_describe(value)}")
    return value


def choice_targets(params: Mapping[str, Any]) -> tuple[str, ...]:
    """The branches of a validated ``choice`` step's params (its cases' ``next``, then ``default``)."""
    return parse_choice(params, resolved=False).targets


#: The step kind that waits for a signal (``beamctl workflow signal``); its payload becomes the output.
WAIT_KIND = "wait"
WAIT_PARAMS = ("signal", "timeout", "schema")


@dataclass(frozen=True)
class WaitParams:
    """The signal's name (literal), the durable timeout in ms (None: wait for ever, or unresolved) and the
    payload's JSON Schema (None: any JSON)."""

    signal: str
    timeout_ms: int | None
    schema: Mapping[str, Any] | None


def parse_wait(params: Mapping[str, Any], *, resolved: bool) -> WaitParams:
    p = Params(WAIT_KIND, params, allowed=WAIT_PARAMS, required=("signal",), resolved=resolved)
    signal = params.get("signal")
    if not isinstance(signal, str) or not SIGNAL_NAME.match(signal):
        raise ParamError(
            "signal",
            f"expected a literal signal name matching {SIGNAL_NAME.pattern}, got {_describe(signal)}",
        )
    timeout_ms = p.duration_ms("timeout")
    if timeout_ms is not None and timeout_ms <= 0:
        raise ParamError("timeout", "must be a positive duration")
    schema = params.get("schema")
    if schema is not None:
        if not isinstance(schema, Mapping):
            raise ParamError("schema", f"expected a JSON Schema object, got {_describe(schema)}")
        problem = schema_problem(schema)
        if problem is not None:
            raise ParamError("schema", problem)
    return WaitParams(signal, timeout_ms, schema)


def waits_for(kind: str, params: Mapping[str, Any]) -> str | None:
    """The signal a validated step waits for, or None if it is not a ``wait`` step."""
    return parse_wait(params, resolved=False).signal if kind == WAIT_KIND else None


#: Every step kind by name, with its static parameter check (``resolved=False``).
_VALIDATORS: Mapping[str, Callable[..., object]] = {
    CHOICE_KIND: parse_choice,
    WAIT_KIND: parse_wait,
    "noop": parse_noop,
    "sleep": parse_sleep,
    "demo": parse_demo,
    "python": parse_python,
    "http": parse_http,
    "exec": parse_exec,
}
STEP_KIND_NAMES: tuple[str, ...] = tuple(sorted(_VALIDATORS))


def validate_params(kind: str, params: Mapping[str, Any]) -> None:
    """Check ``params`` of a ``kind`` step statically; raise :class:`ParamError` (``KeyError`` if unknown)."""
    _VALIDATORS[kind](params, resolved=False)


def durable_delay_ms(kind: str, params: Mapping[str, Any]) -> int | None:
    """Delay the engine commits before running an attempt (a durable timer), from resolved params; or None.

    ``sleep`` wakes up then; a ``wait`` with a timeout gives up then (the step's committed deadline).
    Raises :class:`ParamError` if the resolved duration is invalid.
    """
    if kind == "sleep":
        return parse_sleep(params, resolved=True)
    if kind == WAIT_KIND:
        return parse_wait(params, resolved=True).timeout_ms
    return None


def _describe(value: object) -> str:
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
