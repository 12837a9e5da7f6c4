"""The API contract: buf lint (STANDARD) passes on proto/, and the committed stubs import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _buf() -> str:
    """buf ships on PyPI as buf-bin; it lands beside this interpreter."""
    candidate = Path(sys.executable).with_name("buf")
    found = str(candidate) if candidate.exists() else shutil.which("buf")
    assert found, "buf not found: install the test extras (pip install -e '.[test]')"
    return found


def test_buf_lint_standard_passes() -> None:
    result = subprocess.run([_buf(), "lint"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_stubs_match_the_protos() -> None:
    from beamflowd.api.gen.beamflow.v1 import cluster_pb2, workflow_pb2

    names = {s.full_name for s in workflow_pb2.DESCRIPTOR.services_by_name.values()}
    names |= {s.full_name for s in cluster_pb2.DESCRIPTOR.services_by_name.values()}
    assert {"beamflow.v1.WorkflowService", "beamflow.v1.ClusterService"} <= names
