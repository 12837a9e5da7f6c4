"""Simulated power loss, for tests: what each data file would hold after the power went out.

A process kill keeps the page cache, so only a model of the disk can tell ``fsync = batch`` from ``off``.
With ``BEAMFLOW_TEST_POWER_CUT=1`` in its environment a node keeps one in ``<data-dir>/.power-cut/``: after
every sync of a file, a copy of its content under its inode number (what the disk holds for that inode);
after every sync of the data directory, a manifest of which name points at which inode (what the disk holds
for the directory: a rename is durable only once its directory is synced). :func:`cut_power` then puts the
data directory back to exactly that, as a test does after killing every node at once: names the last
manifest does not list are gone, and each listed name holds its inode's last synced content (or nothing).

Everything else of the product ignores it; the replication adapter calls :func:`file_synced` and
:func:`dir_synced` after each of its syncs.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

ENV_VAR = "BEAMFLOW_TEST_POWER_CUT"
MODEL_DIR = ".power-cut"
MANIFEST = "manifest.json"


class DiskModel:
    """The durable content of one data directory's regular files (thread-safe: tick and writer threads)."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = Path(data_dir)
        self.model_dir = self.data_dir / MODEL_DIR
        self._lock = threading.Lock()
        shutil.rmtree(self.model_dir, ignore_errors=True)
        self.model_dir.mkdir(parents=True)
        # Whatever is there at start is on disk: a fresh directory, or one a power cut put back.
        for path in self._files():
            self.file_synced(str(path))
        self.dir_synced(str(self.data_dir))

    def _files(self) -> list[Path]:
        return [p for p in self.data_dir.iterdir() if p.is_file() and p.name != MODEL_DIR]

    def file_synced(self, path: str) -> None:
        target = Path(path)
        if target.parent.resolve() != self.data_dir.resolve() or not target.is_file():
            return
        with self._lock:
            inode = target.stat().st_ino
            tmp = self.model_dir / f"{inode}.tmp"
            shutil.copyfile(target, tmp)
            os.replace(tmp, self.model_dir / str(inode))

    def dir_synced(self, path: str) -> None:
        if Path(path).resolve() != self.data_dir.resolve():
            return
        with self._lock:
            names = {p.name: p.stat().st_ino for p in self._files()}
            tmp = self.model_dir / f"{MANIFEST}.tmp"
            tmp.write_text(json.dumps(names))
            os.replace(tmp, self.model_dir / MANIFEST)
            # Every inode a name points at now is also in ``names``: anything else is unreachable.
            keep = {str(i) for i in names.values()} | {MANIFEST}
            for shadow in self.model_dir.iterdir():
                if shadow.name not in keep and not shadow.name.endswith(".tmp"):
                    shadow.unlink()  # an inode no name points at, now or durably


_model: DiskModel | None = None


def install(data_dir: str) -> None:
    """Start modelling ``data_dir`` if the environment asks for it (tests only)."""
    global _model
    if os.environ.get(ENV_VAR) == "1":
        _model = DiskModel(data_dir)


def file_synced(path: str) -> None:
    if _model is not None:
        _model.file_synced(path)


def dir_synced(path: str) -> None:
    if _model is not None:
        _model.dir_synced(path)


def cut_power(data_dir: str) -> dict[str, int]:
    """Put a killed node's data directory back to what its disk held; returns each file's restored size.

    Call only when the node's process is gone. Files whose name was durable but whose content never was
    are removed (as if the crash hit between create and first sync).
    """
    root = Path(data_dir)
    model = root / MODEL_DIR
    manifest_path = model / MANIFEST
    names: dict[str, int] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    contents = {
        name: (model / str(inode)).read_bytes()
        for name, inode in names.items()
        if (model / str(inode)).exists()
    }
    for path in root.iterdir():
        if path.is_file():
            path.unlink()
    restored = {}
    for name, data in contents.items():
        (root / name).write_bytes(data)
        restored[name] = len(data)
    shutil.rmtree(model, ignore_errors=True)
    return restored
