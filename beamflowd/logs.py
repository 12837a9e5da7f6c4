"""The node's log: structlog in front of the standard library, JSON lines for machines, console for people.

Every record (ours, pysyncobj's, grpc's, asyncio's; step workers' stderr is relayed as records by
:mod:`beamflowd.workers`) goes through one handler on the root logger, so nothing reaches the output
unformatted. Off a terminal (systemd's journal, a file, a pipe) each record is one JSON object per line with
at least ``timestamp``, ``level``, ``node``, ``logger`` and ``event`` (the message), plus whatever the call
passed in ``extra`` (``workflow``, ``step``, ``attempt``, ``worker``...); on a terminal the same fields are
rendered as console lines. Records go to stdout; the format follows whether stdout is a terminal.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

#: Third-party loggers that are chatty at INFO: they log from WARNING up unless the level is debug.
QUIET_LOGGERS = ("pysyncobj", "asyncio", "grpc", "httpx", "httpcore")


def _add_node(node_id: str) -> Processor:
    def add_node(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("node", node_id)
        return event_dict

    return add_node


def configure(
    node_id: str, level: str = "info", stream: IO[str] | None = None, json: bool | None = None
) -> None:
    """Route all logging through structlog; ``json`` None means "JSON unless ``stream`` is a terminal"."""
    out = stream if stream is not None else sys.stdout
    as_json = not _isatty(out) if json is None else json
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _add_node(node_id),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer(default=str)
        final: list[Processor] = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ]
    else:
        final = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.dev.ConsoleRenderer(colors=_isatty(out)),
        ]
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
