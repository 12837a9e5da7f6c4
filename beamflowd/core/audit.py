"""Static audit of a valid definition, as the showcase's ``audit``: warnings, never errors.

Errors are :func:`beamflowd.core.spec.parse_workflow`'s (the server's own validation). A warning names
something legal that is probably a mistake: a step that can never run, retries without a bound on their
interval, a wait that may wait for ever, a fan-out without a stated concurrency. ``beamctl workflow
validate`` prints them (``--strict``: exit 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from beamflowd.core.spec import FOR_EACH_CONCURRENCY_DEFAULT, WorkflowSpec, load_document
from beamflowd.core.step_params import WAIT_KIND, parse_wait
from beamflowd.core.vocabulary import NEEDS_ALL_DONE, NEEDS_ANY

#: A step's requirement to run: the (choice, branch) pairs it needs taken; None: it can never run.
_Needs = frozenset[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding: where (step and field, either may be None) and what."""

    step: str | None
    field: str | None
    message: str

    def to_plain(self) -> dict[str, Any]:
        return {"step": self.step, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        where = [f"step '{self.step}'"] if self.step else []
        if self.field:
            where.append(f"field '{self.field}'")
        return ": ".join([*where, self.message])


def audit(spec: WorkflowSpec, text: str) -> list[Finding]:
    """Warnings for ``spec``, parsed from ``text`` (read again for what the model resolves away, such as
    whether ``max_interval`` was written)."""
    raw = load_document(text)
    found = _unreachable(spec)
    found += _unbounded_retries(raw)
    for step in spec.steps:
        if step.for_each is not None and step.concurrency is None:
            found.append(
                Finding(
                    step.id,
                    "concurrency",
                    f"a for_each without concurrency runs {FOR_EACH_CONCURRENCY_DEFAULT} instances at once;"
                    " say how many",
                )
            )
        if step.run == WAIT_KIND and parse_wait(step.params, resolved=False).timeout_ms is None:
            found.append(
                Finding(step.id, "with.timeout", "a wait without a timeout may wait for ever; set one")
            )
    return found


def _unreachable(spec: WorkflowSpec) -> list[Finding]:
    """Steps that need two different branches of one choice to run (all_success), so never run."""
    requires: dict[str, _Needs | None] = {}
    why: dict[str, str] = {}
    for step in spec.steps:  # a step's needs may come later in the file: resolve in dependency order
        _require(spec, step.id, requires, why)
    return [
        Finding(s.id, "needs", f"can never run: {why[s.id]}") for s in spec.steps if requires[s.id] is None
    ]


def _require(
    spec: WorkflowSpec, step_id: str, requires: dict[str, _Needs | None], why: dict[str, str]
) -> None:
    """Fill ``requires[step_id]`` (needs first; the graph is acyclic and at most MAX_STEPS deep)."""
    if step_id in requires:
        return
    step = spec.step(step_id)
    for need in step.needs:
        _require(spec, need, requires, why)
    own = frozenset((n, step.id) for n in step.needs if step.id in spec.step(n).branches)
    if step.needs_policy == NEEDS_ALL_DONE:
        requires[step_id] = own
        return
    reqs = [requires[n] for n in step.needs]
    if step.needs_policy == NEEDS_ANY:
        live = [r for r in reqs if r is not None]
        if reqs and not live:
            requires[step_id], why[step_id] = None, "every one of its needs can never run"
            return
        common = frozenset.intersection(*live) if live else frozenset()
        requires[step_id] = _combine(common | own, step_id, why)
        return
    for need, req in zip(step.needs, reqs, strict=True):
        if req is None:
            requires[step_id], why[step_id] = None, f"its need {need!r} can never run"
            return
    union: frozenset[tuple[str, str]] = frozenset().union(*[r for r in reqs if r is not None])
    requires[step_id] = _combine(union | own, step_id, why)


def _combine(pairs: _Needs, step_id: str, why: dict[str, str]) -> _Needs | None:
    by_choice: dict[str, set[str]] = {}
    for choice, branch in pairs:
        by_choice.setdefault(choice, set()).add(branch)
    for choice, branches in sorted(by_choice.items()):
        if len(branches) > 1:
            names = " and ".join(sorted(branches))
            why[step_id] = (
                f"it needs branches {names} of choice {choice!r}, which takes one (use needs_policy: any)"
            )
            return None
    return pairs


def _unbounded_retries(raw: Any) -> list[Finding]:
    """Retry blocks that retry (max_attempts > 1 or a growing backoff) without writing ``max_interval``."""
    found: list[Finding] = []
    blocks: list[tuple[str | None, Any]] = []
    if not isinstance(raw, Mapping):
        return found
    top = raw.get("retry")
    blocks.append((None, top))
    for step in raw.get("steps") or ():
        if isinstance(step, Mapping):
            blocks.append((str(step.get("id")), step.get("retry")))

    def bounded(block: Any) -> bool:
        return isinstance(block, Mapping) and ("preset" in block or "max_interval" in block)

    for step_id, block in blocks:
        # A step inherits the workflow's max_interval (or preset), so that bounds it too.
        if not isinstance(block, Mapping) or bounded(block) or (step_id is not None and bounded(top)):
            continue
        attempts = block.get("max_attempts")
        if (isinstance(attempts, int) and attempts > 1) or "backoff_rate" in block:
            found.append(
                Finding(
                    step_id,
                    "retry.max_interval",
                    "retries without max_interval: delays grow up to the default cap (30s); say how long",
                )
            )
    return found
