"""pysyncobj's TCP transport with two additions: durability before acknowledging, and partitions.

* fsync policy ``batch``: before any Raft message leaves this node, journal entries appended since the
  last sync are flushed (msync of pysyncobj's mmap journal). A follower therefore acknowledges only
  durable entries and a leader replicates only durable ones: one sync per group of entries.
  ``always`` syncs on every append; ``off`` leaves it to the page cache (survives a process kill,
  not a power loss).
* Partitions (chaos): traffic to and from blocked peers is dropped and their connections are closed and
  refused, so the cluster sees a real network split. The gRPC port is unaffected.

This subclasses private internals of pysyncobj 0.3.17, which is pinned in pyproject.toml; the cluster
tests exercise both paths.
"""

from __future__ import annotations

from typing import Any

from pysyncobj.transport import TCPTransport


class BeamTransport(TCPTransport):  # type: ignore[misc]
    def __init__(self, syncObj: Any, selfNode: Any, otherNodes: Any) -> None:
        super().__init__(syncObj, selfNode, otherNodes)
        self.blocked: set[str] = set()  # peer Raft addresses "host:port"

    # ----------------------------------------------------------- durability
    def send(self, node: Any, message: Any) -> bool:
        if node.address in self.blocked:
            return False
        sync = getattr(self._syncObj, "sync_journal_if_dirty", None)
        if sync is None:
            return bool(super().send(node, message))
        if isinstance(message, dict) and message.get("type") == "append_entries":
            # Leader: replicate first, then sync its own log. Safe because the leader counts its own entry
            # only when it processes a follower's ack, later on this same thread, after the sync; the
            # leader's sync now overlaps the network round trip instead of preceding it.
            sent = bool(super().send(node, message))
            sync()
            return sent
        sync()  # follower acks (and anything else) leave only after the entries they cover are durable
        return bool(super().send(node, message))

    # ----------------------------------------------------------- partitions
    def _onMessageReceived(self, node: Any, message: Any) -> None:
        if getattr(node, "address", None) in self.blocked:
            return
        if (
            isinstance(message, dict)
            and message.get("type") == "next_node_idx"
            and message.get("success")
            and not message.get("reset")
        ):
            self._ack_without_rewind(node, message)
            return
        super()._onMessageReceived(node, message)

    def _ack_without_rewind(self, node: Any, message: Any) -> None:
        """Stop a stale acknowledgement from moving the leader's next index backwards.

        pysyncobj 0.3.17 pipelines append_entries optimistically but, on each success ack, sets the
        follower's next index to the acked one even when later entries are already in flight. It then
        resends them, and the follower truncates and re-appends entries it already applied (logged as
        CRITICAL; same term, so the content is identical): wasted work that grows with load and, with
        fsync, a sync per re-append. A rejected append (reset=True) still rewinds, so lost messages are
        repaired as before. Measured in docs/performance.md.
        """
        next_index = self._syncObj._SyncObj__raftNextIndex
        before = next_index.get(node)
        super()._onMessageReceived(node, message)
        after = next_index.get(node)
        if before is not None and after is not None and after < before:
            next_index[node] = before

    def _connectIfNecessarySingle(self, node: Any) -> bool:
        if node.address in self.blocked:
            return False
        return bool(super()._connectIfNecessarySingle(node))

    def buffered_bytes(self, node: Any) -> int:
        """Bytes queued for ``node`` and not yet sent (0 without a connection)."""
        conn = self._connections.get(node)
        return 0 if conn is None else int(conn.getSendBufferSize())

    def set_blocked(self, addresses: set[str]) -> None:
        """Block exactly ``addresses`` (tick thread only): drop their traffic and close connections."""
        self.blocked = set(addresses)
        for node, conn in list(self._connections.items()):
            if getattr(node, "address", None) in self.blocked:
                conn.disconnect()

    # --- chaos: partitions requested from other threads are installed on the tick thread ---
    _requested_blocked: tuple[int, frozenset[str]] = (0, frozenset())
    _installed_generation = 0

    def request_blocked(self, addresses: set[str]) -> None:
        """Any thread: install ``addresses`` as the blocked set on the next tick (see :meth:`set_blocked`)."""
        # One store of an immutable tuple: atomic under the GIL; no lock shared with the tick thread.
        self._requested_blocked = (self._requested_blocked[0] + 1, frozenset(addresses))

    def _onTick(self) -> None:
        generation, addresses = self._requested_blocked
        if generation != self._installed_generation:
            self._installed_generation = generation
            self.set_blocked(set(addresses))
        super()._onTick()
