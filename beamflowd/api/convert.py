"""State -> protobuf messages. Called under the state lock; copies everything it returns."""

from __future__ import annotations

import json

from google.protobuf.timestamp_pb2 import Timestamp

from beamflowd.api.gen.beamflow.v1 import workflow_pb2 as pb
from beamflowd.core.state import Event, StepState, WorkflowState
from beamflowd.core.vocabulary import WORKFLOW_PAUSED

WORKFLOW_STATUS = {
    "running": pb.WORKFLOW_STATUS_RUNNING,
    "succeeded": pb.WORKFLOW_STATUS_SUCCEEDED,
    "failed": pb.WORKFLOW_STATUS_FAILED,
    "cancelled": pb.WORKFLOW_STATUS_CANCELLED,
    WORKFLOW_PAUSED: pb.WORKFLOW_STATUS_PAUSED,
    "compensated": pb.WORKFLOW_STATUS_COMPENSATED,
    "compensation_failed": pb.WORKFLOW_STATUS_COMPENSATION_FAILED,
}
STATUS_NAME = {v: k for k, v in WORKFLOW_STATUS.items()}
STEP_STATUS = {
    "pending": pb.STEP_STATUS_PENDING,
    "running": pb.STEP_STATUS_RUNNING,
    "retry_wait": pb.STEP_STATUS_RETRY_WAIT,
    "succeeded": pb.STEP_STATUS_SUCCEEDED,
    "failed": pb.STEP_STATUS_FAILED,
    "cancelled": pb.STEP_STATUS_CANCELLED,
    "skipped": pb.STEP_STATUS_SKIPPED,
}


def timestamp(ms: int) -> Timestamp | None:
    if not ms:
        return None
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def step_message(wf: WorkflowState, step: StepState) -> pb.Step:
    spec = wf.spec.step(step.id)
    msg = pb.Step(
        id=step.id,
        kind=spec.run,
        status=STEP_STATUS[step.status],
        attempts=step.attempts,
        output_json=step.output_json,
        error=step.error,
        error_class=step.error_class,
        needs=list(spec.needs),
        waiting_for=spec.signal or "" if step.status == "running" else "",
    )
    for name, ms in (
        ("start_time", step.started_ms),
        ("end_time", step.ended_ms),
        ("next_attempt_time", step.next_ms),
        ("deadline_time", wf.step_deadline_ms(step)),
    ):
        ts = timestamp(ms)
        if ts is not None:
            getattr(msg, name).CopyFrom(ts)
    return msg


def shown_status(wf: WorkflowState) -> str:
    """The status clients see: a paused running workflow is ``paused``."""
    return WORKFLOW_PAUSED if wf.paused else wf.status


def workflow_message(wf: WorkflowState, spec_plain: object) -> pb.Workflow:
    return pb.Workflow(
        id=wf.id,
        name=wf.name,
        status=WORKFLOW_STATUS[shown_status(wf)],
        owner=wf.owner,
        epoch=wf.epoch,
        create_time=timestamp(wf.created_ms),
        update_time=timestamp(wf.updated_ms),
        input_json=wf.input_json,
        steps=[step_message(wf, s) for s in wf.steps.values()],
        error=wf.error,
        definition_json=json.dumps(spec_plain, sort_keys=True),
        description=wf.spec.description,
        retries=wf.retries,
        resubmitted_from=wf.origin,
        paused_reason=wf.paused,
        labels=wf.labels,
        signals_buffered=len(wf.signals),
    )


def summary_message(wf: WorkflowState) -> pb.WorkflowSummary:
    return pb.WorkflowSummary(
        id=wf.id,
        name=wf.name,
        status=WORKFLOW_STATUS[shown_status(wf)],
        owner=wf.owner,
        epoch=wf.epoch,
        create_time=timestamp(wf.created_ms),
        update_time=timestamp(wf.updated_ms),
        steps_total=len(wf.steps),
        steps_succeeded=sum(1 for s in wf.steps.values() if s.status == "succeeded"),
        waiting_for=waiting_for(wf),
        steps_skipped=sum(1 for s in wf.steps.values() if s.status == "skipped"),
    )


def waiting_for(wf: WorkflowState) -> list[str]:
    """The signals the workflow's running wait steps wait for, in definition order."""
    return [
        name for s in wf.spec.steps if (name := s.signal) is not None and wf.steps[s.id].status == "running"
    ]


def event_message(event: Event) -> pb.WorkflowEvent:
    seq, ts, kind, step, attempt, message, node = event
    return pb.WorkflowEvent(
        seq=seq, time=timestamp(ts), type=kind, step_id=step, attempt=attempt, message=message, node=node
    )
