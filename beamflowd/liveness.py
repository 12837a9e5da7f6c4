"""Heartbeats through the log, the leader's judgement of who is dead, and self-fencing.

* Every node commits a heartbeat every ``heartbeat_interval``. Committing one proves the node's event
  loop, proposer and a quorum all work; failing to for a whole lease means this node is cut off, so it
  *fences itself*: ``quorum_ok`` is cleared and no new step attempt starts until it commits again.
* The leader notes, on its own monotonic clock, when it applied each node's last heartbeat. A node
  silent for ``lease`` is proposed dead (``node_down``), which reassigns its workflows in ``apply``.
  A new leader first grants everyone a full lease, so an election never causes a reassignment storm.
"""

from __future__ import annotations

import asyncio
import logging
import time

from beamflowd.clock import now_ms
from beamflowd.core.commands import Heartbeat, NodeDown
from beamflowd.proposer import ProposeError, Proposer
from beamflowd.replication import ReplicatedState

log = logging.getLogger(__name__)


class Liveness:
    def __init__(
        self,
        node_id: str,
        raft: ReplicatedState,
        proposer: Proposer,
        *,
        lease: float,
        heartbeat_interval: float,
    ) -> None:
        assert heartbeat_interval * 2 <= lease, "a lease must cover at least two heartbeats"
        self.node_id = node_id
        self.raft = raft
        self.proposer = proposer
        self.lease = lease
        self.heartbeat_interval = heartbeat_interval
        self.quorum_ok = asyncio.Event()
        self.last_commit = time.monotonic()
        self._was_leader = False
        self._heartbeat: asyncio.Task[None] | None = None
        self._pending_down: set[str] = set()
        #: Strong references to in-flight declarations (asyncio keeps only weak ones).
        self._declarations: set[asyncio.Task[None]] = set()
        self.fenced_since: float | None = None

    def quorum_fresh(self) -> bool:
        """Whether this node may start a side effect *now*.

        ``quorum_ok`` is sampled once per heartbeat interval; an attempt checks the clock itself right
        before its step body runs, so it never starts on a flag up to one interval stale.
        """
        now = time.monotonic()
        if now - self.last_commit > self.lease - self.heartbeat_interval:
            if self.quorum_ok.is_set():
                self.quorum_ok.clear()
                self.fenced_since = now
                log.warning(
                    "no quorum for %.1fs: fencing myself (no new step attempts)", now - self.last_commit
                )
            return False
        return self.quorum_ok.is_set()

    def mark_committed(self, proposed_at: float | None = None) -> None:
        """A heartbeat committed. Count from when it was *proposed*: the leader's clock for this node starts
        no earlier than that, so this node fences itself no later than the leader declares it dead."""
        self.last_commit = max(self.last_commit, proposed_at if proposed_at is not None else time.monotonic())
        if not self.quorum_ok.is_set():
            if self.fenced_since is not None:
                log.warning(
                    "quorum regained after %.1fs: resuming step attempts",
                    time.monotonic() - self.fenced_since,
                )
            self.fenced_since = None
            self.quorum_ok.set()

    async def run(self) -> None:
        """Bounded per iteration; runs until cancelled at shutdown."""
        while True:
            if self._heartbeat is None or self._heartbeat.done():
                self._heartbeat = asyncio.create_task(self._beat())
            now = time.monotonic()
            # Fence a heartbeat interval early: this loop samples once per interval.
            if now - self.last_commit > self.lease - self.heartbeat_interval and self.quorum_ok.is_set():
                self.quorum_ok.clear()
                self.fenced_since = now
                log.warning(
                    "no quorum for %.1fs: fencing myself (no new step attempts)", now - self.last_commit
                )
            self._judge(now)
            await asyncio.sleep(self.heartbeat_interval)

    async def _beat(self) -> None:
        cmd = Heartbeat(node=self.node_id, ts=now_ms())
        proposed_at = time.monotonic()
        try:
            result = await self.proposer.propose(cmd, timeout=self.lease, urgent=True)
            if result.ok:
                self.mark_committed(proposed_at)
        except ProposeError:
            pass

    def _judge(self, now: float) -> None:
        leader = self.raft.is_leader()
        if leader and not self._was_leader:
            # Grace: the new leader has not seen anyone's heartbeats yet; give everyone a full lease.
            for node_id in self.raft.member_grpc_addrs():
                self.raft.heartbeat_seen[node_id] = now
        self._was_leader = leader
        if not leader:
            return
        with self.raft.read():
            alive = [
                (m.id, m.last_heartbeat_ms)
                for m in self.raft.sm.members.values()
                if m.alive and m.id != self.node_id
            ]
        for node_id, alive_since in alive:
            seen = self.raft.heartbeat_seen.setdefault(node_id, now)
            if now - seen > self.lease and node_id not in self._pending_down:
                self._pending_down.add(node_id)
                task = asyncio.create_task(self._declare_down(node_id, now - seen, alive_since))
                self._declarations.add(task)

    async def _declare_down(self, node_id: str, silent_for: float, alive_since: int) -> None:
        log.warning(
            "node %s silent for %.1fs (lease %.1fs): declaring it down", node_id, silent_for, self.lease
        )
        cmd = NodeDown(
            node=node_id,
            ts=now_ms(),
            by=self.node_id,
            # Guard: a declaration that commits late (a retry after a leader change) must not kill a node
            # that revived or rejoined since we judged it.
            since=alive_since,
        )
        try:
            result = await self.proposer.propose(cmd, timeout=self.lease)
            log.warning("node %s declared down: %s", node_id, dict(result.data))
        except ProposeError as exc:
            log.warning("could not declare %s down: %s", node_id, exc.message)
        finally:
            self._pending_down.discard(node_id)
            current = asyncio.current_task()
            if current is not None:
                self._declarations.discard(current)

    def liveness_of(self, node_id: str) -> tuple[str, int]:
        """(alive|suspect|dead, heartbeat age in ms) as this node sees it; meaningful on the leader."""
        with self.raft.read():
            member = self.raft.sm.members.get(node_id)
            alive = member is not None and member.alive
        seen = self.raft.heartbeat_seen.get(node_id)
        age = 0 if seen is None else int((time.monotonic() - seen) * 1000)
        if not alive:
            return "dead", age
        if age > self.heartbeat_interval * 2 * 1000:
            return "suspect", age
        return "alive", age
