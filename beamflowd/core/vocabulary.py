"""The words of the state machine, defined once: workflow and step statuses, and event kinds.

What crosses the wire as an enum (workflow and step statuses) is also a proto enum in
``proto/beamflow/v1/workflow.proto`` (``beamflowd/api/convert.py`` maps one to the other); event kinds travel
as these strings. The daemon, the CLI, the history checker and the stats all import them from here.
"""

from __future__ import annotations

from typing import Final

# -- workflow statuses ---
WORKFLOW_RUNNING: Final = "running"
WORKFLOW_SUCCEEDED: Final = "succeeded"
WORKFLOW_FAILED: Final = "failed"
WORKFLOW_CANCELLED: Final = "cancelled"
TERMINAL_WORKFLOW: Final = frozenset({WORKFLOW_SUCCEEDED, WORKFLOW_FAILED, WORKFLOW_CANCELLED})

# -- step statuses ---
STEP_PENDING: Final = "pending"
STEP_RUNNING: Final = "running"
STEP_RETRY_WAIT: Final = "retry_wait"
STEP_SUCCEEDED: Final = "succeeded"
STEP_FAILED: Final = "failed"
STEP_CANCELLED: Final = "cancelled"
TERMINAL_STEP: Final = frozenset({STEP_SUCCEEDED, STEP_FAILED, STEP_CANCELLED})

# -- event kinds (a workflow's history) ---
EVENT_SUBMITTED: Final = "submitted"
EVENT_STEP_STARTED: Final = "step_started"
EVENT_STEP_SUCCEEDED: Final = "step_succeeded"
EVENT_STEP_FAILED: Final = "step_failed"
EVENT_RETRY_SCHEDULED: Final = "retry_scheduled"
EVENT_REASSIGNED: Final = "reassigned"
EVENT_STALE_RESULT_REJECTED: Final = "stale_result_rejected"
#: A running attempt runs again because the process running it died (see ``Redeliver``).
EVENT_REDELIVERED: Final = "redelivered"
EVENT_COMPLETED: Final = "completed"
EVENT_FAILED: Final = "failed"
EVENT_CANCELLED: Final = "cancelled"
#: Cluster-wide (not a workflow's): a member was declared dead.
EVENT_NODE_DOWN: Final = "node_down"
#: Cluster-wide: an operator added or removed a member.
EVENT_MEMBER_ADDED: Final = "member_added"
EVENT_MEMBER_REMOVED: Final = "member_removed"

#: The event that ends a workflow, by the terminal status it ends in; exactly one per workflow.
CLOSING_EVENT_OF_STATUS: Final = {
    WORKFLOW_SUCCEEDED: EVENT_COMPLETED,
    WORKFLOW_FAILED: EVENT_FAILED,
    WORKFLOW_CANCELLED: EVENT_CANCELLED,
}
STATUS_OF_CLOSING_EVENT: Final = {event: status for status, event in CLOSING_EVENT_OF_STATUS.items()}
CLOSING_EVENTS: Final = frozenset(STATUS_OF_CLOSING_EVENT)
#: Events also copied to the cluster-wide feed of notable events (dashboards).
NOTABLE_KINDS: Final = frozenset(
    {
        EVENT_STEP_FAILED,
        EVENT_RETRY_SCHEDULED,
        EVENT_FAILED,
        EVENT_CANCELLED,
        EVENT_REASSIGNED,
        EVENT_STALE_RESULT_REJECTED,
        EVENT_REDELIVERED,
        "retried",  # EVENT_RETRIED (defined below with the dead-letter words)
        "dead_lettered",  # EVENT_DEAD_LETTERED
        "paused",  # EVENT_PAUSED
        "resumed",  # EVENT_RESUMED
        "deadline_exceeded",  # EVENT_DEADLINE_EXCEEDED
    }
)

# -- error classes the engine itself assigns (step code may use its own) ---
#: The process running the attempt died: a worker that exited or was killed by a signal.
ERROR_CRASHED: Final = "crashed"
#: The worker exceeded ``step_memory_limit``.
ERROR_MEMORY: Final = "memory"
#: The attempt ran past its timeout.
ERROR_TIMEOUT: Final = "timeout"
#: The step's attempts killed whatever ran them ``max_deliveries`` times: never retried.
ERROR_POISONED: Final = "poisoned"
#: Classes that mean the attempt killed the process running it, so they count as deliveries.
PROCESS_KILLING_ERRORS: Final = frozenset({ERROR_CRASHED, ERROR_MEMORY})

# -- dead-letter queue and retry from the failed step ---
#: A retried workflow: failed steps (or ``--from`` and what depends on it) run again under a new epoch.
EVENT_RETRIED: Final = "retried"
#: The workflow's failure entered the dead-letter queue (or its entry went back to pending).
EVENT_DEAD_LETTERED: Final = "dead_lettered"
#: Kind of a dead-letter entry: the workflow failed for good.
DLQ_KIND_WORKFLOW_FAILED: Final = "workflow_failed"
DLQ_KINDS: Final = frozenset({DLQ_KIND_WORKFLOW_FAILED})
#: Entry states: pending -> retrying -> resolved | abandoned (a failed retry goes back to pending).
DLQ_PENDING: Final = "pending"
DLQ_RETRYING: Final = "retrying"
DLQ_RESOLVED: Final = "resolved"
DLQ_ABANDONED: Final = "abandoned"
DLQ_STATES: Final = frozenset({DLQ_PENDING, DLQ_RETRYING, DLQ_RESOLVED, DLQ_ABANDONED})
#: Entries in these states keep their workflow from garbage collection.
DLQ_OPEN: Final = frozenset({DLQ_PENDING, DLQ_RETRYING})
#: What an operator may close a pending entry as (``beamctl dlq resolve|abandon``).
DLQ_CLOSED: Final = frozenset({DLQ_RESOLVED, DLQ_ABANDONED})
#: A running workflow was paused (no new attempts) / resumed.
EVENT_PAUSED: Final = "paused"
EVENT_RESUMED: Final = "resumed"
#: How a paused running workflow is shown (get, list, top); in the state it is running with ``paused`` set.
WORKFLOW_PAUSED: Final = "paused"
#: The workflow's deadline (its ``timeout``) passed: error class of the step it stopped, and the event.
ERROR_DEADLINE_EXCEEDED: Final = "deadline_exceeded"
EVENT_DEADLINE_EXCEEDED: Final = "deadline_exceeded"
#: ID reuse (``submit --id-reuse``): what a submit with the id of a *finished* workflow does (Temporal's
#: policies). Absent from a command: reject (the behaviour before the policies existed).
ID_REUSE_ALLOW: Final = "allow-duplicate"
ID_REUSE_FAILED_ONLY: Final = "allow-duplicate-failed-only"
ID_REUSE_REJECT: Final = "reject-duplicate"
ID_REUSE_POLICIES: Final = (ID_REUSE_ALLOW, ID_REUSE_FAILED_ONLY, ID_REUSE_REJECT)
#: ID conflict (``submit --id-conflict``): what a submit with the id of a *running* workflow does.
ID_CONFLICT_FAIL: Final = "fail"
ID_CONFLICT_USE_EXISTING: Final = "use-existing"
ID_CONFLICT_POLICIES: Final = (ID_CONFLICT_FAIL, ID_CONFLICT_USE_EXISTING)
#: Default bound on dead-letter entries kept in the state (closed ones are collected first).
DLQ_MAX_DEFAULT: Final = 10_000
