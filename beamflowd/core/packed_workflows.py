"""Finished workflows restored packed: built from a short summary, decoded in full on first use.

A restore of 100,000 workflows spent most of its time building the objects of finished workflows (their
steps, events, inputs) that nothing reads before the node serves: the whole-state checks, the list index,
GC and the executor read only a few fields of a finished workflow. A snapshot therefore carries a
:func:`summary_of` each workflow beside its full line, and a finished one is restored as a
:class:`PackedWorkflow` holding the summary's fields and its line. Reading any other field decodes the line
and fills in every field not set yet (fields assigned before that are kept), after checking that the line
agrees with the summary; the restore's background check of finished workflows decodes all of them within
seconds of serving. A packed workflow is a :class:`~beamflowd.core.state.WorkflowState` to every caller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import orjson

from beamflowd.core.invariants import InvariantViolation
from beamflowd.core.spec import WorkflowSpec
from beamflowd.core.state import WorkflowState
from beamflowd.core.vocabulary import TERMINAL_WORKFLOW

#: The summary's fields, in order: what a restore sets on a packed workflow (the rest waits for its line).
SUMMARY_FIELDS = (
    "id",
    "name",
    "spec_hash",
    "owner",
    "created_ms",
    "updated_ms",
    "request_id",
    "status",
    "epoch",
    "paused",
    "labels",
)
_STATUS_AT = SUMMARY_FIELDS.index("status")
_FIELDS = tuple(f.name for f in fields(WorkflowState))
#: The fields a packed workflow gets from its line (the summary's and ``spec`` are set at restore).
_LINE_FIELDS = tuple(name for name in _FIELDS if name not in SUMMARY_FIELDS and name != "spec")
_UNSET = object()


def decode_json_line(line: bytes) -> Any:
    """One JSON line of a snapshot (a workflow's canonical encoding, the summaries).

    orjson decodes it ~2x faster than the json module; what it refuses (lone surrogates, NaN) the json
    module decodes as it always did. orjson reads an integer beyond 64 bits as a float, but every integer
    in those lines is one of ours (times, counters, attempts), far below that: user data is kept as JSON
    text inside strings.
    """
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


def summary_of(plain: Mapping[str, Any]) -> list[Any]:
    """The summary of a workflow's plain form (:meth:`WorkflowState.to_plain`), in SUMMARY_FIELDS order."""
    return [
        plain["id"],
        plain["name"],
        plain["spec"],
        plain["owner"],
        plain["created"],
        plain["updated"],
        plain["rid"],
        plain["status"],
        plain["epoch"],
        plain.get("paused", ""),
        plain.get("labels", {}),
    ]


class PackedWorkflow(WorkflowState):
    """A finished workflow whose fields outside its summary are decoded from its line when first read."""

    __slots__ = ("_packed",)
    #: (summary, line) until decoded; unset after.
    _packed: tuple[list[Any], bytes]

    @classmethod
    def of(cls, summary: list[Any], line: bytes, spec: WorkflowSpec) -> PackedWorkflow:
        """From a snapshot's summary and line of one workflow (``spec``: its definition)."""
        if len(summary) != len(SUMMARY_FIELDS):
            raise ValueError(f"a workflow summary has {len(summary)} fields, expected {len(SUMMARY_FIELDS)}")
        wf = cls.__new__(cls)
        (
            wf.id,
            wf.name,
            wf.spec_hash,
            wf.owner,
            wf.created_ms,
            wf.updated_ms,
            wf.request_id,
            wf.status,
            wf.epoch,
            wf.paused,
            labels,
        ) = summary
        wf.labels = dict(labels)
        wf.spec = spec
        wf._packed = (summary, line)
        return wf

    @property
    def packed(self) -> bool:
        """Not decoded yet."""
        try:
            object.__getattribute__(self, "_packed")
        except AttributeError:
            return False
        return True

    def __getattr__(self, name: str) -> Any:
        # Only called for a field not set yet: decode the line, then read the field as usual.
        if name not in _FIELDS or not self.packed:
            raise AttributeError(name)
        self.unpack()
        return object.__getattribute__(self, name)

    def unpack(self) -> None:
        """Decode the line and set every field not set yet; a line that disagrees with the summary it
        was restored with is a corrupt snapshot (:class:`InvariantViolation`: fail-stop)."""
        plain = _decoded(*object.__getattribute__(self, "_packed"))
        full = WorkflowState.from_plain(plain, object.__getattribute__(self, "spec"))
        for name in _LINE_FIELDS:
            if _get(self, name) is _UNSET:
                setattr(self, name, getattr(full, name))
        del self._packed

    def __eq__(self, other: object) -> bool:
        # The dataclass's own equality requires the same class: a packed workflow equals the workflow it
        # decodes to.
        if not isinstance(other, WorkflowState):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, like WorkflowState


def _get(wf: PackedWorkflow, name: str) -> Any:
    try:
        return object.__getattribute__(wf, name)
    except AttributeError:
        return _UNSET


def restore_workflow(summary: list[Any], line: bytes, spec: WorkflowSpec) -> WorkflowState:
    """A workflow from its snapshot summary and line: packed if finished, else decoded at once (the
    executor and the checks read all of a running workflow)."""
    if summary[_STATUS_AT] in TERMINAL_WORKFLOW:
        return PackedWorkflow.of(summary, line, spec)
    return WorkflowState.from_plain(_decoded(summary, line), spec)


def _decoded(summary: list[Any], line: bytes) -> Any:
    """The plain form in ``line``, which must have ``summary`` (else the snapshot is corrupt)."""
    plain = decode_json_line(line)
    if summary_of(plain) != summary:
        raise InvariantViolation(f"workflow {summary[0]!r}: its snapshot line disagrees with its summary")
    return plain
