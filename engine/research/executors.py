"""Who runs the units of a sweep: this process, a local process pool (the default over the cores), or a Ray cluster.

Each executor takes units and yields ``(unit, DayResult)`` as they finish, in any order; the runner stores
each at once. Results do not depend on the executor: a unit is a deterministic replay.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from engine.research.evaluate import DayResult, run_day


class Unit(msgspec.Struct, frozen=True):
    """One trial's parameters on one day."""

    key: str
    base: dict[str, Any]
    """The base config data for this day (mapped onto the day's underlyings and cadence)."""
    params: dict[str, Any]
    day: str
    """The recording's path (as the sweep names it)."""
    digest: str
    """SHA-256 of the recording: how a remote worker finds its cached copy."""


def _warm_up() -> None:
    """Import the replay stack once per worker process (Numba's cached kernels load here, not in a trial); the
    replays' logs go to stderr at error level only."""
    import sys

    import engine.replay.driver  # noqa: F401
    from engine.service.logging import configure_logging

    configure_logging("error", stream=sys.stderr)


def _run(unit: Unit, sample_every_s: float) -> DayResult:
    return run_day(unit.base, unit.params, Path(unit.day), sample_every_s)


class SequentialExecutor:
    """Units one after another in this process."""

    name = "sequential"

    def run(self, units: list[Unit], sample_every_s: float) -> Iterator[tuple[Unit, DayResult]]:
        for unit in units:
            yield unit, _run(unit, sample_every_s)

    def close(self) -> None:
        return None


class PoolExecutor:
    """A local pool of ``workers`` processes (spawned: no state shared with this one)."""

    def __init__(self, workers: int) -> None:
        self.name = f"pool-{workers}"
        ctx = multiprocessing.get_context("spawn")
        self.pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_warm_up)

    def run(self, units: list[Unit], sample_every_s: float) -> Iterator[tuple[Unit, DayResult]]:
        futures = {self.pool.submit(_run, u, sample_every_s): u for u in units}
        try:
            for f in cf.as_completed(futures):
                yield futures[f], f.result()
        finally:
            for f in futures:
                f.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


_CACHE: dict[str, Path] = {}
"""Per Ray worker process: recording digest -> its local copy (each recording fetched once per worker)."""


def _ray_unit(unit: Unit, sample_every_s: float, recording: Any) -> DayResult:
    """A Ray task: the unit's replay over the worker's cached copy of the recording (``recording`` is the file's
    bytes, resolved by Ray from the object store only when this worker has no copy yet)."""
    path = _CACHE.get(unit.digest)
    if path is None:
        _warm_up()
        import ray

        data = ray.get(recording[0])
        folder = Path(tempfile.gettempdir()) / f"options-engine-sweep-{os.getpid()}"
        folder.mkdir(exist_ok=True)
        path = folder / f"{unit.digest}.oerec"
        path.write_bytes(data)
        _CACHE[unit.digest] = path
    return run_day(unit.base, unit.params, path, sample_every_s)


class RayExecutor:
    """Units as Ray tasks on the cluster at ``address``; each recording goes to the object store once."""

    def __init__(self, address: str, *, cpus_per_task: float = 1.0) -> None:
        try:
            import ray
        except ModuleNotFoundError:
            raise RuntimeError("--ray needs Ray: pip install 'options-engine[research]'") from None
        self.ray = ray
        self.name = f"ray:{address}"
        if not ray.is_initialized():
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        self.task = ray.remote(num_cpus=cpus_per_task, max_retries=2)(_ray_unit)
        self.refs: dict[str, Any] = {}

    def _recording(self, unit: Unit) -> list[Any]:
        if unit.digest not in self.refs:
            from engine.replay.format import recording_files

            files = recording_files(unit.day)
            if len(files) != 1:
                raise RuntimeError(f"{unit.day}: a Ray sweep needs single-file recordings")
            self.refs[unit.digest] = self.ray.put(files[0].read_bytes())
        return [self.refs[unit.digest]]  # wrapped: Ray must not resolve it before the task looks in its cache

    def run(self, units: list[Unit], sample_every_s: float) -> Iterator[tuple[Unit, DayResult]]:
        pending = {self.task.remote(u, sample_every_s, self._recording(u)): u for u in units}
        try:
            while pending:
                done, _ = self.ray.wait(list(pending), num_returns=1)
                for ref in done:
                    yield pending.pop(ref), self.ray.get(ref)
        finally:
            for ref in pending:
                self.ray.cancel(ref)

    def close(self) -> None:
        self.ray.shutdown()


def make_executor(workers: int, ray_address: str | None) -> SequentialExecutor | PoolExecutor | RayExecutor:
    """Ray when given an address, else a local pool of ``workers`` (1: this process)."""
    if ray_address:
        return RayExecutor(ray_address)
    return SequentialExecutor() if workers <= 1 else PoolExecutor(workers)
