"""Backoff schedule properties: bounded, monotone without jitter, jitter within its mode's bounds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beamflowd.core.backoff import retry_delay_ms, should_retry
from beamflowd.core.spec import RetryPolicy

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 100),
    initial_interval_ms=st.integers(0, 60_000),
    backoff_rate=st.floats(1.0, 100.0),
    max_interval_ms=st.integers(0, 30 * 24 * 3_600_000),
    jitter=st.sampled_from(["full", "equal", "none"]),
    non_retryable=st.lists(st.sampled_from(["validation", "timeout", "card_declined"]), unique=True).map(
        tuple
    ),
)
attempts = st.integers(1, 10_000)
rands = st.floats(0.0, 1.0, exclude_max=True)


def _no_jitter(policy: RetryPolicy) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=policy.max_attempts,
        initial_interval_ms=policy.initial_interval_ms,
        backoff_rate=policy.backoff_rate,
        max_interval_ms=policy.max_interval_ms,
        jitter="none",
    )


def test_documented_schedule() -> None:
    policy = RetryPolicy(initial_interval_ms=1000, backoff_rate=2.0, max_interval_ms=30_000, jitter="none")
    expected = [1000, 2000, 4000, 8000, 16000, 30000, 30000]
    assert [retry_delay_ms(policy, n, 0.5) for n in range(1, 8)] == expected


def test_huge_attempt_does_not_overflow() -> None:
    policy = RetryPolicy(backoff_rate=100.0, jitter="none")
    assert retry_delay_ms(policy, 10**9, 0.0) == policy.max_interval_ms


def test_attempt_must_be_positive() -> None:
    with pytest.raises(ValueError):
        retry_delay_ms(RetryPolicy(), 0, 0.0)


@given(policies, attempts)
def test_without_jitter_monotone_and_capped(policy: RetryPolicy, attempt: int) -> None:
    plain = _no_jitter(policy)
    now, later = retry_delay_ms(plain, attempt, 0.0), retry_delay_ms(plain, attempt + 1, 0.0)
    assert 0 <= now <= later <= max(0, plain.max_interval_ms)


@given(policies, attempts, rands)
def test_jitter_within_bounds(policy: RetryPolicy, attempt: int, rand: float) -> None:
    base = retry_delay_ms(_no_jitter(policy), attempt, rand)
    delay = retry_delay_ms(policy, attempt, rand)
    lower = {"none": base, "equal": base // 2, "full": 0}[policy.jitter]
    assert 0 <= lower <= delay <= base <= policy.max_interval_ms


@given(
    policies, attempts, st.sampled_from(["transient", "timeout", "validation", "permanent", "card_declined"])
)
def test_should_retry(policy: RetryPolicy, attempt: int, error_class: str) -> None:
    expected = (
        attempt < policy.max_attempts
        and error_class != "permanent"
        and error_class not in policy.non_retryable
    )
    assert should_retry(policy, attempt, error_class) is expected


def test_should_retry_examples() -> None:
    policy = RetryPolicy(max_attempts=3, non_retryable=("validation",))
    assert should_retry(policy, 1, "transient")
    assert should_retry(policy, 2, "transient")
    assert not should_retry(policy, 3, "transient")
    assert not should_retry(policy, 1, "permanent")
    assert not should_retry(policy, 1, "validation")
