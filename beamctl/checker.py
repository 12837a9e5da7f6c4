"""The history checker: proves that chaos lost nothing and did nothing twice.

Input: the client's record of *acknowledged* submissions (workflow ids whose SubmitWorkflow returned OK)
and each workflow's committed history (``GetWorkflow``: status, steps and the event log). It verifies that

1. every acknowledged workflow exists and (once the run has drained) reached a terminal state;
2. none completes twice and none changes after its terminal event (the closing event is the last one);
3. each step succeeds at most once in committed history, and a succeeded workflow has every step succeeded;
4. the status agrees with the closing event; event sequence numbers only grow;
5. after heal, every replica reports the same state digest at the same applied index.

A ``retried`` event (retry from the failed step) opens a new run of the workflow: each run has at most one
closing event, only a ``retried`` event may follow a closing event, the status agrees with the last one,
and a step that succeeded before a retry succeeds again only after a ``retried --from`` (its step id set).

It is used by the chaos tests and by ``beamctl chaos verify``. :func:`check_histories` and
:func:`check_digests` are pure; :func:`verify` drives them against a live cluster through two callables.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beamflowd.api.gen.beamflow.v1 import cluster_pb2
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as wpb
from beamflowd.core.vocabulary import (
    DONE_STEP,
    EVENT_RETRIED,
    EVENT_SIGNAL_RECEIVED,
    EVENT_STEP_STARTED,
    STATUS_OF_CLOSING_EVENT,
    STEP_FAILED,
    STEP_SKIPPED,
    STEP_SUCCEEDED,
)

CLOSING = STATUS_OF_CLOSING_EVENT
_STATUS = {
    wpb.WORKFLOW_STATUS_SUCCEEDED: "succeeded",
    wpb.WORKFLOW_STATUS_FAILED: "failed",
    wpb.WORKFLOW_STATUS_CANCELLED: "cancelled",
    wpb.WORKFLOW_STATUS_COMPENSATED: "compensated",
    wpb.WORKFLOW_STATUS_COMPENSATION_FAILED: "compensation_failed",
    wpb.WORKFLOW_STATUS_RUNNING: "running",
}
INJECTED_MARK = "chaos: injected"
#: At most this many violations are listed in a verdict (the count is always exact).
MAX_LISTED = 50


@dataclass(frozen=True)
class History:
    """What the checker needs of one workflow's committed record."""

    status: str
    error: str
    steps: Mapping[str, str]  # step id -> status
    #: (seq, type, step_id, attempt, message)
    events: tuple[tuple[int, str, str, int, str], ...]

    @classmethod
    def of(cls, response: wpb.GetWorkflowResponse) -> History:
        wf = response.workflow
        return cls(
            status=_STATUS.get(wf.status, "unknown"),
            error=wf.error,
            steps={s.id: _STEP_STATUS.get(s.status, str(s.status)) for s in wf.steps},
            events=tuple((e.seq, e.type, e.step_id, e.attempt, e.message) for e in response.events),
        )


_STEP_STATUS = {
    wpb.STEP_STATUS_SUCCEEDED: STEP_SUCCEEDED,
    wpb.STEP_STATUS_FAILED: STEP_FAILED,
    wpb.STEP_STATUS_SKIPPED: STEP_SKIPPED,
}


