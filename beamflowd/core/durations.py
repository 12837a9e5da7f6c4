"""Durations as people write them in workflow files and flags: ``250ms``, ``2s``, ``5m``, ``1h``."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
#: The pattern above, for the format's JSON Schema.
DURATION_RE = _DURATION
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}

#: No duration in a workflow may exceed this (TigerBeetle-style explicit bound): 30 days.
MAX_DURATION_MS = 30 * 24 * 3_600_000


def parse_duration(value: object) -> int:
    """Return ``value`` in whole milliseconds; raise ValueError with a message fit for users.

    Accepts a string with a unit (``250ms``, ``1.5s``, ``5m``, ``2h``). Bare numbers are refused:
    ``timeout: 5`` is ambiguous (seconds? milliseconds?), so we make the author say.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration such as '250ms', '2s' or '5m', got {value!r}")
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"invalid duration {value!r}: use a number and a unit (ms, s, m, h), e.g. '250ms'")
    millis = round(float(match.group(1)) * _UNIT_MS[match.group(2)])
    if millis > MAX_DURATION_MS:
        raise ValueError(f"duration {value!r} exceeds the limit of 30 days")
    return millis


def format_duration(millis: int) -> str:
    """Inverse of :func:`parse_duration` for display: the largest unit that divides exactly."""
    for unit in ("h", "m", "s"):
        if millis and millis % _UNIT_MS[unit] == 0:
            return f"{millis // _UNIT_MS[unit]}{unit}"
    return f"{millis}ms"
