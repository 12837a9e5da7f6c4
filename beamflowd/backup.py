"""Backups: the file ``beamctl cluster snapshot save`` writes and ``beamflowd restore`` reads (etcd's model).

A backup is a v3 snapshot (the codec of :mod:`beamflowd.replication`, the same bytes a node keeps as its
``raft.snapshot``) followed by a trailer::

    <snapshot: body_bytes bytes> <trailer JSON> <len(trailer JSON): 8 bytes big-endian> BEAMFLOW-BACKUP-1\\n

The trailer says which Raft index the state reflects and carries the SHA-256 of the snapshot bytes. It comes
last so that the leader can stream the file as it encodes it; a file cut short loses its end marker and is
refused. Restore checks the marker, the length, the checksum, then decodes the whole state (with its
invariants) before it writes anything, and never unpickles anything from the file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from typing import Any, Final

from beamflowd.clock import now_ms
from beamflowd.config import ConfigError, parse_initial_cluster
from beamflowd.replication import _Capture, parse_snapshot, seed_data_dir, snapshot_file_pieces

#: The last bytes of every backup file.
END_MARKER: Final = b"BEAMFLOW-BACKUP-1\n"
FORMAT_VERSION: Final = 1
#: Bytes of snapshot per streamed message (gRPC messages stay far below their 4 MiB cap).
CHUNK_BYTES: Final = 256 * 1024
#: A trailer is a few hundred bytes; anything bigger is not one.
TRAILER_BYTES_MAX: Final = 64 * 1024


class BackupError(Exception):
    """A backup that cannot be used, or a restore that cannot proceed; the message says why."""


@dataclass(frozen=True)
class BackupInfo:
    """The trailer: what the snapshot in front of it is."""

    format: int
    raft_index: int
    raft_term: int
    workflows: int
    body_bytes: int
    sha256: str
    leader: str
    created_ms: int

    def encode(self) -> bytes:
        text = json.dumps(asdict(self), sort_keys=True).encode()
        return text + len(text).to_bytes(8, "big") + END_MARKER


class BackupStream:
    """Leader side: a captured state as chunks of snapshot bytes, hashed as they go; then the trailer."""

    def __init__(self, capture: _Capture, raft_index: int, raft_term: int, leader: str) -> None:
        self.raft_index = raft_index
        self.raft_term = raft_term
        self.leader = leader
        self.workflows = len(capture.ids)
        self._pieces = snapshot_file_pieces(capture)
        self._hash = hashlib.sha256()
        self.size = 0

    def next_chunk(self) -> bytes | None:
        """About CHUNK_BYTES of the snapshot (CPU work: run it off the event loop); None at the end."""
        parts: list[bytes] = []
        size = 0
        for piece in self._pieces:
            parts.append(piece)
            size += len(piece)
            if size >= CHUNK_BYTES:
                break
        if not parts:
            return None
        chunk = b"".join(parts)
        self._hash.update(chunk)
        self.size += len(chunk)
        return chunk

    def info(self) -> BackupInfo:
        """The trailer, once :meth:`next_chunk` returned None."""
        return BackupInfo(
            FORMAT_VERSION,
            self.raft_index,
            self.raft_term,
            self.workflows,
            self.size,
            self._hash.hexdigest(),
            self.leader,
            now_ms(),
        )


def read_backup(path: str) -> tuple[bytes, BackupInfo]:
    """(the snapshot bytes, the trailer) of a backup file whose marker, length and checksum are right."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise BackupError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not data.endswith(END_MARKER):
        raise BackupError(f"{path}: truncated or not a BEAMFlow backup (its end marker is missing)")
    end = len(data) - len(END_MARKER)
    if end < 8:
        raise BackupError(f"{path}: truncated (no trailer)")
    trailer_size = int.from_bytes(data[end - 8 : end], "big")
    if trailer_size > TRAILER_BYTES_MAX or trailer_size > end - 8:
        raise BackupError(f"{path}: corrupt trailer (length {trailer_size})")
    try:
        fields: Any = json.loads(data[end - 8 - trailer_size : end - 8])
        info = BackupInfo(**fields)
    except (ValueError, TypeError) as exc:
        raise BackupError(f"{path}: corrupt trailer: {exc}") from None
    for name in ("format", "raft_index", "raft_term", "workflows", "body_bytes", "created_ms"):
        value = getattr(info, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BackupError(f"{path}: corrupt trailer: {name} must be a non-negative integer")
    if info.format != FORMAT_VERSION:
        raise BackupError(f"{path}: backup format {info.format} is not supported (this is {FORMAT_VERSION})")
    body_end = end - 8 - trailer_size
    if body_end != info.body_bytes:
        raise BackupError(
            f"{path}: truncated or padded: the snapshot is {body_end} bytes,"
            f" the trailer says {info.body_bytes}"
        )
    body = data[:body_end]
    if hashlib.sha256(body).hexdigest() != info.sha256:
        raise BackupError(f"{path}: corrupt: the snapshot's sha256 does not match the trailer's")
    return body, info


@dataclass(frozen=True)
class Restored:
    data_dir: str
    node_id: str
    raft_index: int
    workflows: int
    digest: str


def restore(path: str, data_dir: str, node_id: str, initial_cluster: str) -> Restored:
    """Seed ``data_dir`` of ``node_id`` in a new cluster from a backup; writes nothing if anything fails."""
    try:
        cluster = parse_initial_cluster(initial_cluster)
    except ConfigError as exc:
        raise BackupError(f"--initial-cluster: {exc}") from None
    if node_id not in cluster:
        raise BackupError(f"--node-id: {node_id!r} is not in --initial-cluster ({', '.join(cluster)})")
    if os.path.exists(data_dir) and (not os.path.isdir(data_dir) or os.listdir(data_dir)):
        raise BackupError(
            f"--data-dir: {data_dir} exists and is not an empty directory (restore seeds a new node)"
        )
    body, info = read_backup(path)
    try:
        state = parse_snapshot(body, path, trust_meta=False).state
    except Exception as exc:  # any decoding failure or broken invariant: the file is unusable
        raise BackupError(f"{path}: the snapshot does not decode: {exc}") from None
    if len(state.workflows) != info.workflows:
        raise BackupError(f"{path}: {len(state.workflows)} workflows, the trailer says {info.workflows}")
    created = not os.path.exists(data_dir)
    try:
        os.makedirs(data_dir, exist_ok=True)
        seed_data_dir(body, info.raft_index, sorted(cluster.values()), data_dir)
    except OSError as exc:
        if created:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            for name in os.listdir(data_dir):
                os.unlink(os.path.join(data_dir, name))
        raise BackupError(f"--data-dir: cannot write {data_dir}: {exc.strerror or exc}") from None
    return Restored(data_dir, node_id, info.raft_index, len(state.workflows), state.digest())


def main(argv: list[str]) -> int:
    """``beamflowd restore FILE --data-dir DIR --node-id ID --initial-cluster ...``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="beamflowd restore",
        description="Seed a new node's data directory from a backup (run it for every node of the new "
        "cluster, with the same --initial-cluster), then start the nodes as usual.",
    )
    parser.add_argument("file", help="a backup written by `beamctl cluster snapshot save`")
    parser.add_argument("--data-dir", dest="data_dir", required=True, help="new, empty data directory")
    parser.add_argument("--node-id", dest="node_id", required=True, help="the id this node will run as")
    parser.add_argument(
        "--initial-cluster",
        dest="initial_cluster",
        required=True,
        help="every member of the new cluster as id=host:port (Raft addresses), comma separated",
    )
    args = parser.parse_args(argv)
    try:
        done = restore(args.file, args.data_dir, args.node_id, args.initial_cluster)
    except BackupError as exc:
        print(f"beamflowd restore: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"restored {done.workflows} workflows at raft index {done.raft_index} into {done.data_dir} "
        f"for node {done.node_id} (state digest {done.digest})"
    )
    return 0
