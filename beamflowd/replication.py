"""The pysyncobj 0.3.17 adapter: the only module (with :mod:`beamflowd.transport`) that knows pysyncobj.

Threads: pysyncobj's tick thread does networking, Raft and calls ``apply_batch``. Other threads read the
state machine through :meth:`ReplicatedState.read` (under the lock that apply holds), ask for
:meth:`ReplicatedState.status`, and propose through :meth:`ReplicatedState.propose_batch` (used by
:class:`beamflowd.proposer.Proposer`), whose outcome arrives on the tick thread already classified.

Durability (what pysyncobj does not do itself): term and vote are fsynced whenever written, compaction
writes the new journal beside the old one and renames it, snapshots (ours and received ones) are fsynced
with their directory before the journal that they replace is cut.

Snapshots never encode the state on the tick thread: see :class:`EncodedWorkflows` and docs/design.md.
"""

from __future__ import annotations

import enum
import itertools
import json
import logging
import os
import pickle
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pysyncobj import FAIL_REASON, SERIALIZER_STATE, SyncObj, SyncObjConf, SyncObjException, replicated
from pysyncobj.journal import FileJournal
from pysyncobj.monotonic import monotonic as raft_clock  # every time we set in pysyncobj's state: below
from pysyncobj.node import TCPNode
from pysyncobj.pickle import dumps as pysyncobj_dumps
from pysyncobj.pickle import to_bytes as pysyncobj_to_bytes
from pysyncobj.syncobj import _COMMAND_TYPE

from beamflowd import gc_pauses, power_cut, sync_delay
from beamflowd.core.packed_workflows import decode_json_line, summary_of
from beamflowd.core.state import FatalApplyError, Result, StateMachine, encode_plain
from beamflowd.snapshot_loading import (
    PENDING_ENTRIES_MAX,
    DeferredResults,
    PendingLoad,
    pause_before_loading,
    tick_thread_first,
    verify_finished_workflows,
)
from beamflowd.state_lock import StateLock
from beamflowd.tick_watch import TickWatch
from beamflowd.transport import BeamTransport

log = logging.getLogger(__name__)

# pysyncobj keeps its deadlines on its own clock, CLOCK_MONOTONIC_RAW (``raft_clock``); time.monotonic() is
# CLOCK_MONOTONIC, which NTP slews, so the two drift apart (0.25 s after an hour of uptime here, more on a
# machine up for days). Every time we put into pysyncobj's state is on its clock: a heartbeat time set on
# the other made an idle leader heartbeat every 0.3 s instead of every 0.05 s (elections on a quiet day).

FSYNC_MODES = ("always", "batch", "off")
#: v1: canonical JSON of the whole state in one zlib block, then the raft metadata (read, no longer written).
SNAPSHOT_MAGIC_V1 = b"BEAMFLOW-SNAPSHOT-1\n"
#: v2: raft metadata first, then one zlib stream of JSON lines: the state without workflows, the request
#: ids, then one workflow per line (so a restore can keep each line as that workflow's encoding).
SNAPSHOT_MAGIC_V2 = b"BEAMFLOW-SNAPSHOT-2\n"
#: v3 (written): as v2, with one more line before the workflows' lines: every workflow's summary, in the
#: same order (:mod:`beamflowd.core.packed_workflows`), so a restore builds finished workflows from their
#: summaries and decodes their lines only when first read.
SNAPSHOT_MAGIC_V3 = b"BEAMFLOW-SNAPSHOT-3\n"
#: Formats that start with pysyncobj's metadata and go on with a zlib stream of JSON lines.
_LINE_FORMATS = (SNAPSHOT_MAGIC_V2, SNAPSHOT_MAGIC_V3)
_MAGIC_BYTES = len(SNAPSHOT_MAGIC_V3)

#: A workflow is re-encoded in the background once it has not changed for this long: a workflow that is
#: still running would be encoded again and again for nothing.
ENCODE_SETTLE_S = 0.5
ENCODE_PERIOD_S = 0.25
#: Workflows encoded per hold of the state lock by the background encoder (keeps each hold a few ms).
ENCODE_CHUNK = 200
#: Workflows re-filed in the list index per hold of the state lock (~13 us each: ~4 ms a hold).
INDEX_CHUNK = 300
#: Restored digest shares hashed per hold of the state lock (~3 us each: ~3 ms a hold).
SETTLE_CHUNK = 1000
#: Items per zlib/JSON call in the snapshot writer: each call holds the GIL, so keep it short.
WRITE_CHUNK = 2000
#: Attempts to copy pysyncobj's member set from another thread (it changes in place on the tick thread).
MEMBERS_READ_TRIES = 5
#: A snapshot transfer to a follower pauses while this much is still unsent in its connection.
SNAPSHOT_SEND_BUFFERED_BYTES_MAX = 1 << 20
#: pysyncobj's full dump (our snapshot) inside a node's data directory.
DUMP_FILE = "raft.snapshot"

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
_ROLES = {0: "follower", 1: "candidate", 2: "leader"}


@dataclass(frozen=True)
class RaftTuning:
    """Timing knobs, chosen and measured in docs/performance.md."""

    min_timeout: float = 0.3
    max_timeout: float = 0.9
    append_period: float = 0.05
    connection_retry: float = 1.0
    leader_fallback: float = 3.0
    compaction_min_entries: int = 20_000
    compaction_min_time: float = 60.0


@dataclass(frozen=True)
class RaftStatus:
    """This node's view of Raft, read without the state lock (fields may be a tick apart)."""

    role: str  # "follower" | "candidate" | "leader" | "unknown"
    term: int
    commit_index: int
    applied_index: int
    #: Node id of the leader when its Raft address is known, else the address; "" without a leader.
    leader_id: str
    leader_address: str
    has_quorum: bool
    #: Raft address of each partner -> connected now.
    partners: Mapping[str, bool] = field(default_factory=dict)
    #: Partner Raft addresses whose traffic the chaos partition drops.
    blocked: frozenset[str] = frozenset()
    log_entries: int = 0

    @property
    def is_leader(self) -> bool:
        return self.role == "leader"


class Outcome(enum.Enum):
    """What became of a proposed batch, in the proposer's terms."""

    COMMITTED = "committed"
    #: Not committed, or maybe committed: commands are idempotent, so retry until the deadline.
    RETRY = "retry"
    REFUSED = "refused"


@dataclass(frozen=True)
class SnapshotFigures:
    """The last snapshot this node wrote."""

    pause_s: float  # on the tick thread, under the state lock
    total_s: float  # until renamed and fsynced
    compressed_bytes: int
    workflows: int


BatchCallback = Callable[[list[Result] | None, Outcome, str], None]
AppliedCallback = Callable[[set[str]], None]


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if os.path.isdir(path):
        power_cut.dir_synced(path)
    else:
        power_cut.file_synced(path)


