"""Replicas are separate processes with separate hash seeds: one log must give one state in all of them.

Python salts ``str`` hashes per process (``PYTHONHASHSEED``), so anything in ``apply`` or ``digest`` that
iterates a set or depends on ``hash()`` would make replicas diverge while every single-process test passes.
Each log below is applied in child processes started with different seeds, and their digests and snapshot
encodings are compared with this process's.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

from beamflowd.core.state import StateMachine
from tests.unit.test_state import histories

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "fixtures" / "recorded" / "log_v1_cluster.json.gz"
#: Seeds for the child processes; "0" disables salting, the others salt differently.
SEEDS = ("0", "1", "4242")
CHILD_TIMEOUT_S = 60

#: Reads batches of commands as JSON on stdin, prints the digest and a hash of the snapshot encoding.
CHILD = """
import hashlib, json, pickle, sys
from beamflowd.core.state import StateMachine
sm = StateMachine()
for batch in json.load(sys.stdin):
    sm.apply_all(batch)
plain = json.dumps(sm.to_plain(), sort_keys=True, separators=(",", ":")).encode()
print(json.dumps({"digest": sm.digest(), "plain": hashlib.sha256(plain).hexdigest()}))
"""


def _in_child(batches: list[list[dict[str, Any]]], seed: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps(batches),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=CHILD_TIMEOUT_S,
        check=True,
    )
    result: dict[str, str] = json.loads(done.stdout)
    return result


def _here(batches: list[list[dict[str, Any]]]) -> dict[str, str]:
    sm = StateMachine()
    for batch in batches:
        sm.apply_all(batch)
    plain = json.dumps(sm.to_plain(), sort_keys=True, separators=(",", ":")).encode()
    return {"digest": sm.digest(), "plain": hashlib.sha256(plain).hexdigest()}


def test_recorded_cluster_log_is_seed_independent() -> None:
    with gzip.open(RECORDED, "rt") as f:
        batches = json.load(f)["batches"]
    expected = _here(batches)
    for seed in SEEDS:
        assert _in_child(batches, seed) == expected, f"PYTHONHASHSEED={seed}"


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(max_len=120))
def test_generated_logs_are_seed_independent(log: list[dict[str, Any]]) -> None:
    batches = [list(log)]
    expected = _here(batches)
    for seed in SEEDS[:2]:
        assert _in_child(batches, seed) == expected, f"PYTHONHASHSEED={seed}"
