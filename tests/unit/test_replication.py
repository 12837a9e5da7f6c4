"""The pysyncobj adapter and the proposer against a real one-node Raft log in a temp dir.

* Snapshots built from the per-workflow encoding cache restore exactly the state they were taken of,
  whatever was cached, dirty or deleted at the time (property test over random command logs).
* A one-node cluster snapshots in the background, compacts its journal by rename and restarts from both.
* The proposer refuses a command that cannot be pickled and commits its neighbours; batches obey the byte cap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pickle
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beamflowd import proposer as proposer_module
from beamflowd import replication
from beamflowd.core import commands as c
from beamflowd.core.packed_workflows import PackedWorkflow, summary_of
from beamflowd.core.state import StateMachine, encode_plain
from beamflowd.proposer import Proposer
from beamflowd.replication import (
    SNAPSHOT_MAGIC_V2,
    SNAPSHOT_MAGIC_V3,
    EncodedWorkflows,
    RaftTuning,
    ReplicatedState,
    parse_snapshot,
    read_snapshot_file,
    snapshot_file_pieces,
    write_snapshot_file,
)
from beamflowd.snapshot_loading import PendingLoad
from beamflowd.state_lock import StateLock
from tests.harness import free_ports
from tests.unit.state_strategies import cancel_cmd, join_cmd, submit_cmd
from tests.unit.test_state import PROPERTY_SETTINGS, histories

Command = dict[str, Any]


@PROPERTY_SETTINGS
@given(histories(), st.data())
def test_snapshot_from_encoding_cache_restores_the_state(log: list[Command], data: st.DataObject) -> None:
    sm = StateMachine()
    encoded = EncodedWorkflows(StateLock(), sm)
    cut = data.draw(st.integers(0, len(log)), label="encoded up to")
    for i, cmd in enumerate(log):
        sm.apply(cmd)
        encoded.mark(sm.drain_changed(), float(i))
        if i + 1 == cut:
            encoded.encode_settled(float(i))  # everything so far is cached; later changes stay dirty
    tmp = data.draw(st.integers(0, 10**9), label="file")
    path = Path(f"/tmp/beamflow-test-snapshot-{tmp}-{threading.get_ident()}")
    try:
        capture = encoded.capture(pickle.dumps(("raft", "meta")))
        write_snapshot_file(str(path), capture, sync=False)
        encoded.thaw()
        restored, fragments, summaries, meta = read_snapshot_file(str(path))
    finally:
        path.unlink(missing_ok=True)
    assert meta == ("raft", "meta")
    assert restored.digest() == sm.digest() == restored.full_digest()
    assert list(restored.workflows) == list(sm.workflows), "insertion order (newest-first lists) is kept"
    assert fragments == {wf_id: encode_plain(wf.to_plain()) for wf_id, wf in sm.workflows.items()}
    assert summaries == {wf_id: summary_of(wf.to_plain()) for wf_id, wf in sm.workflows.items()}
    finished = [wf for wf in restored.workflows.values() if wf.terminal]
    assert all(isinstance(wf, PackedWorkflow) for wf in finished), "finished ones are restored packed"
    assert restored.to_plain() == sm.to_plain()
    # The encoder's thread also keeps the list index filed, so a query finds nothing left to re-file.
    encoded.refile_index()
    assert sm.index.stale == 0


def test_a_v2_snapshot_of_an_earlier_version_still_restores() -> None:
    """A node upgraded in place finds a v2 file (no summaries line): it restores in full, with summaries."""
    sm = StateMachine()
    sm.apply(join_cmd("n1", 1))
    for i in range(5):
        sm.apply(submit_cmd(f"r{i}", f"w{i}", "sequential", 10 + i))
    sm.apply(cancel_cmd("w1", 50))  # one finished, the rest running
    encoded = EncodedWorkflows(StateLock(), sm)
    encoded.mark(sm.workflows, 0.0)
    v3 = b"".join(snapshot_file_pieces(encoded.capture(pickle.dumps(("raft", "meta")))))
    assert v3.startswith(SNAPSHOT_MAGIC_V3)
    meta_end = (
        len(SNAPSHOT_MAGIC_V3) + 8 + int.from_bytes(v3[len(SNAPSHOT_MAGIC_V3) : len(SNAPSHOT_MAGIC_V3) + 8])
    )
    lines = zlib.decompress(v3[meta_end:]).split(b"\n")
    v2_body = b"\n".join(lines[:2] + lines[3:])  # without the summaries line
    v2 = SNAPSHOT_MAGIC_V2 + v3[len(SNAPSHOT_MAGIC_V3) : meta_end] + zlib.compress(v2_body)
    restored, fragments, summaries, meta = parse_snapshot(v2, "v2 file")
    assert meta == ("raft", "meta")
    assert restored.to_plain() == sm.to_plain() and restored.digest() == sm.digest()
    assert not any(isinstance(wf, PackedWorkflow) for wf in restored.workflows.values())
    assert summaries == {wf_id: summary_of(wf.to_plain()) for wf_id, wf in sm.workflows.items()}
    assert fragments == {wf_id: encode_plain(wf.to_plain()) for wf_id, wf in sm.workflows.items()}


# ------------------------------------------------------------------------------ one real Raft node
def one_node(data_dir: Path, port: int | None = None, **kwargs: Any) -> ReplicatedState:
    """A one-node cluster; restart it on the same ``port``: its snapshot names its Raft address."""
    port = port or free_ports(1)[0]
    tuning = RaftTuning(compaction_min_entries=50, compaction_min_time=0.5)
    raft = ReplicatedState(f"127.0.0.1:{port}", [], str(data_dir), tuning, None, lambda _: None, **kwargs)
    deadline = time.monotonic() + 10
    while not raft.status().is_leader:
        assert time.monotonic() < deadline, "a one-node cluster elects itself"
        time.sleep(0.02)
    return raft


async def eventually(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def _typed(plain: Command) -> c.Command:
    """Decode a plain command, keeping a deliberately non-plain ``input`` (decode would refuse it)."""
    if isinstance(plain.get("input"), str):
        return c.decode(plain)
    return dataclasses.replace(c.decode({**plain, "input": "{}"}), input=plain["input"])


def _submits(n: int, start: int = 0) -> list[Command]:
    return [submit_cmd(f"r{i}", f"w{i}", "sequential", 10 + i) for i in range(start, start + n)]


async def _fill_and_snapshot(raft: ReplicatedState, proposer: Proposer) -> str:
    assert (await proposer.propose(c.decode(join_cmd("n1", 1)))).ok
    results = await asyncio.gather(*(proposer.propose(c.decode(p)) for p in _submits(300)))
    assert all(r.ok for r in results)

    def snapshotted() -> bool:
        figures = raft.last_snapshot
        return figures is not None and figures.workflows >= 300

    await eventually(snapshotted, 20, "a background snapshot of the 300 workflows")
    # More entries after the snapshot: they live only in the (compacted) journal.
    results = await asyncio.gather(*(proposer.propose(c.decode(p)) for p in _submits(20, start=300)))
    assert all(r.ok for r in results)
    await eventually(lambda: raft.status().applied_index >= raft.status().commit_index, 5, "apply")
    digest, _ = raft.digest_and_owned("n1")
    return digest


def test_heartbeat_times_are_set_on_pysyncobjs_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pysyncobj keeps deadlines on CLOCK_MONOTONIC_RAW, which drifts from time.monotonic() (NTP slews
    the latter): a next-heartbeat time set on the wrong clock spaced an idle leader's heartbeats by the
    drift. Here pysyncobj's clock runs 1,000 s ahead, so a time set on time.monotonic() is far off."""
    import pysyncobj.syncobj

    def ahead() -> float:
        return time.monotonic() + 1000.0

    monkeypatch.setattr(pysyncobj.syncobj, "monotonicTime", ahead)
    monkeypatch.setattr(replication, "raft_clock", ahead)
    raft = one_node(tmp_path)
    try:
        period = raft._SyncObj__conf.appendEntriesPeriod
        deadline = time.monotonic() + 10
        lead = raft._SyncObj__newAppendEntriesTime - ahead()
        while lead <= 0:  # the first heartbeat has not been sent yet
            assert time.monotonic() < deadline, "a leader heartbeats"
            time.sleep(0.01)
            lead = raft._SyncObj__newAppendEntriesTime - ahead()
        assert lead <= period + 0.001, f"next heartbeat {lead:.3f} s away, period {period} s"
    finally:
        raft.destroy()


