import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkflowStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKFLOW_STATUS_UNSPECIFIED: _ClassVar[WorkflowStatus]
    WORKFLOW_STATUS_RUNNING: _ClassVar[WorkflowStatus]
    WORKFLOW_STATUS_SUCCEEDED: _ClassVar[WorkflowStatus]
    WORKFLOW_STATUS_FAILED: _ClassVar[WorkflowStatus]
    WORKFLOW_STATUS_CANCELLED: _ClassVar[WorkflowStatus]
    WORKFLOW_STATUS_PAUSED: _ClassVar[WorkflowStatus]
    WORKFLOW_STATUS_COMPENSATED: _ClassVar[WorkflowStatus]
    WORKFLOW_STATUS_COMPENSATION_FAILED: _ClassVar[WorkflowStatus]

class StepStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_STATUS_UNSPECIFIED: _ClassVar[StepStatus]
    STEP_STATUS_PENDING: _ClassVar[StepStatus]
    STEP_STATUS_RUNNING: _ClassVar[StepStatus]
    STEP_STATUS_RETRY_WAIT: _ClassVar[StepStatus]
    STEP_STATUS_SUCCEEDED: _ClassVar[StepStatus]
    STEP_STATUS_FAILED: _ClassVar[StepStatus]
    STEP_STATUS_CANCELLED: _ClassVar[StepStatus]
    STEP_STATUS_SKIPPED: _ClassVar[StepStatus]

class IdReusePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ID_REUSE_POLICY_UNSPECIFIED: _ClassVar[IdReusePolicy]
    ID_REUSE_POLICY_ALLOW_DUPLICATE: _ClassVar[IdReusePolicy]
    ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY: _ClassVar[IdReusePolicy]
    ID_REUSE_POLICY_REJECT_DUPLICATE: _ClassVar[IdReusePolicy]

class IdConflictPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ID_CONFLICT_POLICY_UNSPECIFIED: _ClassVar[IdConflictPolicy]
    ID_CONFLICT_POLICY_FAIL: _ClassVar[IdConflictPolicy]
    ID_CONFLICT_POLICY_USE_EXISTING: _ClassVar[IdConflictPolicy]

class BulkAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BULK_ACTION_UNSPECIFIED: _ClassVar[BulkAction]
    BULK_ACTION_CANCEL: _ClassVar[BulkAction]
    BULK_ACTION_PAUSE: _ClassVar[BulkAction]
    BULK_ACTION_RESUME: _ClassVar[BulkAction]
    BULK_ACTION_RETRY: _ClassVar[BulkAction]
WORKFLOW_STATUS_UNSPECIFIED: WorkflowStatus
WORKFLOW_STATUS_RUNNING: WorkflowStatus
WORKFLOW_STATUS_SUCCEEDED: WorkflowStatus
WORKFLOW_STATUS_FAILED: WorkflowStatus
WORKFLOW_STATUS_CANCELLED: WorkflowStatus
WORKFLOW_STATUS_PAUSED: WorkflowStatus
WORKFLOW_STATUS_COMPENSATED: WorkflowStatus
WORKFLOW_STATUS_COMPENSATION_FAILED: WorkflowStatus
STEP_STATUS_UNSPECIFIED: StepStatus
STEP_STATUS_PENDING: StepStatus
STEP_STATUS_RUNNING: StepStatus
STEP_STATUS_RETRY_WAIT: StepStatus
STEP_STATUS_SUCCEEDED: StepStatus
STEP_STATUS_FAILED: StepStatus
STEP_STATUS_CANCELLED: StepStatus
STEP_STATUS_SKIPPED: StepStatus
ID_REUSE_POLICY_UNSPECIFIED: IdReusePolicy
ID_REUSE_POLICY_ALLOW_DUPLICATE: IdReusePolicy
ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY: IdReusePolicy
ID_REUSE_POLICY_REJECT_DUPLICATE: IdReusePolicy
ID_CONFLICT_POLICY_UNSPECIFIED: IdConflictPolicy
ID_CONFLICT_POLICY_FAIL: IdConflictPolicy
ID_CONFLICT_POLICY_USE_EXISTING: IdConflictPolicy
BULK_ACTION_UNSPECIFIED: BulkAction
BULK_ACTION_CANCEL: BulkAction
BULK_ACTION_PAUSE: BulkAction
BULK_ACTION_RESUME: BulkAction
BULK_ACTION_RETRY: BulkAction