def _fsync_file(f: Any, path: str) -> None:
    """fsync an open file (flushed first) known by ``path``."""
    f.flush()
    os.fsync(f.fileno())
    power_cut.file_synced(path)


def _fsync_dir_of(path: str) -> None:
    _fsync_path(os.path.dirname(path) or ".")


class EncodedWorkflows:
    """Each workflow's canonical JSON, kept current by a background thread, so a snapshot copies references.

    ``dirty`` maps the id of every workflow changed since it was last encoded to the monotonic time of that
    change, oldest first. The encoder thread encodes the ones that have settled, in small chunks under the
    state lock, and stays idle while a snapshot is being written (``frozen``): the writer then reads
    ``fragments`` without a copy, and the tick thread only takes the plain form of the few dirty workflows.
    Workflows deleted by GC leave no change mark; their fragments are pruned when they pile up. Each line
    encoded also settles that workflow's share of the state digest, so a status call under the lock hashes
    only what changed in the last ``ENCODE_SETTLE_S`` (after a load of 100,000 it would otherwise encode
    them all there, and the tick thread, waiting for the lock to apply, would miss its heartbeats). The same
    thread keeps the list index filed (:meth:`refile_index`) and adds the digest shares a restore left out
    (:meth:`settle_restored`), for the same reason.
    """

    def __init__(self, lock: StateLock, sm: StateMachine) -> None:
        self.lock = lock
        self.sm = sm
        self.fragments: dict[str, bytes] = {}
        #: Each encoded workflow's summary, taken from the same plain form as its fragment.
        self.summaries: dict[str, list[Any]] = {}
        self.dirty: dict[str, float] = {}
        #: Readers of ``fragments`` outside the lock (snapshot writer, backup stream): the encoder waits.
        self.frozen = 0
        self.encoded = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="snapshot-encoder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def mark(self, changed: Iterable[str], now: float) -> None:
        """Under the state lock: these workflows changed (re-inserted, so ``dirty`` stays time-ordered)."""
        dirty = self.dirty
        for wf_id in changed:
            dirty.pop(wf_id, None)
            dirty[wf_id] = now

    def reset(
        self, fragments: dict[str, bytes], summaries: dict[str, list[Any]], dirty: Iterable[str]
    ) -> None:
        """Under the state lock, after a restore."""
        self.fragments, self.summaries = fragments, summaries
        self.dirty = {}
        self.mark(dirty, time.monotonic())

    def capture(self, raft_meta: bytes) -> _Capture:
        """Tick thread: what a snapshot of the current state needs, in O(workflows) of pointer copies.

        Freezes the encoder until the writer calls :meth:`thaw`, so ``fragments`` can be shared.
        """
        with self.lock:
            return self.capture_locked(raft_meta)

    def capture_locked(self, raft_meta: bytes) -> _Capture:
        """:meth:`capture` for a caller that already holds the state lock."""
        self.frozen += 1
        sm = self.sm
        header = sm.to_plain(bulk=False)
        request_ids = dict(sm.request_ids)  # one object: no garbage-collector work on this thread
        ids = list(sm.workflows)
        workflows = sm.workflows
        fragments = self.fragments
        dirty_plain = {w: workflows[w].to_plain() for w in self.dirty if w in workflows}
        if len(fragments) + len(dirty_plain) < len(ids):  # not expected: every new workflow is marked
            for wf_id in ids:
                if wf_id not in fragments and wf_id not in dirty_plain:
                    dirty_plain[wf_id] = workflows[wf_id].to_plain()
        return _Capture(header, request_ids, ids, fragments, self.summaries, dirty_plain, raft_meta)

    def thaw(self) -> None:
        """The writer is done with ``fragments``: the encoder may change them again (once all are done)."""
        with self.lock:
            self.frozen = max(0, self.frozen - 1)

    def _run(self) -> None:
        while not self._stop.wait(ENCODE_PERIOD_S):
            try:
                self.settle_restored()
                self.encode_settled(time.monotonic() - ENCODE_SETTLE_S)
                self.refile_index()
                self._prune()
            except Exception:
                log.exception("background workflow encoder failed (snapshots will encode on demand)")

    def encode_settled(self, changed_before: float) -> None:
        """Encode every dirty workflow last changed before ``changed_before`` (any thread)."""
        while not self.frozen and not self._stop.is_set():
            with self.lock.chunk():
                if self.frozen:
                    return
                chunk = [
                    wf_id
                    for wf_id, _ in itertools.takewhile(
                        lambda item: item[1] <= changed_before,
                        itertools.islice(self.dirty.items(), ENCODE_CHUNK),
                    )
                ]
                workflows = self.sm.workflows
                for wf_id in chunk:
                    del self.dirty[wf_id]
                    wf = workflows.get(wf_id)
                    if wf is None:
                        self.fragments.pop(wf_id, None)
                        self.summaries.pop(wf_id, None)
                    else:
                        plain = wf.to_plain()
                        self.fragments[wf_id] = line = encode_plain(plain)
                        self.summaries[wf_id] = summary_of(plain)
                        self.sm.settle_digest(wf_id, line)
                self.encoded += len(chunk)
            if len(chunk) < ENCODE_CHUNK:
                return

    def settle_restored(self) -> None:
        """Add the digest shares a restore left out (:meth:`StateMachine.settle_restored`), a chunk per
        hold of the lock, so the first status call after a restore does not hash them all under it."""
        while not self._stop.is_set():
            with self.lock.chunk():
                if not self.sm.settle_restored(SETTLE_CHUNK):
                    return

    def refile_index(self) -> None:
        """Re-file the workflows touched since the last query in the list index, a chunk per hold of the
        lock, so the next list does not re-file a whole burst under it (1.3 s after a fill of 100,000)."""
        while not self._stop.is_set():
            with self.lock.chunk():
                if not self.sm.index.refresh(self.sm.workflows, limit=INDEX_CHUNK):
                    return

    def _prune(self) -> None:
        """Drop fragments of deleted workflows once they exceed a tenth of the state."""
        if len(self.fragments) <= len(self.sm.workflows) * 1.1 + 1000 or self.frozen:
            return
        keys = list(self.fragments)
        for start in range(0, len(keys), ENCODE_CHUNK * 25):
            with self.lock.chunk():
                if self.frozen:
                    return
                workflows = self.sm.workflows
                for wf_id in keys[start : start + ENCODE_CHUNK * 25]:
                    if wf_id not in workflows:
                        self.fragments.pop(wf_id, None)
                        self.summaries.pop(wf_id, None)


@dataclass
class _Capture:
    """What the tick thread copies for one snapshot; the writer thread encodes it."""

    header: dict[str, Any]
    request_ids: dict[str, str]
    ids: list[str]
    fragments: dict[str, bytes]
    summaries: dict[str, list[Any]]
    dirty_plain: dict[str, dict[str, Any]]
    raft_meta: bytes


