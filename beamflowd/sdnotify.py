"""systemd's notify protocol (``Type=notify``), in the few lines it takes: datagrams to ``$NOTIFY_SOCKET``.

The node says ``READY=1`` once it has joined the cluster and serves gRPC, ``STATUS=`` with its role and term
whenever they change, ``WATCHDOG=1`` from the event loop every half ``$WATCHDOG_USEC`` (so a stuck loop stops
the pings and systemd restarts the node), and ``STOPPING=1`` when it starts to drain. Without
``$NOTIFY_SOCKET`` (not under systemd) every call is a no-op. An address starting with ``@`` is a Linux
abstract socket. A send that fails is logged once and never stops the node.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger("beamflowd.sdnotify")

#: STATUS= is re-checked this often when there is no (shorter) watchdog interval.
STATUS_INTERVAL_S = 1.0
#: Longest datagram sent (systemd accepts much more; ours are a few dozen bytes).
DATAGRAM_BYTES_MAX = 4096


class Notifier:
    """One node's channel to systemd; :attr:`enabled` is False when not started by systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if path.startswith("@"):
            self.address = "\0" + path[1:]
        elif path.startswith("/"):
            self.address = path
        elif path:
            log.warning("NOTIFY_SOCKET %r is neither a path nor an abstract address: ignored", path)
        self.watchdog_interval_s: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval_s = int(usec) / 1_000_000 / 2
        self._sock: socket.socket | None = None
        self._warned = False
        self._status = ""
        self.sent = 0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False if not under systemd or the send failed."""
        if self.address is None:
            return False
        message = "\n".join(assignments).encode()[:DATAGRAM_BYTES_MAX]
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message, self.address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot notify systemd at NOTIFY_SOCKET: %s", exc)
            return False
        self.sent += 1
        return True

    def status(self, text: str) -> None:
        """``STATUS=text``, sent only when it differs from the last one."""
        if text != self._status and self.notify(f"STATUS={text}"):
            self._status = text

    async def run(self, describe: Callable[[], str]) -> None:
        """Until cancelled: ``WATCHDOG=1`` every half watchdog interval, ``STATUS=describe()`` on change."""
        if not self.enabled:
            return
        interval = min(self.watchdog_interval_s or STATUS_INTERVAL_S, STATUS_INTERVAL_S)
        while True:
            if self.watchdog_interval_s is not None:
                self.notify("WATCHDOG=1")
            self.status(describe())
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