class Step(_message.Message):
    __slots__ = ("id", "kind", "status", "attempts", "output_json", "error", "error_class", "needs", "start_time", "end_time", "next_attempt_time", "waiting_for", "deadline_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CLASS_FIELD_NUMBER: _ClassVar[int]
    NEEDS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    status: StepStatus
    attempts: int
    output_json: str
    error: str
    error_class: str
    needs: _containers.RepeatedScalarFieldContainer[str]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    next_attempt_time: _timestamp_pb2.Timestamp
    waiting_for: str
    deadline_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., status: _Optional[_Union[StepStatus, str]] = ..., attempts: _Optional[int] = ..., output_json: _Optional[str] = ..., error: _Optional[str] = ..., error_class: _Optional[str] = ..., needs: _Optional[_Iterable[str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., waiting_for: _Optional[str] = ..., deadline_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Workflow(_message.Message):
    __slots__ = ("id", "name", "status", "owner", "epoch", "create_time", "update_time", "input_json", "steps", "error", "definition_json", "description", "retries", "resubmitted_from", "dead_letter_id", "paused_reason", "labels", "signals_buffered")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_JSON_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    RESUBMITTED_FROM_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_ID_FIELD_NUMBER: _ClassVar[int]
    PAUSED_REASON_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_BUFFERED_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    status: WorkflowStatus
    owner: str
    epoch: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    input_json: str
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    error: str
    definition_json: str
    description: str
    retries: int
    resubmitted_from: str
    dead_letter_id: str
    paused_reason: str
    labels: _containers.ScalarMap[str, str]
    signals_buffered: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[WorkflowStatus, str]] = ..., owner: _Optional[str] = ..., epoch: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., input_json: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., error: _Optional[str] = ..., definition_json: _Optional[str] = ..., description: _Optional[str] = ..., retries: _Optional[int] = ..., resubmitted_from: _Optional[str] = ..., dead_letter_id: _Optional[str] = ..., paused_reason: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., signals_buffered: _Optional[int] = ...) -> None: ...

class WorkflowSummary(_message.Message):
    __slots__ = ("id", "name", "status", "owner", "epoch", "create_time", "update_time", "steps_total", "steps_succeeded", "waiting_for", "steps_skipped")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STEPS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    STEPS_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    STEPS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    status: WorkflowStatus
    owner: str
    epoch: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    steps_total: int
    steps_succeeded: int
    waiting_for: _containers.RepeatedScalarFieldContainer[str]
    steps_skipped: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[WorkflowStatus, str]] = ..., owner: _Optional[str] = ..., epoch: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., steps_total: _Optional[int] = ..., steps_succeeded: _Optional[int] = ..., waiting_for: _Optional[_Iterable[str]] = ..., steps_skipped: _Optional[int] = ...) -> None: ...

class WorkflowEvent(_message.Message):
    __slots__ = ("seq", "time", "type", "step_id", "attempt", "message", "node")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: _timestamp_pb2.Timestamp
    type: str
    step_id: str
    attempt: int
    message: str
    node: str
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[str] = ..., step_id: _Optional[str] = ..., attempt: _Optional[int] = ..., message: _Optional[str] = ..., node: _Optional[str] = ...) -> None: ...

class SubmitWorkflowRequest(_message.Message):
    __slots__ = ("definition", "definition_source", "input_json", "workflow_id", "request_id", "labels", "id_reuse_policy", "id_conflict_policy", "wait")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_SOURCE_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ID_REUSE_POLICY_FIELD_NUMBER: _ClassVar[int]
    ID_CONFLICT_POLICY_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    definition: str
    definition_source: str
    input_json: str
    workflow_id: str
    request_id: str
    labels: _containers.ScalarMap[str, str]
    id_reuse_policy: IdReusePolicy
    id_conflict_policy: IdConflictPolicy
    wait: bool
    def __init__(self, definition: _Optional[str] = ..., definition_source: _Optional[str] = ..., input_json: _Optional[str] = ..., workflow_id: _Optional[str] = ..., request_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., id_reuse_policy: _Optional[_Union[IdReusePolicy, str]] = ..., id_conflict_policy: _Optional[_Union[IdConflictPolicy, str]] = ..., wait: _Optional[bool] = ...) -> None: ...

