"""The circuit breaker's states on a fake clock: closed -> open after failures in a window -> half-open
after open_for -> closed after successful probes (or open again on a failed one)."""

from __future__ import annotations

import pytest
import yaml

from beamflowd.breakers import BREAKERS_MAX, CLOSED, HALF_OPEN, OPEN, Breakers, BreakerSettings
from beamflowd.config import ConfigError, build_config
from beamflowd.core.spec import SpecError, parse_workflow
from beamflowd.executor import breaker_name

SETTINGS = BreakerSettings(failures=5, window_s=60.0, open_for_s=30.0, half_open_successes=3)


def test_opens_after_five_failures_within_the_window_only() -> None:
    breaker = Breakers(SETTINGS).get("payments")
    for t in (0, 10, 20, 30):
        breaker.record(t, ok=False)
    breaker.record(65, ok=False)  # the first one left the window: 4 within it
    assert breaker.state == CLOSED and breaker.retry_after(65) is None
    breaker.record(66, ok=False)
    assert breaker.state == OPEN and breaker.opened == 1
    assert breaker.retry_after(70) == 26.0 and breaker.rejected == 1


def test_half_opens_after_open_for_and_closes_after_three_successful_probes() -> None:
    breaker = Breakers(SETTINGS).get("payments")
    for t in range(5):
        breaker.record(t, ok=False)
    assert breaker.retry_after(33.9) is not None
    assert breaker.retry_after(34) is None and breaker.state == HALF_OPEN
    breaker.record(34, ok=True)
    breaker.record(35, ok=True)
    assert breaker.state == HALF_OPEN
    breaker.record(36, ok=True)
    assert breaker.state == CLOSED and breaker.to_plain(36)["recent_failures"] == 0


def test_a_failed_probe_opens_it_again() -> None:
    breaker = Breakers(SETTINGS).get("email")
    for t in range(5):
        breaker.record(t, ok=False)
    assert breaker.retry_after(40) is None
    breaker.record(40, ok=False)
    assert breaker.state == OPEN and breaker.opened == 2
    plain = breaker.to_plain(50)
    assert plain["state"] == "open" and plain["open_for_s"] == 20.0


def test_the_number_of_breakers_is_bounded() -> None:
    breakers = Breakers(SETTINGS)
    for i in range(BREAKERS_MAX + 10):
        breakers.get(f"host-{i}")
    assert len(breakers.snapshot(0)) == BREAKERS_MAX


# ------------------------------------------------------------------------------------------ definitions
def _step(**fields: object) -> str:
    return yaml.safe_dump({"name": "wf", "steps": [{"id": "a", **fields}]})


def test_the_breaker_key_and_an_http_steps_default_breaker() -> None:
    spec = parse_workflow(_step(run="demo", breaker="payments"))
    assert spec.step("a").breaker == "payments" and "breaker" in spec.to_plain()["steps"][0]
    assert breaker_name(spec.step("a"), {}) == "payments"
    http = parse_workflow(_step(run="http", **{"with": {"url": "https://api.example.com/x"}})).step("a")
    assert breaker_name(http, {"url": "https://api.example.com/x"}) == "http:api.example.com"
    assert breaker_name(parse_workflow(_step(run="demo")).step("a"), {}) is None
    for fields, reason in (
        ({"run": "demo", "breaker": "no spaces"}, "must match"),
        ({"run": "noop", "breaker": "x"}, "has no breaker"),
    ):
        with pytest.raises(SpecError) as info:
            parse_workflow(_step(**fields))
        assert info.value.field == "breaker" and reason in info.value.reason


def test_breaker_thresholds_in_node_config_are_checked() -> None:
    flags = {"node_id": "n1", "initial_cluster": "n1=127.0.0.1:7101"}
    config = build_config({"breaker_open_for": 5}, flags)
    assert (config.breaker_failures, config.breaker_open_for, config.breaker_half_open_successes) == (
        5,
        5.0,
        3,
    )
    with pytest.raises(ConfigError, match="breaker_failures"):
        build_config({"breaker_failures": 0}, flags)
    with pytest.raises(ConfigError, match="breaker_open_for"):
        build_config({"breaker_open_for": "30s"}, flags)
