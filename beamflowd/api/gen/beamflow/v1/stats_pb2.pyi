import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatsScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATS_SCOPE_UNSPECIFIED: _ClassVar[StatsScope]
    STATS_SCOPE_CLUSTER: _ClassVar[StatsScope]
    STATS_SCOPE_NODE: _ClassVar[StatsScope]
STATS_SCOPE_UNSPECIFIED: StatsScope
STATS_SCOPE_CLUSTER: StatsScope
STATS_SCOPE_NODE: StatsScope

class NodeStats(_message.Message):
    __slots__ = ("id", "grpc_address", "role", "term", "commit_index", "applied_index", "liveness", "owned_workflows", "partitioned", "paused", "reachable", "error", "last_heartbeat_age_ms", "rss_bytes", "actors", "chaos_enabled", "chaos_injections", "partition", "paused_until_ms", "open_breakers", "cpu_seconds")
    class ChaosInjectionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class PausedUntilMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    GRPC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    OWNED_WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    PARTITIONED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    ACTORS_FIELD_NUMBER: _ClassVar[int]
    CHAOS_ENABLED_FIELD_NUMBER: _ClassVar[int]
    CHAOS_INJECTIONS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    PAUSED_UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    OPEN_BREAKERS_FIELD_NUMBER: _ClassVar[int]
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    grpc_address: str
    role: str
    term: int
    commit_index: int
    applied_index: int
    liveness: str
    owned_workflows: int
    partitioned: bool
    paused: bool
    reachable: bool
    error: str
    last_heartbeat_age_ms: int
    rss_bytes: int
    actors: int
    chaos_enabled: bool
    chaos_injections: _containers.ScalarMap[str, int]
    partition: str
    paused_until_ms: _containers.ScalarMap[str, int]
    open_breakers: _containers.RepeatedScalarFieldContainer[str]
    cpu_seconds: float
    def __init__(self, id: _Optional[str] = ..., grpc_address: _Optional[str] = ..., role: _Optional[str] = ..., term: _Optional[int] = ..., commit_index: _Optional[int] = ..., applied_index: _Optional[int] = ..., liveness: _Optional[str] = ..., owned_workflows: _Optional[int] = ..., partitioned: _Optional[bool] = ..., paused: _Optional[bool] = ..., reachable: _Optional[bool] = ..., error: _Optional[str] = ..., last_heartbeat_age_ms: _Optional[int] = ..., rss_bytes: _Optional[int] = ..., actors: _Optional[int] = ..., chaos_enabled: _Optional[bool] = ..., chaos_injections: _Optional[_Mapping[str, int]] = ..., partition: _Optional[str] = ..., paused_until_ms: _Optional[_Mapping[str, int]] = ..., open_breakers: _Optional[_Iterable[str]] = ..., cpu_seconds: _Optional[float] = ...) -> None: ...

class PeerView(_message.Message):
    __slots__ = ("node_id", "liveness", "last_heartbeat_age_ms")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    liveness: str
    last_heartbeat_age_ms: int
    def __init__(self, node_id: _Optional[str] = ..., liveness: _Optional[str] = ..., last_heartbeat_age_ms: _Optional[int] = ...) -> None: ...

class Latency(_message.Message):
    __slots__ = ("name", "samples", "step_p50_ms", "step_p95_ms", "step_p99_ms", "workflow_p50_ms", "workflow_p95_ms", "workflow_p99_ms", "workflow_samples", "completed", "failed")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    STEP_P50_MS_FIELD_NUMBER: _ClassVar[int]
    STEP_P95_MS_FIELD_NUMBER: _ClassVar[int]
    STEP_P99_MS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_P50_MS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_P95_MS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_P99_MS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    name: str
    samples: int
    step_p50_ms: float
    step_p95_ms: float
    step_p99_ms: float
    workflow_p50_ms: float
    workflow_p95_ms: float
    workflow_p99_ms: float
    workflow_samples: int
    completed: int
    failed: int
    def __init__(self, name: _Optional[str] = ..., samples: _Optional[int] = ..., step_p50_ms: _Optional[float] = ..., step_p95_ms: _Optional[float] = ..., step_p99_ms: _Optional[float] = ..., workflow_p50_ms: _Optional[float] = ..., workflow_p95_ms: _Optional[float] = ..., workflow_p99_ms: _Optional[float] = ..., workflow_samples: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class FailingStep(_message.Message):
    __slots__ = ("workflow_name", "step_id", "failures")
    WORKFLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    workflow_name: str
    step_id: str
    failures: int
    def __init__(self, workflow_name: _Optional[str] = ..., step_id: _Optional[str] = ..., failures: _Optional[int] = ...) -> None: ...

class NotableEvent(_message.Message):
    __slots__ = ("time", "type", "workflow_id", "workflow_name", "step_id", "message", "node")
    TIME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    type: str
    workflow_id: str
    workflow_name: str
    step_id: str
    message: str
    node: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[str] = ..., workflow_id: _Optional[str] = ..., workflow_name: _Optional[str] = ..., step_id: _Optional[str] = ..., message: _Optional[str] = ..., node: _Optional[str] = ...) -> None: ...

