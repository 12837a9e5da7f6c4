"""Self-fencing is decided on the clock at the moment a step body would start, not on a sampled flag."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from beamflowd.liveness import Liveness


def _liveness() -> Liveness:
    unused: Any = None  # quorum_fresh reads neither the raft adapter nor the proposer
    return Liveness("n1", unused, unused, lease=2.0, heartbeat_interval=0.5)


def test_a_recent_commit_allows_side_effects() -> None:
    async def go() -> None:
        live = _liveness()
        live.mark_committed()
        assert live.quorum_fresh() and live.quorum_ok.is_set()

    asyncio.run(go())


def test_a_stale_commit_fences_at_once_even_while_the_sampled_flag_is_still_set() -> None:
    async def go() -> None:
        live = _liveness()
        live.mark_committed()
        live.last_commit = time.monotonic() - 1.6  # past lease - interval; the loop has not sampled yet
        assert live.quorum_ok.is_set()
        assert not live.quorum_fresh()
        assert not live.quorum_ok.is_set() and live.fenced_since is not None
        live.mark_committed()  # a heartbeat commits again: attempts resume
        assert live.quorum_fresh()

    asyncio.run(go())
