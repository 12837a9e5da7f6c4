"""Workflow definitions: the immutable model and the parser that validates a file into it.

Everything a definition can get wrong is caught here, at submit time, with a message naming the file, step and
field, so a workflow never fails halfway through because of a typo. The model is plain data (``to_plain``) so
it can travel in Raft commands and snapshots without pickling our classes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, NoReturn

import yaml

from beamflowd.core import expressions
from beamflowd.core.durations import parse_duration
from beamflowd.core.step_params import (
    CHOICE_KIND,
    STEP_KIND_NAMES,
    WAIT_KIND,
    ParamError,
    choice_targets,
    validate_params,
    waits_for,
)
from beamflowd.core.vocabulary import NEEDS_ALL_SUCCESS, NEEDS_POLICIES

MAX_DEFINITION_BYTES = 256 * 1024
MAX_INPUT_BYTES = 64 * 1024
#: Nesting of workflow input. Deeper documents would exhaust the stack of whatever walks them later
#: (expressions, pickling, digests); real inputs are a few levels deep.
MAX_INPUT_DEPTH = 64
MAX_STEPS = 200

#: Bounds that keep a hostile definition (YAML aliases, deep nesting) from exhausting memory or the stack.
MAX_PARAM_DEPTH = 32
MAX_PARAM_NODES = 50_000
MAX_DESCRIPTION_CHARS = 4_096
MAX_ERROR_CLASS_CHARS = 64
#: Expressions in one definition. Each costs a JMESPath compile (~50-100 us), so this bounds validation
#: time (tests/bench/validation.py); real definitions have dozens.
MAX_EXPRESSIONS = 500
#: Characters of strings holding expressions, per definition (JMESPath compiles a few MB/s).
MAX_EXPRESSION_TEXT_CHARS = 64 * 1024

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
_STEP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
JITTER_MODES = ("full", "equal", "none")
#: The patterns above, for the format's JSON Schema (core/format_schema.py).
WORKFLOW_NAME_RE = _NAME
STEP_ID_RE = _STEP_ID

_WORKFLOW_KEYS = ("name", "description", "timeout", "retry", "steps", "output")
_STEP_KEYS = (
    "id",
    "run",
    "with",
    "needs",
    "retry",
    "timeout",
    "when",
    "needs_policy",
    "for_each",
    "concurrency",
    "breaker",
    "compensate",
    "deadline",
)
_COMPENSATE_KEYS = ("run", "with", "retry", "timeout")
#: A breaker's name (``breaker: payments``).
BREAKER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
#: Items of one ``for_each`` (each is a committed result): beyond, the step fails (permanent).
FOR_EACH_ITEMS_MAX = 1_000
#: Instances of one ``for_each`` running at once, at most; default when unset.
FOR_EACH_CONCURRENCY_MAX = 100
FOR_EACH_CONCURRENCY_DEFAULT = 10
_RETRY_KEYS = (
    "preset",
    "max_attempts",
    "initial_interval",
    "max_interval",
    "backoff_rate",
    "jitter",
    "non_retryable",
)


class SpecError(ValueError):
    """A definition or input that cannot be accepted; ``str()`` is the user-facing message."""

    def __init__(
        self, *, source: str, reason: str, step: str | None = None, field: str | None = None
    ) -> None:
        self.source = source
        self.step = step
        self.field = field
        self.reason = reason
        where = [source]
        if step is not None:
            where.append(f"step '{step}'")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(": ".join([*where, reason]))

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only __init__: teach pickle how to rebuild us (errors may cross process boundaries).
        return (_rebuild_spec_error, (self.source, self.reason, self.step, self.field))


def _rebuild_spec_error(source: str, reason: str, step: str | None, field: str | None) -> SpecError:
    return SpecError(source=source, reason=reason, step=step, field=field)


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed step is retried; see :mod:`beamflowd.core.backoff` for the schedule."""

    max_attempts: int = 3
    initial_interval_ms: int = 1000
    backoff_rate: float = 2.0
    max_interval_ms: int = 30_000
    jitter: str = "equal"
    non_retryable: tuple[str, ...] = ()

    def to_plain(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "initial_interval_ms": self.initial_interval_ms,
            "backoff_rate": self.backoff_rate,
            "max_interval_ms": self.max_interval_ms,
            "jitter": self.jitter,
            "non_retryable": list(self.non_retryable),
        }

    @classmethod
    def from_plain(cls, d: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            max_attempts=int(d["max_attempts"]),
            initial_interval_ms=int(d["initial_interval_ms"]),
            backoff_rate=float(d["backoff_rate"]),
            max_interval_ms=int(d["max_interval_ms"]),
            jitter=str(d["jitter"]),
            non_retryable=tuple(d["non_retryable"]),
        )


