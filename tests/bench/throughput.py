"""Benchmark: submit N workflows with C in flight, wait for all to finish, print latency and throughput.

    python tests/bench/throughput.py --endpoints 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 \
        --workflow deploy/workflows/three-step-demo.yaml --total 1000 --concurrency 100

Bounded: stops after --total submissions or --deadline seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from beamflowd.api.gen.beamflow.v1 import cluster_pb2, cluster_pb2_grpc
from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from beamflowd.api.gen.beamflow.v1 import workflow_pb2_grpc as pb_grpc

TERMINAL = {pb.WORKFLOW_STATUS_SUCCEEDED, pb.WORKFLOW_STATUS_FAILED, pb.WORKFLOW_STATUS_CANCELLED}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", default="127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")
    ap.add_argument("--workflow", default="deploy/workflows/three-step-demo.yaml")
    ap.add_argument("--total", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--deadline", type=float, default=300.0)
    ap.add_argument("--input", default="{}")
    ap.add_argument(
        "--completion",
        choices=["watch", "result", "wait", "poll"],
        default="watch",
        help="watch: one WatchWorkflow stream per workflow (a waiting client); result: one "
        "GetWorkflowResult(wait) call per workflow (run it, get its result); wait: the submit itself "
        "waits (SubmitWorkflow(wait): one call); poll: count running workflows, latency from server "
        "timestamps (least client CPU)",
    )
    ap.add_argument(
        "--to",
        choices=["any", "leader"],
        default="any",
        help="any: spread the calls over every endpoint in turn; leader: send all to the Raft leader's "
        "(a leader-aware client; a follower forwards each command to it)",
    )
    ap.add_argument(
        "--fsync-modes",
        default="",
        help="comma list (e.g. off,batch,always): start a fresh local 3-node cluster per mode and "
        "report each, with the ratio to the first",
    )
    ap.add_argument("--nodes", type=int, default=3, help="cluster size for --fsync-modes (e.g. 5)")
    args = ap.parse_args()
    if args.fsync_modes:
        return await compare_fsync(args)
    return await run(args)


async def compare_fsync(args: argparse.Namespace) -> int:
    """One fresh ``--nodes``-node cluster per fsync mode, same workload; prints each report and the ratio."""
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.harness import Cluster

    reports = {}
    for mode in args.fsync_modes.split(","):
        with (
            tempfile.TemporaryDirectory() as tmp,
            Cluster(Path(tmp), n=args.nodes, extra_args=["--fsync", mode], debug_invariants=False) as cluster,
        ):
            cluster.start()
            cluster.wait_ready()
            args.endpoints = cluster.endpoints
            reports[mode] = await run(args, quiet=True)
    base = reports[args.fsync_modes.split(",")[0]]["workflows_per_s"]
    for report in reports.values():
        report["ratio_to_first"] = round(report["workflows_per_s"] / base, 2) if base else None
    print(json.dumps(reports, indent=2))
    return 0


async def leader_endpoint(endpoint: str) -> str:
    """The gRPC address of the Raft leader, as ``endpoint``'s node reports it (bounded: 50 tries)."""
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = cluster_pb2_grpc.ClusterServiceStub(channel)
        for _ in range(50):
            st = await stub.GetClusterStatus(cluster_pb2.GetClusterStatusRequest(), timeout=5)
            for node in st.nodes:
                if node.id == st.leader_id and node.grpc_address:
                    return str(node.grpc_address)
            await asyncio.sleep(0.1)
    raise SystemExit(f"no leader reported by {endpoint}")


