"""Rolling upgrades: logs written by an earlier version still apply to the same state.

The fixtures under ``tests/fixtures/recorded/`` were recorded once, before the command contract existed:
one from a real 3-node cluster under load with a node kill (every Raft entry node n1 applied), one from
the property-test generator (every op, with stale epochs, duplicates and bad ids). A node of this
version must reach exactly the digest the old version reached, or a mixed cluster would diverge.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from beamflowd.core.state import StateMachine

RECORDED = Path(__file__).parent.parent / "fixtures" / "recorded"


def _load(name: str) -> dict[str, Any]:
    with gzip.open(RECORDED / name, "rt") as f:
        loaded: dict[str, Any] = json.load(f)
    return loaded


def test_cluster_log_reaches_the_recorded_digest() -> None:
    log = _load("log_v1_cluster.json.gz")
    sm = StateMachine()
    for batch in log["batches"]:
        sm.apply_all(batch)
    assert len(sm.workflows) > 100
    assert sm.canonical_digest() == log["digest"]
    assert sm.digest() == sm.full_digest()


def test_generated_logs_reach_the_recorded_digests() -> None:
    log = _load("log_v1_generated.json.gz")
    assert len(log["segments"]) >= 10
    for segment in log["segments"]:
        sm = StateMachine()
        sm.apply_all(segment["commands"])
        assert sm.canonical_digest() == segment["digest"]
        assert sm.digest() == sm.full_digest()