class SubmitWorkflowResponse(_message.Message):
    __slots__ = ("workflow_id", "owner", "existing", "status", "result_json", "error")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    EXISTING_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    owner: str
    existing: bool
    status: WorkflowStatus
    result_json: str
    error: str
    def __init__(self, workflow_id: _Optional[str] = ..., owner: _Optional[str] = ..., existing: _Optional[bool] = ..., status: _Optional[_Union[WorkflowStatus, str]] = ..., result_json: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class GetWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id",)
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    def __init__(self, workflow_id: _Optional[str] = ...) -> None: ...

class GetWorkflowResponse(_message.Message):
    __slots__ = ("workflow", "events")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    workflow: Workflow
    events: _containers.RepeatedCompositeFieldContainer[WorkflowEvent]
    def __init__(self, workflow: _Optional[_Union[Workflow, _Mapping]] = ..., events: _Optional[_Iterable[_Union[WorkflowEvent, _Mapping]]] = ...) -> None: ...

class ListWorkflowsRequest(_message.Message):
    __slots__ = ("status", "name", "page_size", "page_token", "filter")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    status: WorkflowStatus
    name: str
    page_size: int
    page_token: str
    filter: WorkflowFilter
    def __init__(self, status: _Optional[_Union[WorkflowStatus, str]] = ..., name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[_Union[WorkflowFilter, _Mapping]] = ...) -> None: ...

class WorkflowFilter(_message.Message):
    __slots__ = ("labels", "created_after", "created_before", "failed_step", "error_class")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    FAILED_STEP_FIELD_NUMBER: _ClassVar[int]
    ERROR_CLASS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.ScalarMap[str, str]
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    failed_step: str
    error_class: str
    def __init__(self, labels: _Optional[_Mapping[str, str]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., failed_step: _Optional[str] = ..., error_class: _Optional[str] = ...) -> None: ...

class ListWorkflowsResponse(_message.Message):
    __slots__ = ("workflows", "next_page_token", "total_matching")
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MATCHING_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[WorkflowSummary]
    next_page_token: str
    total_matching: int
    def __init__(self, workflows: _Optional[_Iterable[_Union[WorkflowSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_matching: _Optional[int] = ...) -> None: ...

class CancelWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "reason", "request_id", "compensate")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    COMPENSATE_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    reason: str
    request_id: str
    compensate: bool
    def __init__(self, workflow_id: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., compensate: _Optional[bool] = ...) -> None: ...

class CancelWorkflowResponse(_message.Message):
    __slots__ = ("workflow", "cancelled")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    workflow: Workflow
    cancelled: bool
    def __init__(self, workflow: _Optional[_Union[Workflow, _Mapping]] = ..., cancelled: _Optional[bool] = ...) -> None: ...

class WatchWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "after_seq")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    after_seq: int
    def __init__(self, workflow_id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class WatchWorkflowResponse(_message.Message):
    __slots__ = ("event", "status")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    event: WorkflowEvent
    status: WorkflowStatus
    def __init__(self, event: _Optional[_Union[WorkflowEvent, _Mapping]] = ..., status: _Optional[_Union[WorkflowStatus, str]] = ...) -> None: ...

class RetryWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "from_step", "reason")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_STEP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    from_step: str
    reason: str
    def __init__(self, workflow_id: _Optional[str] = ..., from_step: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RetryWorkflowResponse(_message.Message):
    __slots__ = ("workflow", "dead_letter_id")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_ID_FIELD_NUMBER: _ClassVar[int]
    workflow: Workflow
    dead_letter_id: str
    def __init__(self, workflow: _Optional[_Union[Workflow, _Mapping]] = ..., dead_letter_id: _Optional[str] = ...) -> None: ...

class ResubmitWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "new_workflow_id", "request_id")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    new_workflow_id: str
    request_id: str
    def __init__(self, workflow_id: _Optional[str] = ..., new_workflow_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ResubmitWorkflowResponse(_message.Message):
    __slots__ = ("workflow_id", "owner")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    owner: str
    def __init__(self, workflow_id: _Optional[str] = ..., owner: _Optional[str] = ...) -> None: ...

class PauseWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "reason")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    reason: str
    def __init__(self, workflow_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PauseWorkflowResponse(_message.Message):
    __slots__ = ("workflow", "changed")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    workflow: Workflow
    changed: bool
    def __init__(self, workflow: _Optional[_Union[Workflow, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class ResumeWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id",)
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    def __init__(self, workflow_id: _Optional[str] = ...) -> None: ...

class ResumeWorkflowResponse(_message.Message):
    __slots__ = ("workflow", "changed")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    workflow: Workflow
    changed: bool
    def __init__(self, workflow: _Optional[_Union[Workflow, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class GetWorkflowResultRequest(_message.Message):
    __slots__ = ("workflow_id", "wait")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    wait: bool
    def __init__(self, workflow_id: _Optional[str] = ..., wait: _Optional[bool] = ...) -> None: ...

class GetWorkflowResultResponse(_message.Message):
    __slots__ = ("result_json", "status")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    status: WorkflowStatus
    def __init__(self, result_json: _Optional[str] = ..., status: _Optional[_Union[WorkflowStatus, str]] = ...) -> None: ...

class CountWorkflowsRequest(_message.Message):
    __slots__ = ("status", "name", "filter")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    status: WorkflowStatus
    name: str
    filter: WorkflowFilter
    def __init__(self, status: _Optional[_Union[WorkflowStatus, str]] = ..., name: _Optional[str] = ..., filter: _Optional[_Union[WorkflowFilter, _Mapping]] = ...) -> None: ...

class CountWorkflowsResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class BulkWorkflowActionRequest(_message.Message):
    __slots__ = ("action", "workflow_ids", "reason")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_IDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    action: BulkAction
    workflow_ids: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    def __init__(self, action: _Optional[_Union[BulkAction, str]] = ..., workflow_ids: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ...) -> None: ...

class BulkWorkflowActionResponse(_message.Message):
    __slots__ = ("changed", "unchanged", "not_found", "errors")
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    changed: int
    unchanged: int
    not_found: int
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, changed: _Optional[int] = ..., unchanged: _Optional[int] = ..., not_found: _Optional[int] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class SignalWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "signal", "payload_json", "request_id")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    signal: str
    payload_json: str
    request_id: str
    def __init__(self, workflow_id: _Optional[str] = ..., signal: _Optional[str] = ..., payload_json: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SignalWorkflowResponse(_message.Message):
    __slots__ = ("delivered", "step_id", "duplicate", "request_id")
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    delivered: bool
    step_id: str
    duplicate: bool
    request_id: str
    def __init__(self, delivered: _Optional[bool] = ..., step_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...
