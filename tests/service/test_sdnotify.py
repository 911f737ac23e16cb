"""sd_notify on a real datagram socket standing in for systemd's $NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.service.config import load_config
from engine.service.reload import ConfigReloader
from engine.service.sdnotify import Notifier, Watchdog, watchdog_interval_s


class FakeSystemd:
    """Receives notifications on a bound AF_UNIX datagram socket, timestamping each on arrival."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.05)
        self.received: list[tuple[float, str]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data.decode()))

    def messages(self) -> list[str]:
        return [m for _, m in self.received]

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[FakeSystemd, Notifier]]:
    path = str(tmp_path / "notify.sock")
    fake = FakeSystemd(path)
    notifier = Notifier({"NOTIFY_SOCKET": path})
    yield fake, notifier
    notifier.close()
    fake.close()


async def _settle() -> None:
    await asyncio.sleep(0.15)


async def test_lifecycle_messages_arrive_in_order(systemd, tmp_path: Path):
    fake, notifier = systemd
    config = tmp_path / "engine.toml"
    config.write_text("[risk]\nmax_open_structures = 20\n")
    reloader = ConfigReloader(
        config, load_config(config), lambda cfg, changes: None, lambda alert: None, notifier=notifier
    )
    assert notifier.ready("streaming 812 contracts, 3 strategies, 2 open structures")
    config.write_text("[risk]\nmax_open_structures = 10\n")
    before_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    await reloader.reload()
    after_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.status("streaming 812 contracts, 3 strategies, 1 open structure")
    notifier.stopping()
    await _settle()
    msgs = fake.messages()
    assert msgs[0] == "READY=1\nSTATUS=streaming 812 contracts, 3 strategies, 2 open structures"
    reloading = msgs[1].split("\n")
    assert reloading[0] == "RELOADING=1" and reloading[1].startswith("MONOTONIC_USEC=")
    assert before_us <= int(reloading[1].split("=")[1]) <= after_us  # same datagram, CLOCK_MONOTONIC
    assert msgs[2:] == [
        "READY=1",
        "STATUS=streaming 812 contracts, 3 strategies, 1 open structure",
        "STOPPING=1",
    ]


async def test_abstract_namespace_socket_is_supported():
    name = f"oe-test-{uuid.uuid4().hex}"
    fake = FakeSystemd(b"\0" + name.encode())
    notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
    try:
        assert notifier.ready()
        await _settle()
        assert fake.messages() == ["READY=1"]
    finally:
        notifier.close()
        fake.close()


def test_without_notify_socket_every_call_is_a_quiet_no_op():
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready() is False and notifier.watchdog() is False


async def test_watchdog_pings_only_while_healthy_and_stops_while_the_loop_is_blocked(systemd):
    fake, notifier = systemd
    healthy = True
    dog = Watchdog(notifier, interval_s=0.03, healthy=lambda: healthy, max_lag_s=0.05)
    dog.start()
    try:
        await asyncio.sleep(0.3)
        assert dog.pings >= 3
        blocked_from = time.monotonic()
        time.sleep(0.4)  # noqa: ASYNC251 - the point: the event loop is wedged
        blocked_to = time.monotonic()
        await asyncio.sleep(0.005)
        assert dog.skipped >= 1  # the late wake-up after the block does not ping
        await asyncio.sleep(0.15)
        during = [t for t, m in fake.received if m == "WATCHDOG=1" and blocked_from + 0.01 < t < blocked_to]
        assert during == []
        assert any(m == "WATCHDOG=1" and t > blocked_to for t, m in fake.received)  # resumes once healthy
        healthy = False
        await asyncio.sleep(0.05)
        count = len(fake.received)
        await asyncio.sleep(0.2)
        assert len(fake.received) == count  # unhealthy: silence, systemd will restart us
    finally:
        await dog.stop()


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process():
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval_s({}) is None
