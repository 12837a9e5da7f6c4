"""Log records leave as JSON lines off a terminal and as console lines on one, whoever logged them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from beamflowd import logs


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


def test_off_a_terminal_every_record_is_a_json_line_with_level_node_and_event() -> None:
    out = io.StringIO()
    logs.configure("n7", "info", stream=out)
    logging.getLogger("beamflowd.executor").error(
        "workflow %s: step %s is poisoned", "wf-1", "charge", extra={"workflow": "wf-1", "step": "charge"}
    )
    logging.getLogger("pysyncobj").warning("connection lost")
    logging.getLogger("pysyncobj").info("chatty, filtered")
    structlog.get_logger("beamflowd.test").info("native", attempt=2)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("beamflowd").exception("failed")
    lines = out.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 4, lines
    for record in records:
        assert {"level", "node", "event", "timestamp", "logger"} <= set(record)
        assert record["node"] == "n7"
    poisoned = records[0]
    assert poisoned["level"] == "error" and poisoned["event"] == "workflow wf-1: step charge is poisoned"
    assert poisoned["workflow"] == "wf-1" and poisoned["step"] == "charge"
    assert records[1]["logger"] == "pysyncobj"
    assert records[2]["event"] == "native" and records[2]["attempt"] == 2
    assert "ValueError: boom" in records[3]["exception"]


def test_on_a_terminal_records_are_console_lines() -> None:
    out = _Terminal()
    logs.configure("n1", "debug", stream=out)
    logging.getLogger("beamflowd").info("node %s joined; serving", "n1")
    text = out.getvalue()
    assert "node n1 joined; serving" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_the_level_filters_and_debug_lets_pysyncobj_speak() -> None:
    out = io.StringIO()
    logs.configure("n1", "warning", stream=out)
    logging.getLogger("beamflowd").info("hidden")
    assert out.getvalue() == ""
    logs.configure("n1", "debug", stream=out)
    logging.getLogger("pysyncobj").debug("visible")
    assert json.loads(out.getvalue())["event"] == "visible"
