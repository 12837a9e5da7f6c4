"""The node's wall clock, in the unit the log uses.

Every timestamp in a command (``ts``, ``wake``, ``retry_at``, ...) is milliseconds since the Unix epoch, read
here by the proposer and carried in the command: the state machine never reads a clock itself.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the Unix epoch (wall clock: comparable across nodes, unlike ``monotonic``)."""
    return int(time.time() * 1000)
