"""systemd notifications written straight to ``$NOTIFY_SOCKET`` (no extra dependency).

The protocol (sd_notify(3)): one ``AF_UNIX``/``SOCK_DGRAM`` datagram of newline-separated ``KEY=VALUE``
lines to the path in ``$NOTIFY_SOCKET``; a leading ``@`` means a Linux abstract socket (the ``@`` becomes a
NUL byte). Without the variable every call is a no-op, so the engine runs the same outside systemd.

The :class:`Watchdog` task sends ``WATCHDOG=1`` every half ``WatchdogSec`` (``$WATCHDOG_USEC``) only while the
app's health predicate holds *and* the loop woke up on time: if the loop was blocked, the late wake-up
skips the ping, and while it stays blocked nothing is sent at all - so systemd kills a wedged engine.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

from engine.service.background import BackgroundTask, RunsInBackground, lagged_sleep

log = structlog.get_logger(__name__)


class Notifier:
    """Sends sd_notify datagrams; a no-op when ``$NOTIFY_SOCKET`` is unset."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if path.startswith("@"):
            self.address = b"\0" + path[1:].encode()
        elif path.startswith("/"):
            self.address = path
        self._sock: socket.socket | None = None
        self.sent = 0
        self.errors = 0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; False when disabled or the send failed (never raises)."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            self.errors += 1
            log.warning("sd_notify_failed", error=str(exc))
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        """RELOADING=1 with MONOTONIC_USEC in the same datagram (Type=notify-reload needs both)."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds, or None when systemd's watchdog is off for this process."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None


class Watchdog(RunsInBackground):
    """A task on the event loop that pings systemd only while the engine is healthy and the loop is prompt."""

    def __init__(
        self, notifier: Notifier, interval_s: float, healthy: Callable[[], bool], max_lag_s: float = 0.5
    ) -> None:
        self.notifier = notifier
        self.interval_s = interval_s
        self.healthy = healthy
        self.max_lag_s = max_lag_s
        self.last_lag_s = 0.0
        self.pings = 0
        self.skipped = 0
        self._loop = BackgroundTask("sd-watchdog", self._run)

    async def _run(self) -> None:
        while True:
            self.last_lag_s = await lagged_sleep(self.interval_s)
            if self.last_lag_s <= self.max_lag_s and self._is_healthy():
                self.notifier.watchdog()
                self.pings += 1
            else:
                self.skipped += 1
                log.warning("watchdog_ping_skipped", loop_lag_s=round(self.last_lag_s, 4))

    def _is_healthy(self) -> bool:
        try:
            return bool(self.healthy())
        except Exception as exc:
            log.error("watchdog_health_check_failed", error=str(exc))
            return False
