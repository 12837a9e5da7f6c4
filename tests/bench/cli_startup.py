"""Benchmark: `beamctl --help` and `beamctl workflow get ID` as whole processes (median of hyperfine runs).

    python tests/bench/cli_startup.py --runs 20 [--before /tmp/old-tree]

Starts a real 3-node cluster (tests/harness.py), submits one workflow, then times both commands with
hyperfine (``-N``: no shell in between). ``--before DIR`` (a tree with an older ``beamctl`` package, e.g.
``git archive <commit> beamctl beamflowd | tar -x -C DIR``) is timed back to back in the same hyperfine run,
so the ratio is taken under about the same machine load. Bounded: --runs (at most 100) per command.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.harness import REPO_ROOT, Cluster

RUNS_MAX = 100
HYPERFINE_TIMEOUT_S = 600
BEAMCTL = Path(sys.executable).parent / "beamctl"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--before", type=Path, default=None, help="tree holding an older beamctl package")
    args = ap.parse_args()
    if not 2 <= args.runs <= RUNS_MAX:
        ap.error(f"--runs: 2..{RUNS_MAX}")
    hyperfine = shutil.which("hyperfine")
    if hyperfine is None:
        ap.error("hyperfine is not installed (apt-get install hyperfine)")
    with (
        tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp,
        Cluster(Path(tmp), debug_invariants=False) as cluster,
    ):
        cluster.start()
        cluster.wait_ready(timeout=60)
        workflow = REPO_ROOT / "deploy" / "workflows" / "three-step-demo.yaml"
        submitted = subprocess.run(
            [str(BEAMCTL), "-e", cluster.endpoints, "-o", "json", "submit", str(workflow), "--wait"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        workflow_id = json.loads(submitted.stdout)["id"]  # --wait prints the final workflow
        trees = [("after", str(REPO_ROOT))] + ([("before", str(args.before))] if args.before else [])
        commands: list[tuple[str, str]] = []
        for label, what in (
            ("beamctl --help", ["--help"]),
            ("beamctl workflow get", ["workflow", "get", workflow_id]),
        ):
            for tree_label, tree in trees:
                argv = ["env", f"PYTHONPATH={tree}", str(BEAMCTL), "-e", cluster.endpoints, *what]
                commands.append((f"{label} ({tree_label})", " ".join(argv)))
        out = Path(tmp) / "hyperfine.json"
        subprocess.run(
            [
                hyperfine,
                "-N",
                "-w",
                "2",
                "-r",
                str(args.runs),
                "--export-json",
                str(out),
                *(a for name, command in commands for a in ("-n", name, command)),
            ],
            check=True,
            timeout=HYPERFINE_TIMEOUT_S,
            stdout=subprocess.DEVNULL,
        )
        results = json.loads(out.read_text())["results"]
    for result in results:
        print(
            f"{result['command']:<36} median {result['median'] * 1000:7.1f} ms  "
            f"min {result['min'] * 1000:7.1f} ms  "
            f"mean user+sys {(result['user'] + result['system']) * 1000:7.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
