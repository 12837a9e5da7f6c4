"""``${{ ... }}`` expressions in step params, evaluated with JMESPath.

We embed a well-known query language rather than inventing one, so authors can look the syntax up. The
scope an expression sees is ``{"input": <workflow input>, "steps": {<step id>: <output>}}``. A string that is
exactly one expression keeps the value's JSON type; otherwise each expression is rendered as text into it.

Static checks (``compile_all``, ``referenced_steps``) exist so a definition is rejected at submit time, not
when step 7 finally runs: the parser uses them to prove every referenced step is upstream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.parser

#: Longest expression (between ``${{`` and ``}}``) we accept; long queries belong in a ``python`` step.
MAX_EXPRESSION_CHARS = 1_000

_OPEN = "${{"
_CLOSE = "}}"

# Node types whose first child is evaluated in the parent's context and the rest relative to that child.
_LEFT_SPINE = frozenset(
    {"index_expression", "projection", "value_projection", "filter_projection", "flatten", "pipe"}
)
# Node types whose every child is evaluated in the parent's context.
_SAME_CONTEXT = frozenset(
    {
        "or_expression",
        "and_expression",
        "not_expression",
        "comparator",
        "multi_select_list",
        "multi_select_dict",
        "key_val_pair",
        "function_expression",
    }
)


class ExpressionError(ValueError):
    """A ``${{ ... }}`` expression that cannot be compiled or evaluated; the message names it."""


@dataclass(frozen=True, slots=True)
class _Template:
    """A compiled string: literal text and compiled expressions, in order."""

    parts: tuple[str | jmespath.parser.ParsedResult, ...]
    whole: bool  # the string is exactly one expression: keep the value's JSON type
    sources: tuple[str, ...]  # expression texts, for error messages and reference analysis


def is_expression(value: object) -> bool:
    """True for a string containing ``${{`` (it must then compile)."""
    return isinstance(value, str) and _OPEN in value


@lru_cache(maxsize=4096)
def _parse_expression(source: str) -> jmespath.parser.ParsedResult:
    text = source.strip()
    if not text:
        raise ExpressionError("empty expression '${{ }}'")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(
            f"expression '${{{{ {text[:40]}... }}}}' is {len(text)} characters long"
            f" (limit {MAX_EXPRESSION_CHARS})"
        )
    try:
        return jmespath.compile(text)
    except jmespath.exceptions.JMESPathError as err:
        raise ExpressionError(f"invalid expression '${{{{ {text} }}}}': {_one_line(err)}") from err


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


#: Templates up to this size are cached by text; longer ones are compiled each time (the cache must not be a
#: way to pin hundreds of MiB of definition text in memory).
CACHED_TEMPLATE_CHARS_MAX = 4_096
_QUOTES = frozenset("'\"`")
_SIGNIFICANT = re.compile(r"[{}'\"`\\]")


def _expression_end(text: str, body_start: int) -> int:
    """Index of the ``}}`` that closes the expression starting at ``body_start``, in one linear pass.

    Braces of JMESPath multi-select hashes (``{a: {b: c}}``) nest, and anything goes inside its three kinds
    of quotes (``'raw'``, ``"identifier"``, a backquoted literal; backslash escapes), so the first ``}}`` at
    brace depth 0 outside quotes closes it. Scanning stops past :data:`MAX_EXPRESSION_CHARS`, so a definition
    full of ``}}`` costs time linear in its size rather than one compile per candidate end.
    """
    depth = 0
    quote = ""
    limit = min(len(text), body_start + MAX_EXPRESSION_CHARS + 2 * len(_CLOSE))
    i = body_start
    # Jump from one character that matters to the next (the regex engine skips the rest in C).
    while (found := _SIGNIFICANT.search(text, i, limit)) is not None:
        i = found.start()
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in _QUOTES:
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0 and text.startswith(_CLOSE, i):
                return i
            depth = max(0, depth - 1)
        i += 1
    if limit < len(text):
        raise ExpressionError(
            f"expression '${{{{ {text[body_start : body_start + 40].strip()}... }}}}' is longer than"
            f" {MAX_EXPRESSION_CHARS} characters, or its closing '}}}}' is missing"
        )
    raise ExpressionError(
        f"unterminated expression in {_excerpt(text)}: '${{{{' without a closing '}}}}' (outside quotes)"
    )


def _excerpt(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:77] + "...")


def _compile_template(text: str) -> _Template:
    if len(text) <= CACHED_TEMPLATE_CHARS_MAX:
        return _compile_template_cached(text)
    return _compile_template_uncached(text)


def _compile_template_uncached(text: str) -> _Template:
    """Split ``text`` into literals and expressions: linear in ``len(text)``."""
    parts: list[str | jmespath.parser.ParsedResult] = []
    sources: list[str] = []
    pos = 0
    while (start := text.find(_OPEN, pos)) != -1:
        if start > pos:
            parts.append(text[pos:start])
        body_start = start + len(_OPEN)
        end = _expression_end(text, body_start)
        parts.append(_parse_expression(text[body_start:end]))
        sources.append(text[body_start:end].strip())
        pos = end + len(_CLOSE)
    if pos < len(text):
        parts.append(text[pos:])
    whole = len(sources) == 1 and len([p for p in parts if isinstance(p, str) and p.strip()]) == 0
    if whole:
        parts = [p for p in parts if not isinstance(p, str)]
    return _Template(parts=tuple(parts), whole=whole, sources=tuple(sources))


_compile_template_cached = lru_cache(maxsize=4096)(_compile_template_uncached)


def _walk_strings(value: object) -> list[str]:
    """Every string containing an expression inside ``value`` (dict values and list items, not keys)."""
    found: list[str] = []
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _OPEN in item:
                found.append(item)
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def expression_load(value: object) -> tuple[int, int]:
    """``(expressions, characters)`` in the strings of ``value`` that hold expressions.

    Cheap to compute, and checked against limits before anything is compiled: JMESPath compiles a few MB/s.
    """
    texts = _walk_strings(value)
    return sum(text.count(_OPEN) for text in texts), sum(len(text) for text in texts)


def is_single_expression(text: str) -> bool:
    """True if ``text`` is exactly one ``${{ ... }}`` (surrounding spaces aside), so it keeps its JSON type;
    raises ExpressionError if it does not compile."""
    return _OPEN in text and _compile_template(text).whole


def truthy(value: object) -> bool:
    """JMESPath truthiness (conditions, choice cases): false, null, "", [] and {} are false; 0 is true."""
    return not (value is None or value is False or value in ("", [], {}))


def compile_all(value: object) -> None:
    """Syntax-check every expression in ``value``; raise ExpressionError on the first bad one."""
    for text in _walk_strings(value):
        _compile_template(text)


def referenced_steps(value: object) -> set[str]:
    """Ids of the steps whose outputs the expressions in ``value`` read (``steps.<id>...``).

    Raises ExpressionError when an expression reads ``steps`` as a whole (``steps``, ``steps.*``, ``@``): its
    result would depend on which steps happen to have finished, so the DAG could not be checked.
    """
    refs: set[str] = set()
    for text in _walk_strings(value):
        template = _compile_template(text)
        for source in template.sources:
            refs |= _refs_of(source)
    return refs


@lru_cache(maxsize=4096)
def _refs_of(source: str) -> frozenset[str]:
    refs: set[str] = set()
    _collect_refs(_parse_expression(source).parsed, source, refs)
    return frozenset(refs)


def _collect_refs(node: Mapping[str, Any], source: str, refs: set[str]) -> None:
    """Add step ids read by ``node``, which is evaluated against the root scope.

    JMESPath 1.0 has no root reference, so only nodes evaluated in the root context can reach ``steps``:
    the right side of ``a.b``, of a pipe, of projections and filters, and ``&expr`` arguments are relative.
    """
    kind = node["type"]
    children: list[Any] = node.get("children", [])
    if kind == "field":
        if node["value"] == "steps":
            raise _whole_steps(source)
    elif kind in ("current", "identity"):
        raise _whole_steps(source)
    elif kind == "subexpression":
        chain = children[1:] if children and children[0]["type"] == "current" else children
        if not chain:
            raise _whole_steps(source)
        head = chain[0]
        if head["type"] == "field" and head["value"] == "steps":
            step_id = _leftmost_field(chain[1]) if len(chain) > 1 else None
            if step_id is None:
                raise _whole_steps(source)
            refs.add(step_id)
        else:
            _collect_refs(head, source, refs)
    elif kind in _LEFT_SPINE:
        _collect_refs(children[0], source, refs)
    elif kind in _SAME_CONTEXT:
        for child in children:
            if isinstance(child, Mapping) and child.get("type") != "expref":
                _collect_refs(child, source, refs)


def _leftmost_field(node: Mapping[str, Any]) -> str | None:
    """The first field name of a chain such as ``a[0].b`` (the step id after ``steps.``)."""
    while True:
        if node["type"] == "field":
            value: str = node["value"]
            return value
        if node["type"] in _LEFT_SPINE or node["type"] == "subexpression":
            node = node["children"][0]
            continue
        return None


def _whole_steps(source: str) -> ExpressionError:
    return ExpressionError(
        f"expression '${{{{ {source} }}}}' must read a named step (steps.<id>...), not all of 'steps' or '@'"
        " (hint: '!steps.a' parses as '(!steps).a'; write '!(steps.a)')"
    )


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=False)


def _evaluate(compiled: jmespath.parser.ParsedResult, source: str, scope: Mapping[str, Any]) -> Any:
    try:
        return compiled.search(scope)
    except jmespath.exceptions.JMESPathError as err:
        raise ExpressionError(f"expression '${{{{ {source} }}}}' failed: {_one_line(err)}") from err


def _resolve_string(text: str, scope: Mapping[str, Any]) -> Any:
    template = _compile_template(text)
    if template.whole:
        compiled = template.parts[0]
        assert not isinstance(compiled, str)
        return _evaluate(compiled, template.sources[0], scope)
    out: list[str] = []
    sources = iter(template.sources)
    for part in template.parts:
        out.append(part if isinstance(part, str) else _render(_evaluate(part, next(sources), scope)))
    return "".join(out)


def resolve(value: object, scope: Mapping[str, Any]) -> Any:
    """``value`` with every expression replaced by its result in ``scope``; the input is not changed."""
    if isinstance(value, str):
        return _resolve_string(value, scope) if _OPEN in value else value
    if isinstance(value, Mapping):
        return {key: resolve(item, scope) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(item, scope) for item in value]
    return value