class WorkflowStats(_message.Message):
    __slots__ = ("submitted", "running", "succeeded", "failed", "cancelled", "retries_scheduled", "reassigned", "stale_rejected", "success_rate", "completed_per_second", "failed_per_second", "submitted_per_second", "completed_history", "failed_history", "submitted_history", "counters", "waiting_by_signal")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class WaitingBySignalEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    RETRIES_SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    REASSIGNED_FIELD_NUMBER: _ClassVar[int]
    STALE_REJECTED_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    FAILED_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_HISTORY_FIELD_NUMBER: _ClassVar[int]
    FAILED_HISTORY_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_HISTORY_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    WAITING_BY_SIGNAL_FIELD_NUMBER: _ClassVar[int]
    submitted: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    retries_scheduled: int
    reassigned: int
    stale_rejected: int
    success_rate: float
    completed_per_second: float
    failed_per_second: float
    submitted_per_second: float
    completed_history: _containers.RepeatedScalarFieldContainer[float]
    failed_history: _containers.RepeatedScalarFieldContainer[float]
    submitted_history: _containers.RepeatedScalarFieldContainer[float]
    counters: _containers.ScalarMap[str, int]
    waiting_by_signal: _containers.ScalarMap[str, int]
    def __init__(self, submitted: _Optional[int] = ..., running: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ..., retries_scheduled: _Optional[int] = ..., reassigned: _Optional[int] = ..., stale_rejected: _Optional[int] = ..., success_rate: _Optional[float] = ..., completed_per_second: _Optional[float] = ..., failed_per_second: _Optional[float] = ..., submitted_per_second: _Optional[float] = ..., completed_history: _Optional[_Iterable[float]] = ..., failed_history: _Optional[_Iterable[float]] = ..., submitted_history: _Optional[_Iterable[float]] = ..., counters: _Optional[_Mapping[str, int]] = ..., waiting_by_signal: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ChaosStats(_message.Message):
    __slots__ = ("available", "monkey_on", "monkey_profile", "active", "injections", "enabled")
    class InjectionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    MONKEY_ON_FIELD_NUMBER: _ClassVar[int]
    MONKEY_PROFILE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    INJECTIONS_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    available: bool
    monkey_on: bool
    monkey_profile: str
    active: _containers.RepeatedScalarFieldContainer[str]
    injections: _containers.ScalarMap[str, int]
    enabled: bool
    def __init__(self, available: _Optional[bool] = ..., monkey_on: _Optional[bool] = ..., monkey_profile: _Optional[str] = ..., active: _Optional[_Iterable[str]] = ..., injections: _Optional[_Mapping[str, int]] = ..., enabled: _Optional[bool] = ...) -> None: ...

class StatsSnapshot(_message.Message):
    __slots__ = ("time", "node_id", "leader_id", "nodes", "workflows", "latencies", "failing_steps", "events", "chaos", "peers", "build_micros")
    TIME_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    LATENCIES_FIELD_NUMBER: _ClassVar[int]
    FAILING_STEPS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CHAOS_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    BUILD_MICROS_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    node_id: str
    leader_id: str
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStats]
    workflows: WorkflowStats
    latencies: _containers.RepeatedCompositeFieldContainer[Latency]
    failing_steps: _containers.RepeatedCompositeFieldContainer[FailingStep]
    events: _containers.RepeatedCompositeFieldContainer[NotableEvent]
    chaos: ChaosStats
    peers: _containers.RepeatedCompositeFieldContainer[PeerView]
    build_micros: int
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., node_id: _Optional[str] = ..., leader_id: _Optional[str] = ..., nodes: _Optional[_Iterable[_Union[NodeStats, _Mapping]]] = ..., workflows: _Optional[_Union[WorkflowStats, _Mapping]] = ..., latencies: _Optional[_Iterable[_Union[Latency, _Mapping]]] = ..., failing_steps: _Optional[_Iterable[_Union[FailingStep, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[NotableEvent, _Mapping]]] = ..., chaos: _Optional[_Union[ChaosStats, _Mapping]] = ..., peers: _Optional[_Iterable[_Union[PeerView, _Mapping]]] = ..., build_micros: _Optional[int] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("scope", "max_events")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    MAX_EVENTS_FIELD_NUMBER: _ClassVar[int]
    scope: StatsScope
    max_events: int
    def __init__(self, scope: _Optional[_Union[StatsScope, str]] = ..., max_events: _Optional[int] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("snapshot",)
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    snapshot: StatsSnapshot
    def __init__(self, snapshot: _Optional[_Union[StatsSnapshot, _Mapping]] = ...) -> None: ...

class WatchStatsRequest(_message.Message):
    __slots__ = ("interval_ms", "max_events")
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_EVENTS_FIELD_NUMBER: _ClassVar[int]
    interval_ms: int
    max_events: int
    def __init__(self, interval_ms: _Optional[int] = ..., max_events: _Optional[int] = ...) -> None: ...

class WatchStatsResponse(_message.Message):
    __slots__ = ("snapshot",)
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    snapshot: StatsSnapshot
    def __init__(self, snapshot: _Optional[_Union[StatsSnapshot, _Mapping]] = ...) -> None: ...
