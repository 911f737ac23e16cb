"""Session-wide fixtures shared by every test package.

Redis: tests that need a server take ``redis_url``. It comes from ``REDIS_URL`` when set; otherwise the
session starts its own ``redis-server`` on a free loopback port (no persistence, temp dir) and stops it at
the end. Nothing assumes 127.0.0.1:6379 exists. Tests skip only when ``REDIS_URL`` is unset and the
``redis-server`` binary is absent (CI installs it).

``redis_process`` gives a private, function-scoped server that a test may stop and restart on the same
port (the "Redis down mid-run" tests); it needs the binary even when ``REDIS_URL`` is set.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

REDIS_BINARY = "redis-server"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers_ping(port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisProcess:
    """A ``redis-server`` child on a fixed loopback port that can be stopped and started again."""

    def __init__(self, binary: str, port: int, workdir: Path) -> None:
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.workdir,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode} on port {self.port}")
            if _answers_ping(self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout_s}s")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


def _require_binary() -> str:
    binary = shutil.which(REDIS_BINARY)
    if binary is None:
        pytest.skip("redis-server is not installed and REDIS_URL is unset")
    return binary


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis server for the whole session (REDIS_URL, or one started here)."""
    env_url = os.environ.get("REDIS_URL")
    if env_url:
        yield env_url
        return
    binary = _require_binary()
    port = free_port()
    while _answers_ping(port):  # something answers: pick another free port
        port = free_port()
    with tempfile.TemporaryDirectory(prefix="redis-test-") as tmp:
        server = RedisProcess(binary, port, Path(tmp))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    """A private redis-server the test may stop and restart on the same port."""
    binary = _require_binary()
    server = RedisProcess(binary, free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _logging_config_restored() -> Iterator[None]:
    """A command under test configures logging to the (captured) stderr of that test; the tests after it must not
    log into a closed file, so each test ends with the logging configuration it started with."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)