def snapshot_lines(capture: _Capture) -> Iterator[bytes]:
    """The v3 snapshot body in pieces of at most WRITE_CHUNK items (each piece is one short GIL hold)."""
    yield encode_plain(capture.header) + b"\n"
    yield from _json_array(capture.request_ids.items())
    ids, fragments, summaries, dirty = capture.ids, capture.fragments, capture.summaries, capture.dirty_plain

    def summary(wf_id: str) -> list[Any]:
        plain = dirty.get(wf_id)
        if plain is not None:
            return summary_of(plain)
        found = summaries.get(wf_id)
        return summary_of(decode_json_line(fragments[wf_id])) if found is None else found

    yield from _json_array(map(summary, ids))
    for start in range(0, len(ids), WRITE_CHUNK):
        parts = []
        for wf_id in ids[start : start + WRITE_CHUNK]:
            plain = dirty.get(wf_id)
            parts.append(fragments[wf_id] if plain is None else encode_plain(plain))
        parts.append(b"")
        yield b"\n".join(parts)


def _json_array(items: Iterable[Any]) -> Iterator[bytes]:
    """One line holding a JSON array of ``items``, in pieces of WRITE_CHUNK items."""
    yield b"["
    rows = iter(items)
    first = True
    while chunk := list(itertools.islice(rows, WRITE_CHUNK)):  # short-lived: never promoted by the GC
        piece = encode_plain(chunk)[1:-1]  # strip [ and ]
        yield piece if first else b"," + piece
        first = False
    yield b"]\n"


def snapshot_file_pieces(capture: _Capture) -> Iterator[bytes]:
    """The bytes of a v3 snapshot file, in pieces (any thread, no lock needed): the one snapshot codec."""
    compressor = zlib.compressobj(1)
    yield SNAPSHOT_MAGIC_V3 + len(capture.raft_meta).to_bytes(8, "big") + capture.raft_meta
    for piece in snapshot_lines(capture):
        out = compressor.compress(piece)
        if out:
            yield out
    yield compressor.flush()


def write_snapshot_file(path: str, capture: _Capture, sync: bool) -> int:
    """Write a v3 snapshot (any thread, no lock needed); returns its compressed size in bytes."""
    size = 0
    with open(path, "wb") as f:
        for index, piece in enumerate(snapshot_file_pieces(capture)):
            if index:
                size += len(piece)
            f.write(piece)
        f.flush()
        if sync:
            _fsync_file(f, path)
    return size


class Restored(NamedTuple):
    """A decoded snapshot."""

    state: StateMachine
    #: Each workflow's canonical line, if the format keeps them (v2 and v3).
    fragments: dict[str, bytes] | None
    #: Each workflow's summary, taken from the same plain form as its line (empty without lines).
    summaries: dict[str, list[Any]]
    #: pysyncobj's metadata (None when not trusted).
    raft_meta: Any


def read_snapshot_file(filename: str, check_finished: bool = True) -> Restored:
    """The snapshot in a v1, v2 or v3 file."""
    with open(filename, "rb") as f:
        return parse_snapshot(f.read(), filename, check_finished=check_finished)


def snapshot_raft_meta(data: bytes) -> Any:
    """pysyncobj's metadata of a v2 or v3 snapshot without decoding its state; None for any other format."""
    if data[:_MAGIC_BYTES] not in _LINE_FORMATS:
        return None
    meta_size = int.from_bytes(data[_MAGIC_BYTES : _MAGIC_BYTES + 8], "big")
    return pickle.loads(data[_MAGIC_BYTES + 8 : _MAGIC_BYTES + 8 + meta_size])


def parse_snapshot(data: bytes, name: str, trust_meta: bool = True, check_finished: bool = True) -> Restored:
    """:func:`read_snapshot_file` of bytes already read; ``name`` says where they came from in errors.

    ``trust_meta=False``: v2 and v3 only, pysyncobj's pickled metadata is skipped (returned as None).
    ``check_finished=False``: finished workflows' own invariants are left to the caller
    (:func:`beamflowd.snapshot_loading.verify_finished_workflows`).
    """
    magic = data[:_MAGIC_BYTES]
    offset = len(magic)
    if magic == SNAPSHOT_MAGIC_V1 and trust_meta:
        size = int.from_bytes(data[offset : offset + 8], "big")
        plain = json.loads(zlib.decompress(data[offset + 8 : offset + 8 + size]))
        restored = StateMachine.from_plain(plain, check_finished=check_finished)
        return Restored(restored, None, {}, pickle.loads(data[offset + 8 + size :]))
    if magic not in _LINE_FORMATS:
        raise ValueError(f"{name}: not a BEAMFlow snapshot")
    meta_size = int.from_bytes(data[offset : offset + 8], "big")
    # A backup may come from anywhere: restore never unpickles it (it writes its own raft metadata).
    raft_meta = pickle.loads(data[offset + 8 : offset + 8 + meta_size]) if trust_meta else None
    body = zlib.decompress(data[offset + 8 + meta_size :])
    lines = body.split(b"\n")
    header = json.loads(lines[0])
    header["request_ids"] = json.loads(lines[1])
    if magic == SNAPSHOT_MAGIC_V2:
        encoded = lines[2:-1]
        header["workflows"] = [decode_json_line(line) for line in encoded]
        summaries = {wp["id"]: summary_of(wp) for wp in header["workflows"]}
        fragments = {wp["id"]: line for wp, line in zip(header["workflows"], encoded, strict=True)}
        state = StateMachine.from_plain(header, fragments, check_finished=check_finished)
        return Restored(state, fragments, summaries, raft_meta)
    summary_list = decode_json_line(lines[2])
    encoded = lines[3:-1]
    if not isinstance(summary_list, list) or len(summary_list) != len(encoded):
        raise ValueError(f"{name}: the summaries do not match the {len(encoded)} workflow lines")
    header["workflows"] = []
    summaries = {summary[0]: summary for summary in summary_list}
    fragments = {summary[0]: line for summary, line in zip(summary_list, encoded, strict=True)}
    state = StateMachine.from_plain(
        header, fragments, check_finished=check_finished, packed=zip(summary_list, encoded, strict=True)
    )
    return Restored(state, fragments, summaries, raft_meta)


