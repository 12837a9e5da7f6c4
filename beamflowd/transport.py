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
        if sync is not None:
            sync()
        return bool(super().send(node, message))

    # ----------------------------------------------------------- partitions
    def _onMessageReceived(self, node: Any, message: Any) -> None:
        if getattr(node, "address", None) in self.blocked:
            return
        super()._onMessageReceived(node, message)

    def _connectIfNecessarySingle(self, node: Any) -> bool:
        if node.address in self.blocked:
            return False
        return bool(super()._connectIfNecessarySingle(node))

    def set_blocked(self, addresses: set[str]) -> None:
        """Block exactly ``addresses`` (tick thread only): drop their traffic and close connections."""
        self.blocked = set(addresses)
        for node, conn in list(self._connections.items()):
            if getattr(node, "address", None) in self.blocked:
                conn.disconnect()
