"""beamflow.v1.ClusterService: each node reports itself; any node gathers everyone's report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import grpc

from beamflowd.api.gen.beamflow.v1 import cluster_pb2 as pb
from beamflowd.api.gen.beamflow.v1 import cluster_pb2_grpc as pb_grpc
from beamflowd.api.peers import PeerChannels
from beamflowd.breakers import Breakers
from beamflowd.liveness import Liveness
from beamflowd.replication import ReplicatedState

#: How long GetClusterStatus waits for each peer's own report.
PEER_STATUS_TIMEOUT = 1.5

_ROLES = {
    "follower": pb.NODE_ROLE_FOLLOWER,
    "candidate": pb.NODE_ROLE_CANDIDATE,
    "leader": pb.NODE_ROLE_LEADER,
}


class ClusterServicer(pb_grpc.ClusterServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        node_id: str,
        raft: ReplicatedState,
        initial_cluster: Mapping[str, str],
        grpc_addr: str,
        liveness: Liveness,
        *,
        breakers: Breakers | None = None,
    ) -> None:
        self.node_id = node_id
        self.liveness = liveness
        self.raft = raft
        self.grpc_addr = grpc_addr
        self.initial_cluster = dict(initial_cluster)
        self._peers = PeerChannels()
        self.breakers = breakers or Breakers()

    def leader_id(self) -> str:
        return self.raft.status().leader_id

    def local_status(self) -> pb.NodeStatus:
        status = self.raft.status()
        digest, owned = self.raft.digest_and_owned(self.node_id)
        liveness, hb_age = self.liveness.liveness_of(self.node_id)
        return pb.NodeStatus(
            id=self.node_id,
            raft_address=self.initial_cluster[self.node_id],
            grpc_address=self.grpc_addr,
            role=_ROLES.get(status.role, pb.NODE_ROLE_UNSPECIFIED),
            term=status.term,
            commit_index=status.commit_index,
            applied_index=status.applied_index,
            reachable=True,
            digest=digest,
            owned_workflows=owned,
            leader_id=status.leader_id,
            liveness=liveness,
            last_heartbeat_age_ms=hb_age,
        )

    async def GetNodeStatus(
        self, request: pb.GetNodeStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetNodeStatusResponse:
        return pb.GetNodeStatusResponse(node=self.local_status(), peers=self.peer_liveness())

    def peer_liveness(self) -> list[pb.PeerLiveness]:
        peers = []
        for node_id in sorted(self.raft.member_grpc_addrs()):
            liveness, age = self.liveness.liveness_of(node_id)
            peers.append(pb.PeerLiveness(node_id=node_id, liveness=liveness, last_heartbeat_age_ms=age))
        return peers

    async def GetClusterStatus(
        self, request: pb.GetClusterStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetClusterStatusResponse:
        members = self.raft.member_grpc_addrs()
        node_ids = sorted(set(self.initial_cluster) | set(members))
        answers = await asyncio.gather(*(self._status_of(nid, members.get(nid, "")) for nid in node_ids))
        # Liveness as the leader judges it (the leader's view is the one that moves workflows).
        leader = self.leader_id()
        view = {p.node_id: p for node, peers in answers if node.id == leader for p in peers}
        reports = []
        for node, _ in answers:
            if node.id in view:
                node.liveness = view[node.id].liveness
                node.last_heartbeat_age_ms = view[node.id].last_heartbeat_age_ms
            elif not node.reachable:
                node.liveness = "unknown"
            reports.append(node)
        return pb.GetClusterStatusResponse(nodes=reports, leader_id=leader)

    async def _status_of(self, node_id: str, grpc_addr: str) -> tuple[pb.NodeStatus, list[pb.PeerLiveness]]:
        if node_id == self.node_id:
            return self.local_status(), self.peer_liveness()
        unreachable = pb.NodeStatus(
            id=node_id,
            raft_address=self.initial_cluster.get(node_id, ""),
            grpc_address=grpc_addr,
            reachable=False,
        )
        if not grpc_addr:
            unreachable.error = "has not joined yet (gRPC address unknown)"
            return unreachable, []
        channel = self._peers.get(grpc_addr)
        try:
            response = await pb_grpc.ClusterServiceStub(channel).GetNodeStatus(
                pb.GetNodeStatusRequest(), timeout=PEER_STATUS_TIMEOUT
            )
            return response.node, list(response.peers)
        except grpc.aio.AioRpcError as exc:
            unreachable.error = f"{exc.code().name}: {exc.details()}"
            return unreachable, []

    def local_breakers(self) -> pb.NodeBreakers:
        now = time.monotonic()
        return pb.NodeBreakers(
            node_id=self.node_id,
            reachable=True,
            breakers=[
                pb.BreakerStatus(
                    name=b["name"],
                    state=b["state"],
                    recent_failures=b["recent_failures"],
                    half_open_successes=b["half_open_successes"],
                    open_for_ms=round(b["open_for_s"] * 1000),
                    rejected=b["rejected"],
                    opened=b["opened"],
                )
                for b in self.breakers.snapshot(now)
            ],
        )

    async def ListBreakers(
        self, request: pb.ListBreakersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListBreakersResponse:
        if request.local_only:
            return pb.ListBreakersResponse(nodes=[self.local_breakers()])
        members = self.raft.member_grpc_addrs()
        node_ids = sorted(set(self.initial_cluster) | set(members))
        nodes = await asyncio.gather(*(self._breakers_of(nid, members.get(nid, "")) for nid in node_ids))
        return pb.ListBreakersResponse(nodes=nodes)

    async def _breakers_of(self, node_id: str, grpc_addr: str) -> pb.NodeBreakers:
        if node_id == self.node_id:
            return self.local_breakers()
        if not grpc_addr:
            return pb.NodeBreakers(node_id=node_id, reachable=False, error="has not joined yet")
        try:
            response = await pb_grpc.ClusterServiceStub(self._peers.get(grpc_addr)).ListBreakers(
                pb.ListBreakersRequest(local_only=True), timeout=PEER_STATUS_TIMEOUT
            )
        except grpc.aio.AioRpcError as exc:
            return pb.NodeBreakers(
                node_id=node_id, reachable=False, error=f"{exc.code().name}: {exc.details()}"
            )
        return response.nodes[0] if response.nodes else pb.NodeBreakers(node_id=node_id, reachable=True)

    async def close(self) -> None:
        await self._peers.close()