class ReplicatedState(SyncObj):  # type: ignore[misc]
    """The state machine behind pysyncobj; read it with :meth:`read`, never directly from another thread."""

    def __init__(
        self,
        self_addr: str,
        partners: list[str],
        data_dir: str,
        tuning: RaftTuning,
        password: str | None,
        on_applied: AppliedCallback,
        fsync: str = "batch",
        node_ids: Mapping[str, str] | None = None,
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
        self._lock = StateLock()
        self._digest_cache: tuple[int, str] = (-1, "")  # (state revision, digest)
        #: Raft address -> node id, to name the leader.
        self._node_ids = dict(node_ids or {})
        self.encoded = EncodedWorkflows(self._lock, self.sm)
        self.snapshots = 0
        self.last_snapshot: SnapshotFigures | None = None
        self._snapshot_state: int = SERIALIZER_STATE.NOT_SERIALIZING
        #: Bumped (under ``_dump_lock``) when a received snapshot is about to replace the dump file.
        self._dump_generation = 0
        self._dump_lock = threading.Lock()
        self._on_applied = on_applied
        #: Called (tick thread) with the seconds each journal sync took (metrics); None = nobody listens.
        self.on_journal_sync: Callable[[float], None] | None = None
        #: Raft index of the last entry whose commands the state reflects (set under the state lock).
        self.applied_index = 0
        self._transfer_requested = False
        self._seen_term_leader: tuple[int, Any] = (-1, None)
        #: False until our constructor is done. pysyncobj loads the snapshot on disk at its first tick, which
        #: its thread takes 0.1 s after starting, normally after this is set: the at-start load then takes
        #: the loader thread too. A tick before it loads synchronously on the tick thread.
        self._started = False
        #: A received snapshot still decoding on the loader thread (entries committed meanwhile queue here).
        self._pending_load: PendingLoad | None = None
        self._verifiers = 0  # snapshot-verifier threads checking a restored state (two loads may overlap)
        os.makedirs(data_dir, exist_ok=True)
        power_cut.install(data_dir)
        self._sync_delay = sync_delay.from_env(data_dir)
        self._dump_path = os.path.join(data_dir, DUMP_FILE)
        conf = SyncObjConf(
            autoTick=True,
            appendEntriesUseBatch=False,  # the default puts a ~100 ms floor under every commit
            commandsWaitLeader=False,  # fail fast without a leader; the proposer retries with a deadline
            raftMinTimeout=tuning.min_timeout,
            raftMaxTimeout=tuning.max_timeout,
            appendEntriesPeriod=tuning.append_period,
            connectionRetryTime=tuning.connection_retry,
            leaderFallbackTimeout=tuning.leader_fallback,
            logCompactionMinEntries=tuning.compaction_min_entries,
            logCompactionMinTime=tuning.compaction_min_time,
            logCompactionSplit=True,
            journalFile=os.path.join(data_dir, "raft.journal"),
            fullDumpFile=self._dump_path,
            bindAddress=self_addr,
            password=password,
            serializer=self._start_snapshot,
            deserializer=self._read_snapshot,
            serializeChecker=self._check_snapshot,
            useFork=False,
            dynamicMembershipChange=True,  # beamctl cluster member add/remove, one change at a time
            bindRetryTime=0.5,
            maxBindRetries=10,  # ~5 s for a port still held by a previous incarnation, then give up
        )
        super().__init__(self_addr, partners, conf, transportClass=BeamTransport)
        self._hook_journal()
        self._hook_received_snapshot()
        if fsync != "off":
            # pysyncobj creates the journal (and meta) file without syncing it or its directory: until both
            # are, a power cut may take the whole file, and with it entries this node acknowledged.
            self._timed_journal_sync(self._SyncObj__raftLog)
            _fsync_dir_of(conf.journalFile)
        if self._SyncObj__raftCurrentTerm > 0:
            # A restart: the cluster most likely has a leader, which reconnects within connection_retry.
            # Standing for election before it could (pysyncobj has no pre-vote) bumps every member's
            # term and deposes a healthy leader. A fresh node (term 0) is harmless: its first term is
            # older than the cluster's, so its votes are refused.
            grace_s = tuning.connection_retry + tuning.max_timeout
            self._SyncObj__raftElectionDeadline = raft_clock() + grace_s
        self.tick_watch = TickWatch(blocker=lambda: self._lock.holder)
        self.addOnTickCallback(self._on_tick)
        self._started = True
        self.encoded.start()
        self.tick_watch.start()
        try:
            self.waitBinded()
        except SyncObjException:
            self.destroy()
            raise OSError(f"raft address {self_addr}: cannot listen (in use?)") from None

    def destroy(self) -> None:
        self.encoded.stop()
        self.tick_watch.stop()
        super().destroy()

    # ------------------------------------------------------------ reading
    @contextmanager
    def read(self) -> Iterator[StateMachine]:
        """The state machine, consistent for the duration of the block (apply waits; keep it short)."""
        with self._lock:
            yield self.sm

    def status(self) -> RaftStatus:
        raw: dict[str, Any] = self.getStatus()
        leader = raw.get("leader")
        leader_addr = "" if leader is None else str(getattr(leader, "address", leader))
        prefix = "partner_node_status_server_"
        return RaftStatus(
            role=_ROLES.get(raw.get("state", -1), "unknown"),
            term=int(raw.get("raft_term", 0)),
            commit_index=int(raw.get("commit_idx", 0)),
            # pysyncobj counts entries queued behind a snapshot still decoding as applied; the state has not.
            applied_index=self.applied_index
            if self._pending_load is not None
            else int(raw.get("last_applied", 0)),
            leader_id=self._node_ids.get(leader_addr, leader_addr),
            leader_address=leader_addr,
            has_quorum=bool(raw.get("has_quorum", False)),
            partners={k[len(prefix) :]: v == 2 for k, v in raw.items() if k.startswith(prefix)},
            blocked=frozenset(self.transport.blocked),
            log_entries=int(raw.get("log_len", 0)),
        )

    def is_leader(self) -> bool:
        return bool(self._isLeader())

    def leader_node_id(self) -> str | None:
        """The node id of the leader this node knows (None: none known); cheaper than :meth:`status`."""
        leader = self._getLeader()
        if leader is None:
            return None
        address = str(getattr(leader, "address", leader))
        return self._node_ids.get(address)

    @property
    def transport(self) -> BeamTransport:
        transport: BeamTransport = self._SyncObj__transport
        return transport

    def digest_and_owned(self, node_id: str) -> tuple[str, int]:
        """(state digest, workflows owned by node_id); the digest is cached per state revision."""
        with self._lock:
            if self._digest_cache[0] != self.sm.revision:
                self._digest_cache = (self.sm.revision, self.sm.digest())
            return self._digest_cache[1], self.sm.owned_by(node_id)

    def member_grpc_addrs(self) -> dict[str, str]:
        with self._lock:
            return {m.id: m.grpc_addr for m in self.sm.members.values()}

    # ------------------------------------------------------------ proposing
    def propose_batch(self, commands: list[Mapping[str, Any]], on_done: BatchCallback) -> None:
        """Queue one Raft entry; ``on_done(results, outcome, reason)`` runs later on the tick thread.

        Raises whatever pickling the batch raises (nothing is queued then).
        """

        def callback(result: Any, error: int) -> None:
            if error == FAIL_REASON.SUCCESS:
                if isinstance(result, DeferredResults):  # committed behind a snapshot still decoding
                    result.then(lambda results: on_done(results, Outcome.COMMITTED, ""))
                else:
                    on_done(result, Outcome.COMMITTED, "")
            elif error in _RETRYABLE or error in _UNKNOWN:
                on_done(None, Outcome.RETRY, str(error))
            else:
                on_done(None, Outcome.REFUSED, str(error))

        self.apply_batch(commands, callback=callback)

    # ---------------------------------------------------------- tick thread
    @replicated  # type: ignore[untyped-decorator]
    def apply_batch(self, commands: list[Mapping[str, Any]]) -> list[Result] | DeferredResults:
        index = self._SyncObj__raftLastApplied + 1  # pysyncobj counts it after we return
        pending = self._pending_load
        if pending is not None and len(pending.queued) >= PENDING_ENTRIES_MAX:
            log.warning("%d entries wait for a snapshot still decoding: waiting for it", len(pending.queued))
            pending.done.wait()
        outcome: list[Result] | DeferredResults
        with self._lock:
            seen = time.monotonic()  # liveness is judged on the local clock, outside the state machine
            pending = self._pending_load
            if pending is not None:
                outcome = DeferredResults()
                pending.queued.append((commands, outcome, index))
                changed: set[str] = set()
            else:
                outcome = self._apply_locked(commands, index)
                changed = self.sm.drain_changed()
                if changed:
                    self.encoded.mark(changed, seen)
        for cmd in commands:
            if cmd.get("op") in ("heartbeat", "join"):
                self.heartbeat_seen[cmd["node"]] = seen
            if cmd.get("op") in ("join", "member_add") and isinstance(cmd.get("raft"), str):
                self._node_ids[cmd["raft"]] = cmd["node"]  # name a leader that joined after start-up
        if changed:
            # Never let a notification failure escape: pysyncobj would re-apply the whole entry.
            try:
                self._on_applied(changed)
            except Exception:
                log.exception("change notification failed")
        return outcome

    def _apply_locked(self, commands: list[Mapping[str, Any]], index: int) -> list[Result]:
        """Apply one entry (the state lock held); ``index`` is its Raft index."""
        try:
            results = self.sm.apply_all(commands)
        except FatalApplyError as exc:
            # Fail-stop: a bug must not leave this replica running on a state the others may not share.
            # Exit before anything is acknowledged; the supervisor restarts the node from its log.
            log.critical("fatal error applying %s, stopping the node: %s", exc.op, exc, exc_info=exc)
            os._exit(os.EX_SOFTWARE)  # 70
        self.applied_index = index
        return results

    def _start_snapshot(self, tmp_filename: str, raft_data: Any) -> None:
        """pysyncobj's serializer hook: copy what the snapshot needs, write it on another thread.

        pysyncobj renames ``tmp_filename`` over the dump as soon as this returns; we never create that file
        (so its rename fails, which pysyncobj ignores) and rename our own when it is complete and synced.
        :meth:`_check_snapshot` reports progress, and pysyncobj cuts the journal only after SUCCESS.
        """
        started = time.monotonic()
        with suppress(FileNotFoundError):
            os.unlink(tmp_filename)
        with self._lock:
            pending = self._pending_load
            if pending is not None:
                # Our state is behind the index pysyncobj would cut the journal at: refuse, once the load
                # is done (reporting FAILED at once would have pysyncobj ask again on every tick).
                self._snapshot_state = SERIALIZER_STATE.SERIALIZING
                pending.snapshot_refused = True
                return
        raft_meta = pickle.dumps(raft_data)  # pysyncobj's own entries and node set, not our classes
        capture = self.encoded.capture(raft_meta)
        pause = time.monotonic() - started
        self._snapshot_state = SERIALIZER_STATE.SERIALIZING
        generation = self._dump_generation
        threading.Thread(
            target=self._write_snapshot,
            args=(capture, started, pause, generation),
            name="snapshot-writer",
            daemon=True,
        ).start()

    def _write_snapshot(self, capture: _Capture, started: float, pause: float, generation: int) -> None:
        """Writer thread: encode, compress, write, fsync, rename, fsync the directory.

        A snapshot received from the leader meanwhile is newer than ours: ours is then discarded (renaming
        it over the received one would pair an old state with a journal cut for the new one).
        """
        writing = self._dump_path + ".writing"
        try:
            size = write_snapshot_file(writing, capture, sync=self.fsync != "off")
            with self._dump_lock:
                if generation != self._dump_generation:
                    raise RuntimeError("a snapshot from the leader arrived meanwhile; ours is older")
                os.replace(writing, self._dump_path)
            if self.fsync != "off":
                _fsync_dir_of(self._dump_path)
        except Exception:
            log.exception("snapshot failed")
            self.encoded.thaw()
            self._snapshot_state = SERIALIZER_STATE.FAILED
            return
        self.encoded.thaw()
        gc_pauses.freeze_long_lived()  # what survived until now is mostly state: no full collection walks it
        took = time.monotonic() - started
        self.snapshots += 1
        self.last_snapshot = SnapshotFigures(pause, took, size, len(capture.ids))
        log.info(
            "snapshot: %d workflows, %d bytes compressed, %.1f ms on the Raft thread, %.0f ms in all"
            " (%d encoded then)",
            len(capture.ids),
            size,
            pause * 1000,
            took * 1000,
            len(capture.dirty_plain),
        )
        self._snapshot_state = SERIALIZER_STATE.SUCCESS

    def _check_snapshot(self) -> int:
        """pysyncobj's serializeChecker hook (tick thread): SUCCESS and FAILED are reported once."""
        state = self._snapshot_state
        if state in (SERIALIZER_STATE.SUCCESS, SERIALIZER_STATE.FAILED):
            self._snapshot_state = SERIALIZER_STATE.NOT_SERIALIZING
        return state

    def _read_snapshot(self, filename: str) -> Any:
        """pysyncobj's deserializer hook: at start, and when a snapshot arrives from the leader.

        A snapshot (received, or on disk at start) is decoded on a loader thread
        (:mod:`beamflowd.snapshot_loading`): pysyncobj gets its metadata at once. A received one was
        renamed into place without a sync, and pysyncobj clears the journal right after this returns:
        sync it (and its directory) first.
        """
        if self.fsync != "off":
            _fsync_path(filename)
            _fsync_dir_of(filename)
        with open(filename, "rb") as f:
            data = f.read()
        raft_data = snapshot_raft_meta(data) if self._started else None
        if raft_data is None:  # a tick before our constructor was done, or a format with its metadata last
            return self._load_snapshot(data, filename)
        pending = PendingLoad(index=int(raft_data[0][1]))
        with self._lock:
            # A second snapshot before the first one decoded (the leader changed and sent its own): its
            # loader waits for the first one, on its own thread; the tick thread waiting here went silent
            # for as long as the first decode took (3.4 s seen, and an election).
            previous, self._pending_load = self._pending_load, pending
        log.info(
            "snapshot at index %d to load (%d bytes): decoding it on a loader thread",
            pending.index,
            len(data),
        )
        threading.Thread(
            target=self._load_snapshot,
            args=(data, filename, pending, previous),
            name="snapshot-loader",
            daemon=True,
        ).start()
        return raft_data

    def _load_snapshot(
        self, data: bytes, name: str, pending: PendingLoad | None = None, previous: PendingLoad | None = None
    ) -> Any:
        """Decode ``data`` and put it in place of the state; with ``pending`` (loader thread), then apply
        the entries queued behind it, once the ``previous`` load (if any) is done. Returns pysyncobj's
        metadata."""
        if previous is not None:
            previous.done.wait()
        if pending is not None:
            pause_before_loading()
        started = time.monotonic()
        try:
            # Decoding builds millions of objects: with the cyclic collector on, its passes over the
            # growing heap cost 2-4x the decoding itself. The state holds no cycles to collect.
            with gc_pauses.building_long_lived(), tick_thread_first() if pending else nullcontext():
                restored, fragments, summaries, raft_data = parse_snapshot(data, name, check_finished=False)
        except Exception as exc:
            if pending is None:
                raise  # at start: the node does not start
            # pysyncobj already cut the journal for it: this node cannot go on. Its disk holds the file.
            log.critical(
                "cannot load the snapshot received from the leader (%s): stopping. Its journal is cut for"
                " it: remove this node's data directory and start it again, it then fetches a fresh one",
                exc,
                exc_info=exc,
            )
            os._exit(os.EX_SOFTWARE)
        decoded = time.monotonic()
        waiting: list[tuple[DeferredResults, list[Result]]] = []
        with self._lock:
            self.sm.load(restored)
            self.applied_index = int(raft_data[0][1])
            self._node_ids.update({m.raft_addr: m.id for m in restored.members.values()})
            changed = self.sm.drain_changed()
            if fragments is None:
                self.encoded.reset({}, {}, changed)
            else:
                self.encoded.reset(fragments, summaries, ())
            refused = False
            if pending is not None:
                for commands, deferred, index in pending.queued:
                    waiting.append((deferred, self._apply_locked(commands, index)))
                queued_changed = self.sm.drain_changed()
                if queued_changed:
                    self.encoded.mark(queued_changed, time.monotonic())
                changed |= queued_changed
                if self._pending_load is pending:  # else a newer snapshot is queued behind this one
                    self._pending_load = None
                refused = pending.snapshot_refused
        del restored, fragments, summaries
        if pending is not None:
            pending.done.set()
            if refused:
                # pysyncobj logs "Failed to store full dump" for this and asks again at its next turn.
                log.info("our snapshot was put off while the received one decoded; pysyncobj retries it")
                self._snapshot_state = SERIALIZER_STATE.FAILED
        gc_pauses.freeze_long_lived()
        if pending is None:
            # Loaded on the tick thread (before our constructor was done): count the election timeout anew.
            self._SyncObj__raftElectionDeadline = raft_clock() + self._SyncObj__generateRaftTimeout()
        log.info(
            "loaded snapshot: %d workflows, applied index %s, in %.0f ms%s",
            len(self.sm.workflows),
            raft_data[0][1],
            (decoded - started) * 1000,
            ""
            if pending is None
            else f" off the Raft thread, then {len(pending.queued)} queued entries applied",
        )
        for deferred, results in waiting:
            deferred.resolve(results)
        self._on_applied(changed)
        with self._lock:
            self._verifiers += 1
        threading.Thread(target=self._verify_finished, name="snapshot-verifier", daemon=True).start()
        return raft_data

    def _verify_finished(self) -> None:
        """Check each finished workflow's own invariants after a restore; stop the node if one breaks."""

        def violated(exc: Exception) -> None:
            log.critical("the restored state breaks an invariant, stopping the node: %s", exc)
            os._exit(os.EX_SOFTWARE)

        try:
            with tick_thread_first():
                checked, took = verify_finished_workflows(self._lock, self.sm, violated)
        finally:
            with self._lock:
                self._verifiers -= 1
        log.info("checked %d finished workflows of the restored state in %.0f ms", checked, took * 1000)

    # ------------------------------------------------------------ durability
    def _hook_journal(self) -> None:
        """Durability that pysyncobj's FileJournal lacks; see the module docstring."""
        journal = self._SyncObj__raftLog
        original_add = journal.add

        def add(command: bytes, idx: int, term: int) -> None:
            original_add(command, idx, term)
            # Membership changes: a cluster may shrink to one node (or grow from one) at run time.
            alone = not self._SyncObj__otherNodes
            if self.fsync == "always" or (self.fsync == "batch" and alone):
                # A single node sends nothing (so the transport never syncs) and commits alone.
                self._timed_journal_sync(journal)
            elif self.fsync == "batch":
                self._journal_dirty = True

        journal.add = add
        if not isinstance(journal, FileJournal):
            return
        # Term and vote must be durable before any message reflecting them leaves; pysyncobj also rewrites
        # the meta file every second (commit index). It writes a tmp file and renames it, with no sync.
        storer = journal._FileJournal__metaStorer
        meta_path = storer.getPath()

        def store_meta(meta: Any) -> None:
            tmp = meta_path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(pysyncobj_dumps(meta))
                f.flush()
                if self.fsync != "off":
                    _fsync_file(f, tmp)
            os.replace(tmp, meta_path)
            if self.fsync != "off":
                _fsync_dir_of(meta_path)

        storer.storeMeta = store_meta
        journal_path = self._SyncObj__conf.journalFile

        def delete_entries_to(entry_to: int) -> None:
            """Compaction: write the kept tail to a new file, sync it, rename it over the journal.

            pysyncobj clears the journal in place and re-appends the tail: a crash in between loses it.
            """
            _compact_journal(journal, journal_path, entry_to, self.fsync != "off")

        journal.deleteEntriesTo = delete_entries_to

    def _hook_received_snapshot(self) -> None:
        """Sync a snapshot arriving from the leader before pysyncobj renames it into place, and never
        assemble one from the pieces of two transfers.

        pysyncobj writes each piece after the previous ones; only a transfer's first piece starts a new
        file. A leader that lost and regained leadership resumes its old transfer mid-file (see
        :meth:`_on_tick`), and pieces of a deposed leader's transfer may follow a new leader's first one:
        either way the file would mix two snapshots (seen: a node that could not decode what it got). So a
        piece is taken only in the term its transfer began in; otherwise the incoming file is dropped and
        the next first piece starts again.
        """
        serializer = self._SyncObj__serializer
        original = serializer.setTransmissionData
        began_in_term = [-1]

        def set_transmission_data(data: Any) -> bool:
            term = self._SyncObj__raftCurrentTerm
            if data is not None and data[1]:  # data[1]: the transfer's first piece
                began_in_term[0] = term
            elif data is not None and term != began_in_term[0]:
                incoming = serializer._Serializer__incomingTransmissionFile
                if incoming is not None:
                    log.warning(
                        "dropping a snapshot transfer begun in term %d (now %d)", began_in_term[0], term
                    )
                    incoming.close()
                    serializer._Serializer__incomingTransmissionFile = None
                return False
            if data is None or not data[2]:  # data[2]: the last (empty) piece, after which it is renamed
                return bool(original(data))
            incoming = serializer._Serializer__incomingTransmissionFile
            if incoming is not None and self.fsync != "off":
                _fsync_file(incoming, incoming.name)
            with self._dump_lock:
                self._dump_generation += 1
                return bool(original(data))

        serializer.setTransmissionData = set_transmission_data

    def sync_journal_if_dirty(self) -> None:
        """Called by the transport before any message leaves (tick thread)."""
        if self._journal_dirty:
            self._journal_dirty = False
            self._timed_journal_sync(self._SyncObj__raftLog)

    def _timed_journal_sync(self, journal: Any) -> None:
        started = time.monotonic()
        if self._sync_delay is not None:
            self._sync_delay.before_sync()
        journal.flush()
        power_cut.file_synced(self._SyncObj__conf.journalFile)
        self.journal_syncs += 1
        if self.on_journal_sync is not None:
            self.on_journal_sync(time.monotonic() - started)

    # ------------------------------------------------------------ backups
    def capture_backup(self) -> tuple[_Capture, int]:
        """(what a backup of the current state needs, the Raft index it reflects); any thread.

        The encoder stays frozen until :meth:`release_backup`: call it when the capture is written.
        """
        with self._lock:
            index = self.applied_index
            capture = self.encoded.capture_locked(_raft_meta(index, ()))
        return capture, index

    def release_backup(self) -> None:
        self.encoded.thaw()

    # ------------------------------------------------------------ membership
    def raft_members(self) -> frozenset[str]:
        """Raft addresses of this node's current Raft configuration, itself included."""
        for _ in range(MEMBERS_READ_TRIES):
            try:  # a set changed in place on the tick thread: copying it may race with a change
                others = list(self._SyncObj__otherNodes)
                break
            except RuntimeError:
                continue
        else:
            raise RuntimeError("raft membership kept changing while being read")
        return frozenset({self._SyncObj__selfNode.address, *(n.address for n in others)})

    def change_membership(self, add: bool, raft_addr: str, on_done: Callable[[Outcome, str], None]) -> None:
        """Propose adding or removing ``raft_addr`` in pysyncobj's configuration (leader only; one at a
        time). ``on_done(outcome, reason)`` runs on the tick thread: REFUSED when pysyncobj denies the
        request (a change is still in progress, the node is already in or out, or it is this node)."""

        def callback(result: Any, error: int) -> None:
            if error == FAIL_REASON.SUCCESS:
                on_done(Outcome.COMMITTED, "")
            elif error == FAIL_REASON.REQUEST_DENIED:
                on_done(Outcome.REFUSED, "denied by Raft (a membership change is in progress?)")
            else:
                on_done(Outcome.RETRY, str(error))

        if add:
            self.addNodeToCluster(raft_addr, callback=callback)
        else:
            self.removeNodeFromCluster(raft_addr, callback=callback)

    def transfer_leadership(self) -> None:
        """Ask the most caught-up connected follower to start an election now (Raft TimeoutNow).

        pysyncobj's call touches its transport, so the next tick runs it (:meth:`_on_tick`). Best effort:
        it is refused when no follower is fully caught up; poll :meth:`status` to see whether it happened.
        """
        self._transfer_requested = True

    def _SyncObj__sendAppendEntries(self) -> None:
        """pysyncobj 0.3.17's ``__sendAppendEntries``, with one change: a snapshot transfer stops for this
        call once more than ``SNAPSHOT_SEND_BUFFERED_BYTES_MAX`` wait in the connection's write buffer.

        pysyncobj sends pieces for up to ``appendEntriesPeriod`` per call, and calls it for every command
        (``appendEntriesUseBatch=False``): a follower that reads slower than the leader writes (a node just
        started, decoding) had megabytes pile up in a buffer that pysyncobj grows and shrinks by copying,
        and the leader's tick thread stalled for seconds (heartbeats uncommitted, elections). Now a transfer
        goes at the follower's pace, with a bounded buffer.
        """
        self._SyncObj__newAppendEntriesTime = raft_clock() + self._SyncObj__conf.appendEntriesPeriod

        startTime = raft_clock()

        batchSizeBytes = self._SyncObj__conf.appendEntriesBatchSizeBytes

        for node in self._SyncObj__otherNodes | self._SyncObj__readonlyNodes:
            if node not in self._SyncObj__connectedNodes:
                self._SyncObj__serializer.cancelTransmisstion(node)
                continue

            sendSingle = True
            sendingSerialized = False
            nextNodeIndex = self._SyncObj__raftNextIndex[node]

            while nextNodeIndex <= self._SyncObj__getCurrentLogIndex() or sendSingle or sendingSerialized:
                if nextNodeIndex > self._SyncObj__raftLog[0][1]:
                    prevLogIdx, prevLogTerm = self._SyncObj__getPrevLogIndexTerm(nextNodeIndex)
                    entries = []
                    if nextNodeIndex <= self._SyncObj__getCurrentLogIndex():
                        entries = self._SyncObj__getEntries(nextNodeIndex, None, batchSizeBytes)
                        self._SyncObj__raftNextIndex[node] = entries[-1][1] + 1

                    if len(entries) == 1 and len(entries[0][0]) >= batchSizeBytes:
                        entry = pysyncobj_dumps(entries[0])
                        for pos in range(0, len(entry), batchSizeBytes):
                            currData = entry[pos : pos + batchSizeBytes]
                            if pos == 0:
                                transmission = "start"
                            elif pos + batchSizeBytes >= len(entries[0][0]):
                                transmission = "finish"
                            else:
                                transmission = "process"
                            message = {
                                "type": "append_entries",
                                "transmission": transmission,
                                "data": currData,
                                "term": self._SyncObj__raftCurrentTerm,
                                "commit_index": self._SyncObj__raftCommitIndex,
                                "prevLogIdx": prevLogIdx,
                                "prevLogTerm": prevLogTerm,
                            }
                            self._SyncObj__transport.send(node, message)
                            if node not in self._SyncObj__connectedNodes:
                                break
                    else:
                        message = {
                            "type": "append_entries",
                            "term": self._SyncObj__raftCurrentTerm,
                            "commit_index": self._SyncObj__raftCommitIndex,
                            "entries": entries,
                            "prevLogIdx": prevLogIdx,
                            "prevLogTerm": prevLogTerm,
                        }
                        self._SyncObj__transport.send(node, message)
                        if node not in self._SyncObj__connectedNodes:
                            break
                else:
                    if self.transport.buffered_bytes(node) > SNAPSHOT_SEND_BUFFERED_BYTES_MAX:
                        break  # the follower reads slower than we send: go on at a later call
                    transmissionData = self._SyncObj__serializer.getTransmissionData(node)
                    message = {
                        "type": "append_entries",
                        "term": self._SyncObj__raftCurrentTerm,
                        "commit_index": self._SyncObj__raftCommitIndex,
                        "serialized": transmissionData,
                    }
                    self._SyncObj__transport.send(node, message)
                    if node not in self._SyncObj__connectedNodes:
                        break

                    if transmissionData is not None:
                        isLast = transmissionData[2]
                        if isLast:
                            self._SyncObj__raftNextIndex[node] = self._SyncObj__raftLog[1][1] + 1
                            sendingSerialized = False
                        else:
                            sendingSerialized = True
                    else:
                        sendingSerialized = False

                nextNodeIndex = self._SyncObj__raftNextIndex[node]

                sendSingle = False

                delta = raft_clock() - startTime
                if delta > self._SyncObj__conf.appendEntriesPeriod:
                    break

    def _on_tick(self) -> None:
        """Tick thread, every tick (pysyncobj holds its callback lock: never add or remove callbacks here)."""
        self.tick_watch.beat()
        term, leader = self._SyncObj__raftCurrentTerm, self._SyncObj__raftLeader
        if (term, leader) != self._seen_term_leader:
            # pysyncobj keeps its outgoing snapshot transfers across terms: a node leading again would
            # resume one mid-file, after the follower took another leader's first piece. Start them over.
            transfers = self._SyncObj__serializer._Serializer__transmissions
            for transfer in transfers.values():
                with suppress(Exception):
                    transfer["file"].close()
            transfers.clear()
            # Elections are rare and each is worth a line: an operator asks "why did the leader change?".
            address = "" if leader is None else str(getattr(leader, "address", leader))
            log.info(
                "raft term %d, leader %s, role %s",
                term,
                self._node_ids.get(address, address) or "(none)",
                _ROLES.get(self._SyncObj__raftState, "unknown"),
            )
            self._seen_term_leader = (term, leader)
        if self._transfer_requested:
            self._transfer_requested = False
            if self._isLeader():
                self.transferLeadership()

    def _SyncObj__connectedToAnyone(self) -> bool:
        """pysyncobj asks this only when a follower's election timer has run out: stand for election?"""
        return self._may_stand() and self._still_unheard() and bool(super()._SyncObj__connectedToAnyone())

    def _may_stand(self) -> bool:
        """Not while catching up from a snapshot (decoding it, then checking it).

        This node's tick thread then shares two cores with seconds of decoding and hears its leader late,
        and without pre-vote in pysyncobj its candidacy deposes a healthy leader (seen: 2-3 elections per
        catch-up at 100,000 workflows; resetting the timer is not enough, pysyncobj rewinds it on every
        message). The other nodes still elect a leader if the real one dies meanwhile.
        """
        return self._pending_load is None and not self._verifiers

    def _still_unheard(self) -> bool:
        """Read what has arrived before standing: did nothing reset the election timer meanwhile?

        Tick thread only (pysyncobj's poller is not reentrant). pysyncobj checks the timer before it reads
        its sockets, once per tick. A tick held up past the timeout (a journal sync on a stalled disk, a
        process not scheduled on shared cores) would count the leader silent while its heartbeats wait
        unread, and depose a healthy leader. Reading them first is what the next tick would have done
        anyway; a heartbeat, a granted vote or a new leader resets the timer, and this tick does not stand.
        """
        deadline = self._SyncObj__raftElectionDeadline
        self._poller.poll(0)
        standing = _ROLES.get(self._SyncObj__raftState) in ("follower", "candidate")
        return standing and self._SyncObj__raftElectionDeadline == deadline


def _raft_meta(index: int, raft_addrs: Iterable[str]) -> bytes:
    """pysyncobj's dump metadata for a state at ``index``: (last entry, the one before, members).

    The two entries are no-ops of term 0, so any term a new cluster elects is newer than them.
    """
    no_op = bytes([_COMMAND_TYPE.NO_OP])
    nodes = {TCPNode(addr) for addr in raft_addrs}
    return pickle.dumps(((no_op, index, 0), (no_op, max(index - 1, 0), 0), nodes))


def seed_data_dir(snapshot: bytes, index: int, raft_addrs: Iterable[str], data_dir: str) -> str:
    """Write a v2 or v3 ``snapshot`` (already checked) as the first dump of a new node of ``raft_addrs``.

    Its body is kept byte for byte; its raft metadata is replaced (no journal, the state at ``index``).
    Written beside, fsynced, renamed, directory fsynced. Returns the dump's path.
    """
    magic = snapshot[:_MAGIC_BYTES]
    if magic not in _LINE_FORMATS:
        raise ValueError("not a v2 or v3 snapshot")
    offset = _MAGIC_BYTES
    meta_size = int.from_bytes(snapshot[offset : offset + 8], "big")
    body = memoryview(snapshot)[offset + 8 + meta_size :]
    meta = _raft_meta(index, raft_addrs)
    path = os.path.join(data_dir, DUMP_FILE)
    writing = path + ".writing"
    with open(writing, "wb") as f:
        f.write(magic + len(meta).to_bytes(8, "big") + meta)
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(writing, path)
    _fsync_dir_of(path)
    return path


def _compact_journal(journal: Any, path: str, entry_to: int, sync: bool) -> None:
    """Replace pysyncobj's journal file by one holding only entries[entry_to:] (crash-safe by rename).

    Mirrors pysyncobj 0.3.17's record format: header (name, version, format, last-record offset), then
    per record ``len | idx term command | len``.
    """
    from pysyncobj.journal import FIRST_RECORD_OFFSET, LAST_RECORD_OFFSET_OFFSET, ResizableFile

    keep = journal._FileJournal__journal[entry_to:]
    records = []
    for command, idx, term in keep:
        data = struct.pack("<QQ", idx, term) + pysyncobj_to_bytes(command)
        size = struct.pack("<I", len(data))
        records.append(size + data + size)
    body = b"".join(records)
    header = bytearray(journal._FileJournal__getDefaultHeader())
    end = FIRST_RECORD_OFFSET + len(body)
    header[LAST_RECORD_OFFSET_OFFSET : LAST_RECORD_OFFSET_OFFSET + 4] = struct.pack("<I", end)
    tmp = path + ".compact"
    with open(tmp, "wb") as f:
        f.write(bytes(header))
        f.write(body)
        f.flush()
        if sync:
            _fsync_file(f, tmp)
    os.replace(tmp, path)
    if sync:
        _fsync_dir_of(path)
    old = journal._FileJournal__journalFile
    journal._FileJournal__journalFile = ResizableFile(path)
    journal._FileJournal__journal = list(keep)
    journal._FileJournal__currentOffset = end
    old._destroy()  # the replaced inode: nothing reads it again
