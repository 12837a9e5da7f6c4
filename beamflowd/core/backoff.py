"""Retry backoff schedule: pure functions, so the proposer can compute a retry time and commit it.

No clock and no global random: the caller draws ``rand`` (and records it in the command), which keeps the
replicated state machine deterministic and the schedule testable.
"""

from __future__ import annotations

import math

from beamflowd.core.spec import RetryPolicy
from beamflowd.core.vocabulary import NEVER_RETRIED_ERRORS


def _base_delay_ms(policy: RetryPolicy, attempt: int) -> int:
    """``min(initial * rate**(attempt-1), max)`` without ever computing a huge power (float overflow)."""
    cap = max(0, policy.max_interval_ms)
    initial = max(0, policy.initial_interval_ms)
    if initial == 0 or cap == 0:
        return 0
    if initial >= cap:
        return cap
    exponent = attempt - 1
    rate = policy.backoff_rate
    if rate > 1.0 and exponent * math.log(rate) >= math.log(cap / initial):
        return cap
    return min(cap, round(initial * rate**exponent))


def retry_delay_ms(policy: RetryPolicy, attempt: int, rand: float) -> int:
    """Delay in ms before attempt ``attempt + 1``, after attempt ``attempt`` (>= 1) failed.

    ``rand`` is a uniform draw in [0, 1) (clamped if outside). Jitter spreads retries of many workflows that
    failed together (a flaky dependency) so they do not hammer it in lockstep.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    base = _base_delay_ms(policy, attempt)
    r = min(max(rand, 0.0), 1.0)
    if policy.jitter == "full":
        return min(base, int(r * base))
    if policy.jitter == "equal":
        lower = base // 2
        return min(base, lower + int(r * (base - lower)))
    return base


def should_retry(policy: RetryPolicy, attempt: int, error_class: str) -> bool:
    """Whether attempt ``attempt`` failing with ``error_class`` earns another attempt."""
    if attempt >= policy.max_attempts:
        return False
    return error_class not in NEVER_RETRIED_ERRORS and error_class not in policy.non_retryable