@dataclass(frozen=True)
class CompensateSpec:
    """A step's compensation: a step kind and params of its own, with its own retry policy and timeout."""

    run: str
    params: Mapping[str, Any]
    retry: RetryPolicy
    timeout_ms: int | None

    def to_plain(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "params": _copy_json(self.params),
            "retry": self.retry.to_plain(),
            "timeout_ms": self.timeout_ms,
        }

    @classmethod
    def from_plain(cls, d: Mapping[str, Any]) -> CompensateSpec:
        return cls(
            run=str(d["run"]),
            params=_copy_json(d["params"]),
            retry=RetryPolicy.from_plain(d["retry"]),
            timeout_ms=None if d["timeout_ms"] is None else int(d["timeout_ms"]),
        )


@dataclass(frozen=True)
class StepSpec:
    """One node of the DAG. ``params`` is the file's ``with`` mapping: JSON-able, may hold expressions."""

    id: str
    run: str
    params: Mapping[str, Any]
    needs: tuple[str, ...]
    retry: RetryPolicy
    timeout_ms: int | None
    #: ``${{ <JMESPath> }}`` evaluated once the needs are done: false skips the step. None: always runs.
    when: str | None = None
    #: How the needs decide whether the step runs (``NEEDS_POLICIES`` in core/vocabulary.py).
    needs_policy: str = NEEDS_ALL_SUCCESS
    #: ``${{ <list expression> }}``: one instance of the step per item (``${{ item }}``, ``${{ index }}``).
    for_each: str | None = None
    #: Instances of a ``for_each`` running at once (None: FOR_EACH_CONCURRENCY_DEFAULT).
    concurrency: int | None = None
    #: The circuit breaker its attempts go through (None: an http step's host, else none).
    breaker: str | None = None
    #: What undoes it if the workflow fails for good after it succeeded (saga); None: nothing to undo.
    compensate: CompensateSpec | None = None
    #: Bound on the step across all its attempts (and their retry waits), from its first attempt's start;
    #: None: none. Distinct from ``timeout_ms``, which bounds one attempt.
    deadline_ms: int | None = None

    def to_plain(self) -> dict[str, Any]:
        plain: dict[str, Any] = {
            "id": self.id,
            "run": self.run,
            "params": _copy_json(self.params),
            "needs": list(self.needs),
            "retry": self.retry.to_plain(),
            "timeout_ms": self.timeout_ms,
        }
        # Absent when unused, so definitions without conditions keep their content address (spec_digest).
        if self.when is not None:
            plain["when"] = self.when
        if self.needs_policy != NEEDS_ALL_SUCCESS:
            plain["needs_policy"] = self.needs_policy
        if self.for_each is not None:
            plain["for_each"] = self.for_each
        if self.concurrency is not None:
            plain["concurrency"] = self.concurrency
        if self.breaker is not None:
            plain["breaker"] = self.breaker
        if self.compensate is not None:
            plain["compensate"] = self.compensate.to_plain()
        if self.deadline_ms is not None:
            plain["deadline_ms"] = self.deadline_ms  # absent: the same content address as before
        return plain

    @classmethod
    def from_plain(cls, d: Mapping[str, Any]) -> StepSpec:
        when = d.get("when")
        return cls(
            id=str(d["id"]),
            run=str(d["run"]),
            params=_copy_json(d["params"]),
            needs=tuple(d["needs"]),
            retry=RetryPolicy.from_plain(d["retry"]),
            timeout_ms=None if d["timeout_ms"] is None else int(d["timeout_ms"]),
            when=None if when is None else str(when),
            needs_policy=str(d.get("needs_policy", NEEDS_ALL_SUCCESS)),
            for_each=None if d.get("for_each") is None else str(d["for_each"]),
            concurrency=None if d.get("concurrency") is None else int(d["concurrency"]),
            breaker=None if d.get("breaker") is None else str(d["breaker"]),
            compensate=None if d.get("compensate") is None else CompensateSpec.from_plain(d["compensate"]),
            deadline_ms=None if d.get("deadline_ms") is None else int(d["deadline_ms"]),
        )

    @cached_property
    def branches(self) -> tuple[str, ...]:
        """The steps a ``choice`` step picks from (empty for other kinds)."""
        return choice_targets(self.params) if self.run == CHOICE_KIND else ()

    @cached_property
    def signal(self) -> str | None:
        """The signal a ``wait`` step waits for (None for other kinds)."""
        return waits_for(self.run, self.params)


