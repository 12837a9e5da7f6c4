"""sd_notify against real datagram sockets, a path and an abstract one, as systemd would listen."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from beamflowd.sdnotify import Notifier

RECEIVE_TIMEOUT_S = 5.0


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(RECEIVE_TIMEOUT_S)
    yield sock, path
    sock.close()


def test_a_message_reaches_a_path_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.notify("READY=1", "STATUS=serving")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving"
    notifier.close()


def test_an_at_sign_names_an_abstract_socket() -> None:
    name = f"beamflow-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(RECEIVE_TIMEOUT_S)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.notify("STOPPING=1")
        assert sock.recv(4096) == b"STOPPING=1"
        notifier.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.notify("READY=1")
    assert not Notifier({"NOTIFY_SOCKET": "relative/path"}).enabled


def test_a_vanished_socket_never_raises(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.notify("READY=1") is False
    assert notifier.notify("READY=1") is False


def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_our_pid() -> None:
    mine = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_interval_s == 1.5
    assert (
        Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}).watchdog_interval_s
        is None
    )
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "junk"}).watchdog_interval_s is None


def test_run_pings_the_watchdog_and_sends_status_only_on_change(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    sock.setblocking(False)

    async def main() -> list[bytes]:
        task = asyncio.create_task(notifier.run(lambda: "role leader, term 3"))
        received: list[bytes] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECEIVE_TIMEOUT_S
        while received.count(b"WATCHDOG=1") < 3 and loop.time() < deadline:
            received.append(await loop.sock_recv(sock, 4096))
        task.cancel()
        return received

    received = asyncio.run(main())
    assert received.count(b"WATCHDOG=1") >= 3
    assert received.count(b"STATUS=role leader, term 3") == 1
