"""An order-free hash of a multiset of byte strings, updated in O(1) per element added or removed.

The sum, modulo 2**256, of each element's SHA-256: adding and removing commute, so a state machine can keep
the hash of a large collection current by touching only what changed, and two replicas holding the same
elements reach the same value whatever order they got them in. (Bellare and Micciancio's AdHash; its
collision resistance rests on the modulus being large, which 2**256 is.)
"""

from __future__ import annotations

import hashlib

_MODULUS = 1 << 256


def element_hash(data: bytes) -> int:
    """The contribution of one element (keep it to remove the element later)."""
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


class MultisetHash:
    """A running hash of a multiset; ``count`` guards against removing what was never added."""

    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.total = 0
        self.count = 0

    def add(self, contribution: int) -> None:
        self.total = (self.total + contribution) % _MODULUS
        self.count += 1

    def remove(self, contribution: int) -> None:
        assert self.count > 0, "removed an element from an empty multiset hash"
        self.total = (self.total - contribution) % _MODULUS
        self.count -= 1

    def hexdigest(self) -> str:
        return f"{self.count}:{self.total:064x}"
