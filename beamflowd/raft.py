"""pysyncobj wiring: one replicated method that applies a *batch* of commands to the state machine.

Threads (DESIGN §4a): pysyncobj's tick thread does networking, Raft and calls ``apply_batch``. The
asyncio side reads state under :attr:`ReplicatedState.lock` and proposes through :class:`Proposer`,
which coalesces everything queued while earlier batches are in flight into one Raft entry
(group commit) and resolves each caller's future with its own :class:`~beamflowd.core.state.Result`.

Snapshots are written by our own serializer (canonical JSON of the state + pysyncobj's raft metadata),
on the tick thread, without forking the gRPC process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjException, replicated

from beamflowd.core.commands import Command
from beamflowd.core.state import FatalApplyError, Result, StateMachine, encode_plain
from beamflowd.transport import BeamTransport

log = logging.getLogger(__name__)

FSYNC_MODES = ("always", "batch", "off")
SNAPSHOT_MAGIC = b"BEAMFLOW-SNAPSHOT-1\n"

#: Group commit limits: at most this many commands per Raft entry, this many entries in flight.
MAX_BATCH_COMMANDS = 1000
MAX_BATCHES_IN_FLIGHT = 4
#: Bound on the proposer queue: beyond it, proposals fail fast with RESOURCE_EXHAUSTED.
MAX_QUEUED_COMMANDS = 50_000

# Failures after which the command certainly did not commit: safe to retry as is.
_RETRYABLE = {
    FAIL_REASON.QUEUE_FULL,
    FAIL_REASON.MISSING_LEADER,
    FAIL_REASON.DISCARDED,
    FAIL_REASON.NOT_LEADER,
}
# "May have committed": our commands are idempotent (request ids, attempt/epoch checks), so these are
# retried too; a duplicate comes back as a harmless rejection that callers re-read state after.
_UNKNOWN = {FAIL_REASON.LEADER_CHANGED, FAIL_REASON.REQUEST_DENIED, FAIL_REASON.UNKNOWN_OUTCOME}
#: A batch whose callback pysyncobj never delivers (a lost forwarded command with no leader change) gives
#: its slot back this long after its last command's deadline.
ORPHANED_BATCH_GRACE = 1.0


@dataclass(frozen=True)
class RaftTuning:
    """Timing knobs, chosen and measured in docs/operations.md."""

    min_timeout: float = 0.3
    max_timeout: float = 0.9
    append_period: float = 0.05
    connection_retry: float = 1.0
    leader_fallback: float = 3.0
    compaction_min_entries: int = 20_000
    compaction_min_time: float = 60.0


AppliedCallback = Callable[[set[str]], None]


class ReplicatedState(SyncObj):  # type: ignore[misc]
    """The state machine behind pysyncobj. ``lock`` guards ``sm`` against readers on other threads."""

    def __init__(
        self,
        self_addr: str,
        partners: list[str],
        data_dir: str,
        tuning: RaftTuning,
        password: str | None,
        on_applied: AppliedCallback,
        fsync: str = "batch",
    ) -> None:
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync: expected one of {', '.join(FSYNC_MODES)}, got {fsync!r}")
        self.fsync = fsync
        self.single_node = not partners
        self._journal_dirty = False
        self.journal_syncs = 0
        #: node id -> time.monotonic() when this node last applied a heartbeat/join from it.
        self.heartbeat_seen: dict[str, float] = {}
        self.sm = StateMachine()
        self.lock = threading.Lock()
        self._digest_cache: tuple[int, str] = (-1, "")  # (state revision, digest)
        self.snapshots = 0
        #: (seconds on the Raft thread, compressed bytes, workflows) of the last snapshot written.
        self.last_snapshot: tuple[float, int, int] = (0.0, 0, 0)
        self._on_applied = on_applied
        os.makedirs(data_dir, exist_ok=True)
        conf = SyncObjConf(
            autoTick=True,
            appendEntriesUseBatch=False,  # the default puts a ~100 ms floor under every commit
            commandsWaitLeader=False,  # fail fast without a leader; Proposer retries with a deadline
            raftMinTimeout=tuning.min_timeout,
            raftMaxTimeout=tuning.max_timeout,
            appendEntriesPeriod=tuning.append_period,
            connectionRetryTime=tuning.connection_retry,
            leaderFallbackTimeout=tuning.leader_fallback,
            logCompactionMinEntries=tuning.compaction_min_entries,
            logCompactionMinTime=tuning.compaction_min_time,
            logCompactionSplit=True,
            journalFile=os.path.join(data_dir, "raft.journal"),
            fullDumpFile=os.path.join(data_dir, "raft.snapshot"),
            bindAddress=self_addr,
            password=password,
            serializer=self._write_snapshot,
            deserializer=self._read_snapshot,
            useFork=False,
            bindRetryTime=0.5,
            maxBindRetries=10,  # ~5 s for a port still held by a previous incarnation, then give up
        )
        super().__init__(self_addr, partners, conf, transportClass=BeamTransport)
        self._hook_journal()
        try:
            self.waitBinded()
        except SyncObjException:
            self.destroy()
            raise OSError(f"raft address {self_addr}: cannot listen (in use?)") from None

    # ------------------------------------------------------------ durability
    def _hook_journal(self) -> None:
        """Track appends to pysyncobj's journal so BeamTransport can sync before acknowledging."""
        journal = self._SyncObj__raftLog
        original_add = journal.add

        def add(command: bytes, idx: int, term: int) -> None:
            original_add(command, idx, term)
            if self.fsync == "always" or (self.fsync == "batch" and self.single_node):
                # A single node sends nothing (so the transport never syncs) and commits alone.
                journal.flush()
                self.journal_syncs += 1
            elif self.fsync == "batch":
                self._journal_dirty = True

        journal.add = add

        # Raft needs currentTerm/votedFor durable before any vote leaves; pysyncobj writes them with a
        # rename but no fsync. Sync the file and its directory (not with fsync = "off").
        original_set_term = journal.setCurrentTerm
        meta_path = journal._FileJournal__metaStorer.getPath()

        def set_current_term(term: int, voted_for: Any) -> None:
            original_set_term(term, voted_for)
            if self.fsync != "off":
                _fsync_path(meta_path)
                _fsync_path(os.path.dirname(meta_path) or ".")

        journal.setCurrentTerm = set_current_term

    def sync_journal_if_dirty(self) -> None:
        """Called by the transport before any message leaves (tick thread)."""
        if self._journal_dirty:
            self._journal_dirty = False
            self._SyncObj__raftLog.flush()
            self.journal_syncs += 1

    @property
    def transport(self) -> BeamTransport:
        transport: BeamTransport = self._SyncObj__transport
        return transport

    def is_leader(self) -> bool:
        return bool(self._isLeader())

    # ---------------------------------------------------------- tick thread
    @replicated  # type: ignore[untyped-decorator]
    def apply_batch(self, commands: list[Mapping[str, Any]]) -> list[Result]:
        with self.lock:
            try:
                results = self.sm.apply_all(commands)
            except FatalApplyError as exc:
                # Fail-stop: a bug must not leave this replica running on a state the others may not share.
                # Exit before anything is acknowledged; the supervisor restarts the node from its log.
                log.critical("fatal error applying %s, stopping the node: %s", exc.op, exc, exc_info=exc)
                os._exit(os.EX_SOFTWARE)  # 70
            changed = self.sm.drain_changed()
        seen = time.monotonic()  # liveness is judged on the local clock, outside the state machine
        for cmd in commands:
            if cmd.get("op") in ("heartbeat", "join"):
                self.heartbeat_seen[cmd["node"]] = seen
        if changed:
            # Never let a notification failure escape: pysyncobj would re-apply the whole entry.
            try:
                self._on_applied(changed)
            except Exception:
                log.exception("change notification failed")
        return results

    def _write_snapshot(self, filename: str, raft_data: Any) -> None:
        """Write a snapshot on the tick thread (pysyncobj renames the file as soon as we return).

        The tick thread does not process messages meanwhile; with large state that takes longer than an
        election timeout, so afterwards the election timer is restarted: our own pause is no evidence that
        the leader failed (without this, every follower snapshot would start a disruptive election).
        """
        started = time.monotonic()
        with self.lock:
            state = zlib.compress(encode_plain(self.sm.to_plain()), 1)
            workflows = len(self.sm.workflows)
        meta = pickle.dumps(raft_data)  # pysyncobj's own entries and node set, not our classes
        with open(filename, "wb") as f:
            f.write(SNAPSHOT_MAGIC)
            f.write(len(state).to_bytes(8, "big"))
            f.write(state)
            f.write(meta)
            f.flush()
            os.fsync(f.fileno())
        took = time.monotonic() - started
        if not self._isLeader():
            self._SyncObj__raftElectionDeadline = time.monotonic() + self._SyncObj__generateRaftTimeout()
        self.snapshots += 1
        self.last_snapshot = (took, len(state), workflows)
        log.info(
            "snapshot: %d workflows, %d bytes compressed, %.0f ms on the Raft thread",
            workflows,
            len(state),
            took * 1000,
        )

    def _read_snapshot(self, filename: str) -> Any:
        with open(filename, "rb") as f:
            if f.read(len(SNAPSHOT_MAGIC)) != SNAPSHOT_MAGIC:
                raise ValueError(f"{filename}: not a BEAMFlow snapshot")
            size = int.from_bytes(f.read(8), "big")
            plain = json.loads(zlib.decompress(f.read(size)))
            raft_data = pickle.loads(f.read())
        restored = StateMachine.from_plain(plain)
        log.info("loaded snapshot: %d workflows, applied index %s", len(restored.workflows), raft_data[0][1])
        with self.lock:
            self.sm.load(restored)
            changed = self.sm.drain_changed()
        self._on_applied(changed)
        return raft_data

    # --------------------------------------------------------- any thread
    def raft_status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.getStatus()
        return status

    def digest_and_owned(self, node_id: str) -> tuple[str, int]:
        """(state digest, workflows owned by node_id); the digest is cached per state revision."""
        with self.lock:
            if self._digest_cache[0] != self.sm.revision:
                self._digest_cache = (self.sm.revision, self.sm.digest())
            return self._digest_cache[1], self.sm.owned_by(node_id)

    def member_grpc_addrs(self) -> dict[str, str]:
        with self.lock:
            return {m.id: m.grpc_addr for m in self.sm.members.values()}