@dataclass
class Verdict:
    acknowledged: int = 0
    found: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    running: int = 0
    #: Failed workflows whose last error was an injected fault (retries exhausted by the monkey).
    failed_by_injection: int = 0
    reassigned_workflows: int = 0
    stale_results_rejected: int = 0
    truncated_histories: int = 0
    #: Workflows with at least one retry from the failed step in their history.
    retried_workflows: int = 0
    missing: list[str] = field(default_factory=list)
    not_terminal: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    violation_count: int = 0
    digests: dict[str, str] = field(default_factory=dict)
    digests_equal: bool | None = None
    digest_detail: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.missing
            and not self.not_terminal
            and self.violation_count == 0
            and self.digests_equal is not False
        )

    @property
    def success_rate(self) -> float:
        done = self.succeeded + self.failed + self.cancelled
        return self.succeeded / done if done else 0.0

    def violate(self, message: str) -> None:
        self.violation_count += 1
        if len(self.violations) < MAX_LISTED:
            self.violations.append(message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "acknowledged": self.acknowledged,
            "found": self.found,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "running": self.running,
            "success_rate": round(self.success_rate, 6),
            "failed_by_injection": self.failed_by_injection,
            "reassigned_workflows": self.reassigned_workflows,
            "stale_results_rejected": self.stale_results_rejected,
            "truncated_histories": self.truncated_histories,
            "retried_workflows": self.retried_workflows,
            "missing": self.missing[:MAX_LISTED],
            "missing_count": len(self.missing),
            "not_terminal": self.not_terminal[:MAX_LISTED],
            "not_terminal_count": len(self.not_terminal),
            "violations": self.violations,
            "violation_count": self.violation_count,
            "digests": self.digests,
            "digests_equal": self.digests_equal,
            "digest_detail": self.digest_detail,
        }

    def summary(self) -> str:
        verdict = "PASS" if self.ok else "FAIL"
        lines = [
            f"verdict: {verdict}",
            f"acknowledged {self.acknowledged}, found {self.found}, missing {len(self.missing)}",
            f"terminal: succeeded {self.succeeded}, failed {self.failed} ({self.failed_by_injection} by "
            f"injected faults), cancelled {self.cancelled}; still running {self.running}",
            f"success rate {self.success_rate:.2%}; reassigned workflows {self.reassigned_workflows}; "
            f"stale results rejected {self.stale_results_rejected}; "
            f"retried workflows {self.retried_workflows}",
            f"violations {self.violation_count}",
        ]
        lines += [f"  - {v}" for v in self.violations[:10]]
        if self.missing:
            lines.append(f"missing: {', '.join(self.missing[:10])}{' ...' if len(self.missing) > 10 else ''}")
        if self.not_terminal:
            lines.append(
                f"not terminal: {', '.join(self.not_terminal[:10])}"
                f"{' ...' if len(self.not_terminal) > 10 else ''}"
            )
        if self.digests_equal is not None:
            equal = "equal" if self.digests_equal else "DIFFER"
            lines.append(f"replica digests {equal}: {self.digest_detail}")
        return "\n".join(lines)


