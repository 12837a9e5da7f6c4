"""Benchmark: what a snapshot costs the Raft tick thread, in process (no cluster), at large state.

    python tests/bench/snapshot_pause.py --workflows 10000,50000,100000 --dirty 1000 --runs 3

Builds a state of finished three-step workflows with the real state machine, lets the background encoder
cache them, changes ``--dirty`` of them (as a steady load would just before a snapshot), then takes
snapshots the way the adapter does: ``capture`` (the only part on the tick thread, under the state lock)
and the writer thread (encode, zlib, write, fsync). A stand-in tick thread sleeping 1 ms in a loop measures
the longest gap it sees while the writer runs (GIL contention). Prints JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from beamflowd.core.state import StateMachine, encode_plain
from beamflowd.replication import EncodedWorkflows, write_snapshot_file
from beamflowd.state_lock import StateLock
from tests.unit.state_strategies import join_cmd, step_cmd, submit_cmd


def build(n: int) -> StateMachine:
    sm = StateMachine()
    for node in ("n1", "n2", "n3"):
        sm.apply(join_cmd(node, 0))
    for i in range(n):
        wf_id = f"w{i}"
        sm.apply(submit_cmd(f"r{i}", wf_id, "sequential", 10 + i))
        wf = sm.workflows[wf_id]
        for step in ("a", "b", "c"):
            sm.apply(step_cmd("start", wf_id, wf.epoch, step, 1, 20 + i, node=wf.owner))
            sm.apply(step_cmd("succeed", wf_id, wf.epoch, step, 1, 21 + i, node=wf.owner, output='{"ok":1}'))
    sm.drain_changed()
    return sm


def measure(sm: StateMachine, dirty: int, directory: str) -> dict[str, float]:
    lock = StateLock()
    encoded = EncodedWorkflows(lock, sm)
    encoded.mark(sm.workflows, 0.0)
    started = time.perf_counter()
    encoded.encode_settled(1.0)
    encode_all_s = time.perf_counter() - started
    encoded.mark(list(sm.workflows)[-dirty:], 2.0)  # changed "just now": still dirty at the snapshot

    gaps: list[float] = []
    stop = threading.Event()

    def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = threading.Thread(target=ticker, daemon=True)
    tick.start()
    time.sleep(0.05)
    collections: list[int] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(on_gc)
    t0, c0 = time.perf_counter(), time.thread_time()
    capture = encoded.capture(pickle.dumps(("meta",)))
    pause, pause_cpu = time.perf_counter() - t0, time.thread_time() - c0
    gc.callbacks.remove(on_gc)
    gaps.clear()
    path = os.path.join(directory, "raft.snapshot")
    writer_done: list[int] = []
    writer = threading.Thread(
        target=lambda: writer_done.append(write_snapshot_file(path + ".writing", capture, sync=True))
    )
    writer.start()
    writer.join()
    os.replace(path + ".writing", path)
    total = time.perf_counter() - t0
    stop.set()
    tick.join()
    encoded.thaw()
    t1 = time.perf_counter()
    old_way = len(encode_plain(sm.to_plain()))
    old_encode = time.perf_counter() - t1
    t2 = time.perf_counter()
    gc.collect()
    full_gc = time.perf_counter() - t2
    return {
        "tick_pause_ms": round(pause * 1000, 1),
        "tick_pause_cpu_ms": round(pause_cpu * 1000, 1),  # wall minus this: descheduled (shared cores)
        "gc_generations_collected_in_pause": collections,  # a gen-2 collection is the outlier
        "full_gc_ms": round(full_gc * 1000),
        "max_tick_gap_during_write_ms": round(max(gaps, default=0.0) * 1000, 1),
        "total_ms": round(total * 1000),
        "compressed_bytes": writer_done[0],
        "uncompressed_bytes": old_way,
        "encode_all_in_background_s": round(encode_all_s, 2),
        "old_way_json_only_ms": round(old_encode * 1000),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workflows", default="10000,50000,100000")
    ap.add_argument("--dirty", type=int, default=1000, help="workflows changed within the settle time")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    report = {}
    for n in (int(x) for x in args.workflows.split(",")):
        sm = build(n)
        with tempfile.TemporaryDirectory() as tmp:
            report[n] = [measure(sm, min(args.dirty, n), tmp) for _ in range(args.runs)]
        print(json.dumps({n: report[n]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
