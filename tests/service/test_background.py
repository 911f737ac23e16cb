"""BackgroundTask: the one start/stop helper of the service's loops."""

from __future__ import annotations

import asyncio
import time

from structlog.testing import capture_logs

from engine.service.background import BackgroundTask, lagged_sleep


def test_start_runs_the_loop_once_and_stop_cancels_it() -> None:
    async def main() -> None:
        ticks: list[int] = []
        cancelled = asyncio.Event()

        async def loop() -> None:
            try:
                while True:
                    ticks.append(1)
                    await asyncio.sleep(0.001)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        bg = BackgroundTask("ticker", loop)
        task = bg.start()
        assert bg.start() is task and task.get_name() == "ticker"
        await asyncio.sleep(0.02)
        assert bg.running and ticks
        await bg.stop()
        assert cancelled.is_set() and task.cancelled() and not bg.running
        await bg.stop()  # stopping twice is harmless
        assert bg.crashed is None

    asyncio.run(main())


def test_join_waits_for_a_loop_that_ends_by_itself() -> None:
    async def main() -> None:
        done = asyncio.Event()

        async def loop() -> None:
            await done.wait()

        bg = BackgroundTask("drain", loop)
        bg.start()
        assert not await bg.join(0.01)
        done.set()
        assert await bg.join(1.0)
        await bg.stop()
        assert await bg.join(0.0)  # never started / already stopped

    asyncio.run(main())


def test_a_crash_is_logged_at_once_and_handed_to_on_crash() -> None:
    async def main() -> None:
        seen: list[BaseException] = []

        async def loop() -> None:
            await asyncio.sleep(0)
            raise RuntimeError("boom")

        bg = BackgroundTask("fragile", loop, on_crash=seen.append)
        with capture_logs() as logs:
            bg.start()
            assert await bg.join(1.0)
            await asyncio.sleep(0)  # the done callback runs on the next loop iteration
        crashed = [e for e in logs if e["event"] == "background_task_crashed"]
        assert crashed == [{"event": "background_task_crashed", "log_level": "error", "task": "fragile",
                            "error": "RuntimeError: boom"}]
        assert isinstance(bg.crashed, RuntimeError) and seen == [bg.crashed]
        await bg.stop()  # the crash does not escape stop()

    asyncio.run(main())


def test_a_cancelled_loop_is_not_a_crash() -> None:
    async def main() -> None:
        bg = BackgroundTask("idle", lambda: asyncio.sleep(3600))
        with capture_logs() as logs:
            bg.start()
            await asyncio.sleep(0)
            await bg.stop()
        assert not [e for e in logs if e["event"] == "background_task_crashed"] and bg.crashed is None

    asyncio.run(main())


def test_lagged_sleep_reports_how_late_the_loop_woke() -> None:
    async def main() -> tuple[float, float]:
        prompt = await lagged_sleep(0.001)
        task = asyncio.ensure_future(lagged_sleep(0.001))
        await asyncio.sleep(0)  # the sleeper is scheduled; now block the loop
        time.sleep(0.05)  # noqa: ASYNC251 - blocking the loop is what is measured
        return prompt, await task

    prompt, late = asyncio.run(main())
    assert 0.0 <= prompt < 0.04 and late >= 0.04
