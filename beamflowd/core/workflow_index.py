"""Which workflows have a given status and name, newest first, so a page of a list costs O(log n + page).

Derived from the state (never encoded, rebuilt after a restore) and kept current lazily: ``apply`` marks the
workflows it touched, and the next query re-files only those. Any handler that changes a workflow's status
therefore keeps the index right without knowing about it.

Order is by creation time (the proposer's clock), then id: the order Temporal lists executions in, and the
same on every replica.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from sortedcontainers import SortedList

#: A workflow's place in every list: (created_ms, id).
Key = tuple[int, str]
#: What a list may be filtered by; None matches every value.
Filter = tuple[str | None, str | None]


class Indexed(Protocol):
    """The fields of a workflow the index reads."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def created_ms(self) -> int: ...


class WorkflowIndex:
    """Sorted lists of workflow keys for every (status, name) filter, including the unfiltered one."""

    def __init__(self) -> None:
        self._lists: dict[Filter, SortedList] = {}
        #: Where each indexed workflow is filed: (status, name, key).
        self._filed: dict[str, tuple[str, str, Key]] = {}
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
            now = None if wf is None else (wf.status, wf.name, (wf.created_ms, wf.id))
            if filed == now:
                if now is not None:
                    self._filed[wf_id] = now
                continue
            if filed is not None:
                for key in _filters(filed[0], filed[1]):
                    lst = self._lists[key]
                    lst.remove(filed[2])
                    if not lst:
                        del self._lists[key]  # e.g. a name no workflow has any more
            if now is not None:
                self._filed[wf_id] = now
                for key in _filters(now[0], now[1]):
                    lst = self._lists.get(key)
                    if lst is None:
                        lst = self._lists[key] = SortedList()
                    lst.add(now[2])
        self._stale = set()

    def count(self, status: str | None, name: str | None) -> int:
        lst = self._lists.get((status, name))
        return 0 if lst is None else len(lst)

    def page_newest_first(self, status: str | None, name: str | None, offset: int, size: int) -> list[str]:
        """Ids of matching workflows ``offset`` to ``offset + size``, newest first."""
        lst = self._lists.get((status, name))
        if lst is None or offset >= len(lst) or size <= 0:
            return []
        end = len(lst) - offset
        return [wf_id for _, wf_id in reversed(lst[max(0, end - size) : end])]


def _filters(status: str, name: str) -> tuple[Filter, ...]:
    """Every list a workflow of this status and name belongs to."""
    return ((None, None), (status, None), (None, name), (status, name))
