"""The disk model behind the power-loss test: what survives is exactly what was synced."""

from __future__ import annotations

import os
from pathlib import Path

from beamflowd.power_cut import DiskModel, cut_power


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def test_unsynced_writes_and_renames_are_lost(tmp_path: Path) -> None:
    model = DiskModel(str(tmp_path))
    journal = tmp_path / "raft.journal"
    _write(journal, b"one")
    model.file_synced(str(journal))
    model.dir_synced(str(tmp_path))
    _write(journal, b"one two")  # appended, never synced
    meta_tmp = tmp_path / "meta.tmp"
    _write(meta_tmp, b"new meta")
    model.file_synced(str(meta_tmp))
    os.replace(meta_tmp, tmp_path / "meta")  # renamed, directory never synced
    _write(tmp_path / "stray", b"x")

    assert cut_power(str(tmp_path)) == {"raft.journal": 3}
    assert journal.read_bytes() == b"one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raft.journal"]


def test_a_synced_rename_survives_with_its_synced_content(tmp_path: Path) -> None:
    model = DiskModel(str(tmp_path))
    _write(tmp_path / "meta", b"old")
    model.file_synced(str(tmp_path / "meta"))
    model.dir_synced(str(tmp_path))
    _write(tmp_path / "meta.tmp", b"new")
    model.file_synced(str(tmp_path / "meta.tmp"))
    os.replace(tmp_path / "meta.tmp", tmp_path / "meta")
    model.dir_synced(str(tmp_path))
    with open(tmp_path / "meta", "ab") as f:
        f.write(b" and more")  # after the last sync of this inode

    assert cut_power(str(tmp_path)) == {"meta": 3}
    assert (tmp_path / "meta").read_bytes() == b"new"


def test_what_is_there_at_start_is_on_disk(tmp_path: Path) -> None:
    _write(tmp_path / "raft.snapshot", b"restored")
    DiskModel(str(tmp_path))
    assert cut_power(str(tmp_path)) == {"raft.snapshot": 8}


def test_without_any_sync_nothing_survives(tmp_path: Path) -> None:
    DiskModel(str(tmp_path))
    _write(tmp_path / "raft.journal", b"entries")
    assert cut_power(str(tmp_path)) == {}
    assert not list(tmp_path.iterdir())
