from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_ROLE_UNSPECIFIED: _ClassVar[NodeRole]
    NODE_ROLE_LEADER: _ClassVar[NodeRole]
    NODE_ROLE_FOLLOWER: _ClassVar[NodeRole]
    NODE_ROLE_CANDIDATE: _ClassVar[NodeRole]
NODE_ROLE_UNSPECIFIED: NodeRole
NODE_ROLE_LEADER: NodeRole
NODE_ROLE_FOLLOWER: NodeRole
NODE_ROLE_CANDIDATE: NodeRole

class NodeStatus(_message.Message):
    __slots__ = ("id", "raft_address", "grpc_address", "role", "term", "commit_index", "applied_index", "reachable", "digest", "owned_workflows", "leader_id", "liveness", "error", "last_heartbeat_age_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    RAFT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GRPC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    OWNED_WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    raft_address: str
    grpc_address: str
    role: NodeRole
    term: int
    commit_index: int
    applied_index: int
    reachable: bool
    digest: str
    owned_workflows: int
    leader_id: str
    liveness: str
    error: str
    last_heartbeat_age_ms: int
    def __init__(self, id: _Optional[str] = ..., raft_address: _Optional[str] = ..., grpc_address: _Optional[str] = ..., role: _Optional[_Union[NodeRole, str]] = ..., term: _Optional[int] = ..., commit_index: _Optional[int] = ..., applied_index: _Optional[int] = ..., reachable: _Optional[bool] = ..., digest: _Optional[str] = ..., owned_workflows: _Optional[int] = ..., leader_id: _Optional[str] = ..., liveness: _Optional[str] = ..., error: _Optional[str] = ..., last_heartbeat_age_ms: _Optional[int] = ...) -> None: ...

class GetClusterStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetClusterStatusResponse(_message.Message):
    __slots__ = ("nodes", "leader_id", "dlq_pending", "dlq_retrying", "dlq_overflow")
    NODES_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    DLQ_PENDING_FIELD_NUMBER: _ClassVar[int]
    DLQ_RETRYING_FIELD_NUMBER: _ClassVar[int]
    DLQ_OVERFLOW_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    leader_id: str
    dlq_pending: int
    dlq_retrying: int
    dlq_overflow: int
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ..., leader_id: _Optional[str] = ..., dlq_pending: _Optional[int] = ..., dlq_retrying: _Optional[int] = ..., dlq_overflow: _Optional[int] = ...) -> None: ...

class GetNodeStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PeerLiveness(_message.Message):
    __slots__ = ("node_id", "liveness", "last_heartbeat_age_ms")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    liveness: str
    last_heartbeat_age_ms: int
    def __init__(self, node_id: _Optional[str] = ..., liveness: _Optional[str] = ..., last_heartbeat_age_ms: _Optional[int] = ...) -> None: ...

class GetNodeStatusResponse(_message.Message):
    __slots__ = ("node", "peers")
    NODE_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    node: NodeStatus
    peers: _containers.RepeatedCompositeFieldContainer[PeerLiveness]
    def __init__(self, node: _Optional[_Union[NodeStatus, _Mapping]] = ..., peers: _Optional[_Iterable[_Union[PeerLiveness, _Mapping]]] = ...) -> None: ...

class SaveSnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SaveSnapshotResponse(_message.Message):
    __slots__ = ("data", "raft_index", "workflows", "sha256", "size_bytes", "trailer", "leader_id")
    DATA_FIELD_NUMBER: _ClassVar[int]
    RAFT_INDEX_FIELD_NUMBER: _ClassVar[int]
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TRAILER_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    raft_index: int
    workflows: int
    sha256: str
    size_bytes: int
    trailer: bytes
    leader_id: str
    def __init__(self, data: _Optional[bytes] = ..., raft_index: _Optional[int] = ..., workflows: _Optional[int] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., trailer: _Optional[bytes] = ..., leader_id: _Optional[str] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("id", "raft_address", "grpc_address", "alive", "joined", "owned_workflows", "in_raft")
    ID_FIELD_NUMBER: _ClassVar[int]
    RAFT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GRPC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    JOINED_FIELD_NUMBER: _ClassVar[int]
    OWNED_WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    IN_RAFT_FIELD_NUMBER: _ClassVar[int]
    id: str
    raft_address: str
    grpc_address: str
    alive: bool
    joined: bool
    owned_workflows: int
    in_raft: bool
    def __init__(self, id: _Optional[str] = ..., raft_address: _Optional[str] = ..., grpc_address: _Optional[str] = ..., alive: _Optional[bool] = ..., joined: _Optional[bool] = ..., owned_workflows: _Optional[int] = ..., in_raft: _Optional[bool] = ...) -> None: ...

class AddMemberRequest(_message.Message):
    __slots__ = ("node_id", "raft_address", "grpc_address")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    RAFT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GRPC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    raft_address: str
    grpc_address: str
    def __init__(self, node_id: _Optional[str] = ..., raft_address: _Optional[str] = ..., grpc_address: _Optional[str] = ...) -> None: ...

class AddMemberResponse(_message.Message):
    __slots__ = ("added", "members")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    added: bool
    members: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, added: _Optional[bool] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...

class RemoveMemberRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class RemoveMemberResponse(_message.Message):
    __slots__ = ("removed", "moved_workflows", "members")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    MOVED_WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    removed: bool
    moved_workflows: int
    members: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, removed: _Optional[bool] = ..., moved_workflows: _Optional[int] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...

class ListMembersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListMembersResponse(_message.Message):
    __slots__ = ("members", "leader_id")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[Member]
    leader_id: str
    def __init__(self, members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., leader_id: _Optional[str] = ...) -> None: ...

class ListBreakersRequest(_message.Message):
    __slots__ = ("local_only",)
    LOCAL_ONLY_FIELD_NUMBER: _ClassVar[int]
    local_only: bool
    def __init__(self, local_only: _Optional[bool] = ...) -> None: ...

class BreakerStatus(_message.Message):
    __slots__ = ("name", "state", "recent_failures", "half_open_successes", "open_for_ms", "rejected", "opened")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RECENT_FAILURES_FIELD_NUMBER: _ClassVar[int]
    HALF_OPEN_SUCCESSES_FIELD_NUMBER: _ClassVar[int]
    OPEN_FOR_MS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    OPENED_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    recent_failures: int
    half_open_successes: int
    open_for_ms: int
    rejected: int
    opened: int
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., recent_failures: _Optional[int] = ..., half_open_successes: _Optional[int] = ..., open_for_ms: _Optional[int] = ..., rejected: _Optional[int] = ..., opened: _Optional[int] = ...) -> None: ...

class NodeBreakers(_message.Message):
    __slots__ = ("node_id", "reachable", "error", "breakers")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    BREAKERS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    reachable: bool
    error: str
    breakers: _containers.RepeatedCompositeFieldContainer[BreakerStatus]
    def __init__(self, node_id: _Optional[str] = ..., reachable: _Optional[bool] = ..., error: _Optional[str] = ..., breakers: _Optional[_Iterable[_Union[BreakerStatus, _Mapping]]] = ...) -> None: ...

class ListBreakersResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeBreakers]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeBreakers, _Mapping]]] = ...) -> None: ...
