"""Worst-case validation time of definitions up to the 256 KiB limit (parse + validate, one process).

Run: ``.venv/bin/python tests/bench/validation.py [--repeat 5]``. Each case is a definition built to hit
one cost: closing braces that a naive expression scanner retries one by one, many nested multi-select
expressions, deep nesting of params, many expressions, many steps, a 5,000-level nested input. Prints the
median and max over the repeats per case; docs/performance.md quotes the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable

import jmespath.parser

from beamflowd.core import expressions
from beamflowd.core.spec import MAX_DEFINITION_BYTES, MAX_EXPRESSIONS, SpecError, parse_input, parse_workflow

LIMIT = MAX_DEFINITION_BYTES - 1024  # leave room for the YAML around the payload


def _one_param(value: str) -> str:
    return json.dumps({"name": "hostile", "steps": [{"id": "a", "run": "demo", "with": {"output": value}}]})


def closing_braces() -> str:
    return _one_param("${{ input.x " + "}}" * (LIMIT // 2 - 10))


def unclosed_opens() -> str:
    return _one_param("${{ " * (LIMIT // 4))


def nested_hashes() -> str:
    one = "${{ {a: {b: {c: input.x}}} }} "
    return _one_param(one * (LIMIT // len(one)))


def many_expressions() -> str:
    """Over the limit: refused after counting, before compiling."""
    one = "${{ input.customer.name }}-"
    return _one_param(one * (LIMIT // len(one)))


def distinct_expressions() -> str:
    parts: list[str] = []
    size = 0
    i = 0
    while i < MAX_EXPRESSIONS and size < LIMIT - 64:
        one = f"${{{{ {{k{i}: input.a{i}.b[0]}} }}}}-"
        parts.append(one)
        size += len(one)
        i += 1
    return _one_param("".join(parts))


def long_distinct_expressions() -> str:
    exprs = []
    for i in range(60):
        fields = ", ".join(f"input.f{i}_{j}" for j in range(70))
        exprs.append(f"${{{{ [{fields}] }}}}")
    return _one_param(" ".join(exprs))[:LIMIT]


def deep_params() -> str:
    depth = 60
    value: object = "x"
    for _ in range(depth):
        value = {"k": value}
    steps = [{"id": f"s{i}", "run": "demo", "with": {"output": value}} for i in range(180)]
    return json.dumps({"name": "deep", "steps": steps})


def many_steps() -> str:
    steps = [{"id": "s0", "run": "noop"}] + [
        {"id": f"s{i}", "run": "noop", "needs": [f"s{j}" for j in range(max(0, i - 8), i)]}
        for i in range(1, 200)
    ]
    return json.dumps({"name": "wide", "steps": steps})


CASES: dict[str, Callable[[], str]] = {
    "256 KiB of '}}' after one '${{'": closing_braces,
    "64 K unclosed '${{'": unclosed_opens,
    "nested multi-select hashes": nested_hashes,
    "~9,000 expressions (over the limit)": many_expressions,
    "500 distinct expressions (the limit)": distinct_expressions,
    "60 distinct ~1,000-char expressions": long_distinct_expressions,
    "180 steps with 60-level params": deep_params,
    "200 steps, 8 needs each": many_steps,
}


def _time(fn: Callable[[], object]) -> float:
    for cached in (expressions._parse_expression, expressions._compile_template_cached, expressions._refs_of):
        cached.cache_clear()  # the worst case is a definition never seen before
    jmespath.parser.Parser._CACHE.clear()  # and jmespath's own cache of compiled queries
    started = time.perf_counter()
    with contextlib.suppress(SpecError):  # a clear refusal is a fine outcome; its cost is what we measure
        fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for name, build in CASES.items():
        text = build()
        assert len(text.encode()) <= MAX_DEFINITION_BYTES, name
        runs = [
            _time(lambda text=text, name=name: parse_workflow(text, source=name)) for _ in range(args.repeat)
        ]
        print(
            f"{name:36s} {len(text) / 1024:6.0f} KiB  median {statistics.median(runs) * 1000:7.1f} ms"
            f"  max {max(runs) * 1000:7.1f} ms"
        )
    nested = "[" * 5000 + "]" * 5000
    runs = [_time(lambda: parse_input(nested)) for _ in range(args.repeat)]
    print(
        f"{'input nested 5,000 levels':36s} {len(nested) / 1024:6.0f} KiB  median "
        f"{statistics.median(runs) * 1000:7.1f} ms  max {max(runs) * 1000:7.1f} ms"
    )


if __name__ == "__main__":
    main()
