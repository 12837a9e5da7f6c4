"""Read barriers are shared: many reads cost one commit per round, and each read's round is proposed after
it arrived."""

from __future__ import annotations

import asyncio

import pytest

from beamflowd.api.read_barrier import ReadBarrier
from beamflowd.proposer import ProposeError


class FakeCommits:
    """Stands for the proposer: each proposal commits when the test says so."""

    def __init__(self) -> None:
        self.proposed: list[asyncio.Future[None]] = []

    async def propose(self) -> None:
        commit = asyncio.get_running_loop().create_future()
        self.proposed.append(commit)
        await commit


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_reads_arriving_together_share_one_commit_and_later_ones_the_next() -> None:
    async def scenario() -> None:
        commits = FakeCommits()
        barrier = ReadBarrier(commits.propose)
        first = [asyncio.ensure_future(barrier.wait(5)) for _ in range(50)]
        await settle()
        assert len(commits.proposed) == 1
        # Arrived while round 1 is in flight: round 1 was proposed before them and proves nothing for them.
        later = [asyncio.ensure_future(barrier.wait(5)) for _ in range(50)]
        await settle()
        assert len(commits.proposed) == 1
        commits.proposed[0].set_result(None)
        await asyncio.gather(*first)
        await settle()
        assert not any(r.done() for r in later)
        assert len(commits.proposed) == 2, "the next round starts when the first ends"
        commits.proposed[1].set_result(None)
        await asyncio.gather(*later)
        assert barrier.rounds == 2

    asyncio.run(scenario())


def test_a_failed_round_fails_its_reads_and_a_slow_one_times_them_out() -> None:
    async def scenario() -> None:
        commits = FakeCommits()
        barrier = ReadBarrier(commits.propose)
        read = asyncio.ensure_future(barrier.wait(5))
        await settle()
        commits.proposed[0].set_exception(ProposeError("UNAVAILABLE", "no quorum"))
        with pytest.raises(ProposeError):
            await read
        with pytest.raises(TimeoutError):
            await barrier.wait(0.05)  # its round never commits
        assert len(commits.proposed) == 2

    asyncio.run(scenario())