def check_history(wf_id: str, h: History, verdict: Verdict) -> None:
    """Per-workflow invariants; violations are added to ``verdict``."""
    seqs = [e[0] for e in h.events]
    if any(b <= a for a, b in itertools.pairwise(seqs)):
        verdict.violate(f"{wf_id}: event sequence numbers do not increase")
    truncated = not h.events or h.events[0][1] != "submitted"
    if truncated:
        verdict.truncated_histories += 1
    closing = [i for i, e in enumerate(h.events) if e[1] in CLOSING]
    retried = [i for i, e in enumerate(h.events) if e[1] == EVENT_RETRIED]
    if retried:
        verdict.retried_workflows += 1
    runs = [
        [i for i in closing if lo < i < hi] for lo, hi in itertools.pairwise([-1, *retried, len(h.events)])
    ]
    for run in runs:
        if len(run) > 1:
            kinds = ", ".join(h.events[i][1] for i in run)
            verdict.violate(f"{wf_id}: {len(run)} terminal events in one run ({kinds})")
    for i in closing:
        if i != len(h.events) - 1 and h.events[i + 1][1] != EVENT_RETRIED:
            after, first = h.events[i + 1][1], h.events[i][1]
            verdict.violate(f"{wf_id}: changed after its terminal event ({after} after {first})")
    for i in retried:
        if not truncated and (i == 0 or h.events[i - 1][1] not in CLOSING):
            verdict.violate(f"{wf_id}: retried while it was running")
    if closing and (not retried or closing[-1] > retried[-1]):
        expected = CLOSING[h.events[closing[-1]][1]]
        if h.status != expected:
            verdict.violate(f"{wf_id}: status {h.status} but its terminal event says {expected}")
    elif h.status in STATUS_OF_CLOSING_EVENT.values() and not truncated:
        verdict.violate(f"{wf_id}: status {h.status} without a terminal event")
    succeeded_steps: dict[str, int] = {}
    for e in h.events:
        if e[1] == EVENT_RETRIED and e[2]:
            succeeded_steps.clear()  # `retry --from` re-runs succeeded steps on purpose (downstream of e[2])
        elif e[1] == "step_succeeded":
            succeeded_steps[e[2]] = succeeded_steps.get(e[2], 0) + 1
            if succeeded_steps[e[2]] == 2:
                verdict.violate(f"{wf_id}: step {e[2]} succeeded twice")
    skipped = {s for s, st in h.steps.items() if st == STEP_SKIPPED}
    started = {e[2] for e in h.events if e[1] == EVENT_STEP_STARTED}
    for step in sorted(skipped & (started | set(succeeded_steps))):
        verdict.violate(f"{wf_id}: step {step} is skipped but ran")
    received: dict[str, int] = {}
    for e in h.events:
        if e[1] == EVENT_SIGNAL_RECEIVED:  # message "<name> (<signal id>)"
            received[e[4]] = received.get(e[4], 0) + 1
    for signal, n in sorted(received.items()):
        if n > 1:
            verdict.violate(f"{wf_id}: signal {signal} delivered {n} times")
    if h.status == "succeeded":
        unfinished = sorted(s for s, st in h.steps.items() if st not in DONE_STEP)
        if unfinished:
            verdict.violate(f"{wf_id}: succeeded with steps not succeeded: {', '.join(unfinished)}")
        if not truncated:
            never = sorted(s for s in h.steps if s not in succeeded_steps and s not in skipped)
            if never:
                verdict.violate(f"{wf_id}: succeeded without a step_succeeded event for {', '.join(never)}")
    if any(e[1] == "reassigned" for e in h.events):
        verdict.reassigned_workflows += 1
    verdict.stale_results_rejected += sum(1 for e in h.events if e[1] == "stale_result_rejected")


def check_histories(
    acknowledged: Iterable[str], histories: Mapping[str, History | None], *, require_terminal: bool = True
) -> Verdict:
    verdict = Verdict()
    for wf_id in dict.fromkeys(acknowledged):
        verdict.acknowledged += 1
        h = histories.get(wf_id)
        if h is None:
            verdict.missing.append(wf_id)
            continue
        verdict.found += 1
        if h.status == "succeeded":
            verdict.succeeded += 1
        elif h.status == "failed":
            verdict.failed += 1
            if INJECTED_MARK in h.error:
                verdict.failed_by_injection += 1
        elif h.status == "cancelled":
            verdict.cancelled += 1
        elif h.status in ("compensated", "compensation_failed"):
            verdict.failed += 1  # failed for good, then compensated (or not): a failure all the same
        else:
            verdict.running += 1
            if require_terminal:
                verdict.not_terminal.append(wf_id)
        check_history(wf_id, h, verdict)
    return verdict


def check_digests(
    status: cluster_pb2.GetClusterStatusResponse, expected_nodes: int
) -> tuple[bool, str, dict[str, str]]:
    """All ``expected_nodes`` reachable, at one applied index, with one digest."""
    nodes = [n for n in status.nodes if n.reachable]
    digests = {n.id: n.digest for n in nodes}
    indexes = {n.applied_index for n in nodes}
    if len(nodes) < expected_nodes:
        missing = sorted(n.id for n in status.nodes if not n.reachable)
        detail = f"{len(nodes)}/{expected_nodes} replicas answered (unreachable: {', '.join(missing)})"
        return False, detail, digests
    if len(indexes) != 1:
        return False, f"applied indexes differ: {sorted(indexes)}", digests
    if len(set(digests.values())) != 1:
        return False, f"same applied index {indexes.pop()} but digests differ", digests
    detail = f"{len(nodes)} replicas at applied index {indexes.pop()}, digest {nodes[0].digest[:16]}"
    return True, detail, digests


