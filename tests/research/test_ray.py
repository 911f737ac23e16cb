"""The same sweep on a real Ray cluster on loopback: a head node and one worker node, each its own process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.research.runner import SweepRunner
from engine.research.spec import load_sweep
from research.conftest import REPO, unit_hashes, write_sweep

ray = pytest.importorskip("ray", reason="Ray is the optional 'research' extra")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning",
                                        "ignore::ResourceWarning")

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([RAY, "start", "--block", "--num-cpus=1", "--object-store-memory=100000000",
                             "--node-ip-address=127.0.0.1", *args], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """``ray start --head`` plus one worker node, on 127.0.0.1, stopped (their own process groups) at the end."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    address = f"127.0.0.1:{port}"
    procs = [_start(["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}"], env)]
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            assert time.monotonic() < deadline and procs[0].poll() is None, "the Ray head did not start"
            time.sleep(0.2)
        procs.append(_start([f"--address={address}"], env))
        yield address
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


def test_a_sweep_on_a_ray_cluster_gives_every_trial_the_sequential_fills_hash(
        ray_cluster: str, library: Path, sequential_hashes: dict[tuple[str, str], str]) -> None:
    from engine.research.executors import RayExecutor

    sweep = load_sweep(write_sweep(library, "ray"))
    executor = RayExecutor(ray_cluster)
    try:
        deadline = time.monotonic() + 60
        while len(nodes := {n["NodeID"] for n in ray.nodes() if n["Alive"]}) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        outcome = SweepRunner(sweep, executor).run()
    finally:
        executor.close()
    assert len(nodes) == 2
    assert outcome.units_run == 16
    assert unit_hashes(sweep.results) == sequential_hashes
