"""beamflow.v1.ChaosService: permission check, validation and forwarding; the work is in beamflowd.chaos.

Any node accepts a call. A call that concerns another node is forwarded to it with the ``FORWARDED``
metadata key set, so the receiver acts on itself instead of forwarding again. Every call but the
read-only status calls is refused with PERMISSION_DENIED unless this node's config enables chaos.
"""

from __future__ import annotations

import grpc

from beamflowd.api.gen.beamflow.v1 import chaos_pb2 as pb
from beamflowd.api.gen.beamflow.v1 import chaos_pb2_grpc as pb_grpc
from beamflowd.api.status import abort
from beamflowd.chaos import FORWARDED, Chaos, ChaosError, monkey_message


def _forwarded(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == FORWARDED:
            return str(value)
    return ""


async def _fail(context: grpc.aio.ServicerContext, err: ChaosError) -> None:
    await abort(context, err.code, err.message)


class ChaosServicer(pb_grpc.ChaosServiceServicer):  # type: ignore[misc, unused-ignore]
    def __init__(self, chaos: Chaos) -> None:
        self.chaos = chaos

    async def KillNode(
        self, request: pb.KillNodeRequest, context: grpc.aio.ServicerContext
    ) -> pb.KillNodeResponse:
        try:
            self.chaos.require_enabled()
            if _forwarded(context) and request.node_id == self.chaos.node_id:
                self.chaos.kill_self()
            else:
                await self.chaos.kill_node(request.node_id)
        except ChaosError as err:
            await _fail(context, err)
        return pb.KillNodeResponse(node_id=request.node_id)

    async def PauseNode(
        self, request: pb.PauseNodeRequest, context: grpc.aio.ServicerContext
    ) -> pb.PauseNodeResponse:
        try:
            self.chaos.require_enabled()
            forwarded = _forwarded(context)
            if forwarded == "record":
                until = self.chaos.pause_deadline(request.duration_ms)
                self.chaos.note_pause(request.node_id, until)
            elif forwarded and request.node_id == self.chaos.node_id:
                until = self.chaos.pause_self(request.duration_ms)
            else:
                until = await self.chaos.pause_node(request.node_id, request.duration_ms)
        except ChaosError as err:
            await _fail(context, err)
        return pb.PauseNodeResponse(node_id=request.node_id, until_unix_ms=until)

    async def Partition(
        self, request: pb.PartitionRequest, context: grpc.aio.ServicerContext
    ) -> pb.PartitionResponse:
        try:
            self.chaos.require_enabled()
            description, applied, errors = await self.chaos.partition_cluster(
                request.isolate, [list(g.node_ids) for g in request.groups], request.heal_after_ms
            )
        except ChaosError as err:
            await _fail(context, err)
        return pb.PartitionResponse(description=description, applied_on=applied, errors=errors)

    async def Heal(self, request: pb.HealRequest, context: grpc.aio.ServicerContext) -> pb.HealResponse:
        try:
            self.chaos.require_enabled()
            applied, errors = await self.chaos.heal_cluster()
        except ChaosError as err:
            await _fail(context, err)
        return pb.HealResponse(applied_on=applied, errors=errors)

    async def SetNodeFilter(
        self, request: pb.SetNodeFilterRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetNodeFilterResponse:
        try:
            self.chaos.require_enabled()
        except ChaosError as err:
            await _fail(context, err)
        self.chaos.set_filter(request.blocked_node_ids, request.partition, request.heal_after_ms)
        return pb.SetNodeFilterResponse(node_id=self.chaos.node_id)

    async def KillActor(
        self, request: pb.KillActorRequest, context: grpc.aio.ServicerContext
    ) -> pb.KillActorResponse:
        try:
            self.chaos.require_enabled()
            if request.workflow_id and request.random:
                raise ChaosError("INVALID_ARGUMENT", "kill-actor: give a workflow id or random, not both")
            killed = await self.chaos.kill_actors(request.workflow_id, request.random)
        except ChaosError as err:
            await _fail(context, err)
        return pb.KillActorResponse(workflow_ids=killed)

    async def SetMonkey(
        self, request: pb.SetMonkeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetMonkeyResponse:
        try:
            self.chaos.require_enabled()
            setting = await self.chaos.set_monkey(
                request.enabled,
                request.profile or "moderate",
                request.kill_nodes,
                request.partitions,
                request.duration_ms,
            )
        except ChaosError as err:
            await _fail(context, err)
        return pb.SetMonkeyResponse(monkey=monkey_message(setting))

    async def GetChaosStatus(
        self, request: pb.GetChaosStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetChaosStatusResponse:
        return await self.chaos.cluster_status()

    async def GetNodeChaos(
        self, request: pb.GetNodeChaosRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetNodeChaosResponse:
        return pb.GetNodeChaosResponse(
            node=self.chaos.local_status(),
            paused=[pb.PausedNode(node_id=n, until_unix_ms=u) for n, u in self.chaos.active_pauses().items()],
        )
