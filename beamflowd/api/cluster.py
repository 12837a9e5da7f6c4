"""beamflow.v1.ClusterService: each node reports itself; any node gathers everyone's report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc

from beamflowd.api.gen.beamflow.v1 import cluster_pb2 as pb
from beamflowd.api.gen.beamflow.v1 import cluster_pb2_grpc as pb_grpc
from beamflowd.api.peers import PeerChannels
from beamflowd.api.status import abort
from beamflowd.backup import BackupStream
from beamflowd.breakers import Breakers
from beamflowd.clock import now_ms
from beamflowd.config import ConfigError, check_member
from beamflowd.core.commands import MemberAdd, MemberRemove
from beamflowd.core.vocabulary import DLQ_PENDING, DLQ_RETRYING
from beamflowd.liveness import Liveness
from beamflowd.proposer import ProposeError, Proposer
from beamflowd.replication import Outcome, ReplicatedState

#: How long GetClusterStatus waits for each peer's own report.
PEER_STATUS_TIMEOUT = 1.5
#: How long the leader waits to apply what is committed before it captures a backup.
BACKUP_CATCH_UP_TIMEOUT_S = 5.0
BACKUP_CATCH_UP_POLL_S = 0.01
#: How long a membership call waits for its state command and its Raft configuration change.
MEMBER_CHANGE_TIMEOUT_S = 10.0
MEMBER_CHANGE_RETRY_S = 0.1
#: How often a leader removing itself asks for, and checks, a transfer of leadership.
LEADER_TRANSFER_POLL_S = 0.2
#: A follower relaying a membership call waits a little longer than the leader's own deadline.
RELAY_S = MEMBER_CHANGE_TIMEOUT_S + 2.0

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
        proposer: Proposer | None = None,
        *,
        breakers: Breakers | None = None,
    ) -> None:
        self.node_id = node_id
        self.proposer = proposer
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
        with self.raft.read() as sm:
            removed = set(sm.removed)
            dlq = sm.dlq_counts()  # O(entries), bounded by dlq_max
        # Members come and go: the replicated ones, and the configured ones unless they were removed.
        node_ids = sorted(set(members) | (set(self.initial_cluster) - removed))
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
        return pb.GetClusterStatusResponse(
            nodes=reports,
            leader_id=leader,
            dlq_pending=dlq[f"dlq_{DLQ_PENDING}"],
            dlq_retrying=dlq[f"dlq_{DLQ_RETRYING}"],
            dlq_overflow=dlq["dlq_overflow"],
        )

    async def _status_of(self, node_id: str, grpc_addr: str) -> tuple[pb.NodeStatus, list[pb.PeerLiveness]]:
        if node_id == self.node_id:
            return self.local_status(), self.peer_liveness()
        with self.raft.read() as sm:
            member = sm.members.get(node_id)
        unreachable = pb.NodeStatus(
            id=node_id,
            raft_address=member.raft_addr if member else self.initial_cluster.get(node_id, ""),
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

    # ------------------------------------------------------------ membership
    def members(self) -> list[pb.Member]:
        in_raft = self.raft.raft_members()
        with self.raft.read() as sm:
            return [
                pb.Member(
                    id=m.id,
                    raft_address=m.raft_addr,
                    grpc_address=m.grpc_addr,
                    alive=m.alive,
                    joined=m.last_heartbeat_ms != 0,
                    owned_workflows=sm.owned_by(m.id),
                    in_raft=m.raft_addr in in_raft,
                )
                for m in sorted(sm.members.values(), key=lambda m: m.id)
            ]

    async def ListMembers(
        self, request: pb.ListMembersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMembersResponse:
        return pb.ListMembersResponse(members=self.members(), leader_id=self.leader_id())

    async def AddMember(
        self, request: pb.AddMemberRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddMemberResponse:
        """Replicated membership first (known, not alive), then Raft; a retry finishes a half-done add."""
        try:
            check_member(request.node_id, request.raft_address, request.grpc_address)
        except ConfigError as exc:
            await abort(context, "INVALID_ARGUMENT", str(exc))
        if not self.raft.is_leader():
            leader = await self._leader_stub(context)
            added: pb.AddMemberResponse = await self._relayed(
                leader.AddMember(request, timeout=RELAY_S), context
            )
            return added
        cmd = MemberAdd(
            node=request.node_id,
            raft=request.raft_address,
            grpc=request.grpc_address,
            ts=now_ms(),
            by=self.node_id,
        )
        result = await self._propose(cmd, context)
        await self._change_raft(True, request.raft_address, context)
        return pb.AddMemberResponse(added=bool(result.get("added")), members=self.members())

    async def RemoveMember(
        self, request: pb.RemoveMemberRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemoveMemberResponse:
        """Raft first (the address comes from the replicated member), then the replicated membership,
        which moves the member's workflows; a retry finishes a half-done removal."""
        if not request.node_id:
            await abort(context, "INVALID_ARGUMENT", "node_id: required")
        if not self.raft.is_leader():
            leader = await self._leader_stub(context)
            done: pb.RemoveMemberResponse = await self._relayed(
                leader.RemoveMember(request, timeout=RELAY_S), context
            )
            return done
        if request.node_id == self.node_id:
            # Raft cannot drop its own leader: hand leadership over, then the new leader removes us.
            await self._step_down(context)
            leader = await self._leader_stub(context)
            moved: pb.RemoveMemberResponse = await self._relayed(
                leader.RemoveMember(request, timeout=RELAY_S), context
            )
            return moved
        with self.raft.read() as sm:
            member = sm.members.get(request.node_id)
            raft_addr = member.raft_addr if member is not None else ""
        if raft_addr:
            await self._change_raft(False, raft_addr, context)
        result = await self._propose(
            MemberRemove(node=request.node_id, ts=now_ms(), by=self.node_id), context
        )
        return pb.RemoveMemberResponse(
            removed=bool(result.get("removed")),
            moved_workflows=int(result.get("moved", 0)),
            members=self.members(),
        )

    async def _step_down(self, context: grpc.aio.ServicerContext) -> None:
        """Transfer leadership to a caught-up follower, retrying until another leader is known."""
        deadline = time.monotonic() + MEMBER_CHANGE_TIMEOUT_S
        while self.raft.is_leader() or self.leader_id() in ("", self.node_id):
            if time.monotonic() >= deadline:
                await abort(
                    context,
                    "UNAVAILABLE",
                    f"node_id: {self.node_id} is the leader and no follower took over; try again",
                )
            if self.raft.is_leader():
                self.raft.transfer_leadership()
            await asyncio.sleep(LEADER_TRANSFER_POLL_S)

    async def _relayed(self, call: Any, context: grpc.aio.ServicerContext) -> Any:
        """The leader's answer, or its status and message passed on as they are."""
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or exc.code().name)

    async def _leader_stub(self, context: grpc.aio.ServicerContext) -> pb_grpc.ClusterServiceStub:
        leader_id = self.leader_id()
        grpc_addr = self.raft.member_grpc_addrs().get(leader_id, "") if leader_id else ""
        if not grpc_addr or leader_id == self.node_id:
            await abort(context, "UNAVAILABLE", "no leader known: try again after the election")
        return pb_grpc.ClusterServiceStub(self._peers.get(grpc_addr))

    async def _propose(
        self, cmd: MemberAdd | MemberRemove, context: grpc.aio.ServicerContext
    ) -> dict[str, Any]:
        if self.proposer is None:
            await abort(context, "UNIMPLEMENTED", "this node serves no membership changes")
            raise AssertionError("unreachable")
        try:
            result = await self.proposer.propose(cmd, timeout=MEMBER_CHANGE_TIMEOUT_S)
        except ProposeError as exc:
            await abort(context, "UNAVAILABLE", exc.message)
            raise AssertionError("unreachable") from None
        if not result.ok:
            await abort(context, result.code, result.message)
        return dict(result.data)

    async def _change_raft(self, add: bool, raft_addr: str, context: grpc.aio.ServicerContext) -> None:
        """Bring ``raft_addr`` into (or out of) the Raft configuration, retrying until the deadline."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + MEMBER_CHANGE_TIMEOUT_S
        while (raft_addr in self.raft.raft_members()) != add:
            done: asyncio.Future[tuple[Outcome, str]] = loop.create_future()

            def on_done(outcome: Outcome, reason: str, done: asyncio.Future[Any] = done) -> None:
                loop.call_soon_threadsafe(_settle, done, (outcome, reason))

            self.raft.change_membership(add, raft_addr, on_done)
            try:
                outcome, reason = await asyncio.wait_for(done, max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                outcome, reason = Outcome.RETRY, "timed out"
            if outcome is Outcome.COMMITTED:
                return
            if time.monotonic() >= deadline:
                what = "add" if add else "remove"
                await abort(context, "UNAVAILABLE", f"raft: could not {what} {raft_addr}: {reason}")
            await asyncio.sleep(MEMBER_CHANGE_RETRY_S)

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


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
