"""Fan-out of "these workflows changed" from the applier to whoever waits on the event loop."""

from __future__ import annotations

import asyncio
from collections import defaultdict

#: Bound on concurrent watchers per node (each holds one asyncio.Event).
MAX_WATCHERS = 10_000


class ChangeHub:
    """Watch streams subscribe to one workflow id; ``publish`` runs on the event loop."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._count = 0

    def subscribe(self, workflow_id: str) -> asyncio.Event:
        if self._count >= MAX_WATCHERS:
            raise OverflowError(f"too many watchers on this node (limit {MAX_WATCHERS})")
        event = asyncio.Event()
        self._subscribers[workflow_id].add(event)
        self._count += 1
        return event

    def unsubscribe(self, workflow_id: str, event: asyncio.Event) -> None:
        subs = self._subscribers.get(workflow_id)
        if subs is not None and event in subs:
            subs.discard(event)
            self._count -= 1
            if not subs:
                del self._subscribers[workflow_id]

    def publish(self, workflow_ids: set[str]) -> None:
        for wf_id in workflow_ids:
            for event in self._subscribers.get(wf_id, ()):
                event.set()