async def run(args: argparse.Namespace, quiet: bool = False) -> Any:
    definition = Path(args.workflow).read_text()
    endpoints = args.endpoints.split(",")
    if getattr(args, "to", "any") == "leader":
        endpoints = [await leader_endpoint(endpoints[0])]
    channels = [grpc.aio.insecure_channel(e) for e in endpoints]
    stubs = [pb_grpc.WorkflowServiceStub(c) for c in channels]
    submit_lat: list[float] = []
    e2e_lat: list[float] = []
    statuses: dict[str, int] = {}
    ids: list[str] = []
    sem = asyncio.Semaphore(args.concurrency)
    t_end = time.monotonic() + args.deadline

    async def one(i: int) -> None:
        stub = stubs[i % len(stubs)]
        async with sem:
            if time.monotonic() > t_end:
                return
            t0 = time.perf_counter()
            waits = args.completion == "wait"
            r = await stub.SubmitWorkflow(
                pb.SubmitWorkflowRequest(
                    definition=definition, definition_source=args.workflow, input_json=args.input, wait=waits
                ),
                timeout=max(30.0, t_end - time.monotonic()) if waits else 30,
            )
            submit_lat.append(time.perf_counter() - t0)
            ids.append(r.workflow_id)
            if waits:  # one call: acknowledged and finished are the same moment
                e2e_lat.append(submit_lat[-1])
                name = pb.WorkflowStatus.Name(r.status)
                statuses[name] = statuses.get(name, 0) + 1
                return
            if args.completion == "poll":
                return
            status = pb.WORKFLOW_STATUS_UNSPECIFIED
            if args.completion == "result":
                try:
                    done = await stub.GetWorkflowResult(
                        pb.GetWorkflowResultRequest(workflow_id=r.workflow_id, wait=True),
                        timeout=max(1.0, t_end - time.monotonic()),
                    )
                    status = done.status
                except grpc.aio.AioRpcError as err:  # FAILED_PRECONDITION: it did not succeed
                    if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
                        raise
                    status = pb.WORKFLOW_STATUS_FAILED
                e2e_lat.append(time.perf_counter() - t0)
                name = pb.WorkflowStatus.Name(status)
                statuses[name] = statuses.get(name, 0) + 1
                return
            async for ev in stub.WatchWorkflow(
                pb.WatchWorkflowRequest(workflow_id=r.workflow_id), timeout=max(1.0, t_end - time.monotonic())
            ):
                status = ev.status
            e2e_lat.append(time.perf_counter() - t0)
            name = pb.WorkflowStatus.Name(status)
            statuses[name] = statuses.get(name, 0) + 1

    t0 = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(args.total)), return_exceptions=True)
    if args.completion == "poll":
        # Completion by polling the running count (cheap for the client), then end-to-end latency from the
        # server's own timestamps (create_time -> update_time of the finished workflow).
        while time.monotonic() < t_end:
            page = await stubs[0].ListWorkflows(
                pb.ListWorkflowsRequest(status=pb.WORKFLOW_STATUS_RUNNING, page_size=1), timeout=10
            )
            if page.total_matching == 0:
                break
            await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - t0
    if args.completion == "poll":
        for wf_id in ids:
            wf = (await stubs[0].GetWorkflow(pb.GetWorkflowRequest(workflow_id=wf_id), timeout=10)).workflow
            name = pb.WorkflowStatus.Name(wf.status)
            statuses[name] = statuses.get(name, 0) + 1
            if wf.status != pb.WORKFLOW_STATUS_RUNNING:
                e2e_lat.append((wf.update_time.ToMilliseconds() - wf.create_time.ToMilliseconds()) / 1000)
    errors = [r for r in results if isinstance(r, BaseException)]
    cstub = cluster_pb2_grpc.ClusterServiceStub(channels[0])
    digests: set[str] = set()
    for _ in range(100):  # bounded: wait up to ~10 s for replicas to converge
        st = await cstub.GetClusterStatus(cluster_pb2.GetClusterStatusRequest(), timeout=5)
        digests = {n.digest for n in st.nodes}
        applied = {n.applied_index for n in st.nodes}
        if len(digests) == 1 and len(applied) == 1:
            break
        await asyncio.sleep(0.1)
    report = {
        "submitted": len(submit_lat),
        "finished": len(e2e_lat),
        "statuses": statuses,
        "errors": len(errors),
        "elapsed_s": round(elapsed, 2),
        "workflows_per_s": round(len(e2e_lat) / elapsed, 1),
        "submit_ms": {"p50": round(pct(submit_lat, 50) * 1e3, 2), "p99": round(pct(submit_lat, 99) * 1e3, 2)},
        "end_to_end_ms": {"p50": round(pct(e2e_lat, 50) * 1e3, 2), "p99": round(pct(e2e_lat, 99) * 1e3, 2)},
        "digests_equal": len(digests) == 1,
    }
    if errors:
        report["first_error"] = repr(errors[0])[:300]
    for c in channels:
        await c.close()
    if quiet:
        return report
    print(json.dumps(report, indent=2))
    return 0 if not errors and report["digests_equal"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
