"""Step kinds by name: the engine looks a step's ``run`` up here to run an attempt (one module per kind)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from beamflowd.steps.base import (
    MAX_OUTPUT_BYTES,
    PermanentError,
    StepContext,
    StepError,
    StepKind,
    encode_output,
)
from beamflowd.steps.choice import ChoiceStep
from beamflowd.steps.demo import DemoStep
from beamflowd.steps.exec import ExecStep
from beamflowd.steps.http import HttpStep, aclose_http_client
from beamflowd.steps.noop import NoopStep
from beamflowd.steps.python import PythonStep
from beamflowd.steps.sleep import SleepStep
from beamflowd.steps.wait import WaitStep

_KINDS: tuple[StepKind, ...] = (
    NoopStep(),
    SleepStep(),
    DemoStep(),
    PythonStep(),
    HttpStep(),
    ExecStep(),
    ChoiceStep(),
    WaitStep(),
)

#: Read-only: kinds are process-wide singletons.
STEP_KINDS: Mapping[str, StepKind] = MappingProxyType({kind.name: kind for kind in _KINDS})


__all__ = [
    "MAX_OUTPUT_BYTES",
    "STEP_KINDS",
    "PermanentError",
    "StepContext",
    "StepError",
    "StepKind",
    "aclose_http_client",
    "encode_output",
]
