"""Backups against a real one-node Raft log: save, restore into a fresh data dir, refuse damaged files.

* A backup reflects exactly the applied index it names; a node started on the restored dir has the same
  digest at that index and keeps committing.
* A flipped byte, a cut file, a wrong trailer, a non-empty data dir or a node id outside the cluster are
  refused with a message naming the problem, and nothing is written.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from beamflowd import backup
from beamflowd.backup import BackupError, BackupStream, read_backup, restore
from beamflowd.core import commands as c
from beamflowd.proposer import Proposer
from beamflowd.replication import DUMP_FILE, ReplicatedState, read_snapshot_file
from tests.harness import free_ports
from tests.unit.state_strategies import join_cmd
from tests.unit.test_replication import _submits, eventually, one_node


def save_backup(raft: ReplicatedState, path: Path) -> backup.BackupInfo:
    """What the ClusterService does on the leader and beamctl does with the stream, in one process."""
    capture, index = raft.capture_backup()
    try:
        stream = BackupStream(capture, index, raft.status().term, "n1")
        with open(path, "wb") as f:
            while (chunk := stream.next_chunk()) is not None:
                f.write(chunk)
            info = stream.info()
            f.write(info.encode())
    finally:
        raft.release_backup()
    return info


async def _filled(raft: ReplicatedState, n: int) -> Proposer:
    proposer = Proposer(raft, asyncio.get_running_loop())
    proposer.start()
    assert (await proposer.propose(c.decode(join_cmd("n1", 1)))).ok
    results = await asyncio.gather(*(proposer.propose(c.decode(p)) for p in _submits(n)))
    assert all(r.ok for r in results)
    await eventually(lambda: raft.status().applied_index >= raft.status().commit_index, 5, "apply")
    return proposer


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, backup.BackupInfo, str]:
    """One backup of 120 workflows, its trailer, and the digest of the state it was taken of."""
    tmp = tmp_path_factory.mktemp("backup")

    async def scenario() -> tuple[backup.BackupInfo, str]:
        raft = one_node(tmp / "data")
        proposer = await _filled(raft, 120)
        try:
            info = save_backup(raft, tmp / "backup.db")
            digest, _ = raft.digest_and_owned("n1")
            assert info.raft_index == raft.applied_index
            # The encoder runs again once the backup is written (a snapshot of the node's own, every 50
            # entries here, may be freezing it too for a moment).
            await eventually(lambda: raft.encoded.frozen == 0, 10, "the encoder to thaw after the backup")
        finally:
            await proposer.stop()
            raft.destroy()
        return info, digest

    info, digest = asyncio.run(asyncio.wait_for(scenario(), 60))
    return tmp / "backup.db", info, digest


def test_restore_seeds_a_node_with_the_same_state_at_the_same_index(
    saved: tuple[Path, backup.BackupInfo, str], tmp_path: Path
) -> None:
    path, info, digest = saved
    assert info.workflows == 120 and info.raft_index >= 2  # batches: a few entries
    port = free_ports(1)[0]
    done = restore(str(path), str(tmp_path / "new"), "n1", f"n1=127.0.0.1:{port}")
    assert (done.raft_index, done.workflows, done.digest) == (info.raft_index, 120, digest)
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == [DUMP_FILE]
    state, _, _, meta = read_snapshot_file(str(tmp_path / "new" / DUMP_FILE))
    assert state.digest() == digest
    assert meta[0][1] == info.raft_index, "the dump says which index the state reflects"

    async def scenario() -> None:
        raft = one_node(tmp_path / "new", port)  # the address --initial-cluster gave it
        proposer = Proposer(raft, asyncio.get_running_loop())
        proposer.start()
        try:
            await eventually(lambda: raft.applied_index == info.raft_index, 10, "the restored state")
            assert raft.digest_and_owned("n1")[0] == digest
            assert (await proposer.propose(c.decode(_submits(1, start=500)[0]))).ok, "it keeps committing"
            assert raft.applied_index > info.raft_index
            with raft.read() as sm:
                assert len(sm.workflows) == 121
        finally:
            await proposer.stop()
            raft.destroy()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def _damaged(saved: tuple[Path, backup.BackupInfo, str], tmp_path: Path, how: str) -> Path:
    data = bytearray(saved[0].read_bytes())
    if how == "flipped":
        data[len(data) // 3] ^= 0x40
    elif how == "cut":
        data = data[: len(data) - 100]
    elif how == "cut-in-trailer":
        data = data[:-3]
    elif how == "empty":
        data = bytearray()
    elif how == "grown":
        data = b"x" + data
    bad = tmp_path / f"{how}.db"
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("flipped", "sha256 does not match"),
        ("cut", "end marker is missing"),
        ("cut-in-trailer", "end marker is missing"),
        ("empty", "end marker is missing"),
        ("grown", "truncated or padded"),
    ],
)
def test_a_damaged_backup_is_refused_and_nothing_is_written(
    saved: tuple[Path, backup.BackupInfo, str], tmp_path: Path, how: str, message: str
) -> None:
    bad = _damaged(saved, tmp_path, how)
    target = tmp_path / "new"
    with pytest.raises(BackupError, match=message):
        restore(str(bad), str(target), "n1", "n1=127.0.0.1:7101")
    assert not target.exists()


def test_restore_refuses_bad_arguments_before_reading(
    saved: tuple[Path, backup.BackupInfo, str], tmp_path: Path
) -> None:
    path = str(saved[0])
    with pytest.raises(BackupError, match="--node-id: 'n9' is not in --initial-cluster"):
        restore(path, str(tmp_path / "a"), "n9", "n1=127.0.0.1:7101")
    with pytest.raises(BackupError, match="--initial-cluster: initial_cluster: expected id=host:port"):
        restore(path, str(tmp_path / "a"), "n1", "n1")
    used = tmp_path / "used"
    used.mkdir()
    (used / "raft.journal").write_bytes(b"old")
    with pytest.raises(BackupError, match=r"--data-dir: .* is not an empty directory"):
        restore(path, str(used), "n1", "n1=127.0.0.1:7101")
    assert [p.name for p in used.iterdir()] == ["raft.journal"]
    with pytest.raises(BackupError, match="cannot read"):
        restore(str(tmp_path / "missing.db"), str(tmp_path / "a"), "n1", "n1=127.0.0.1:7101")
    assert not (tmp_path / "a").exists()


def test_restore_command_exit_codes(
    saved: tuple[Path, backup.BackupInfo, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = "n1=127.0.0.1:7101,n2=127.0.0.1:7102"
    bad = _damaged(saved, tmp_path, "flipped")
    assert (
        backup.main(
            [str(bad), "--data-dir", str(tmp_path / "x"), "--node-id", "n1", "--initial-cluster", cluster]
        )
        == 1
    )
    assert "beamflowd restore: error:" in capsys.readouterr().err
    argv = [str(saved[0]), "--data-dir", str(tmp_path / "x"), "--node-id", "n2", "--initial-cluster", cluster]
    assert backup.main(argv) == 0
    assert f"restored 120 workflows at raft index {saved[1].raft_index}" in capsys.readouterr().out


def test_read_backup_returns_the_snapshot_and_its_trailer(saved: tuple[Path, backup.BackupInfo, str]) -> None:
    body, info = read_backup(str(saved[0]))
    assert info == saved[1] and len(body) == info.body_bytes
