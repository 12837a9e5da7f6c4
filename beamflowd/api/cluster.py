"""beamflow.v1.ClusterService: each node reports itself; any node gathers everyone's report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping

import grpc

from beamflowd.api.gen.beamflow.v1 import cluster_pb2 as pb
from beamflowd.api.gen.beamflow.v1 import cluster_pb2_grpc as pb_grpc
from beamflowd.api.peers import PeerChannels
from beamflowd.backup import BackupStream
from beamflowd.liveness import Liveness
from beamflowd.replication import ReplicatedState

#: How long GetClusterStatus waits for each peer's own report.
PEER_STATUS_TIMEOUT = 1.5
#: How long the leader waits to apply what is committed before it captures a backup.
BACKUP_CATCH_UP_TIMEOUT_S = 5.0
BACKUP_CATCH_UP_POLL_S = 0.01

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
    ) -> None:
        self.node_id = node_id
        self.liveness = liveness
        self.raft = raft
        self.grpc_addr = grpc_addr
        self.initial_cluster = dict(initial_cluster)
        self._peers = PeerChannels()

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

    async def SaveSnapshot(
        self, request: pb.SaveSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SaveSnapshotResponse]:
        """The leader captures its state once it applied everything committed; a follower relays."""
        status = self.raft.status()
        if not status.is_leader:
            async for message in self._relay_snapshot(status.leader_id, context):
                yield message
            return
        deadline = time.monotonic() + BACKUP_CATCH_UP_TIMEOUT_S
        while status.applied_index < status.commit_index:
            if time.monotonic() > deadline:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "leader: applying committed entries is late")
            await asyncio.sleep(BACKUP_CATCH_UP_POLL_S)
            status = self.raft.status()
        capture, index = await asyncio.to_thread(self.raft.capture_backup)
        try:
            stream = BackupStream(capture, index, status.term, self.node_id)
            yield pb.SaveSnapshotResponse(
                raft_index=index, workflows=stream.workflows, leader_id=self.node_id
            )
            while (chunk := await asyncio.to_thread(stream.next_chunk)) is not None:
                yield pb.SaveSnapshotResponse(data=chunk)
            info = stream.info()
            yield pb.SaveSnapshotResponse(
                sha256=info.sha256, size_bytes=info.body_bytes, trailer=info.encode()
            )
        finally:
            self.raft.release_backup()

    async def _relay_snapshot(
        self, leader_id: str, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SaveSnapshotResponse]:
        grpc_addr = self.raft.member_grpc_addrs().get(leader_id, "") if leader_id else ""
        if not grpc_addr:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no leader known: try again after the election")
        call = pb_grpc.ClusterServiceStub(self._peers.get(grpc_addr)).SaveSnapshot(pb.SaveSnapshotRequest())
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), f"leader {leader_id}: {exc.details()}")
        finally:
            call.cancel()

    async def close(self) -> None:
        await self._peers.close()
