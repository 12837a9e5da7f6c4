"""Benchmark: decoding a snapshot at start, in process (no cluster).

    python tests/bench/restore.py --workflows 100000 --runs 3

Builds finished three-step workflows with the real state machine, writes them as a node's snapshot file
(the background encoder's lines and summaries, then the writer), and decodes the file ``--runs`` times as a
starting node does: what the node waits for before it serves (finished workflows restored packed, digest
shares left for later), then, after it, the background work the node does meanwhile: checking (and so
decoding) every finished workflow, and adding the digest shares. Prints JSON.

To compare with an earlier version, decode with that version's code from a ``git worktree`` (its own file
format: a version that writes v2 reads only v1 and v2), alternating runs in one session.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from beamflowd import gc_pauses
from beamflowd.replication import EncodedWorkflows, parse_snapshot, write_snapshot_file
from beamflowd.snapshot_loading import verify_finished_workflows
from beamflowd.state_lock import StateLock
from tests.bench.snapshot_pause import build


def measure(data: bytes) -> dict[str, float]:
    started = time.perf_counter()
    with gc_pauses.building_long_lived():
        restored = parse_snapshot(data, "bench", check_finished=False).state
    serving = time.perf_counter() - started

    def violated(exc: Exception) -> None:
        raise exc

    checked, verify_s = verify_finished_workflows(StateLock(), restored, violated)
    assert checked == len(restored.workflows)
    t0 = time.perf_counter()
    digest = restored.digest()
    settle_s = time.perf_counter() - t0
    assert digest == restored.full_digest()
    return {
        "decode_before_serving_s": round(serving, 3),
        "verify_s": round(verify_s, 3),
        "digest_s": round(settle_s, 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workflows", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sm = build(args.workflows)
    encoded = EncodedWorkflows(StateLock(), sm)
    encoded.mark(sm.workflows, 0.0)
    encoded.encode_settled(1.0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "raft.snapshot"
        compressed = write_snapshot_file(
            str(path), encoded.capture(pickle.dumps([("meta", 1), 1])), sync=False
        )
        data = path.read_bytes()
    runs = [measure(data) for _ in range(args.runs)]
    print(json.dumps({"workflows": args.workflows, "compressed_bytes": compressed, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