Getter = Callable[[str], "wpb.GetWorkflowResponse | None"]
StatusGetter = Callable[[], cluster_pb2.GetClusterStatusResponse]


def verify(
    acknowledged: Iterable[str],
    get: Getter,
    cluster_status: StatusGetter | None,
    *,
    wait_s: float = 60.0,
    expected_nodes: int | None = None,
    poll_s: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[], None] | None = None,
) -> Verdict:
    """Wait (up to ``wait_s``) for every workflow to be found and terminal, then for the replicas to
    converge, then read every history once more and check it.

    ``get`` returns None for a workflow its node does not know (a lagging replica may not know it *yet*, so
    that is retried until the deadline) and raises for a transport error (retried too). Bounded: every loop
    ends at the deadline.
    """
    ids = list(dict.fromkeys(acknowledged))
    deadline = clock() + wait_s
    histories: dict[str, History | None] = {}
    pause = sleep or (lambda: time.sleep(poll_s))

    def fetch(wanted: list[str]) -> list[str]:
        """Read ``wanted``; return those not yet found-and-terminal."""
        still: list[str] = []
        for wf_id in wanted:
            try:
                response = get(wf_id)
            except Exception:
                still.append(wf_id)
                continue
            h = None if response is None else History.of(response)
            histories[wf_id] = h
            if h is None or h.status not in CLOSING.values():
                still.append(wf_id)
        return still

    pending = list(ids)
    while True:
        pending = fetch(pending)
        if not pending or clock() >= deadline:
            break
        pause()
    verdict_digests: tuple[bool, str, dict[str, str]] | None = None
    if cluster_status is not None:
        digests: dict[str, str] = {}
        ok, detail = False, "no status"
        while True:
            try:
                status = cluster_status()
                ok, detail, digests = check_digests(status, expected_nodes or len(status.nodes))
            except Exception as exc:
                ok, detail = False, f"status failed: {exc}"
            if ok or clock() >= deadline:
                break
            pause()
        verdict_digests = (ok, detail, digests)
        if ok:
            fetch(ids)  # the replicas agree now: one consistent read of every history
    verdict = check_histories(ids, histories)
    if verdict_digests is not None:
        verdict.digests_equal, verdict.digest_detail, verdict.digests = verdict_digests
    return verdict


def load_acknowledged(path: str | Path) -> list[str]:
    """Read a record of acknowledged submissions.

    Accepted: a JSON list of ids; a JSON object with ``workflow_ids`` or ``acknowledged`` (ids or objects
    with ``workflow_id``); JSON lines of objects with ``workflow_id``; or plain text, one id per line.
    """
    text = Path(path).read_text()
    stripped = text.strip()
    if not stripped:
        return []

    def ids_of(items: Iterable[Any]) -> list[str]:
        out = []
        for item in items:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, Mapping) and item.get("workflow_id") and item.get("acknowledged", True):
                out.append(str(item["workflow_id"]))
        return out

    try:
        data = json.loads(stripped)
    except ValueError:
        data = None
    if isinstance(data, list):
        return ids_of(data)
    if isinstance(data, Mapping):
        for key in ("workflow_ids", "acknowledged"):
            if isinstance(data.get(key), list):
                return ids_of(data[key])
        if data.get("workflow_id"):
            return ids_of([data])
    lines = [line.strip() for line in stripped.splitlines() if line.strip() and not line.startswith("#")]
    if all(line.startswith("{") for line in lines):
        return ids_of(json.loads(line) for line in lines)
    return lines
