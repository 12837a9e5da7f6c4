from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KillNodeRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class KillNodeResponse(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class PartitionRequest(_message.Message):
    __slots__ = ("isolate", "groups", "heal_after_ms")
    ISOLATE_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    HEAL_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    isolate: str
    groups: _containers.RepeatedCompositeFieldContainer[NodeGroup]
    heal_after_ms: int
    def __init__(self, isolate: _Optional[str] = ..., groups: _Optional[_Iterable[_Union[NodeGroup, _Mapping]]] = ..., heal_after_ms: _Optional[int] = ...) -> None: ...

class NodeGroup(_message.Message):
    __slots__ = ("node_ids",)
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    node_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PartitionResponse(_message.Message):
    __slots__ = ("description", "applied_on", "errors")
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    APPLIED_ON_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    description: str
    applied_on: _containers.RepeatedScalarFieldContainer[str]
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, description: _Optional[str] = ..., applied_on: _Optional[_Iterable[str]] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class HealRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealResponse(_message.Message):
    __slots__ = ("applied_on", "errors")
    APPLIED_ON_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    applied_on: _containers.RepeatedScalarFieldContainer[str]
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, applied_on: _Optional[_Iterable[str]] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class PauseNodeRequest(_message.Message):
    __slots__ = ("node_id", "duration_ms")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    duration_ms: int
    def __init__(self, node_id: _Optional[str] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class PauseNodeResponse(_message.Message):
    __slots__ = ("node_id", "until_unix_ms")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    UNTIL_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    until_unix_ms: int
    def __init__(self, node_id: _Optional[str] = ..., until_unix_ms: _Optional[int] = ...) -> None: ...

class KillActorRequest(_message.Message):
    __slots__ = ("workflow_id", "random")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RANDOM_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    random: int
    def __init__(self, workflow_id: _Optional[str] = ..., random: _Optional[int] = ...) -> None: ...

class KillActorResponse(_message.Message):
    __slots__ = ("workflow_ids",)
    WORKFLOW_IDS_FIELD_NUMBER: _ClassVar[int]
    workflow_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, workflow_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SetMonkeyRequest(_message.Message):
    __slots__ = ("enabled", "profile", "kill_nodes", "partitions", "duration_ms")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    KILL_NODES_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    profile: str
    kill_nodes: bool
    partitions: bool
    duration_ms: int
    def __init__(self, enabled: _Optional[bool] = ..., profile: _Optional[str] = ..., kill_nodes: _Optional[bool] = ..., partitions: _Optional[bool] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class SetMonkeyResponse(_message.Message):
    __slots__ = ("monkey",)
    MONKEY_FIELD_NUMBER: _ClassVar[int]
    monkey: MonkeyStatus
    def __init__(self, monkey: _Optional[_Union[MonkeyStatus, _Mapping]] = ...) -> None: ...

class MonkeyStatus(_message.Message):
    __slots__ = ("enabled", "profile", "kill_nodes", "partitions", "since_unix_ms", "until_unix_ms", "crash_rate", "timeout_rate", "error_rate", "latency_rate", "latency_min_ms", "latency_max_ms", "interval_ms")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    KILL_NODES_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    SINCE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    CRASH_RATE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_RATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MIN_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MAX_MS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    profile: str
    kill_nodes: bool
    partitions: bool
    since_unix_ms: int
    until_unix_ms: int
    crash_rate: float
    timeout_rate: float
    error_rate: float
    latency_rate: float
    latency_min_ms: int
    latency_max_ms: int
    interval_ms: int
    def __init__(self, enabled: _Optional[bool] = ..., profile: _Optional[str] = ..., kill_nodes: _Optional[bool] = ..., partitions: _Optional[bool] = ..., since_unix_ms: _Optional[int] = ..., until_unix_ms: _Optional[int] = ..., crash_rate: _Optional[float] = ..., timeout_rate: _Optional[float] = ..., error_rate: _Optional[float] = ..., latency_rate: _Optional[float] = ..., latency_min_ms: _Optional[int] = ..., latency_max_ms: _Optional[int] = ..., interval_ms: _Optional[int] = ...) -> None: ...

class GetChaosStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetChaosStatusResponse(_message.Message):
    __slots__ = ("monkey", "nodes", "injections", "actor_restarts", "workflows_reassigned", "paused")
    class InjectionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MONKEY_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    INJECTIONS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOWS_REASSIGNED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    monkey: MonkeyStatus
    nodes: _containers.RepeatedCompositeFieldContainer[NodeChaos]
    injections: _containers.ScalarMap[str, int]
    actor_restarts: int
    workflows_reassigned: int
    paused: _containers.RepeatedCompositeFieldContainer[PausedNode]
    def __init__(self, monkey: _Optional[_Union[MonkeyStatus, _Mapping]] = ..., nodes: _Optional[_Iterable[_Union[NodeChaos, _Mapping]]] = ..., injections: _Optional[_Mapping[str, int]] = ..., actor_restarts: _Optional[int] = ..., workflows_reassigned: _Optional[int] = ..., paused: _Optional[_Iterable[_Union[PausedNode, _Mapping]]] = ...) -> None: ...

class PausedNode(_message.Message):
    __slots__ = ("node_id", "until_unix_ms")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    UNTIL_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    until_unix_ms: int
    def __init__(self, node_id: _Optional[str] = ..., until_unix_ms: _Optional[int] = ...) -> None: ...

class NodeChaos(_message.Message):
    __slots__ = ("node_id", "reachable", "error", "blocked_node_ids", "partition", "heal_at_unix_ms", "injections", "actor_restarts", "actors", "chaos_enabled")
    class InjectionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    HEAL_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    INJECTIONS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    ACTORS_FIELD_NUMBER: _ClassVar[int]
    CHAOS_ENABLED_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    reachable: bool
    error: str
    blocked_node_ids: _containers.RepeatedScalarFieldContainer[str]
    partition: str
    heal_at_unix_ms: int
    injections: _containers.ScalarMap[str, int]
    actor_restarts: int
    actors: int
    chaos_enabled: bool
    def __init__(self, node_id: _Optional[str] = ..., reachable: _Optional[bool] = ..., error: _Optional[str] = ..., blocked_node_ids: _Optional[_Iterable[str]] = ..., partition: _Optional[str] = ..., heal_at_unix_ms: _Optional[int] = ..., injections: _Optional[_Mapping[str, int]] = ..., actor_restarts: _Optional[int] = ..., actors: _Optional[int] = ..., chaos_enabled: _Optional[bool] = ...) -> None: ...

class SetNodeFilterRequest(_message.Message):
    __slots__ = ("blocked_node_ids", "partition", "heal_after_ms")
    BLOCKED_NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    HEAL_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    blocked_node_ids: _containers.RepeatedScalarFieldContainer[str]
    partition: str
    heal_after_ms: int
    def __init__(self, blocked_node_ids: _Optional[_Iterable[str]] = ..., partition: _Optional[str] = ..., heal_after_ms: _Optional[int] = ...) -> None: ...

class SetNodeFilterResponse(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class GetNodeChaosRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetNodeChaosResponse(_message.Message):
    __slots__ = ("node", "paused")
    NODE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    node: NodeChaos
    paused: _containers.RepeatedCompositeFieldContainer[PausedNode]
    def __init__(self, node: _Optional[_Union[NodeChaos, _Mapping]] = ..., paused: _Optional[_Iterable[_Union[PausedNode, _Mapping]]] = ...) -> None: ...