@dataclass(frozen=True)
class WorkflowSpec:
    """A validated workflow: steps in file order, each with its effective (merged) retry policy."""

    name: str
    description: str
    timeout_ms: int | None
    retry: RetryPolicy
    steps: tuple[StepSpec, ...]
    #: The workflow's result: a JSON value with expressions over ``input`` and ``steps``; None: the outputs
    #: of its sink steps (see :func:`workflow_result`).
    output: Any = None
    _by_id: dict[str, StepSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {s.id: s for s in self.steps})

    def step(self, step_id: str) -> StepSpec:
        """The step named ``step_id``; KeyError if there is none."""
        return self._by_id[step_id]

    def to_plain(self) -> dict[str, Any]:
        """Canonical JSON-able form: every field explicit, durations in ms, retry policies resolved."""
        return {
            "name": self.name,
            "description": self.description,
            "timeout_ms": self.timeout_ms,
            "retry": self.retry.to_plain(),
            "steps": [s.to_plain() for s in self.steps],
        } | ({"output": _copy_json(self.output)} if self.output is not None else {})  # absent: same hash

    @classmethod
    def from_plain(cls, d: Mapping[str, Any]) -> WorkflowSpec:
        """Inverse of :meth:`to_plain`. Trusts its input (it came from ``to_plain``), so it is cheap."""
        return cls(
            name=str(d["name"]),
            description=str(d["description"]),
            timeout_ms=None if d["timeout_ms"] is None else int(d["timeout_ms"]),
            retry=RetryPolicy.from_plain(d["retry"]),
            steps=tuple(StepSpec.from_plain(s) for s in d["steps"]),
            output=_copy_json(d["output"]) if d.get("output") is not None else None,
        )


def _copy_json(value: Any) -> Any:
    """A fresh copy of a JSON-able value, so callers cannot mutate a frozen spec through it."""
    if isinstance(value, Mapping):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy_json(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------------- parsing


class _Errors:
    """Raises SpecErrors for one source; keeps call sites short."""

    def __init__(self, source: str) -> None:
        self.source = source
        #: Expressions seen so far in this definition (bounded by MAX_EXPRESSIONS).
        self.expressions = 0
        self.expression_chars = 0

    def fail(self, reason: str, *, step: str | None = None, field: str | None = None) -> NoReturn:
        raise SpecError(source=self.source, reason=reason, step=step, field=field)


class _DuplicateKey(Exception):
    def __init__(self, key: object, line: int | None) -> None:
        super().__init__(key, line)
        self.key = key
        self.line = line


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Safe loader that refuses duplicate mapping keys (YAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list | dict):
                continue  # unhashable: let the base class report it
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key, None)
        result[key] = value
    return result


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _load_document(text: str, err: _Errors) -> Any:
    """JSON first (fast, and JSON is YAML anyway), then YAML; duplicate keys are errors in both."""
    try:
        return json.loads(text, object_pairs_hook=_json_pairs, parse_constant=_reject_constant)
    except _DuplicateKey as dup:
        err.fail(f"duplicate key {dup.key!r}")
    except (ValueError, RecursionError):
        pass
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except _DuplicateKey as dup:
        err.fail(f"duplicate key {dup.key!r} at line {dup.line}")
    except yaml.YAMLError as exc:
        err.fail(f"malformed YAML: {_yaml_message(exc)}")
    except RecursionError:
        err.fail("malformed YAML: nested too deeply")


