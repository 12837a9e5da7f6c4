"""A stalled disk, for tests: a journal sync held up for a set time, once, on the node a test chooses.

With ``BEAMFLOW_TEST_SYNC_DELAY_S`` in its environment, a node's next journal sync after a file named
``sync-delay`` appears in its data directory takes that many seconds longer (a sleep on the syncing tick
thread, where a slow disk would hold it), and the node then removes the file, so a test sees when it
happened. Everything else of the product ignores it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

ENV_VAR = "BEAMFLOW_TEST_SYNC_DELAY_S"
TRIGGER_FILE = "sync-delay"
#: A test stalls a node for a few election timeouts, not for good.
DELAY_S_MAX = 10.0

log = logging.getLogger(__name__)


class SyncDelay:
    """Holds up the sync after :data:`TRIGGER_FILE` appears in ``data_dir``, once per appearance."""

    def __init__(self, data_dir: str, delay_s: float) -> None:
        if not 0 < delay_s <= DELAY_S_MAX:
            raise ValueError(f"{ENV_VAR}: a number of seconds in (0, {DELAY_S_MAX}], got {delay_s}")
        self.trigger = os.path.join(data_dir, TRIGGER_FILE)
        self.delay_s = delay_s

    def before_sync(self) -> None:
        if os.path.exists(self.trigger):
            log.warning("test: holding this journal sync up for %.1f s", self.delay_s)
            time.sleep(self.delay_s)
            with contextlib.suppress(FileNotFoundError):  # the test may have taken it back meanwhile
                os.remove(self.trigger)


def from_env(data_dir: str) -> SyncDelay | None:
    """The delay ``$BEAMFLOW_TEST_SYNC_DELAY_S`` asks for, or None (the product's normal path)."""
    value = os.environ.get(ENV_VAR)
    return None if not value else SyncDelay(data_dir, float(value))
