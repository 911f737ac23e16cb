"""The life cycle of the service's long-running loops (loop-lag monitor, watchdog, reloader, commands, publisher).

:class:`BackgroundTask` runs one coroutine function as a named asyncio task: ``start()`` creates the task
once (a second call returns the same task), ``stop()`` cancels it and waits until it has ended, ``join()``
waits a bounded time for it to end by itself. A loop that crashes (ends with an exception other than a
cancel) is logged at once as ``background_task_crashed`` with the task's name and the error, and handed to
``on_crash`` when given, instead of staying silent until shutdown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class BackgroundTask:
    """One named loop run as an asyncio task, started once and stopped by cancelling it."""

    def __init__(
        self,
        name: str,
        run: Callable[[], Coroutine[Any, Any, None]],
        on_crash: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.name = name
        self._run = run
        self._on_crash = on_crash
        self._task: asyncio.Task[None] | None = None
        self.crashed: BaseException | None = None
        """The exception the loop ended with, if it crashed."""

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> asyncio.Task[None]:
        """The running task (created on the first call)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)
            self._task.add_done_callback(self._ended)
        return self._task

    async def join(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the loop to end by itself; True when it has ended."""
        if self._task is None:
            return True
        await asyncio.wait({self._task}, timeout=timeout_s)
        return self._task.done()

    async def stop(self) -> None:
        """Cancel the loop and wait until it has ended (a crash was already reported)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or (exc := task.exception()) is None:
            return
        self.crashed = exc
        log.error("background_task_crashed", task=self.name, error=f"{type(exc).__name__}: {exc}")
        if self._on_crash is not None:
            self._on_crash(exc)


class RunsInBackground:
    """Base of a service object whose loop is the :class:`BackgroundTask` in ``self._loop``."""

    _loop: BackgroundTask

    def start(self) -> asyncio.Task[None]:
        return self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()


async def lagged_sleep(interval_s: float) -> float:
    """Sleep ``interval_s`` on the loop; how much later than asked it woke up (the loop's lag), in seconds."""
    before = time.monotonic()
    await asyncio.sleep(interval_s)
    return max(0.0, time.monotonic() - before - interval_s)
