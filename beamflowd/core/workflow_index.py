"""Which workflows have a given status, name or label, newest first, so a page costs O(log n + page).

Derived from the state (never encoded, rebuilt after a restore) and kept current lazily: ``apply`` marks the
workflows it touched, and the next query re-files only those. Any handler that changes a workflow's status
therefore keeps the index right without knowing about it.

Order is by creation time (the proposer's clock), then id: the order Temporal lists executions in, and the
same on every replica.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from sortedcontainers import SortedList

#: A workflow's place in every list: (created_ms, id).
Key = tuple[int, str]
#: One list: ("status", s), ("name", n), ("status+name", "s/n"), ("label", "k=v"), or ("all", "").
ListKey = tuple[str, str]
ALL: ListKey = ("all", "")


class Indexed(Protocol):
    """The fields of a workflow the index reads."""

    @property
    def id(self) -> str: ...
    @property
    def listed_status(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def created_ms(self) -> int: ...
    @property
    def labels(self) -> Mapping[str, str]: ...


def lists_for(status: str, name: str, labels: Mapping[str, str]) -> tuple[ListKey, ...]:
    """Every list a workflow with this status, name and labels belongs to."""
    return (
        ALL,
        ("status", status),
        ("name", name),
        ("status+name", f"{status}/{name}"),
        *(("label", f"{k}={v}") for k, v in sorted(labels.items())),
    )


class WorkflowIndex:
    """A sorted list of workflow keys per status, name, status and name, and label."""

    def __init__(self) -> None:
        self._lists: dict[ListKey, SortedList] = {}
        #: Where each indexed workflow is filed: (its lists, its key).
        self._filed: dict[str, tuple[tuple[ListKey, ...], Key]] = {}
        self._stale: set[str] = set()

    def touch(self, wf_id: str) -> None:
        """``wf_id`` may have changed (or appeared, or gone): re-file it before the next query."""
        self._stale.add(wf_id)

    def rebuild(self, workflows: Mapping[str, Indexed]) -> None:
        self._lists, self._filed, self._stale = {}, {}, set(workflows)

    def refresh(self, workflows: Mapping[str, Indexed]) -> None:
        """Re-file the touched workflows: O(touched * log n)."""
        for wf_id in self._stale:
            filed = self._filed.pop(wf_id, None)
            wf = workflows.get(wf_id)
            now = None
            if wf is not None:
                now = (lists_for(wf.listed_status, wf.name, wf.labels), (wf.created_ms, wf.id))
            if filed == now:
                if now is not None:
                    self._filed[wf_id] = now
                continue
            if filed is not None:
                for key in filed[0]:
                    lst = self._lists[key]
                    lst.remove(filed[1])
                    if not lst:
                        del self._lists[key]  # e.g. a name no workflow has any more
            if now is not None:
                self._filed[wf_id] = now
                for key in now[0]:
                    lst = self._lists.get(key)
                    if lst is None:
                        lst = self._lists[key] = SortedList()
                    lst.add(now[1])
        self._stale = set()

    def size(self, key: ListKey) -> int:
        lst = self._lists.get(key)
        return 0 if lst is None else len(lst)

    def newest_first(self, key: ListKey, offset: int = 0) -> Iterator[str]:
        """Ids in list ``key`` from the ``offset``-th newest on (O(log n) to start, O(1) per id)."""
        lst = self._lists.get(key)
        if lst is None or offset >= len(lst):
            return
        for _, wf_id in lst.islice(0, len(lst) - offset, reverse=True):
            yield wf_id
