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
#: The workflow failed for good and the compensations of its succeeded steps all succeeded (saga).
WORKFLOW_COMPENSATED: Final = "compensated"
#: The workflow failed for good and a compensation failed for good too.
WORKFLOW_COMPENSATION_FAILED: Final = "compensation_failed"
TERMINAL_WORKFLOW: Final = frozenset(
    {
        WORKFLOW_SUCCEEDED,
        WORKFLOW_FAILED,
        WORKFLOW_CANCELLED,
        WORKFLOW_COMPENSATED,
        WORKFLOW_COMPENSATION_FAILED,
    }
)
#: Statuses of a compensation (a ``compensate`` of a succeeded step, run after the workflow failed).
COMPENSATION_PENDING: Final = "pending"
COMPENSATION_RUNNING: Final = "running"
COMPENSATION_RETRY_WAIT: Final = "retry_wait"
COMPENSATION_SUCCEEDED: Final = "succeeded"
COMPENSATION_FAILED: Final = "failed"

# -- step statuses ---
STEP_PENDING: Final = "pending"
STEP_RUNNING: Final = "running"
STEP_RETRY_WAIT: Final = "retry_wait"
STEP_SUCCEEDED: Final = "succeeded"
STEP_FAILED: Final = "failed"
STEP_CANCELLED: Final = "cancelled"
#: The step never ran: its ``when`` was false, it is a branch its ``choice`` did not take, or its needs
#: were skipped (``needs_policy``). Counts as done for its dependents and for the workflow's success.
STEP_SKIPPED: Final = "skipped"
TERMINAL_STEP: Final = frozenset({STEP_SUCCEEDED, STEP_FAILED, STEP_CANCELLED, STEP_SKIPPED})
#: Steps that are done without failing: a workflow whose steps are all done has succeeded.
DONE_STEP: Final = frozenset({STEP_SUCCEEDED, STEP_SKIPPED})

# -- how a step's needs decide whether it runs (``needs_policy``) ---
#: Run when every need succeeded; a skipped need skips the step (the default: skips propagate).
NEEDS_ALL_SUCCESS: Final = "all_success"
#: Run when at least one need succeeded and the others are done (a join after branches).
NEEDS_ANY: Final = "any"
#: Run when every need is done, succeeded or skipped.
NEEDS_ALL_DONE: Final = "all_done"
NEEDS_POLICIES: Final = (NEEDS_ALL_SUCCESS, NEEDS_ANY, NEEDS_ALL_DONE)

# -- event kinds (a workflow's history) ---
EVENT_SUBMITTED: Final = "submitted"
EVENT_STEP_STARTED: Final = "step_started"
EVENT_STEP_SUCCEEDED: Final = "step_succeeded"
EVENT_STEP_FAILED: Final = "step_failed"
#: A step will never run (see ``STEP_SKIPPED``); the message says why.
EVENT_STEP_SKIPPED: Final = "step_skipped"
#: A ``wait`` step took a signal (its payload is the step's output).
EVENT_SIGNAL_RECEIVED: Final = "signal_received"
#: A signal arrived before any step waited for it: kept until one does.
EVENT_SIGNAL_BUFFERED: Final = "signal_buffered"
EVENT_RETRY_SCHEDULED: Final = "retry_scheduled"
EVENT_REASSIGNED: Final = "reassigned"
EVENT_STALE_RESULT_REJECTED: Final = "stale_result_rejected"
#: A running attempt runs again because the process running it died (see ``Redeliver``).
EVENT_REDELIVERED: Final = "redelivered"
EVENT_COMPLETED: Final = "completed"
EVENT_FAILED: Final = "failed"
EVENT_CANCELLED: Final = "cancelled"
#: The workflow failed for good: its succeeded steps' compensations run now, newest completion first.
EVENT_COMPENSATING: Final = "compensating"
EVENT_COMPENSATION_STARTED: Final = "compensation_started"
EVENT_STEP_COMPENSATED: Final = "step_compensated"
EVENT_COMPENSATION_ATTEMPT_FAILED: Final = "compensation_attempt_failed"
#: Closing events of the saga outcomes.
EVENT_COMPENSATED: Final = "compensated"
EVENT_COMPENSATION_FAILED: Final = "compensation_failed"
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
    WORKFLOW_COMPENSATED: EVENT_COMPENSATED,
    WORKFLOW_COMPENSATION_FAILED: EVENT_COMPENSATION_FAILED,
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

# -- error classes (docs/workflow-format.md "Error classes"); step code may use its own names too ---
#: The default: a glitch (network error, 5xx, a plain exception). Retried per the step's policy.
ERROR_TRANSIENT: Final = "transient"
#: Expected to succeed once something outside recovers (a dependency restarting, a lock released): retried
#: per the policy like transient; a separate class so dashboards and policies (``non_retryable``) can tell.
ERROR_RECOVERABLE: Final = "recoverable"
#: Retrying cannot help (bad parameter, 4xx, function not allowed): never retried; the workflow fails.
ERROR_PERMANENT: Final = "permanent"
#: Never retried, and the failure is final for the whole workflow: the workflow fails at once and its
#: error says ``terminal``; nothing may undo or re-run it (no compensation, no retry from a dead-letter
#: queue: ``FINAL_ERRORS`` is the contract those features read).
ERROR_TERMINAL: Final = "terminal"
#: A class that is not a plain short name (python steps): retried per the policy, like transient.
ERROR_UNKNOWN: Final = "unknown"

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
#: Kind of a dead-letter entry: the workflow failed and a compensation of its saga failed for good too.
DLQ_KIND_COMPENSATION_FAILED: Final = "compensation_failed"
DLQ_KINDS: Final = frozenset({DLQ_KIND_WORKFLOW_FAILED, DLQ_KIND_COMPENSATION_FAILED})
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
#: The step's circuit breaker is open on this node: the attempt did not call out (retried once half-open).
ERROR_CIRCUIT_OPEN: Final = "circuit_open"
#: A worker's or validation's failure of the input (reserved for the engine and python steps; per policy).
ERROR_VALIDATION: Final = "validation"
#: Every class the engine itself names (docs/workflow-format.md "Error classes").
ENGINE_ERROR_CLASSES: Final = frozenset(
    {
        ERROR_TRANSIENT,
        ERROR_RECOVERABLE,
        ERROR_PERMANENT,
        ERROR_TERMINAL,
        ERROR_UNKNOWN,
        ERROR_TIMEOUT,
        ERROR_VALIDATION,
        ERROR_CRASHED,
        ERROR_MEMORY,
        ERROR_POISONED,
        ERROR_CIRCUIT_OPEN,
        ERROR_DEADLINE_EXCEEDED,
    }
)
#: Classes never retried, whatever the policy says.
NEVER_RETRIED_ERRORS: Final = frozenset({ERROR_PERMANENT, ERROR_TERMINAL, ERROR_POISONED})
#: Failures that end a workflow for good: not compensated, not re-driven.
FINAL_ERRORS: Final = frozenset({ERROR_TERMINAL})
