"""The demo's human reviewer: answers insurance claims waiting for a `review` signal, after a delay.

``make demo`` runs it beside the load so `top` shows claims waiting for a person and then going on: most are
approved, the rest denied (which the workflow's saga then compensates by refunding the fee). It is an
ordinary client: it lists running claims waiting for `review` and signals each once it has waited
``delay_s``, with a request id made from the claim's id, so a signal retried after a fail-over is delivered
once.
"""

from __future__ import annotations

import json
import random
import threading
import time

from beamctl.client import Client, Settings
from beamctl.errors import CliError
from beamflowd.api.gen.beamflow.v1 import workflow_pb2

WORKFLOW_NAME = "insurance-claim"
SIGNAL = "review"
#: Claims looked at per pass, and passes' spacing: bounded work whatever the backlog.
PAGE_SIZE = 500
PERIOD_S = 1.0
#: Entries remembered (first time seen waiting); older ones are dropped with the claims they belong to.
SEEN_MAX = 10_000


class Reviewer:
    """Signals waiting claims from a background thread until :meth:`stop`."""

    def __init__(self, settings: Settings, delay_s: float = 4.0, approve_share: float = 0.7) -> None:
        self.settings = settings
        self.delay_s = delay_s
        self.approve_share = approve_share
        self.signalled = 0
        self.errors = 0
        self._seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-reviewer", daemon=True)
        self._rng = random.Random()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with Client.from_settings(self.settings) as client:
            while not self._stop.wait(PERIOD_S):
                try:
                    self._pass(client, time.monotonic())
                except CliError:
                    self.errors += 1  # a node down (chaos): the next pass tries again

    def _pass(self, client: Client, now: float) -> None:
        listed = client.list_workflows(
            workflow_pb2.ListWorkflowsRequest(
                name=WORKFLOW_NAME, status=workflow_pb2.WORKFLOW_STATUS_RUNNING, page_size=PAGE_SIZE
            )
        )
        waiting = [wf.id for wf in listed.workflows if SIGNAL in wf.waiting_for]
        for wf_id in waiting:
            first = self._seen.setdefault(wf_id, now)
            if now - first < self.delay_s:
                continue
            approved = self._rng.random() < self.approve_share
            client.signal_workflow(
                workflow_pb2.SignalWorkflowRequest(
                    workflow_id=wf_id,
                    signal=SIGNAL,
                    payload_json=json.dumps({"approved": approved, "by": "demo-reviewer"}),
                    request_id=f"demo-review-{wf_id}",
                )
            )
            self.signalled += 1
            del self._seen[wf_id]
        if len(self._seen) > SEEN_MAX:
            keep = set(waiting)
            self._seen = {k: v for k, v in self._seen.items() if k in keep}