def _yaml_message(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or exc.context or "syntax error"
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
        return str(problem)
    return " ".join(str(exc).split())


def _text_size_check(text: str, limit: int, what: str, err: _Errors) -> None:
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > limit:
        err.fail(f"{what} is {size} bytes, over the limit of {limit} bytes")


def _check_keys(
    value: Mapping[Any, Any], allowed: tuple[str, ...], err: _Errors, *, step: str | None, prefix: str = ""
) -> None:
    for key in value:
        if key not in allowed:
            err.fail(
                f"unknown key (allowed: {', '.join(sorted(allowed))})", step=step, field=f"{prefix}{key}"
            )


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _short(value: object) -> str:
    """A bounded description of a bad value (the repr of a YAML alias bomb would be enormous)."""
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return f"a {_type_name(value)}"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (isinstance(value, int | float)) and not isinstance(value, bool)


def _duration(value: object, err: _Errors, *, step: str | None, field: str, positive: bool) -> int:
    try:
        millis = parse_duration(value)
    except ValueError as exc:
        err.fail(str(exc), step=step, field=field)
    if positive and millis <= 0:
        err.fail("must be a positive duration", step=step, field=field)
    return millis


#: ``retry: {preset: NAME}``: attempts / initial interval / max interval (and jitter) of common integrations,
#: as the showcase had them. Laid over the inherited policy; fields given next to ``preset`` override it.
RETRY_PRESETS: dict[str, dict[str, Any]] = {
    "aggressive": {"max_attempts": 5, "initial_interval_ms": 1_000, "max_interval_ms": 15_000},
    "conservative": {"max_attempts": 3, "initial_interval_ms": 2_000, "max_interval_ms": 30_000},
    "patient": {"max_attempts": 10, "initial_interval_ms": 5_000, "max_interval_ms": 300_000},
    "email": {"max_attempts": 5, "initial_interval_ms": 2_000, "max_interval_ms": 60_000},
    "api": {"max_attempts": 4, "initial_interval_ms": 500, "max_interval_ms": 10_000},
    "database": {"max_attempts": 3, "initial_interval_ms": 100, "max_interval_ms": 2_000, "jitter": "none"},
    "payment": {"max_attempts": 3, "initial_interval_ms": 1_000, "max_interval_ms": 10_000},
    "none": {"max_attempts": 1},
}


def _parse_retry(value: object, base: RetryPolicy, err: _Errors, *, step: str | None) -> RetryPolicy:
    """Overlay the fields given in ``value`` on ``base`` (the workflow default), field by field; a
    ``preset`` first, then the fields given beside it."""
    if value is None:
        return base
    if not isinstance(value, Mapping):
        err.fail(f"must be a mapping of retry fields, got {_type_name(value)}", step=step, field="retry")
    _check_keys(value, _RETRY_KEYS, err, step=step, prefix="retry.")
    if "preset" in value:
        preset = value["preset"]
        if not isinstance(preset, str) or preset not in RETRY_PRESETS:
            err.fail(
                f"must be one of {', '.join(RETRY_PRESETS)}, got {_short(preset)}",
                step=step,
                field="retry.preset",
            )
        base = replace(base, **RETRY_PRESETS[preset])
    changes: dict[str, Any] = {}
    if "max_attempts" in value:
        attempts = value["max_attempts"]
        if not _is_int(attempts) or not 1 <= attempts <= 100:
            err.fail(
                f"must be an integer from 1 to 100, got {_short(attempts)}",
                step=step,
                field="retry.max_attempts",
            )
        changes["max_attempts"] = attempts
    for key in ("initial_interval", "max_interval"):
        if key in value:
            changes[f"{key}_ms"] = _duration(value[key], err, step=step, field=f"retry.{key}", positive=False)
    if "backoff_rate" in value:
        rate = value["backoff_rate"]
        if not _is_number(rate) or not math.isfinite(rate) or not 1.0 <= rate <= 100.0:
            err.fail(
                f"must be a number from 1.0 to 100, got {_short(rate)}", step=step, field="retry.backoff_rate"
            )
        changes["backoff_rate"] = float(rate)
    if "jitter" in value:
        jitter = value["jitter"]
        if jitter not in JITTER_MODES:
            err.fail(
                f"must be one of {', '.join(JITTER_MODES)}, got {_short(jitter)}",
                step=step,
                field="retry.jitter",
            )
        changes["jitter"] = jitter
    if "non_retryable" in value:
        changes["non_retryable"] = _error_classes(value["non_retryable"], err, step=step)
    policy = replace(base, **changes)
    if policy.max_interval_ms < policy.initial_interval_ms:
        err.fail(
            f"must be >= initial_interval ({policy.initial_interval_ms}ms), got {policy.max_interval_ms}ms",
            step=step,
            field="retry.max_interval",
        )
    return policy


def _error_classes(value: object, err: _Errors, *, step: str | None) -> tuple[str, ...]:
    if not isinstance(value, list):
        err.fail(
            f"must be a list of error classes, got {_type_name(value)}",
            step=step,
            field="retry.non_retryable",
        )
    classes: list[str] = []
    for item in value:
        if not isinstance(item, str) or not 0 < len(item) <= MAX_ERROR_CLASS_CHARS:
            err.fail(
                f"error classes must be non-empty strings of at most {MAX_ERROR_CLASS_CHARS} characters,"
                f" got {_short(item)}",
                step=step,
                field="retry.non_retryable",
            )
        if item not in classes:
            classes.append(item)
    return tuple(classes)


def _check_json(value: object, err: _Errors, *, step: str | None, path: str) -> None:
    """Params must be plain JSON (YAML can produce dates, sets, recursive aliases) and reasonably small."""
    stack: list[tuple[object, str, int]] = [(value, path, 0)]
    nodes = 0
    while stack:
        item, where, depth = stack.pop()
        nodes += 1
        if nodes > MAX_PARAM_NODES:
            err.fail(f"too large: more than {MAX_PARAM_NODES} values", step=step, field=path)
        if depth > MAX_PARAM_DEPTH:
            err.fail(f"nested deeper than {MAX_PARAM_DEPTH} levels", step=step, field=where)
        if item is None or isinstance(item, str | bool | int):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                err.fail(f"{item!r} is not a JSON number", step=step, field=where)
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    err.fail(f"keys must be strings, got {_short(key)} (quote it)", step=step, field=where)
                stack.append((sub, f"{where}.{key}", depth + 1))
        elif isinstance(item, list):
            stack.extend((sub, f"{where}[{i}]", depth + 1) for i, sub in enumerate(item))
        else:
            err.fail(
                f"{_type_name(item)} value {_short(item)} is not JSON (quote it)", step=step, field=where
            )


def _check_expressions(params: Mapping[str, Any], err: _Errors, *, step: str) -> dict[str, str]:
    """Compile every expression; return the steps they read, each with the first param that reads it."""
    refs: dict[str, str] = {}
    for key, value in params.items():
        count, chars = expressions.expression_load(value)
        err.expressions += count
        err.expression_chars += chars
        if err.expressions > MAX_EXPRESSIONS or err.expression_chars > MAX_EXPRESSION_TEXT_CHARS:
            err.fail(
                f"more than {MAX_EXPRESSIONS} expressions or {MAX_EXPRESSION_TEXT_CHARS} characters of"
                " strings with expressions in this definition (move the logic into a python step)",
                step=step,
                field=f"with.{key}",
            )
        try:
            # Compiles every expression too (one pass over a possibly large value).
            for ref in sorted(expressions.referenced_steps(value)):
                refs.setdefault(ref, f"with.{key}")
        except expressions.ExpressionError as exc:
            err.fail(str(exc), step=step, field=f"with.{key}")
    return refs


def _validate_params(kind_name: str, params: Mapping[str, Any], err: _Errors, *, step: str) -> None:
    if kind_name not in STEP_KIND_NAMES:
        err.fail(
            f"unknown step kind {_short(kind_name)} (known: {', '.join(STEP_KIND_NAMES)})",
            step=step,
            field="run",
        )
    try:
        validate_params(kind_name, params)
    except ParamError as exc:
        err.fail(exc.message, step=step, field=f"with.{exc.field}")


@dataclass
class _RawStep:
    spec: StepSpec
    refs: dict[str, str]  # step id read by an expression -> the param holding it


def _parse_step(index: int, raw: object, default_retry: RetryPolicy, err: _Errors) -> _RawStep:
    if not isinstance(raw, Mapping):
        err.fail(
            f"steps[{index}] must be a mapping with 'id' and 'run', got {_type_name(raw)}", field="steps"
        )
    step_id = raw.get("id")
    if step_id is None:
        err.fail(f"steps[{index}] has no 'id'", field="steps")
    if not isinstance(step_id, str) or not _STEP_ID.match(step_id):
        err.fail(
            f"steps[{index}]: id {_short(step_id)} must match {_STEP_ID.pattern}"
            " (a letter, then letters, digits, '_' or '-')",
            field="id",
        )
    _check_keys(raw, _STEP_KEYS, err, step=step_id)
    run = raw.get("run")
    if run is None:
        err.fail("missing required field", step=step_id, field="run")
    if not isinstance(run, str):
        err.fail(f"must be a step kind name, got {_type_name(run)}", step=step_id, field="run")
    params = raw.get("with")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        err.fail(f"must be a mapping of params, got {_type_name(params)}", step=step_id, field="with")
    _check_json(params, err, step=step_id, path="with")
    refs = _check_expressions(params, err, step=step_id)
    _validate_params(run, params, err, step=step_id)
    when = _parse_when(raw.get("when"), refs, err, step=step_id)
    for_each = _parse_when(raw.get("for_each"), refs, err, step=step_id, field="for_each")
    concurrency = raw.get("concurrency")
    if concurrency is not None:
        if for_each is None:
            err.fail("only a for_each step has a concurrency", step=step_id, field="concurrency")
        if not _is_int(concurrency) or not 1 <= concurrency <= FOR_EACH_CONCURRENCY_MAX:
            err.fail(
                f"must be an integer from 1 to {FOR_EACH_CONCURRENCY_MAX}, got {_short(concurrency)}",
                step=step_id,
                field="concurrency",
            )
    breaker = raw.get("breaker")
    if breaker is not None and (not isinstance(breaker, str) or not BREAKER_NAME_RE.match(breaker)):
        err.fail(
            f"must match {BREAKER_NAME_RE.pattern}, got {_short(breaker)}", step=step_id, field="breaker"
        )
    if breaker is not None and run in (CHOICE_KIND, WAIT_KIND, "sleep", "noop"):
        err.fail(f"a {run} step calls nothing: it has no breaker", step=step_id, field="breaker")
    compensate = _parse_compensate(raw.get("compensate"), default_retry, refs, err, step=step_id)
    if for_each is not None and run in (CHOICE_KIND, WAIT_KIND, "sleep"):
        err.fail(f"a {run} step cannot fan out", step=step_id, field="for_each")
    needs = _parse_needs(raw.get("needs"), err, step=step_id)
    needs_policy = raw.get("needs_policy", NEEDS_ALL_SUCCESS)
    if needs_policy not in NEEDS_POLICIES:
        err.fail(
            f"must be one of {', '.join(NEEDS_POLICIES)}, got {_short(needs_policy)}",
            step=step_id,
            field="needs_policy",
        )
    if needs_policy != NEEDS_ALL_SUCCESS and not needs:
        err.fail("a step without needs has no needs to apply a policy to", step=step_id, field="needs_policy")
    return _RawStep(
        spec=StepSpec(
            id=step_id,
            run=run,
            params=_copy_json(params),
            needs=needs,
            retry=_parse_retry(raw.get("retry"), default_retry, err, step=step_id),
            timeout_ms=(
                None
                if raw.get("timeout") is None
                else _duration(raw["timeout"], err, step=step_id, field="timeout", positive=True)
            ),
            when=when,
            needs_policy=needs_policy,
            for_each=for_each,
            concurrency=concurrency,
            breaker=breaker,
            compensate=compensate,
            deadline_ms=(
                None
                if raw.get("deadline") is None
                else _duration(raw["deadline"], err, step=step_id, field="deadline", positive=True)
            ),
        ),
        refs=refs,
    )


def _parse_compensate(
    value: object, default_retry: RetryPolicy, refs: dict[str, str], err: _Errors, *, step: str
) -> CompensateSpec | None:
    """``compensate: {run, with, retry, timeout}``; its expressions may read the step itself and upstream."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        err.fail(f"must be a mapping with 'run', got {_type_name(value)}", step=step, field="compensate")
    _check_keys(value, _COMPENSATE_KEYS, err, step=step, prefix="compensate.")
    run = value.get("run")
    if not isinstance(run, str) or run in (CHOICE_KIND, WAIT_KIND):
        err.fail(
            f"must be a step kind that runs something, got {_short(run)}", step=step, field="compensate.run"
        )
    params = value.get("with") or {}
    if not isinstance(params, dict):
        err.fail(f"must be a mapping of params, got {_type_name(params)}", step=step, field="compensate.with")
    _check_json(params, err, step=step, path="compensate.with")
    for ref, where in _check_expressions(params, err, step=step).items():
        if ref != step:  # a compensation may read its own step's output
            refs.setdefault(ref, f"compensate.{where}")
    try:
        if run not in STEP_KIND_NAMES:
            raise ParamError("run", f"unknown step kind {_short(run)} (known: {', '.join(STEP_KIND_NAMES)})")
        validate_params(run, params)
    except ParamError as exc:
        field = "compensate.run" if exc.field == "run" else f"compensate.with.{exc.field}"
        err.fail(exc.message, step=step, field=field)
    timeout = value.get("timeout")
    return CompensateSpec(
        run=run,
        params=_copy_json(params),
        retry=_parse_retry(value.get("retry"), default_retry, err, step=step),
        timeout_ms=None
        if timeout is None
        else _duration(timeout, err, step=step, field="compensate.timeout", positive=True),
    )


def _parse_when(
    value: object, refs: dict[str, str], err: _Errors, *, step: str, field: str = "when"
) -> str | None:
    """A condition (or a for_each list) is exactly one expression; the steps it reads are added to ``refs``
    (they must be upstream)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > expressions.MAX_EXPRESSION_CHARS + 16:
        err.fail(
            f"must be one expression '${{{{ <JMESPath> }}}}', got {_short(value)}", step=step, field=field
        )
    err.expressions += 1
    err.expression_chars += len(value)
    try:
        single = expressions.is_single_expression(value)
        found = expressions.referenced_steps(value)
    except expressions.ExpressionError as exc:
        err.fail(str(exc), step=step, field=field)
    if not single:
        err.fail(
            f"must be one expression '${{{{ <JMESPath> }}}}', got {_short(value)}", step=step, field=field
        )
    for ref in sorted(found):
        refs.setdefault(ref, field)
    return value


def _parse_needs(value: object, err: _Errors, *, step: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        err.fail(f"must be a step id or a list of step ids, got {_short(value)}", step=step, field="needs")
    needs: list[str] = []
    for item in items:
        if item == step:
            err.fail("a step cannot need itself", step=step, field="needs")
        if item not in needs:
            needs.append(item)
    return tuple(needs)


def _check_graph(steps: list[_RawStep], err: _Errors) -> None:
    """Unknown needs, cycles (reported as a path), and expressions reading steps that are not upstream."""
    by_id = {s.spec.id: s.spec for s in steps}
    for s in steps:
        for need in s.spec.needs:
            if need not in by_id:
                err.fail(f"needs unknown step {need!r}", step=s.spec.id, field="needs")
    _check_acyclic(by_id, err)
    _check_branches(steps, by_id, err)
    upstream: dict[str, set[str]] = {}

    def ancestors(step_id: str) -> set[str]:
        # Memoised and acyclic (checked above); recursion depth <= MAX_STEPS.
        if step_id not in upstream:
            found: set[str] = set()
            for need in by_id[step_id].needs:
                found.add(need)
                found |= ancestors(need)
            upstream[step_id] = found
        return upstream[step_id]

    for s in steps:
        before = ancestors(s.spec.id)
        for ref, where in s.refs.items():
            if ref not in by_id:
                err.fail(f"expression reads unknown step {ref!r}", step=s.spec.id, field=where)
            if ref not in before:
                err.fail(
                    f"expression reads step {ref!r}, which is not upstream: add it to 'needs'",
                    step=s.spec.id,
                    field=where,
                )


def _check_branches(steps: list[_RawStep], by_id: Mapping[str, StepSpec], err: _Errors) -> None:
    """Every branch of a ``choice`` is a direct dependent of it, named once, and owned by one choice only."""
    owner: dict[str, str] = {}
    for s in steps:
        choice = s.spec
        if choice.run != CHOICE_KIND:
            continue
        params = choice.params
        named = [(f"with.cases[{i}].next", case["next"]) for i, case in enumerate(params["cases"])]
        named.append(("with.default", params["default"]))
        seen: set[str] = set()
        for where, target in named:
            if target not in by_id:
                err.fail(f"branch {target!r} is not a step of this workflow", step=choice.id, field=where)
            if choice.id not in by_id[target].needs:
                err.fail(
                    f"branch {target!r} must be a direct dependent of this choice: add {choice.id!r} to its"
                    " 'needs'",
                    step=choice.id,
                    field=where,
                )
            if target in seen:
                err.fail(f"branch {target!r} is named twice in this choice", step=choice.id, field=where)
            seen.add(target)
            if target in owner:
                err.fail(
                    f"branch {target!r} is already a branch of choice {owner[target]!r} (overlapping branch"
                    " ownership)",
                    step=choice.id,
                    field=where,
                )
            owner[target] = choice.id


def _check_acyclic(by_id: Mapping[str, StepSpec], err: _Errors) -> None:
    """Iterative DFS in file order, so the reported cycle is deterministic."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in by_id:
        if root in state:
            continue
        path: list[str] = [root]
        iters = [iter(by_id[root].needs)]
        state[root] = 1
        while path:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
                continue
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                err.fail(f"cycle in needs: {' -> '.join(cycle)}", step=path[-1], field="needs")
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(by_id[nxt].needs))


def parse_workflow(text: str, *, source: str = "<definition>") -> WorkflowSpec:
    """Parse and fully validate a YAML or JSON definition; raise SpecError naming file, step and field."""
    err = _Errors(source)
    _text_size_check(text, MAX_DEFINITION_BYTES, "definition", err)
    doc = _load_document(text, err)
    if not isinstance(doc, Mapping):
        err.fail(f"the definition must be a mapping with 'name' and 'steps', got {_type_name(doc)}")
    _check_keys(doc, _WORKFLOW_KEYS, err, step=None)
    name = doc.get("name")
    if name is None:
        err.fail("missing required field", field="name")
    if not isinstance(name, str) or not _NAME.match(name):
        err.fail(f"must match {_NAME.pattern}, got {_short(name)}", field="name")
    description = doc.get("description")
    if description is None:
        description = ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS:
        err.fail(f"must be a string of at most {MAX_DESCRIPTION_CHARS} characters", field="description")
    timeout = doc.get("timeout")
    timeout_ms = (
        None if timeout is None else _duration(timeout, err, step=None, field="timeout", positive=True)
    )
    retry = _parse_retry(doc.get("retry"), RetryPolicy(), err, step=None)
    raw_steps = doc.get("steps")
    if raw_steps is None:
        err.fail("missing required field", field="steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        err.fail(f"must be a non-empty list of steps, got {_short(raw_steps)}", field="steps")
    if len(raw_steps) > MAX_STEPS:
        err.fail(f"{len(raw_steps)} steps, over the limit of {MAX_STEPS}", field="steps")
    steps: list[_RawStep] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_steps):
        parsed = _parse_step(index, raw, retry, err)
        if parsed.spec.id in seen:
            err.fail("duplicate step id", step=parsed.spec.id, field="id")
        seen.add(parsed.spec.id)
        steps.append(parsed)
    _check_graph(steps, err)
    output = doc.get("output")
    if output is not None:
        _check_output(output, seen, err)
    return WorkflowSpec(
        name=name,
        description=description,
        timeout_ms=timeout_ms,
        retry=retry,
        steps=tuple(s.spec for s in steps),
        output=output,
    )


def _check_output(output: object, step_ids: set[str], err: _Errors) -> None:
    """The ``output`` template: plain JSON whose expressions compile and read only steps that exist."""
    _check_json(output, err, step=None, path="output")
    try:
        refs = expressions.referenced_steps(output)
    except expressions.ExpressionError as exc:
        err.fail(str(exc), field="output")
    unknown = sorted(refs - step_ids)
    if unknown:
        err.fail(f"reads unknown steps: {', '.join(unknown)}", field="output")


def workflow_result(spec: WorkflowSpec, scope: Mapping[str, Any]) -> Any:
    """The result of a succeeded workflow: ``output`` resolved over ``scope`` (``input`` and ``steps``), or,
    without it, ``{sink_step_id: output}`` for the steps no other step needs. ValueError if it fails."""
    if spec.output is not None:
        return expressions.resolve(spec.output, scope)
    needed = {need for step in spec.steps for need in step.needs}
    return {step.id: scope["steps"].get(step.id) for step in spec.steps if step.id not in needed}


def load_document(text: str, *, source: str = "<definition>") -> Any:
    """The document as parsed (JSON or YAML, duplicate keys refused), before any validation."""
    return _load_document(text, _Errors(source))


def parse_input(text: str, *, source: str = "--input") -> Any:
    """Parse workflow input (JSON text; empty means ``{}``), within MAX_INPUT_BYTES."""
    err = _Errors(source)
    _text_size_check(text, MAX_INPUT_BYTES, "input", err)
    if not text.strip():
        return {}
    try:
        value = json.loads(text, object_pairs_hook=_json_pairs, parse_constant=_reject_constant)
    except _DuplicateKey as dup:
        err.fail(f"malformed JSON: duplicate key {dup.key!r}")
    except json.JSONDecodeError as exc:
        err.fail(f"malformed JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")
    except RecursionError:
        err.fail(f"nested deeper than {MAX_INPUT_DEPTH} levels")
    except ValueError as exc:
        err.fail(f"malformed JSON: {exc}")
    if _depth(value) > MAX_INPUT_DEPTH:
        err.fail(f"nested deeper than {MAX_INPUT_DEPTH} levels")
    return value


def _depth(value: object) -> int:
    """Levels of nested objects and arrays, without recursion (a scalar has 0, ``[]`` has 1)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, outer = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, outer + 1)
            stack.extend((sub, outer + 1) for sub in (item.values() if isinstance(item, dict) else item))
    return deepest


__all__ = [
    "MAX_DEFINITION_BYTES",
    "MAX_INPUT_BYTES",
    "MAX_INPUT_DEPTH",
    "MAX_STEPS",
    "RetryPolicy",
    "SpecError",
    "StepSpec",
    "WorkflowSpec",
    "parse_input",
    "parse_workflow",
    "workflow_result",
]
