"""Event-time clock: time moves only with event timestamps; timers fire on that time."""

from __future__ import annotations

import asyncio

from engine.kernel.clock import EventClock

S = 1_000_000_000


def test_timers_fire_in_due_order_when_event_time_passes_them() -> None:
    clock = EventClock(100 * S)
    fired: list[tuple[str, int]] = []
    clock.call_at(105 * S, lambda t: fired.append(("b", t)))
    clock.call_at(103 * S, lambda t: fired.append(("a", t)))
    clock.advance(104 * S)
    assert fired == [("a", 103 * S)]
    clock.advance(110 * S)
    assert fired == [("a", 103 * S), ("b", 105 * S)]


def test_time_never_goes_backwards_on_a_late_timestamp() -> None:
    clock = EventClock(100 * S)
    clock.advance(50 * S)
    assert clock.now_ns() == 100 * S


def test_periodic_timer_fires_once_after_a_jump_and_realigns_to_its_grid() -> None:
    clock = EventClock(0)
    fired: list[int] = []
    clock.every(10 * S, fired.append, first_ns=10 * S)
    clock.advance(10 * S)
    clock.advance(55 * S)  # jumped over 20, 30, 40, 50
    clock.advance(60 * S)
    assert fired == [10 * S, 50 * S, 60 * S]


def test_same_schedule_gives_same_firings_at_any_speed() -> None:
    def run(step_ns: int) -> list[int]:
        clock = EventClock(0)
        out: list[int] = []
        clock.every(5 * S, out.append, first_ns=5 * S)
        t = 0
        while t < 60 * S:
            t += step_ns
            clock.advance(t)
        return out

    assert run(S // 10) == run(S) == [5 * S * k for k in range(1, 13)]


def test_cancelled_timer_does_not_fire_and_a_failing_timer_does_not_stop_others() -> None:
    clock = EventClock(0)
    fired: list[str] = []
    handle = clock.call_at(S, lambda t: fired.append("cancelled"))
    handle.cancel()

    def broken(t: int) -> None:
        raise RuntimeError("timer bug")

    clock.call_at(2 * S, broken)
    clock.call_at(3 * S, lambda t: fired.append("after"))
    clock.advance(5 * S)
    assert fired == ["after"]


async def test_sleep_until_wakes_when_feed_time_reaches_it() -> None:
    clock = EventClock(0)
    woke: list[int] = []

    async def sleeper() -> None:
        await clock.sleep_until(10 * S)
        woke.append(clock.now_ns())

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0)
    clock.advance(5 * S)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(12 * S)
    await task
    assert woke == [12 * S]