class ProposeError(Exception):
    """A proposal that could not be committed before its deadline; ``code`` is a gRPC code name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class _Pending:
    command: Mapping[str, Any]
    future: asyncio.Future[Result]
    deadline: float


class Proposer:
    """Group commit on the asyncio side: one Raft entry per batch, results routed per command."""

    def __init__(self, raft: ReplicatedState, loop: asyncio.AbstractEventLoop) -> None:
        self._raft = raft
        self._loop = loop
        self._queue: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.commands = 0

    def start(self) -> None:
        self._task = self._loop.create_task(self._flush_forever(), name="proposer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for p in self._queue:
            if not p.future.done():
                p.future.set_exception(ProposeError("UNAVAILABLE", "node is shutting down"))
        self._queue.clear()

    async def propose(self, command: Command, timeout: float = 10.0, urgent: bool = False) -> Result:
        """Commit ``command`` and return its result; ProposeError(UNAVAILABLE) past ``timeout``.

        ``urgent`` (heartbeats, joins) jumps the queue, so liveness never waits behind a backlog of work.
        """
        if len(self._queue) >= MAX_QUEUED_COMMANDS and not urgent:
            raise ProposeError("RESOURCE_EXHAUSTED", "too many commands queued on this node")
        fut: asyncio.Future[Result] = self._loop.create_future()
        pending = _Pending(command.to_plain(), fut, self._loop.time() + timeout)
        if urgent:
            self._queue.insert(0, pending)
        else:
            self._queue.append(pending)
        self._wakeup.set()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout + 0.5)
        except (TimeoutError, asyncio.CancelledError) as exc:
            # The future may still get a result or an exception later: consume it so asyncio does not
            # log "exception was never retrieved".
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise ProposeError(
                "UNAVAILABLE",
                "no quorum: the command was not committed in time "
                "(it may still commit; retrying with the same request id is safe)",
            ) from None

    async def _flush_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                await self._slots.acquire()
                batch = self._queue[:MAX_BATCH_COMMANDS]
                del self._queue[:MAX_BATCH_COMMANDS]
                now = self._loop.time()
                live = [p for p in batch if p.deadline > now and not p.future.done()]
                for p in batch:
                    if p.deadline <= now and not p.future.done():
                        p.future.set_exception(ProposeError("UNAVAILABLE", "no quorum before the deadline"))
                if not live:
                    self._slots.release()
                    continue
                self._send(live)

    def _send(self, batch: list[_Pending]) -> None:
        self.batches += 1
        self.commands += len(batch)
        settled = [False]  # the slot is given back exactly once: by the callback or by the watchdog

        def on_result(result: Any, error: int) -> None:  # tick thread
            self._loop.call_soon_threadsafe(self._resolve, batch, result, error, settled)

        def orphaned() -> None:
            if not settled[0]:
                log.warning("no outcome from raft for a batch of %d command(s); retrying them", len(batch))
                self._resolve(batch, None, FAIL_REASON.UNKNOWN_OUTCOME, settled)

        deadline = max(p.deadline for p in batch) + ORPHANED_BATCH_GRACE
        self._loop.call_at(deadline, orphaned)
        self._raft.apply_batch([p.command for p in batch], callback=on_result)

    def _resolve(self, batch: list[_Pending], result: Any, error: int, settled: list[bool]) -> None:
        if settled[0]:
            return  # the watchdog already gave up on this batch; a late outcome changes nothing
        settled[0] = True
        self._slots.release()
        if error == FAIL_REASON.SUCCESS:
            for p, r in zip(batch, result, strict=True):
                if not p.future.done():
                    p.future.set_result(r)
            return
        if error in _RETRYABLE or error in _UNKNOWN:
            # Retry after a short pause (an election takes a few hundred ms); deadlines bound it.
            self._loop.call_later(0.05, self._requeue, batch)
            return
        for p in batch:
            if not p.future.done():
                p.future.set_exception(ProposeError("UNAVAILABLE", f"raft refused the command ({error})"))

    def _requeue(self, batch: list[_Pending]) -> None:
        self._queue[:0] = [p for p in batch if not p.future.done()]
        self._wakeup.set()
