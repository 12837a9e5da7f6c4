"""The collector's thresholds: raised for throughput, yet cyclic garbage is still reclaimed on its own."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from beamflowd import gc_pauses


@pytest.fixture
def thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


class Node:
    def __init__(self) -> None:
        self.peer: Node | None = None


def test_collect_less_often_still_frees_cycles_without_an_explicit_collect(thresholds: None) -> None:
    gc_pauses.collect_less_often()
    assert gc.get_threshold() == gc_pauses.GC_THRESHOLDS
    assert gc.get_threshold()[0] > 700, "young collections less often than Python's default"
    a, b = Node(), Node()
    a.peer, b.peer = b, a
    gone = weakref.ref(a)
    del a, b  # a cycle: reference counting alone never frees it
    assert gone() is not None
    # Allocate past one young round; a collection then runs by itself and finds the cycle.
    keep = [[] for _ in range(2 * gc_pauses.GC_THRESHOLDS[0])]
    assert gone() is None, "the cycle was collected without gc.collect()"
    del keep