def test_background_snapshot_compaction_and_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        port = free_ports(1)[0]
        raft = one_node(tmp_path, port, fsync="batch")
        proposer = Proposer(raft, asyncio.get_running_loop())
        proposer.start()
        try:
            digest = await _fill_and_snapshot(raft, proposer)
            figures = raft.last_snapshot
            assert figures is not None and figures.workflows >= 300 and figures.pause_s < figures.total_s
            assert raft.status().log_entries < 300, "the journal was compacted"
        finally:
            await proposer.stop()
            raft.destroy()
        assert (tmp_path / "raft.snapshot").exists() and not (tmp_path / "raft.journal.compact").exists()
        again = one_node(tmp_path, port, fsync="batch")
        try:
            await eventually(lambda: again.digest_and_owned("n1")[0] == digest, 10, "the same state back")
            with again.read() as sm:
                assert len(sm.workflows) == 320
        finally:
            again.destroy()

    asyncio.run(asyncio.wait_for(scenario(), 60))


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("not plain data")


def test_proposals_made_while_a_batch_is_in_flight_leave_as_one_entry(tmp_path: Path) -> None:
    async def scenario() -> None:
        raft = one_node(tmp_path, fsync="batch")
        proposer = Proposer(raft, asyncio.get_running_loop())
        proposer.start()
        try:
            assert (await proposer.propose(c.decode(join_cmd("n1", 1)))).ok
            before = proposer.batches
            pending = []
            for p in _submits(60):  # one at a time, the flush loop free to run between them
                pending.append(asyncio.ensure_future(proposer.propose(c.decode(p))))
                await asyncio.sleep(0)
            assert all(r.ok for r in await asyncio.gather(*pending))
            # The first submit leaves alone; the rest queue behind it and leave together when it settles
            # (a batch per free slot would send several small entries instead).
            assert proposer.batches - before <= 3, f"{proposer.batches - before} entries for 60 submits"
        finally:
            await proposer.stop()
            raft.destroy()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_batch_that_never_settles_does_not_hold_later_proposals_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overlap_s = 1.0  # long, so that waiting for it or not is far apart from a commit's few milliseconds
    monkeypatch.setattr(proposer_module, "OVERLAP_AFTER_S", overlap_s)

    async def scenario() -> None:
        raft = one_node(tmp_path, fsync="off")
        proposer = Proposer(raft, asyncio.get_running_loop())
        real_propose_batch = raft.propose_batch
        lost: list[int] = []

        def lose_the_first(commands: list[Any], on_done: Any) -> None:
            if not lost:  # a forwarded entry lost with no leader change: its callback never comes
                lost.append(len(commands))
                return
            real_propose_batch(commands, on_done)

        proposer.start()
        try:
            assert (await proposer.propose(c.decode(join_cmd("n1", 1)))).ok
            raft.propose_batch = lose_the_first  # type: ignore[method-assign]
            stuck = asyncio.ensure_future(proposer.propose(c.Heartbeat(node="n1", ts=99), timeout=30))
            await eventually(lambda: lost == [1], 5, "the heartbeat's batch to leave (and be lost)")
            # Held back behind the lost batch, it would time out after 5 s: it overlaps it instead.
            assert (await proposer.propose(c.decode(_submits(1)[0]), timeout=5)).ok
            # Once the lost batch is older than the overlap, nothing waits for it any more.
            await asyncio.sleep(overlap_s)
            started = time.monotonic()
            assert (await proposer.propose(c.decode(_submits(1, start=1)[0]), timeout=5)).ok
            took_s = time.monotonic() - started
            assert took_s < overlap_s / 2, f"{took_s:.2f} s: it waited for a batch lost long ago"
            assert not stuck.done()
            stuck.cancel()
        finally:
            await proposer.stop()
            raft.destroy()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_proposer_refuses_an_unpicklable_command_and_commits_the_rest(tmp_path: Path) -> None:
    async def scenario() -> None:
        raft = one_node(tmp_path, fsync="off")
        proposer = Proposer(raft, asyncio.get_running_loop(), batch_bytes_max=8192)
        proposer.start()
        try:
            assert (await proposer.propose(c.decode(join_cmd("n1", 1)))).ok
            # A typed command can still carry a value that is not plain data (dataclasses do not check).
            bad = dict(submit_cmd("bad", "w-bad", "sequential", 5), input=Unpicklable())
            huge = submit_cmd("huge", "w-huge", "sequential", 6, input_json='"' + "x" * 10_000 + '"')
            commands = _submits(40)
            commands[10:10] = [bad]
            commands[20:20] = [huge]
            results = await asyncio.gather(*(proposer.propose(_typed(p)) for p in commands))
            by_rid = {c["rid"]: r for c, r in zip(commands, results, strict=True)}
            assert by_rid["bad"].code == "INVALID_ARGUMENT" and "serialised" in by_rid["bad"].message
            huge_result = by_rid["huge"]
            assert huge_result.code == "INVALID_ARGUMENT" and "raft_batch_bytes_max" in huge_result.message
            assert all(r.ok for rid, r in by_rid.items() if rid not in ("bad", "huge"))
            assert proposer.batches >= 2, "40 submits of ~700 bytes do not fit one 8 KiB batch"
            # The loop is alive: later proposals (a heartbeat, urgent) still commit.
            beat = c.Heartbeat(node="n1", ts=99)
            assert (await proposer.propose(beat, urgent=True)).ok
            with raft.read() as sm:
                assert "w-bad" not in sm.workflows and len(sm.workflows) == 40
        finally:
            await proposer.stop()
            raft.destroy()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_status_names_the_leader(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    addr = f"127.0.0.1:{port}"
    raft = ReplicatedState(addr, [], str(tmp_path), RaftTuning(), None, lambda _: None, node_ids={addr: "n1"})
    try:
        deadline = time.monotonic() + 10
        while not raft.status().is_leader:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        status = raft.status()
        assert status.leader_id == "n1" and status.leader_address == addr and status.term >= 1
        assert status.partners == {} and not status.blocked
    finally:
        raft.destroy()


def test_a_node_catching_up_from_a_snapshot_never_stands_for_election(tmp_path: Path) -> None:
    """pysyncobj asks ``__connectedToAnyone`` when a follower's election timer runs out: while a snapshot
    decodes or is being checked, the answer is no (``_may_stand``, its first condition)."""
    raft = one_node(tmp_path)
    try:
        stand = raft._may_stand
        assert stand()
        raft._pending_load = PendingLoad(index=1)
        assert not stand(), "decoding a snapshot"
        raft._pending_load, raft._verifiers = None, 1
        assert not stand(), "checking a restored state"
        raft._verifiers = 0
        assert stand()
    finally:
        raft.destroy()


@pytest.mark.parametrize("fsync", ["batch", "off"])
def test_meta_file_is_rewritten_through_the_hook(tmp_path: Path, fsync: str) -> None:
    raft = one_node(tmp_path, fsync=fsync)
    try:
        meta = tmp_path / "raft.journal.meta"
        assert meta.exists() and not (tmp_path / "raft.journal.meta.tmp").exists()
    finally:
        raft.destroy()
