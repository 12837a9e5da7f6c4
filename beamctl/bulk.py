"""Bulk actions by query (``beamctl workflow cancel|retry|pause|resume --query ... [--yes]``).

The matching ids are listed first (paged, bounded); without ``--yes`` nothing changes and the count and the
first ids are printed. With ``--yes`` the ids go to ``BulkWorkflowAction`` in batches of
:data:`BATCH_IDS_MAX` (each id its own replicated command, so a repeated batch is harmless), with a progress
bar on stderr.
"""

from __future__ import annotations

from typing import Any

from beamctl import output
from beamctl.client import Client
from beamflowd.api.gen.beamflow.v1 import workflow_pb2

#: Ids per BulkWorkflowAction call (the server's limit).
BATCH_IDS_MAX = 1000
#: Pages of 1000 ids listed at most (a runaway token loop cannot spin forever): 1,000,000 workflows.
LIST_PAGES_MAX = 1000
#: Ids shown by a dry run.
SHOWN_IDS = 10

ACTIONS = {
    "cancel": workflow_pb2.BULK_ACTION_CANCEL,
    "pause": workflow_pb2.BULK_ACTION_PAUSE,
    "resume": workflow_pb2.BULK_ACTION_RESUME,
    "retry": workflow_pb2.BULK_ACTION_RETRY,
}


def matching_ids(client: Client, template: workflow_pb2.ListWorkflowsRequest) -> list[str]:
    """Every id the list query matches, newest first."""
    ids: list[str] = []
    token = ""
    for _ in range(LIST_PAGES_MAX):
        request = workflow_pb2.ListWorkflowsRequest()
        request.CopyFrom(template)
        request.page_size, request.page_token = 1000, token
        page = client.list_workflows(request)
        ids.extend(summary.id for summary in page.workflows)
        token = "" if page.next_page_token == token else page.next_page_token
        if not token or not page.workflows:
            break
    return ids


def run(
    client: Client,
    action: str,
    template: workflow_pb2.ListWorkflowsRequest,
    reason: str,
    yes: bool,
    out: str,
) -> dict[str, Any]:
    """Dry run (count and first ids) or the action in batches; returns what it prints in data formats."""
    ids = matching_ids(client, template)
    if not yes:
        summary: dict[str, Any] = {"action": action, "matching": len(ids), "first_ids": ids[:SHOWN_IDS]}
        summary["dry_run"] = True
        if out not in output.DATA_FORMATS:
            shown = ", ".join(ids[:SHOWN_IDS]) + (" ..." if len(ids) > SHOWN_IDS else "")
            output.line(f"{len(ids)} workflows match: {shown or '-'}")
            output.info(f"nothing changed: add --yes to {action} them")
        return summary
    totals = {"changed": 0, "unchanged": 0, "not_found": 0}
    errors: list[str] = []
    # Imported here: `workflow get` and friends load this module and should not pay for the progress bar.
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(f"{action}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=output.console(stderr=True),
        transient=out in output.DATA_FORMATS,
    ) as progress:
        task = progress.add_task(action, total=len(ids))
        for start in range(0, len(ids), BATCH_IDS_MAX):
            batch = ids[start : start + BATCH_IDS_MAX]
            request = workflow_pb2.BulkWorkflowActionRequest(
                action=ACTIONS[action], workflow_ids=batch, reason=reason
            )
            response = client.bulk_action(request)
            totals["changed"] += response.changed
            totals["unchanged"] += response.unchanged
            totals["not_found"] += response.not_found
            errors.extend(response.errors[: max(0, SHOWN_IDS - len(errors))])
            progress.advance(task, len(batch))
    result: dict[str, Any] = {"action": action, "matching": len(ids), **totals, "errors": errors}
    if out not in output.DATA_FORMATS:
        output.line(
            f"{action}: {totals['changed']} changed, {totals['unchanged']} already so or not eligible,"
            f" {totals['not_found']} gone, of {len(ids)} matching"
        )
        for error in errors:
            output.info(error)
    return result
